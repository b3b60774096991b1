"""Which records `journal prune` keeps: a pure function of the records and of what is live.

The server decides what is live (jobs not terminated, workers running or awaited) on its own
thread, with the journal locked and everything the core did so far appended, so the records
given here end exactly where that decision was taken; records appended later are all kept.

Kept:
* every `server-*` record (server uid, starts and stops);
* every record of a live job (`job` or `job_id` in the payload);
* every `worker-*` record (`id`) of a live worker, and of each worker a kept record needs: the
  worker (and the other nodes) of a live job's task start, a worker that reconnected with one
  of a live job's tasks running or finished;
* records of any other kind (not known here: kept rather than risk a history that no longer
  restores).

Dropped: the records of terminated jobs, and of gone workers that no live job refers to.
"""

from __future__ import annotations

from collections.abc import Iterable


def job_of(payload: dict) -> int | None:
    """The job a record is about (payloads say `job` or `job_id`), or None."""
    job = payload.get("job_id")
    if job is None:
        job = payload.get("job")
    return job if type(job) is int else None


def _referenced_workers(records: Iterable, live_jobs) -> set:
    needed = set()
    for r in records:
        kind, p = r[1], r[2]
        if not isinstance(p, dict):
            continue
        if kind == "task-started":
            if job_of(p) in live_jobs:
                needed.add(p.get("worker"))
                nodes = p.get("nodes")
                if isinstance(nodes, list):
                    needed.update(n for n in nodes if type(n) is int)
        elif kind == "worker-reconnected":
            entries = []
            for key, at in (("running", 0), ("results", 1)):
                value = p.get(key)
                if isinstance(value, list):
                    entries.extend(e[at] for e in value if isinstance(e, list) and len(e) > at)
            if any(j in live_jobs for j in entries if type(j) is int):
                needed.add(p.get("id"))
    return needed


def select_records(records: list, live_jobs, live_workers) -> list:
    """The records to keep, in their order (see the module docstring)."""
    workers = set(live_workers) | _referenced_workers(records, live_jobs)
    kept = []
    for r in records:
        kind, p = r[1], r[2]
        if not isinstance(kind, str) or not isinstance(p, dict) or kind.startswith("server-"):
            kept.append(r)
        elif kind.startswith("worker-"):
            if p.get("id") in workers:
                kept.append(r)
        else:
            job = job_of(p)
            if job is None or job in live_jobs:
                kept.append(r)
    return kept
