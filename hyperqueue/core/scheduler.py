"""Placement of ready tasks onto workers: one deterministic pass per wake-up.

The server counts resources per worker in fixed-point units (`load` vs `capacity`); the worker
picks the concrete indices. A pass runs in two phases over the ready queues (priority first, then
older jobs): phase 1 fills free capacity; phase 2 "prefills" each worker with up to one more
capacity's worth of tasks that it will start itself as soon as resources free up, so a fast
worker never waits for a round trip to the server.
"""

from __future__ import annotations

from .model import TaskState, Worker
from .outbox import Outbox
from .resources import ALL
from .state import Core

PREFILL_FACTOR = 2  # the least prefill: a worker may hold twice its capacity
# (a worker that completes tasks quickly gets more: `Worker.prefill`, kept by the reactor)


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


def _can_ever_run(worker: Worker, request) -> bool:
    cap = worker.capacity
    for e in request.entries:
        c = cap.get(e.name)
        if not c or (e.amount != ALL and e.amount > c):
            return False
    return True


def schedule(core: Core, outbox: Outbox, now: float) -> int:
    """Assigns ready tasks to running workers; returns the number of tasks assigned."""
    core.needs_schedule = False
    if not core.queue_keys or core.awaiting:
        return 0
    workers = [w for w in core.workers.values() if w.is_running and not w.stopping]
    if not workers:
        return 0
    assigned = 0
    compute = outbox.compute
    for phase in (1, 2):
        def limit(w):
            return 1 if phase == 1 else max(PREFILL_FACTOR, w.prefill)

        candidates = [w for w in workers if "cpus" not in w.capacity
                      or w.load["cpus"] < w.capacity["cpus"] * limit(w)]
        if not candidates:
            continue
        for key in list(core.queue_keys):
            q = core.queues[key]
            request = q.batch.template.request
            entries = [(e.name, e.amount) for e in request.entries]
            for w in candidates:
                factor = limit(w)
                if not _fits(w, request, factor, now):
                    continue
                wtasks = compute.get(w.id)
                if wtasks is None:
                    wtasks = compute[w.id] = []
                load = w.load
                cap = w.capacity
                while True:
                    task = q.pop()
                    task.state = TaskState.ASSIGNED
                    counts = task.job.counts
                    counts[TaskState.WAITING] -= 1
                    counts[TaskState.ASSIGNED] += 1
                    task.worker = w
                    w.tasks.add(task)
                    w.idle_since = None
                    for name, amount in entries:
                        load[name] += cap[name] if amount == ALL else amount
                    wtasks.append(task)
                    assigned += 1
                    if not len(q) or not _fits(w, request, factor, now):
                        break
                if not len(q):
                    break
            if not len(q):
                core.drop_queue(key)
            candidates = [w for w in candidates if "cpus" not in w.capacity
                          or w.load["cpus"] < w.capacity["cpus"] * limit(w)]
            if not candidates:
                break
    for wid in [wid for wid, lst in compute.items() if not lst]:
        del compute[wid]
    return assigned


def unschedulable_reason(core: Core, request) -> str | None:
    """Why no current worker could ever run a request (None if some worker could)."""
    running = [w for w in core.workers.values() if w.is_running]
    if any(_can_ever_run(w, request) for w in running):
        return None
    return "no connected worker provides the requested resources"
