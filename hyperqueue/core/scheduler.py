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
from .resources import ALL, UNIT
from .state import Core

PREFILL_FACTOR = 2  # the least prefill: a worker may hold twice its capacity
MIN_UTIL_ATTEMPTS = 8  # queue orders tried to fill a --min-utilization worker


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


def _first_fitting(worker: Worker, requests, factor: float, now: float) -> int:
    for i, r in enumerate(requests):
        if _fits(worker, r, factor, now):
            return i
    return -1


def _has_room(w: Worker, factor: float) -> bool:
    cap = w.capacity.get("cpus")
    return cap is None or w.load["cpus"] < cap * factor


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
    held: set[int] = set()  # workers kept free for a waiting multi-node task
    picky = [w for w in workers if w.config.min_utilization]
    before = {w.id: len(compute.get(w.id, ())) for w in picky}
    for phase in (1, 2):
        def limit(w):
            return 1 if phase == 1 else max(PREFILL_FACTOR, w.prefill)

        if phase == 1:
            candidates = [w for w in workers if w.mn_task is None and _has_room(w, 1)]
        else:
            if picky:
                assigned -= _enforce_min_utilization(core, picky, before, compute, now)
            # Refill a prefill only once half of it is used up: fewer, bigger messages.
            candidates = [w for w in workers if w.mn_task is None and w.id not in held
                          and _has_room(w, (1 + limit(w)) / 2)
                          # a prefilled task would start later without its companions
                          and not w.config.min_utilization]
        if not candidates:
            continue
        for key in list(core.queue_keys):
            q = core.queues[key]
            template = q.batch.template
            if template.is_multi_node:
                if phase == 1:
                    assigned += _schedule_multi_node(core, q, workers, compute, now, held,
                                                     outbox.reserve)
                    candidates = [w for w in candidates
                                  if w.mn_task is None and w.id not in held]
                if not len(q):
                    core.drop_queue(key)
                continue
            for w in candidates:
                assigned += _fill(q, w, limit(w), compute, now)
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


def _fill(q, w: Worker, factor: float, compute, now: float) -> int:
    """Assigns tasks of queue `q` to worker `w` while they fit; returns how many."""
    requests = q.batch.template.requests
    variant = _first_fitting(w, requests, factor, now)
    if variant < 0:
        return 0
    wtasks = compute.get(w.id)
    if wtasks is None:
        wtasks = compute[w.id] = []
    n = 0
    while True:
        task = q.pop()
        assign(task, w, variant, None)
        wtasks.append(task)
        n += 1
        if not len(q):
            return n
        if not _fits(w, requests[variant], factor, now):
            variant = _first_fitting(w, requests, factor, now)
            if variant < 0:
                return n


def _schedule_multi_node(core: Core, q, workers, compute, now: float, held: set,
                         reserve: dict) -> int:
    """Whole idle workers of one group for each multi-node task, while groups have enough.

    When the next task cannot start yet but some group has enough workers, the least busy
    `n` of them are held (added to `held`): nothing new starts there, so the task is not
    starved by a stream of smaller tasks. The secondary nodes are marked in `reserve`.
    """
    request = q.batch.template.request
    n = request.n_nodes
    by_group: dict[str, list[Worker]] = {}
    for w in workers:
        if w.mn_task is not None or w.id in held:
            continue
        if request.min_time:
            remaining = w.remaining_time(now)
            if remaining is not None and remaining < request.min_time:
                continue
        by_group.setdefault(w.config.group, []).append(w)
    assigned = 0
    for group in sorted(by_group):
        idle = sorted((w for w in by_group[group]
                       if not w.tasks and not any(w.load.values())), key=lambda w: w.id)
        while len(idle) >= n and len(q):
            nodes, idle = idle[:n], idle[n:]
            task = q.pop()
            assign(task, nodes[0], 0, nodes)
            compute.setdefault(nodes[0].id, []).append(task)
            for node in nodes[1:]:
                reserve[node.id] = True
            assigned += 1
    if len(q):
        groups = [g for g in sorted(by_group)
                  if sum(1 for w in by_group[g] if w.mn_task is None) >= n]
        if groups:
            pool = [w for w in by_group[groups[0]] if w.mn_task is None]
            pool.sort(key=lambda w: (len(w.tasks), w.id))
            held.update(w.id for w in pool[:n])
    return assigned


def _enforce_min_utilization(core: Core, picky, before: dict, compute, now: float) -> int:
    """Takes back this pass's assignments to a `--min-utilization` worker when they would not
    keep that share of its CPUs busy (it waits for more work instead). Returns how many."""
    from .reactor import unassign

    def enough(w):
        return w.load.get("cpus", 0) >= w.config.min_utilization * w.capacity.get("cpus", 0)

    def take_back(w) -> int:
        lst = compute.get(w.id)
        fresh = lst[before[w.id]:] if lst else []
        if lst:
            del lst[before[w.id]:]
        for task in reversed(fresh):
            unassign(core, task)
        return len(fresh)

    taken_back = 0
    for w in picky:
        if enough(w) or not compute.get(w.id):
            continue
        taken_back += take_back(w)
        # Greedy from each later queue in turn: a different mix may fill the worker (e.g. one
        # 2-cpu task instead of a 1-cpu task that blocks it). Bounded attempts.
        keys = list(core.queue_keys)
        for start in range(1, min(len(keys), MIN_UTIL_ATTEMPTS)):
            for key in keys[start:]:
                q = core.queues.get(key)
                if q is not None and len(q) and not q.batch.template.is_multi_node:
                    taken_back -= _fill(q, w, 1, compute, now)
            if enough(w):
                break
            taken_back += take_back(w)
        for key in [k for k in keys if k in core.queues and not len(core.queues[k])]:
            core.drop_queue(key)
    return taken_back


def explain(core: Core, task, now: float) -> dict:
    """Why a waiting task does (not) run on each live worker: per variant, the requirements
    upstream's `task explain` lists (F63). Per variant, a `time` item (only with a time
    request) comes first, then one `resources` item per request entry, or a single `nodes`
    item for a multi-node request. Amounts are raw fixed-point units; `ok` says whether the
    worker meets the item."""
    template = task.batch.template
    workers = []
    for w in sorted(core.workers.values(), key=lambda w: w.id):
        if not w.is_running:
            continue
        variants = []
        for vi, r in enumerate(template.requests):
            items = []
            if r.min_time:
                remaining = w.remaining_time(now)
                if remaining is not None:
                    remaining = max(0.0, remaining)
                items.append({"type": "time", "min_time": r.min_time,
                              "remaining_time": remaining,
                              "ok": remaining is None or remaining >= r.min_time})
            if r.n_nodes:
                group_size = sum(1 for x in core.workers.values()
                                 if x.is_running and x.config.group == w.config.group)
                items.append({"type": "nodes", "n_nodes": r.n_nodes, "group_size": group_size,
                              "ok": group_size >= r.n_nodes})
            else:
                for e in r.entries:
                    c = w.capacity.get(e.name, 0)
                    amount = UNIT if e.amount == ALL else e.amount  # All: at least one unit
                    items.append({"type": "resources", "resource": e.name,
                                  "request_amount": amount, "worker_amount": c,
                                  "ok": c > 0 and amount <= c})
            variants.append({"variant": vi, "items": items,
                             "runnable": all(i["ok"] for i in items)})
        workers.append({"worker_id": w.id, "hostname": w.config.hostname,
                        "variants": variants})
    return {"workers": workers}
