"""Rebuilding the core from journal events: a fold of the same reactions that produced them.

Only the events that carry decisions are replayed (submits, cancels, closes, forgets, workers
coming and going, task starts and results); their consequences (aborted dependents, max-fails
aborts, crash-limit failures, job completion) follow from the reactor exactly as they did live.
"""

from __future__ import annotations

from . import events as ev
from . import reactor
from .model import TaskState, TaskTemplate, WorkerConfig, WorkerState
from .outbox import Outbox
from .limits import MAX_ID
from .ranges import IntRanges
from . import state
from .state import Core

_LOSS_BY_LABEL = {s.label: s for s in WorkerState}
# Kinds this hq no longer writes (or a newer one adds) that carry no decision: skipped.
IGNORED_KINDS = frozenset({"worker-overview"})


class RestoreError(ValueError):
    """An event that cannot be applied: the journal does not describe a possible history."""


def apply_event(core: Core, outbox: Outbox, event: ev.Event) -> None:
    """Applies one event to `core` (raises RestoreError if it does not fit)."""
    try:
        _apply(core, outbox, event)
    except RestoreError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError,
            RecursionError, reactor.IllegalTransition) as e:
        # (a hostile or corrupt record: e.g. a number too large for the compact task store)
        raise RestoreError(f"cannot apply {_kind(event)} event: {e!r}") from None


def _kind(event) -> str:
    return event.record_kind if type(event) is ev.Unknown else event.kind


def _apply(core: Core, outbox: Outbox, e: ev.Event) -> None:
    time = e.time
    match e:
        case ev.TaskStarted(job=job_id, task=task_id, instance=instance):
            worker = _worker(core, e.worker)
            variant, nodes = _placement(core, worker, e)
            if reactor.adopt_task(core, outbox, worker, job_id, task_id, instance, time,
                                  variant, nodes) is None:
                # Already applied by the replay of a `worker-reconnected` event (which adopts
                # and settles the worker's tasks itself) and recorded again after it: nothing
                # to do.
                task = core.task_record(_job(core, job_id), task_id)
                if task is None or not (task.state.is_terminal or task.instance > instance):
                    raise RestoreError(f"task {job_id}@{task_id} cannot start on worker "
                                       f"{e.worker}")
        case ev.TaskFinished() | ev.TaskFailed():
            job = _job(core, e.job)
            task = job.tasks.get(e.task)
            if task is None and job.done.find(e.task) is not None:
                return  # finished already (the replay of a `worker-reconnected` applied it)
            if task is None or task.worker is None:
                raise RestoreError(f"task {e.job}@{e.task} ended without starting")
            if type(e) is ev.TaskFinished:
                update = [reactor.UPDATE_FINISHED, job.id, task.id, e.instance, None]
            else:
                update = [reactor.UPDATE_FAILED, job.id, task.id, e.instance, e.error]
            reactor.task_updates(core, outbox, task.worker, [update], time)
        case ev.TaskProgress():
            _progress(core, outbox, e)
        case ev.TaskCanceled() | ev.JobCompleted() | ev.ServerStop() | ev.WorkerOverview():
            pass  # derived (TaskAborted too): follows from the events that caused it
        case ev.ServerStart(server_uid=uid):
            if not core.jobs and not core.workers:
                core.server_uid = uid
        case ev.IdFloor():
            for what, last in (("job", e.job), ("worker", e.worker)):
                if not 0 <= last <= MAX_ID:
                    raise RestoreError(f"id-floor event: last {what} id {last} is out of range")
            core.next_job_id = max(core.next_job_id, e.job + 1)
            core.next_worker_id = max(core.next_worker_id, e.worker + 1)
        case ev.JobOpen():
            core.next_job_id = e.job
            reactor.open_job(core, outbox, e.name, e.max_fails, e.submit_dir, time)
        case ev.JobCreated():
            batches = [reactor.BatchSpec(TaskTemplate.from_wire(t), IntRanges.parse(ids),
                                         entries, deps) for t, ids, entries, deps in e.batches]
            if e.closed_job:
                core.next_job_id = e.job
                spec = reactor.SubmitSpec(e.name, e.submit_dir, batches, e.max_fails)
            else:
                spec = reactor.SubmitSpec(e.name, e.submit_dir, batches, e.max_fails, e.job)
            job = reactor.submit(core, outbox, spec, time)
            if job.id != e.job:
                raise RestoreError(f"job {e.job} was restored with id {job.id}")
        case ev.JobClose():
            reactor.close_job(core, outbox, _job(core, e.job), time)
        case ev.JobCancel():
            reactor.cancel_job(core, outbox, _job(core, e.job), e.reason, time)
        case ev.JobForget():
            job = core.jobs.get(e.job)
            if job is not None:  # else pruned from the journal (`journal prune`) before
                reactor.forget_job(core, outbox, job, time)
        case ev.WorkerConnected():
            core.next_worker_id = e.worker
            reactor.add_worker(core, outbox, WorkerConfig.from_wire(e.configuration), time)
        case ev.WorkerReconnected():
            _worker(core, e.worker)
            core.awaiting[e.worker] = float("inf")
            reactor.register_worker(core, outbox, WorkerConfig.from_wire(e.configuration),
                                    e.previous, e.running, e.results, time)
        case ev.WorkerLost():
            worker = _worker(core, e.worker)
            reactor.lose_worker(core, outbox, worker, _LOSS_BY_LABEL[e.reason], time,
                                count_crash=e.count_crash)
            for job_id, task_id, instance in e.requeued:
                _requeued(core, job_id, task_id, instance)
        case ev.Unknown(record_kind=kind) if kind in IGNORED_KINDS:
            pass
        case _:
            raise RestoreError(f"unknown event type {_kind(e)!r}")


def _progress(core: Core, outbox: Outbox, e: ev.TaskProgress) -> None:
    """Applies a `task-progress` record: per task, in ascending id order, its start then its
    finish, as the per-task events it stands for. Runs of ids that start and finish here and
    are the next ones of their array (the common case) are applied as ranges (no records)."""
    job = _job(core, e.job)
    worker = _worker(core, e.worker)
    time, instance = e.time, e.instance
    if e.started == e.finished:
        for first, last, step in e.started.ranges:
            if step != 1:
                for tid in range(first, last + 1, step):
                    _start_one(core, outbox, job, worker, tid, instance, time)
                    _finish_one(core, outbox, job, worker, tid, instance, time)
                continue
            while first <= last:
                first = _finish_run(core, outbox, job, worker, first, last, instance, time)
                if first <= last:  # not the next id of its array: the long way
                    _start_one(core, outbox, job, worker, first, instance, time)
                    _finish_one(core, outbox, job, worker, first, instance, time)
                    first += 1
        return
    run_first = run_last = None
    for tid, started, finished in e.steps():
        if started and finished:
            if run_last is not None and tid == run_last + 1:
                run_last = tid
                continue
            if run_last is not None:
                _both(core, outbox, job, worker, run_first, run_last, instance, time)
            run_first = run_last = tid
            continue
        if run_last is not None:
            _both(core, outbox, job, worker, run_first, run_last, instance, time)
            run_first = run_last = None
        if started:
            _start_one(core, outbox, job, worker, tid, instance, time)
        else:
            _finish_one(core, outbox, job, worker, tid, instance, time)
    if run_last is not None:
        _both(core, outbox, job, worker, run_first, run_last, instance, time)


def _both(core, outbox, job, worker, first: int, last: int, instance: int, time) -> None:
    while first <= last:
        first = _finish_run(core, outbox, job, worker, first, last, instance, time)
        if first <= last:
            _start_one(core, outbox, job, worker, first, instance, time)
            _finish_one(core, outbox, job, worker, first, instance, time)
            first += 1


def _start_one(core, outbox, job, worker, tid: int, instance: int, time) -> None:
    if reactor.adopt_task(core, outbox, worker, job.id, tid, instance, time) is None:
        # As for `task-started`: already applied by the replay of a `worker-reconnected`
        # event (recorded again after it) is fine, anything else is not.
        task = core.task_record(job, tid)
        if task is None or not (task.state.is_terminal or task.instance > instance):
            raise RestoreError(f"task {job.id}@{tid} cannot start on worker {worker.id}")


def _finish_one(core, outbox, job, worker, tid: int, instance: int, time) -> None:
    task = job.tasks.get(tid)
    if task is None and job.done.find(tid) is not None:
        return  # finished already (the replay of a `worker-reconnected` applied it)
    if task is None or task.worker is None:
        raise RestoreError(f"task {job.id}@{tid} ended without starting on worker {worker.id}")
    reactor.task_updates(core, outbox, worker,
                         [[reactor.UPDATE_FINISHED, job.id, tid, instance, None]], time)


def _finish_run(core, outbox, job, worker, first: int, last: int, instance: int,
                time) -> int:
    """Starts and finishes at once the ids from `first` on (up to `last`) that are the next
    ones of their array's cursor, without records; returns the first id it did not take."""
    if instance != 0 or not worker.is_running or job.n_tasks < core.compact_min_tasks:
        return first
    while first <= last:
        batch = job.batch_of(first)
        if batch is None or batch.template.is_multi_node or batch.deps:
            return first
        q = core.queues.get(state.queue_key(job, batch))
        cur = q.cursor if q is not None else None
        if cur is None or not cur.remaining or cur.next_id != first or first in job.tasks:
            return first
        start, end, step = cur.ranges[cur.ri]
        if step != 1:
            return first
        upto = min(last, end)
        n = upto - first + 1
        cur.position += n
        if upto == end:
            cur.ri += 1
            if cur.ri < len(cur.ranges):
                cur.next_id = cur.ranges[cur.ri][0]
            else:
                cur.next_id = upto + 1
        else:
            cur.next_id = upto + 1
        if not len(q):
            core.drop_queue(q.key)
        reactor.finish_run(core, outbox, job, worker, first, upto, time)
        first = upto + 1
    return first


def _placement(core: Core, worker, e: ev.TaskStarted) -> tuple[int, list | None]:
    """The resource variant and the nodes (multi-node: all reserved workers, root first) a
    `task-started` event records. Both are optional in the record: a variant 0 and a
    single-node task are left out, and journals older than variants have neither."""
    variant = e.variant
    if type(variant) is not int or variant < 0:
        raise RestoreError(f"task {e.job}@{e.task}: invalid resource variant {variant!r}")
    ids = e.nodes
    if ids is None:
        return variant, None
    if not (isinstance(ids, list) and ids and all(type(i) is int for i in ids)
            and len(set(ids)) == len(ids) and ids[0] == worker.id):
        raise RestoreError(f"task {e.job}@{e.task}: invalid nodes {ids!r}")
    return variant, [_worker(core, i) for i in ids]


def _requeued(core: Core, job_id: int, task_id: int, instance: int) -> None:
    """A task that was assigned (not started) to a lost worker waits under a new instance id
    (the assignment itself is not journaled, so the restored task is waiting already)."""
    job = core.jobs.get(job_id)
    if job is None:  # pruned from the journal (`journal prune`) with its forgotten job
        return
    task = job.tasks.get(task_id)
    if task is None:
        task = reactor._materialize_waiting(core, job, task_id)
    if task is None or task.state != TaskState.WAITING or task.instance > instance:
        raise RestoreError(f"task {job_id}@{task_id} was not waiting to be requeued")
    task.instance = instance


def _job(core: Core, job_id: int):
    job = core.jobs.get(job_id)
    if job is None:
        raise RestoreError(f"event about unknown job {job_id}")
    return job


def _worker(core: Core, worker_id: int):
    worker = core.workers.get(worker_id)
    if worker is None:
        raise RestoreError(f"event about unknown worker {worker_id}")
    return worker


def restore(events, server_uid: str | None = None) -> Core:
    """A core rebuilt from events (recording events again): `Event`s, or journal records
    ``(time, kind, payload)`` (read with `events.from_record`; RestoreError if malformed)."""
    core = Core(server_uid=server_uid or "000000", record_events=True)
    outbox = Outbox()
    for e in events:
        if not isinstance(e, ev.Event):
            try:
                e = ev.from_record(e)
            except ev.EventError as error:
                raise RestoreError(str(error)) from None
        apply_event(core, outbox, e)
        outbox.clear()
    return core
