"""Rebuilding the core from journal events: a fold of the same reactions that produced them.

Only the events that carry decisions are replayed (submits, cancels, closes, forgets, workers
coming and going, task starts and results); their consequences (aborted dependents, max-fails
aborts, crash-limit failures, job completion) follow from the reactor exactly as they did live.
"""

from __future__ import annotations

from . import reactor
from .model import TaskTemplate, WorkerConfig, WorkerState
from .outbox import Outbox
from .ranges import IntRanges
from .state import Core

_LOSS_BY_LABEL = {s.label: s for s in WorkerState}
DERIVED = frozenset({"task-canceled", "task-aborted", "job-completed", "server-stop",
                     "worker-overview"})


class RestoreError(ValueError):
    """An event that cannot be applied: the journal does not describe a possible history."""


def apply_event(core: Core, outbox: Outbox, time: float, kind: str, p: dict) -> None:
    """Applies one journal event to `core` (raises RestoreError if it does not fit)."""
    try:
        _apply(core, outbox, time, kind, p)
    except RestoreError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RestoreError(f"cannot apply {kind} event: {e!r}") from None


def _apply(core: Core, outbox: Outbox, time: float, kind: str, p: dict) -> None:
    if kind in DERIVED:
        return
    if kind == "server-start":
        if not core.jobs and not core.workers:
            core.server_uid = p["server_uid"]
    elif kind == "job-open":
        core.next_job_id = p["job_id"]
        reactor.open_job(core, outbox, p["name"], p["max_fails"], p["submit_dir"], time)
    elif kind == "job-created":
        desc, sub = p["job_desc"], p["submit_desc"]
        batches = [reactor.BatchSpec(TaskTemplate.from_wire(t), IntRanges.parse(ids), entries,
                                     deps) for t, ids, entries, deps in sub["batches"]]
        if p["closed_job"]:
            core.next_job_id = p["job"]
            spec = reactor.SubmitSpec(desc["name"], sub["submit_dir"], batches,
                                      desc["max_fails"])
        else:
            spec = reactor.SubmitSpec(desc["name"], sub["submit_dir"], batches,
                                      desc["max_fails"], p["job"])
        job = reactor.submit(core, outbox, spec, time)
        if job.id != p["job"]:
            raise RestoreError(f"job {p['job']} was restored with id {job.id}")
    elif kind == "job-close":
        reactor.close_job(core, outbox, _job(core, p["job_id"]), time)
    elif kind == "job-cancel":
        reactor.cancel_job(core, outbox, _job(core, p["job_id"]), p["reason"], time)
    elif kind == "job-forget":
        job = core.jobs.get(p["job_id"])
        if job is not None:  # else pruned from the journal (`journal prune`) before
            reactor.forget_job(core, outbox, job, time)
    elif kind == "worker-connected":
        core.next_worker_id = p["id"]
        reactor.add_worker(core, outbox, WorkerConfig.from_wire(p["configuration"]), time)
    elif kind == "worker-reconnected":
        _worker(core, p["id"])
        core.awaiting[p["id"]] = float("inf")
        reactor.register_worker(core, outbox, WorkerConfig.from_wire(p["configuration"]),
                                p["previous"], p["running"], p["results"], time)
    elif kind == "worker-lost":
        worker = _worker(core, p["id"])
        reactor.lose_worker(core, outbox, worker, _LOSS_BY_LABEL[p["reason"]], time,
                            count_crash=p.get("count_crash", True))
    elif kind == "task-started":
        worker = _worker(core, p["worker"])
        variant, nodes = _placement(core, worker, p)
        if reactor.adopt_task(core, outbox, worker, p["job"], p["task"], p["instance"],
                              time, variant, nodes) is None:
            # Already applied by the replay of a `worker-reconnected` event (which adopts and
            # settles the worker's tasks itself) and recorded again after it: nothing to do.
            task = _job(core, p["job"]).tasks.get(p["task"])
            if task is None or not (task.state.is_terminal or task.instance > p["instance"]):
                raise RestoreError(f"task {p['job']}@{p['task']} cannot start on worker "
                                   f"{p['worker']}")
    elif kind in ("task-finished", "task-failed"):
        job = _job(core, p["job"])
        task = job.tasks.get(p["task"])
        if task is None or task.worker is None:
            raise RestoreError(f"task {p['job']}@{p['task']} ended without starting")
        code = reactor.UPDATE_FINISHED if kind == "task-finished" else reactor.UPDATE_FAILED
        reactor.task_updates(core, outbox, task.worker,
                             [[code, job.id, task.id, p["instance"], p.get("error")]], time)
    else:
        raise RestoreError(f"unknown event type {kind!r}")


def _placement(core: Core, worker, p: dict) -> tuple[int, list | None]:
    """The resource variant and the nodes (multi-node: all reserved workers, root first) a
    `task-started` event records. Both are optional in the payload: a variant 0 and a
    single-node task are left out, and journals older than variants have neither."""
    variant = p.get("variant", 0)
    if type(variant) is not int or variant < 0:
        raise RestoreError(f"task {p['job']}@{p['task']}: invalid resource variant {variant!r}")
    ids = p.get("nodes")
    if ids is None:
        return variant, None
    if not (isinstance(ids, list) and ids and all(type(i) is int for i in ids)
            and len(set(ids)) == len(ids) and ids[0] == worker.id):
        raise RestoreError(f"task {p['job']}@{p['task']}: invalid nodes {ids!r}")
    return variant, [_worker(core, i) for i in ids]


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
    """A core rebuilt from `(time, kind, payload)` events (recording events again)."""
    core = Core(server_uid=server_uid or "000000", record_events=True)
    outbox = Outbox()
    for time, kind, payload in events:
        apply_event(core, outbox, time, kind, payload)
        outbox.clear()
    return core
