"""Placement of ready tasks onto workers: one deterministic pass per wake-up.

The server counts resources per worker in fixed-point units (`load` vs `capacity`); the worker
picks the concrete indices. A pass goes over the ready queues in order (priority first, then
the request's weight, then older jobs; `state.queue_key`) in two phases: phase 1 fills free
capacity; phase 2 "prefills" each worker with more tasks that it starts by itself as soon as
resources free up, so a fast worker never waits for a round trip to the server
(`Worker.prefill`, adapted by the reactor to how fast the worker completes tasks). A task with
resource variants gets the first variant that fits a worker. Multi-node tasks take whole idle
workers of one group.

Upstream's scheduler solves an ILP per pass; this one is greedy with a bounded search where
greedy is not enough, and keeps upstream's rules (upstream-facts §9):

* Time request (F57): a task goes to a worker only if `now + time_request <= worker end`;
  workers without a time limit take any request.
* Strict priority with the "gap" (F58): when a queue still has tasks after its turn and a
  worker could run its request (it has every resource in that amount and the time), that
  worker is *blocked* for lower priorities: a lower-priority task may go there only if it
  still fits with the blocker's amounts added (per resource, the largest blocker of every
  higher priority level): it uses only resources that would stay free even if the
  higher-priority task were running there. Equal priorities never block each other. The
  worker keeps the same rule for the tasks prefilled to it (`worker.app.LocalQueue`), and
  the server asks back prefilled lower-priority tasks when higher ones wait
  (`_retract_for_priority`).
* Weights (F59): the value of a placed task is `weight * sum_r(amount_r / capacity_r)`.
  Queues of one priority are served by descending weight (the value per unit of resource),
  and workers by ascending id, so heavier requests and lower ids come first; a weight never
  blocks anything (a lighter task takes what the heavier ones leave).
* `--min-utilization m` (F59): such a worker gets new tasks only if its CPUs in use after the
  placement are at least `m` x all its CPUs; it gets no prefill. It is filled after the other
  workers by a depth-first search over how many tasks of each ready queue (the first
  `MIN_UTIL_QUEUES` single-node queues, each with the first variant the worker can run) it
  takes, maximising the value above subject to the threshold and the priority gap, with at
  most `MIN_UTIL_BUDGET` nodes (`MIN_UTIL_PASS_BUDGET` shared by all such workers of a pass;
  a worker in the same state as one that found no mix is not searched again); e.g. a 12-CPU worker with m = 1 and two 3-CPU tasks of
  weight 2 beside 6-CPU tasks of weight 1 takes 3 + 3 + 6 (value 18) rather than 6 + 6 (12).

Cost: the greedy phases touch each queue once per candidate worker; blockers are computed
only for queues that keep tasks while a lower priority level follows, and only for workers
that still have room.
"""

from __future__ import annotations

from .model import TaskState, Worker
from .outbox import Outbox
from .reactor import assign
from .resources import ALL, UNIT
from .state import Core

PREFILL_FACTOR = 2  # the least prefill: a worker may hold twice its capacity
MIN_UTIL_QUEUES = 8  # ready queues a --min-utilization worker's search looks at
MIN_UTIL_BUDGET = 1024  # search nodes per --min-utilization worker and pass ...
MIN_UTIL_PASS_BUDGET = 4096  # ... shared by all of them in a pass ...
MIN_UTIL_MIN_BUDGET = 32  # ... but at least this many each


def _fits(worker: Worker, request, limit_factor: float, now: float, block=None) -> bool:
    """Whether `request` fits `worker` within `limit_factor` x its capacity, with `block`
    (resource -> amount held back for waiting higher-priority tasks) counted as used."""
    cap = worker.capacity
    load = worker.load
    for e in request.entries:
        c = cap.get(e.name)
        if not c:
            return False
        amount = c if e.amount == ALL else e.amount
        if amount > c:
            return False
        used = load[e.name] + amount
        if block is not None:
            used += block.get(e.name, 0)
        if used > c * limit_factor:
            return False
    return not request.min_time or _has_time(worker, request.min_time, now)


def _has_time(worker: Worker, min_time: float, now: float) -> bool:
    """Whether `worker` lives at least `min_time` more seconds (no time limit: always)."""
    remaining = worker.remaining_time(now)
    return remaining is None or remaining >= min_time


def _first_fitting(worker: Worker, requests, factor: float, now: float, block=None) -> int:
    for i, r in enumerate(requests):
        if _fits(worker, r, factor, now, block):
            return i
    return -1


def _capable(worker: Worker, request, now: float) -> bool:
    """Whether `worker` could run `request` at all: every resource in that amount, and the
    time (F57)."""
    cap = worker.capacity
    for e in request.entries:
        c = cap.get(e.name)
        if not c or (e.amount != ALL and e.amount > c):
            return False
    return not request.min_time or _has_time(worker, request.min_time, now)


def _add_blocker(blocks: dict, q, workers, now: float) -> None:
    """Queue `q` keeps tasks after its turn: each worker of `workers` that could run its
    request holds that request's amounts back from lower priorities (F58)."""
    requests = q.batch.template.requests
    for w in workers:
        for r in requests:
            if _capable(w, r, now):
                cap = w.capacity
                b = blocks.get(w.id)
                if b is None:
                    b = blocks[w.id] = {}
                for e in r.entries:
                    amount = cap[e.name] if e.amount == ALL else e.amount
                    if amount > b.get(e.name, 0):
                        b[e.name] = amount
                break


def _merge_blocks(into: dict, new: dict) -> None:
    for wid, b in new.items():
        old = into.get(wid)
        if old is None:
            into[wid] = b
        else:
            for name, amount in b.items():
                if amount > old.get(name, 0):
                    old[name] = amount


def _mark_reserved(core: Core, held) -> None:
    """`Worker.mn_reserved` (worker info: "reserved for a multi-node task", F50): held free
    in this pass for a multi-node task that waits for more workers."""
    for w in core.workers.values():
        w.mn_reserved = w.id in held


def _has_room(w: Worker, factor: float, need: int = 0) -> bool:
    """Whether `w` has CPU room left within `factor` x its CPUs, at least `need` units (the
    least any ready task takes, `Core.least_cpus_needed`: a worker with less room takes
    nothing more in this pass, so it stops being offered every remaining queue)."""
    cap = w.capacity.get("cpus")
    if cap is None:
        return True
    load = w.load["cpus"]
    return load < cap * factor and load + need <= cap * factor


def schedule(core: Core, outbox: Outbox, now: float) -> int:
    """Assigns ready tasks to running workers; returns the number of tasks assigned."""
    core.needs_schedule = False
    if not core.queue_keys or core.awaiting:
        if not core.queue_keys:
            _mark_reserved(core, ())
        return 0
    workers = [w for w in core.workers.values()
               if w.is_running and not w.stopping and w.mn_task is None]
    if not workers:
        _mark_reserved(core, ())
        return 0
    assigned = 0
    compute = outbox.compute
    held: set[int] = set()  # workers kept free for a waiting multi-node task
    picky = [w for w in workers if w.config.min_utilization]
    for phase in (1, 2):
        def limit(w):
            return 1 if phase == 1 else max(PREFILL_FACTOR, w.prefill)

        if phase == 1:
            # --min-utilization workers are filled after the others, by a search
            candidates = [w for w in workers if w.mn_task is None and _has_room(w, 1)
                          and not w.config.min_utilization]
        else:
            if picky:
                assigned += _fill_min_utilization(core, picky, held, compute, now)
            # Refill a prefill only once half of it is used up: fewer, bigger messages.
            candidates = [w for w in workers if w.mn_task is None and w.id not in held
                          and _has_room(w, (1 + limit(w)) / 2)
                          # a prefilled task would start later without its companions
                          and not w.config.min_utilization]
        need = core.least_cpus_needed()
        if need:
            candidates = [w for w in candidates if _has_room(w, limit(w), need)]
        if not candidates or not core.queue_keys:
            continue
        # Walked in place (no copy per pass): dropping the current queue shifts the next one
        # to index i.
        keys = core.queue_keys
        lowest = keys[-1][0]  # the lowest priority level (keys hold -priority first)
        blocks: dict = {}  # worker id -> resources held back for higher priorities (F58)
        level_blocks: dict = {}  # the same, from the priority level being served
        level = keys[0][0]
        i = 0
        while i < len(keys):
            key = keys[i]
            if key[0] != level:
                if level_blocks:
                    _merge_blocks(blocks, level_blocks)
                    level_blocks = {}
                level = key[0]
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
                else:
                    i += 1
                continue
            if blocks:
                for w in candidates:
                    assigned += _fill(q, w, limit(w), compute, now, blocks.get(w.id))
                    if not len(q):
                        break
            else:
                for w in candidates:
                    assigned += _fill(q, w, limit(w), compute, now)
                    if not len(q):
                        break
            if not len(q):
                core.drop_queue(key)
            else:
                i += 1
            candidates = [w for w in candidates if _has_room(w, limit(w), need)]
            if not candidates:
                break
            if len(q) and key[0] != lowest:
                _add_blocker(level_blocks, q, candidates, now)
    for wid in [wid for wid, lst in compute.items() if not lst]:
        del compute[wid]
    _mark_reserved(core, held)
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


def _fill(q, w: Worker, factor: float, compute, now: float, block=None) -> int:
    """Assigns tasks of queue `q` to worker `w` while they fit; returns how many."""
    requests = q.batch.template.requests
    variant = _first_fitting(w, requests, factor, now, block)
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
        if not _fits(w, requests[variant], factor, now, block):
            variant = _first_fitting(w, requests, factor, now, block)
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


def _fill_min_utilization(core: Core, picky, held: set, compute, now: float) -> int:
    """Gives each `--min-utilization` worker the most valuable mix of ready tasks that keeps
    at least that share of its CPUs busy, or nothing (F59). Returns how many were assigned."""
    assigned = 0
    # Workers in the same state as one that found no mix find none either (until something
    # is assigned): one search for a uniform pool.
    no_mix: set = set()
    budget = max(MIN_UTIL_MIN_BUDGET, min(MIN_UTIL_BUDGET, MIN_UTIL_PASS_BUDGET // len(picky)))
    for w in picky:
        if w.id in held or w.mn_task is not None or not _has_room(w, 1):
            continue
        state = (w.config.min_utilization, w.config.time_limit and w.remaining_time(now),
                 tuple(w.capacity.items()), tuple(w.load.items()))
        if state in no_mix:
            continue
        queues = []
        for key in core.queue_keys:
            q = core.queues[key]
            if len(q) and not q.batch.template.is_multi_node:
                for vi, r in enumerate(q.batch.template.requests):
                    if _capable(w, r, now):
                        queues.append((key, q, vi, r))
                        break
                if len(queues) >= MIN_UTIL_QUEUES:
                    break
        if not queues:
            continue
        counts = _best_mix(w, queues, budget)
        if counts is None:
            no_mix.add(state)
            continue
        no_mix.clear()
        wtasks = compute.setdefault(w.id, [])
        for (key, q, vi, _r), n in zip(queues, counts):
            for _ in range(n):
                task = q.pop()
                assign(task, w, vi, None)
                wtasks.append(task)
            assigned += n
            if not len(q):
                core.drop_queue(key)
    return assigned


def _best_mix(w: Worker, queues, budget_nodes: int = MIN_UTIL_BUDGET) -> list[int] | None:
    """How many tasks of each of `queues` (`(key, queue, variant, request)`, in queue order)
    worker `w` should take: the largest value `sum(weight * sum_r(amount_r / capacity_r))`
    whose CPUs in use reach `min_utilization` x its CPUs, at least one task; None if no mix
    does. Depth-first, most tasks of earlier queues first (ties keep the earlier mix); a queue
    of a lower priority only fits beside one more task of each higher-priority queue that
    keeps tasks (the gap, F58), pruning branches that cannot beat the best value or reach
    the CPUs needed. At most `budget_nodes` nodes."""
    cap = w.capacity
    cpus = cap.get("cpus", 0)
    need = w.config.min_utilization * cpus
    n = len(queues)
    # per queue: amounts (resource -> units), value of one task, priority, available tasks
    amounts, values = [], []
    for _key, _q, _vi, r in queues:
        a = {e.name: (cap[e.name] if e.amount == ALL else e.amount) for e in r.entries}
        amounts.append(a)
        values.append(r.weight * sum(x / cap[name] for name, x in a.items()) / UNIT)
    prios = [key[0] for key, _q, _vi, _r in queues]
    avail = [len(q) for _key, q, _vi, _r in queues]
    # bounds of what queues i.. can still add: the largest weight, and CPUs
    max_w = [0.0] * (n + 1)
    cpu_sum = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        max_w[i] = max(max_w[i + 1], queues[i][3].weight / UNIT)
        cpu_sum[i] = cpu_sum[i + 1] + avail[i] * amounts[i].get("cpus", 0)
    best_value = -1.0
    best: list[int] | None = None
    counts = [0] * n
    budget = [budget_nodes]

    def max_count(i: int, load: dict, block: dict) -> int:
        k = avail[i]
        for name, x in amounts[i].items():
            free = cap[name] - load.get(name, 0) - block.get(name, 0)
            k = min(k, free // x if free > 0 else 0)
        return max(k, 0)

    def visit(i: int, load: dict, value: float, block: dict, level_block: dict) -> None:
        nonlocal best_value, best
        if budget[0] <= 0:
            return
        budget[0] -= 1
        if i == n:
            if any(counts) and load.get("cpus", 0) >= need and value > best_value + 1e-12:
                best_value = value
                best = list(counts)
            return
        # prune: the value cannot beat the best (each task's value is at most the largest
        # weight times its share of the free resources), or the CPUs cannot reach the need
        free_share = sum((c - load.get(name, 0)) / c for name, c in cap.items() if c)
        if value + max_w[i] * free_share <= best_value + 1e-12:
            return
        if load.get("cpus", 0) + min(cpus - load.get("cpus", 0), cpu_sum[i]) < need:
            return
        if i and prios[i] != prios[i - 1] and level_block:
            block = dict(block)
            for name, x in level_block.items():
                if x > block.get(name, 0):
                    block[name] = x
            level_block = {}
        k = max_count(i, load, block)
        a = amounts[i]
        for c in range(k, -1, -1):
            counts[i] = c
            new_load = dict(load)
            for name, x in a.items():
                new_load[name] = new_load.get(name, 0) + c * x
            lb = level_block
            if c < avail[i]:  # tasks left behind hold their amounts back from lower levels
                lb = dict(level_block)
                for name, x in a.items():
                    if x > lb.get(name, 0):
                        lb[name] = x
            visit(i + 1, new_load, value + c * values[i], block, lb)
            if budget[0] <= 0:
                break
        counts[i] = 0

    visit(0, dict(w.load), 0.0, {}, {})
    return best


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
