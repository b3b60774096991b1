"""Helpers for the pure-core tests: a recording outbox and small builders.

The reactor and scheduler write what the shells must send into an `Outbox`; tests take the
messages they expect (`take_worker_msgs`, `take_cancels`, ...) and finish with
`emptiness_check()`, so any extra message is a failure.
"""

from __future__ import annotations

from hyperqueue.core import reactor
from hyperqueue.core.model import (
    DEFAULT_CRASH_LIMIT,
    ProgramDef,
    Task,
    TaskState,
    TaskTemplate,
    Worker,
    WorkerConfig,
)
from hyperqueue.core.outbox import Outbox
from hyperqueue.core.ranges import IntRanges
from hyperqueue.core.resources import (
    ALL,
    UNIT,
    ResourceDef,
    ResourceRequest,
    ResourceRequestEntry,
)
from hyperqueue.core.scheduler import schedule
from hyperqueue.core.state import Core

R = reactor


class RecordingOutbox(Outbox):
    """An `Outbox` with take-and-check helpers in the style of upstream's test comm."""

    def take_worker_msgs(self, worker: Worker | int, n: int | None = None) -> list[Task]:
        """Removes and returns the tasks assigned to `worker`; asserts the count if `n` given."""
        wid = worker if isinstance(worker, int) else worker.id
        tasks = self.compute.pop(wid, [])
        if n is not None:
            assert len(tasks) == n, (wid, tasks)
        return tasks

    def take_all_compute(self) -> dict[int, list[Task]]:
        out = dict(self.compute)
        self.compute.clear()
        return out

    def take_cancels(self, worker: Worker | int, n: int | None = None) -> list[tuple]:
        wid = worker if isinstance(worker, int) else worker.id
        refs = self.cancel.pop(wid, [])
        if n is not None:
            assert len(refs) == n, (wid, refs)
        return refs

    def take_retractions(self, worker: Worker | int, n: int | None = None) -> list[tuple]:
        """Removes and returns the `(job, task, instance)` the core asks `worker` to give back;
        asserts the count if `n` given."""
        wid = worker if isinstance(worker, int) else worker.id
        refs = self.retract.pop(wid, [])
        if n is not None:
            assert len(refs) == n, (wid, refs)
        return refs

    def take_all_retractions(self) -> dict[int, list[tuple]]:
        out = dict(self.retract)
        self.retract.clear()
        return out

    def take_stop_workers(self) -> list[int]:
        out = list(self.stop_workers)
        self.stop_workers.clear()
        return out

    def take_reservations(self) -> dict[int, bool]:
        """The secondary nodes reserved (True) or released (False) since the last take."""
        out = dict(self.reserve)
        self.reserve.clear()
        return out

    def take_changed_jobs(self) -> set[int]:
        out = set(self.changed_jobs)
        self.changed_jobs.clear()
        return out

    def take_events(self) -> list:
        out = list(self.events)
        self.events.clear()
        return out

    def emptiness_check(self, ignore_changed_jobs: bool = True,
                        ignore_events: bool = True) -> None:
        """Asserts nothing is left to send (job-change notices and events optionally ignored)."""
        assert not self.compute, self.compute
        assert not self.cancel, self.cancel
        assert not self.retract, self.retract
        assert not self.stop_workers, self.stop_workers
        assert not self.reserve, self.reserve
        if not ignore_changed_jobs:
            assert not self.changed_jobs, self.changed_jobs
        if not ignore_events:
            assert not self.events, self.events


# ----------------------------------------------------------------------------------- builders


def cpus(n: int) -> ResourceDef:
    return ResourceDef.range_of("cpus", 0, n - 1)


def worker_config(n_cpus: int | None = 4, *extra: ResourceDef, time_limit: float | None = None,
                  hostname: str = "node") -> WorkerConfig:
    resources = ([cpus(n_cpus)] if n_cpus else []) + list(extra)
    return WorkerConfig(hostname, resources, time_limit=time_limit)


def request(min_time: float = 0.0, **amounts) -> ResourceRequest:
    """`request(cpus=2, gpus="all", mem=0.5)`: amounts in whole units (floats allowed)."""
    entries = []
    for name, value in amounts.items():
        name = name.replace("__", "/")
        if value == "all":
            entries.append(ResourceRequestEntry(name, ALL))
        else:
            entries.append(ResourceRequestEntry(name, round(value * UNIT)))
    return ResourceRequest(entries, min_time=min_time)


def template(req: ResourceRequest | None = None, priority: int = 0,
             crash_limit: int = DEFAULT_CRASH_LIMIT, cwd: str = "%{SUBMIT_DIR}",
             stdout: str | None = None, stderr: str | None = None) -> TaskTemplate:
    from hyperqueue.core.model import StdioDef

    program = ProgramDef(
        ["sleep", "1"], cwd=cwd,
        stdout=StdioDef(stdout) if stdout is not None else None,
        stderr=StdioDef(stderr) if stderr is not None else None,
    )
    return TaskTemplate(program, req, priority=priority, crash_limit=crash_limit)


def ids(text: str) -> IntRanges:
    return IntRanges.parse(text)


def array_spec(id_text: str = "0-9", *, req=None, priority: int = 0,
               crash_limit: int = DEFAULT_CRASH_LIMIT, max_fails: int | None = None,
               job_id: int | None = None, name: str = "job",
               submit_dir: str = "/submit") -> reactor.SubmitSpec:
    batch = reactor.BatchSpec(template(req, priority, crash_limit), ids(id_text))
    return reactor.SubmitSpec(name, submit_dir, [batch], max_fails=max_fails, job_id=job_id)


def graph_spec(tasks: dict[int, tuple[int, ...]], *, req=None, job_id: int | None = None,
               max_fails: int | None = None) -> reactor.SubmitSpec:
    """One single-task batch per `{task_id: deps}` item (a job file with dependencies)."""
    batches = [reactor.BatchSpec(template(req), IntRanges.single(tid), deps=deps)
               for tid, deps in tasks.items()]
    return reactor.SubmitSpec("graph", "/submit", batches, max_fails=max_fails, job_id=job_id)


class Env:
    """A core, a recording outbox and a clock, with short verbs for the scenarios."""

    def __init__(self, record_events: bool = False):
        self.core = Core(server_uid="uid123", record_events=record_events)
        # Every finished task gives its record up, in the small jobs of the tests too (the
        # server keeps the records of jobs below `COMPACT_MIN_TASKS`).
        self.core.compact_min_tasks = 1
        self.out = RecordingOutbox()
        self.now = 1000.0

    def tick(self, dt: float = 1.0) -> float:
        self.now += dt
        return self.now

    def worker(self, n_cpus: int | None = 4, *extra: ResourceDef, **kw) -> Worker:
        return reactor.add_worker(self.core, self.out, worker_config(n_cpus, *extra, **kw),
                                  self.now)

    def submit(self, spec: reactor.SubmitSpec):
        return reactor.submit(self.core, self.out, spec, self.now)

    def schedule(self) -> int:
        return schedule(self.core, self.out, self.now)

    def update(self, worker: Worker, kind: int, tasks, error: str | None = None,
               instance: int | None = None) -> None:
        ups = []
        for t in tasks:
            inst = t.instance if instance is None else instance
            ups.append([kind, t.job.id, t.id, inst, error])
        reactor.task_updates(self.core, self.out, worker, ups, self.now)

    def start(self, worker, tasks):
        self.update(worker, reactor.UPDATE_RUNNING, tasks)

    def finish(self, worker, tasks):
        self.update(worker, reactor.UPDATE_FINISHED, tasks)

    def fail(self, worker, tasks, error="boom"):
        self.update(worker, reactor.UPDATE_FAILED, tasks, error)

    def lose(self, worker, reason):
        reactor.lose_worker(self.core, self.out, worker, reason, self.now)

    def cancel(self, job, reason: str | None = "user") -> int:
        return reactor.cancel_job(self.core, self.out, job, reason, self.now)

    def forget(self, job) -> bool:
        return reactor.forget_job(self.core, self.out, job, self.now)

    def close(self, job) -> bool:
        return reactor.close_job(self.core, self.out, job, self.now)

    def open(self, name: str = "open", max_fails: int | None = None,
             submit_dir: str = "/submit"):
        return reactor.open_job(self.core, self.out, name, max_fails, submit_dir, self.now)

    def check(self) -> None:
        self.core.sanity_check()
        check_ready_tasks_queued(self.core)


def check_ready_tasks_queued(core: Core) -> None:
    """Every materialized WAITING task without pending deps sits in exactly one ready queue.

    (A stronger form of `sanity_check` for tests: a ready task that is in no queue would wait
    forever.)
    """
    queued: dict[tuple[int, int], int] = {}
    for q in core.queues.values():
        for t in q.tasks:
            queued[t.key] = queued.get(t.key, 0) + 1
    for job in core.jobs.values():
        for t in job.tasks.values():
            if t.state == TaskState.WAITING and t.deps_pending == 0:
                assert queued.get(t.key) == 1, (t, queued.get(t.key))
            else:
                assert t.key not in queued, t


def states(job) -> dict[int, str]:
    """State names of the job's tasks with a record, and of the finished ones that gave their
    record up (`Job.done`)."""
    out = {tid: t.state.name for tid, t in job.tasks.items()}
    out.update((tid, "FINISHED") for tid in job.done.ids())
    return dict(sorted(out.items()))


__all__ = [
    "ALL", "UNIT", "Core", "Env", "R", "RecordingOutbox", "TaskState", "array_spec", "cpus",
    "graph_spec", "ids", "request", "schedule", "states", "template", "worker_config",
    "check_ready_tasks_queued",
]
