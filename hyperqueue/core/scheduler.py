"""Placement of ready tasks onto workers: one deterministic pass per wake-up.

The server counts resources per worker in fixed-point units (`load` vs `capacity`); the worker
picks the concrete indices. A pass goes over the ready queues in order (priority first, then
older jobs) in two phases: phase 1 fills free capacity; phase 2 "prefills" each worker with more
tasks that it starts by itself as soon as resources free up, so a fast worker never waits for a
round trip to the server (`Worker.prefill`, adapted by the reactor to how fast the worker
completes tasks). A task with resource variants gets the first variant that fits a worker.
Multi-node tasks take whole idle workers of one group.
"""

from __future__ import annotations

from .model import TaskState, Worker
from .outbox import Outbox
from .reactor import assign
from .resources import ALL
from .state import Core

PREFILL_FACTOR = 2  # the least prefill: a worker may hold twice its capacity


def _fits(worker: Worker, request, limit_factor: float, now: float) -> bool:
    cap = worker.capacity
    load = worker.load
    for e in request.entries:
        c = cap.get(e.name)
        if not c:
            return False
        if e.amount == ALL:
            if load[e.name] + c > c * limit_factor:
                return False
        elif e.amount > c or load[e.name] + e.amount > c * limit_factor:
            return False
    if request.min_time:
        remaining = worker.remaining_time(now)
        if remaining is not None and remaining < request.min_time:
            return False
    return True


def can_ever_run(worker: Worker, request, now: float | None = None) -> bool:
    """Whether the worker could run the request when it is otherwise idle."""
    if request.n_nodes:
        return True
    cap = worker.capacity
    for e in request.entries:
        c = cap.get(e.name)
        if not c or (e.amount != ALL and e.amount > c):
            return False
    if now is not None and request.min_time:
        remaining = worker.remaining_time(now)
        if remaining is not None and remaining < request.min_time:
            return False
    return True


def _first_fitting(worker: Worker, requests, factor: float, now: float) -> int:
    for i, r in enumerate(requests):
        if _fits(worker, r, factor, now):
            return i
    return -1


def _has_room(w: Worker, factor: float) -> bool:
    cap = w.capacity.get("cpus")
    return cap is None or w.load["cpus"] < cap * factor


def _min_utilization_ok(w: Worker, demand_cpus: int) -> bool:
    """A worker with --min-utilization only takes work that keeps that share of its CPUs busy."""
    mu = w.config.min_utilization
    if not mu:
        return True
    cap = w.capacity.get("cpus", 0)
    return w.load.get("cpus", 0) + demand_cpus >= mu * cap


def schedule(core: Core, outbox: Outbox, now: float) -> int:
    """Assigns ready tasks to running workers; returns the number of tasks assigned."""
    core.needs_schedule = False
    if not core.queue_keys or core.awaiting:
        return 0
    workers = [w for w in core.workers.values()
               if w.is_running and not w.stopping and w.mn_task is None]
    if not workers:
        return 0
    assigned = 0
    compute = outbox.compute
    demand = None
    for phase in (1, 2):
        def limit(w):
            return 1 if phase == 1 else max(PREFILL_FACTOR, w.prefill)

        if phase == 1:
            candidates = [w for w in workers if w.mn_task is None and _has_room(w, 1)]
        else:
            # Refill a prefill only once half of it is used up: fewer, bigger messages.
            candidates = [w for w in workers if w.mn_task is None
                          and _has_room(w, (1 + limit(w)) / 2)]
        if any(w.config.min_utilization for w in candidates):
            demand = _cpu_demand(core)
            candidates = [w for w in candidates if _min_utilization_ok(w, demand)]
        if not candidates:
            continue
        for key in list(core.queue_keys):
            q = core.queues[key]
            template = q.batch.template
            if template.is_multi_node:
                if phase == 1:
                    assigned += _schedule_multi_node(core, q, candidates, compute, now)
                    candidates = [w for w in candidates if w.mn_task is None]
                if not len(q):
                    core.drop_queue(key)
                continue
            requests = template.requests
            for w in candidates:
                factor = limit(w)
                variant = _first_fitting(w, requests, factor, now)
                if variant < 0:
                    continue
                wtasks = compute.get(w.id)
                if wtasks is None:
                    wtasks = compute[w.id] = []
                while True:
                    task = q.pop()
                    assign(task, w, variant, None)
                    wtasks.append(task)
                    assigned += 1
                    if not len(q):
                        break
                    if not _fits(w, requests[variant], factor, now):
                        variant = _first_fitting(w, requests, factor, now)
                        if variant < 0:
                            break
                if not len(q):
                    break
            if not len(q):
                core.drop_queue(key)
            candidates = [w for w in candidates if _has_room(w, limit(w))]
            if not candidates:
                break
    for wid in [wid for wid, lst in compute.items() if not lst]:
        del compute[wid]
    if core.queue_keys and len(core.priorities) > 1:
        _retract_for_priority(core, outbox, workers)
    return assigned


def _retract_for_priority(core: Core, outbox: Outbox, workers) -> None:
    """Ready tasks of a higher priority than tasks prefilled (not yet started) on a worker:
    ask those back, so the higher ones get the worker's next free resources."""
    top = -core.queue_keys[0][0]
    waiting_top = sum(len(core.queues[k]) for k in core.queue_keys if -k[0] == top)
    budget = waiting_top
    for w in workers:
        if budget <= 0:
            break
        for t in sorted(w.tasks, key=lambda t: (t.batch.template.priority, -t.job.id, -t.id)):
            if budget <= 0:
                break
            if (t.state == TaskState.ASSIGNED and not t.retracting and t.nodes is None
                    and t.batch.template.priority < top):
                t.retracting = True
                outbox.retract.setdefault(w.id, []).append((t.job.id, t.id, t.instance))
                budget -= 1


def _cpu_demand(core: Core) -> int:
    total = 0
    for q in core.queues.values():
        e = q.batch.template.request.cpus
        if e is not None and e.amount != ALL:
            total += e.amount * len(q)
            if total > 1 << 40:
                break
    return total


def _schedule_multi_node(core: Core, q, candidates, compute, now: float) -> int:
    """Whole idle workers of one group for each multi-node task, while groups have enough."""
    request = q.batch.template.request
    n = request.n_nodes
    idle_by_group: dict[str, list[Worker]] = {}
    for w in candidates:
        if w.tasks or w.mn_task is not None or any(w.load.values()):
            continue
        if request.min_time:
            remaining = w.remaining_time(now)
            if remaining is not None and remaining < request.min_time:
                continue
        idle_by_group.setdefault(w.config.group, []).append(w)
    assigned = 0
    for group in sorted(idle_by_group):
        idle = sorted(idle_by_group[group], key=lambda w: w.id)
        while len(idle) >= n and len(q):
            nodes, idle = idle[:n], idle[n:]
            task = q.pop()
            assign(task, nodes[0], 0, nodes)
            compute.setdefault(nodes[0].id, []).append(task)
            assigned += 1
    return assigned


def explain(core: Core, task, now: float) -> dict:
    """Why a waiting task does (not) run on each live worker: per variant, per requirement."""
    template = task.batch.template
    workers = []
    for w in sorted(core.workers.values(), key=lambda w: w.id):
        if not w.is_running:
            continue
        variants = []
        for vi, r in enumerate(template.requests):
            items = []
            if r.n_nodes:
                group_size = sum(1 for x in core.workers.values()
                                 if x.is_running and x.config.group == w.config.group)
                items.append({"type": "nodes", "provides": str(group_size),
                              "request": str(r.n_nodes), "ok": group_size >= r.n_nodes})
            for e in r.entries:
                c = w.capacity.get(e.name, 0)
                ok = c > 0 and (e.amount == ALL or e.amount <= c)
                items.append({"type": e.name, "provides": _amount_text(c),
                              "request": e.to_text(), "ok": ok})
            if r.min_time:
                remaining = w.remaining_time(now)
                ok = remaining is None or remaining >= r.min_time
                items.append({"type": "time",
                              "provides": "unlimited" if remaining is None
                              else f"{max(0.0, remaining):.0f}s",
                              "request": f"{r.min_time:.0f}s", "ok": ok})
            variants.append({"variant": vi, "items": items,
                             "runnable": all(i["ok"] for i in items)})
        workers.append({"worker_id": w.id, "hostname": w.config.hostname,
                        "variants": variants})
    return {"workers": workers}


def _amount_text(units: int) -> str:
    from .resources import format_amount

    return format_amount(units) if units else "0"
