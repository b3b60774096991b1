"""Which records `journal prune` keeps: a pure function of the records and of what is live.

The server decides what is live (jobs not terminated, workers running or awaited) on its own
thread, with the journal locked and everything the core did so far appended, so the records
given here end exactly where that decision was taken; records appended later are all kept.

Kept:
* every `server-*` record (server uid, starts and stops);
* every record of a live job (the payload key of its job is the kind's `Event.JOB_KEY`);
* every `worker-*` record of a live worker, and of each worker a kept record needs: the
  worker (and the other nodes) of a live job's task start (`task-started`, `task-progress`), a worker that reconnected with one
  of a live job's tasks running or finished, a lost worker that had live jobs' tasks assigned
  (their new instance ids are in its `worker-lost` record);
* records of any other kind (not in `core.events.KINDS`: kept rather than risk a history that
  no longer restores), and malformed ones.

With `id_floor` (the highest job and worker ids the server created, as it decides what is
live), the `id-floor` records are replaced by one after the kept records carrying the highest
ids of all of them: a restore continues ids after it, as after the unpruned journal (ids of
pruned jobs and workers are never given again).

Dropped: the records of terminated jobs, and of gone workers that no live job refers to.
"""

from __future__ import annotations

from collections.abc import Iterable

from hyperqueue.core import events as ev


def job_of(payload: dict) -> int | None:
    """The job a raw payload names under either of the keys events use on disk (`job_id`,
    `job`), or None: for tools holding a payload without its kind (the selection below knows
    each kind's key, `Event.JOB_KEY`)."""
    job = payload.get("job_id")
    if job is None:
        job = payload.get("job")
    return job if type(job) is int else None


def _int_or_none(value) -> int | None:
    return value if type(value) is int else None


def _referenced_workers(records: Iterable, live_jobs) -> set:
    needed = set()
    for r in records:
        kind, p = r[1], r[2]
        if not isinstance(p, dict):
            continue
        cls = ev.KINDS.get(kind)
        if cls is ev.TaskStarted or cls is ev.TaskProgress:
            if _int_or_none(p.get(cls.JOB_KEY)) in live_jobs:
                needed.add(p.get(cls.WORKER_KEY))
                nodes = p.get("nodes")
                if isinstance(nodes, list):
                    needed.update(n for n in nodes if type(n) is int)
        elif cls is ev.WorkerReconnected:
            entries = []
            for key, at in (("running", 0), ("results", 1)):
                value = p.get(key)
                if isinstance(value, list):
                    entries.extend(e[at] for e in value if isinstance(e, list) and len(e) > at)
            if any(j in live_jobs for j in entries if type(j) is int):
                needed.add(p.get(cls.WORKER_KEY))
        elif cls is ev.WorkerLost:
            requeued = p.get("requeued")
            if isinstance(requeued, list) and any(
                    isinstance(e, list) and e and type(e[0]) is int and e[0] in live_jobs
                    for e in requeued):
                needed.add(p.get(cls.WORKER_KEY))
    return needed


def select_records(records: list, live_jobs, live_workers,
                   id_floor: ev.IdFloor | None = None) -> list:
    """The records to keep, in their order (see the module docstring).

    Records are read by their kind's payload keys (`Event.JOB_KEY`, `Event.WORKER_KEY`), not
    decoded: the kept ones are written back as they were read. `id_floor`: the highest job and
    worker ids created so far, and the time of the prune; see the module docstring.
    """
    workers = set(live_workers) | _referenced_workers(records, live_jobs)
    kept = []
    last_job, last_worker = (id_floor.job, id_floor.worker) if id_floor is not None else (0, 0)
    for r in records:
        kind, p = r[1], r[2]
        cls = ev.KINDS.get(kind) if type(kind) is str and isinstance(p, dict) else None
        match cls:
            case ev.IdFloor if id_floor is not None:
                job, worker = _int_or_none(p.get("last_job")), _int_or_none(p.get("last_worker"))
                if job is None or worker is None:
                    kept.append(r)  # malformed: kept, restore refuses it as it would have
                else:
                    last_job, last_worker = max(last_job, job), max(last_worker, worker)
            case None | ev.ServerStart | ev.ServerStop | ev.IdFloor:
                kept.append(r)  # and kinds not known here, malformed records
            case ev.WorkerConnected | ev.WorkerReconnected | ev.WorkerLost | ev.WorkerOverview:
                if p.get(cls.WORKER_KEY) in workers:
                    kept.append(r)
            case _:  # the job events and the task events
                job = _int_or_none(p.get(cls.JOB_KEY))
                if job is None or job in live_jobs:
                    kept.append(r)
    if id_floor is not None:
        kept.append(ev.IdFloor(id_floor.time, last_job, last_worker).to_record())
    return kept
