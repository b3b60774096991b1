"""Every event the core records: one small class per event type (pure, stdlib only).

The reactor puts these objects into `Outbox.events`; the journal stores each as a record
``[time, kind, payload]`` (`Event.to_record`, read back with `from_record`); restore, prune,
the journal report, the event stream and export all consume them with a ``match`` over the
classes below.

Fields have one spelling across all events: ``time``, ``job``, ``task``, ``tasks``,
``instance``, ``worker``, ... On disk (and so in `hq journal export/replay/stream`, which print
the payload as it is: see `to_public`) the payload keys are the ones hq has always written --
the job is ``job_id`` in the job-level events of the user's hand (open, close, cancel, forget)
and ``job`` elsewhere, a worker event names its worker ``id`` -- so journals written by earlier
versions read unchanged, and the public shapes stay. That mapping lives in each class's
`to_record` / `_decode` and nowhere else.

An event may be about many tasks (`TaskCanceled.tasks`). The journal file batches plain task
starts and finishes into `task-progress` records of id ranges (`journal_records`); everything
that shows events to users expands them back into the per-task records (`expand_record`).

Adding an event: a class here (fields, `kind`, `to_record`, `_decode`; it registers itself in
`KINDS`), then a ``case`` in the consumers that must react to it (restore, prune, the report).

Construction is positional and cheap (``__slots__``, no validation): events are made per task
start and end. Decoding (`from_record`) checks what it reads: the record's shape, the presence
of each required payload key, and that ids are ints; anything else is the consumer's to check.
"""

from __future__ import annotations

__all__ = [
    "Event", "EventError", "Unknown", "KINDS", "from_record", "to_records", "to_public",
    "ServerStart", "ServerStop", "IdFloor",
    "JobOpen", "JobCreated", "JobClose", "JobCancel", "JobForget", "JobCompleted",
    "WorkerConnected", "WorkerReconnected", "WorkerLost", "WorkerOverview",
    "TaskStarted", "TaskFinished", "TaskFailed", "TaskCanceled", "TaskAborted", "TaskProgress",
    "journal_records", "expand_record", "expand_records",
]


class EventError(ValueError):
    """A journal record that is not a well-formed event (message says what is wrong)."""


KINDS: dict[str, type[Event]] = {}  # kind -> class, filled as the classes are defined
_DECODERS: dict = {}  # kind -> the class's `_decode`


class Event:
    """Base of every event: `time` (Unix seconds) and the class's `kind` (the record's tag)."""

    __slots__ = ("time",)
    kind = ""
    # The payload keys (on disk) of the job and of the worker the event is about, if any: for
    # tools that read records without decoding them (`journal prune` keeps them byte for byte).
    JOB_KEY: str | None = None
    WORKER_KEY: str | None = None
    # The fields in constructor order (also `__match_args__`); set by each subclass.
    fields: tuple[str, ...] = ("time",)

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        cls.__match_args__ = cls.fields
        if cls.kind:
            KINDS[cls.kind] = cls
            _DECODERS[cls.kind] = cls._decode

    def to_record(self) -> list:
        """The journal record ``[time, kind, payload]`` (payload keys as on disk)."""
        raise NotImplementedError

    @classmethod
    def _decode(cls, time, p: dict) -> Event:
        raise NotImplementedError

    def __eq__(self, other) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.fields)

    __hash__ = None  # mutable payloads (lists)

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.fields)
        return f"{type(self).__name__}({args})"


_MAX_ID = 2**32 - 1  # (core.ranges.MAX_ID: ids are u32)
_MAX_TIME = 2.0**53  # seconds: any time beyond is corrupt (and would not convert exactly)


def _shown(value) -> str:
    """`repr` of a value read from a record, safe for huge integers."""
    if type(value) is int and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 100 else text[:100] + "..."


def _ids(kind: str, p: dict, *keys: str) -> None:
    for key in keys:
        if type(p[key]) is not int:
            raise EventError(f"{kind} event: {key} is not an integer: {p[key]!r}")


# -- server ---------------------------------------------------------------------------------------
class ServerStart(Event):
    __slots__ = ("server_uid",)
    kind = "server-start"
    fields = ("time", "server_uid")

    def __init__(self, time, server_uid):
        self.time = time
        self.server_uid = server_uid

    def to_record(self) -> list:
        return [self.time, "server-start", {"server_uid": self.server_uid}]

    @classmethod
    def _decode(cls, time, p):
        return cls(time, p["server_uid"])


class ServerStop(Event):
    __slots__ = ()
    kind = "server-stop"
    fields = ("time",)

    def __init__(self, time):
        self.time = time

    def to_record(self) -> list:
        return [self.time, "server-stop", {}]

    @classmethod
    def _decode(cls, time, p):
        return cls(time)


class IdFloor(Event):
    """Written by `journal prune` after the records it kept: the highest job and worker ids
    created so far (their records may be gone), so that ids continue after them on restore.
    Not about a job or a worker (no `JOB_KEY` / `WORKER_KEY`; the payload keys are not `job`
    or `id` either, so tools reading payloads do not take it for one)."""

    __slots__ = ("job", "worker")
    kind = "id-floor"
    fields = ("time", "job", "worker")

    def __init__(self, time, job, worker):
        self.time = time
        self.job = job
        self.worker = worker

    def to_record(self) -> list:
        return [self.time, "id-floor", {"last_job": self.job, "last_worker": self.worker}]

    @classmethod
    def _decode(cls, time, p):
        _ids(cls.kind, p, "last_job", "last_worker")
        return cls(time, p["last_job"], p["last_worker"])


# -- jobs -----------------------------------------------------------------------------------------
class JobOpen(Event):
    """An open job was created (`hq job open`): its id, name, max fails and submit dir."""

    __slots__ = ("job", "name", "max_fails", "submit_dir")
    kind = "job-open"
    JOB_KEY = "job_id"
    fields = ("time", "job", "name", "max_fails", "submit_dir")

    def __init__(self, time, job, name, max_fails, submit_dir):
        self.time = time
        self.job = job
        self.name = name
        self.max_fails = max_fails
        self.submit_dir = submit_dir

    def to_record(self) -> list:
        return [self.time, "job-open", {"job_id": self.job, "name": self.name,
                                        "max_fails": self.max_fails,
                                        "submit_dir": self.submit_dir}]

    @classmethod
    def _decode(cls, time, p):
        _ids(cls.kind, p, "job_id")
        return cls(time, p["job_id"], p["name"], p["max_fails"], p["submit_dir"])


class JobCreated(Event):
    """A submit: a new job (`closed_job`) or tasks added to an open one.

    `batches`: one ``[template (wire form), ids (range text), entries, deps]`` per batch.
    """

    __slots__ = ("job", "closed_job", "name", "max_fails", "submit_dir", "batches")
    kind = "job-created"
    JOB_KEY = "job"
    fields = ("time", "job", "closed_job", "name", "max_fails", "submit_dir", "batches")

    def __init__(self, time, job, closed_job, name, max_fails, submit_dir, batches):
        self.time = time
        self.job = job
        self.closed_job = closed_job
        self.name = name
        self.max_fails = max_fails
        self.submit_dir = submit_dir
        self.batches = batches

    def to_record(self) -> list:
        return [self.time, "job-created", {
            "job": self.job, "closed_job": self.closed_job,
            "job_desc": {"name": self.name, "max_fails": self.max_fails},
            "submit_desc": {"submit_dir": self.submit_dir, "batches": self.batches}}]

    @classmethod
    def _decode(cls, time, p):
        _ids(cls.kind, p, "job")
        desc, sub = p["job_desc"], p["submit_desc"]
        if not isinstance(desc, dict) or not isinstance(sub, dict):
            raise EventError("job-created event: job_desc and submit_desc must be maps")
        return cls(time, p["job"], p["closed_job"], desc["name"], desc["max_fails"],
                   sub["submit_dir"], sub["batches"])


class JobClose(Event):
    __slots__ = ("job",)
    kind = "job-close"
    JOB_KEY = "job_id"
    fields = ("time", "job")

    def __init__(self, time, job):
        self.time = time
        self.job = job

    def to_record(self) -> list:
        return [self.time, "job-close", {"job_id": self.job}]

    @classmethod
    def _decode(cls, time, p):
        _ids(cls.kind, p, "job_id")
        return cls(time, p["job_id"])


class JobCancel(Event):
    __slots__ = ("job", "reason")
    kind = "job-cancel"
    JOB_KEY = "job_id"
    fields = ("time", "job", "reason")

    def __init__(self, time, job, reason):
        self.time = time
        self.job = job
        self.reason = reason

    def to_record(self) -> list:
        return [self.time, "job-cancel", {"job_id": self.job, "reason": self.reason}]

    @classmethod
    def _decode(cls, time, p):
        _ids(cls.kind, p, "job_id")
        return cls(time, p["job_id"], p["reason"])


class JobForget(Event):
    __slots__ = ("job",)
    kind = "job-forget"
    JOB_KEY = "job_id"
    fields = ("time", "job")

    def __init__(self, time, job):
        self.time = time
        self.job = job

    def to_record(self) -> list:
        return [self.time, "job-forget", {"job_id": self.job}]

    @classmethod
    def _decode(cls, time, p):
        _ids(cls.kind, p, "job_id")
        return cls(time, p["job_id"])


class JobCompleted(Event):
    __slots__ = ("job",)
    kind = "job-completed"
    JOB_KEY = "job"
    fields = ("time", "job")

    def __init__(self, time, job):
        self.time = time
        self.job = job

    def to_record(self) -> list:
        return [self.time, "job-completed", {"job": self.job}]

    @classmethod
    def _decode(cls, time, p):
        _ids(cls.kind, p, "job")
        return cls(time, p["job"])


# -- workers --------------------------------------------------------------------------------------
class WorkerConnected(Event):
    """A new worker; `configuration` is `WorkerConfig.to_wire()`."""

    __slots__ = ("worker", "configuration")
    kind = "worker-connected"
    WORKER_KEY = "id"
    fields = ("time", "worker", "configuration")

    def __init__(self, time, worker, configuration):
        self.time = time
        self.worker = worker
        self.configuration = configuration

    def to_record(self) -> list:
        return [self.time, "worker-connected", {"id": self.worker,
                                                "configuration": self.configuration}]

    @classmethod
    def _decode(cls, time, p):
        _ids(cls.kind, p, "id")
        return cls(time, p["id"], p["configuration"])


class WorkerReconnected(Event):
    """A worker of the previous server run came back with its id (`previous`: [server uid,
    worker id]) and reported what it still runs and the results it kept (wire lists)."""

    __slots__ = ("worker", "configuration", "previous", "running", "results")
    kind = "worker-reconnected"
    WORKER_KEY = "id"
    fields = ("time", "worker", "configuration", "previous", "running", "results")

    def __init__(self, time, worker, configuration, previous, running, results):
        self.time = time
        self.worker = worker
        self.configuration = configuration
        self.previous = previous
        self.running = running
        self.results = results

    def to_record(self) -> list:
        return [self.time, "worker-reconnected", {
            "id": self.worker, "configuration": self.configuration, "previous": self.previous,
            "running": self.running, "results": self.results}]

    @classmethod
    def _decode(cls, time, p):
        _ids(cls.kind, p, "id")
        return cls(time, p["id"], p["configuration"], p["previous"], p["running"],
                   p["results"])


class WorkerLost(Event):
    """A worker is gone; `reason` is the `WorkerState` label; `count_crash`: whether its
    running tasks count a crash (journals older than the field mean True). `requeued`:
    ``[job, task, instance]`` of the tasks that were only assigned to it (not started) and
    wait again under a new instance id (left out of the record when empty)."""

    __slots__ = ("worker", "reason", "count_crash", "requeued")
    kind = "worker-lost"
    WORKER_KEY = "id"
    fields = ("time", "worker", "reason", "count_crash", "requeued")

    def __init__(self, time, worker, reason, count_crash=True, requeued=None):
        self.time = time
        self.worker = worker
        self.reason = reason
        self.count_crash = count_crash
        self.requeued = requeued if requeued is not None else []

    def to_record(self) -> list:
        p = {"id": self.worker, "reason": self.reason, "count_crash": self.count_crash}
        if self.requeued:
            p["requeued"] = self.requeued
        return [self.time, "worker-lost", p]

    @classmethod
    def _decode(cls, time, p):
        _ids(cls.kind, p, "id")
        requeued = p.get("requeued", [])
        if not (isinstance(requeued, list) and all(
                isinstance(r, list) and len(r) == 3 and all(type(x) is int for x in r)
                for r in requeued)):
            raise EventError(f"{cls.kind} event: requeued is not a list of "
                             f"[job, task, instance]: {requeued!r}"[:200])
        return cls(time, p["id"], p["reason"], p.get("count_crash", True), requeued)


class WorkerOverview(Event):
    """A worker's periodic hardware overview (`worker start --overview-interval`): `hw_state`
    is `{"state": {cpu_usage, memory_usage, network_usage, nvidia_gpus, amd_gpus, timestamp}}`
    or None. Recorded only for workers whose interval is set; restore ignores it."""

    __slots__ = ("worker", "hw_state")
    kind = "worker-overview"
    WORKER_KEY = "id"
    fields = ("time", "worker", "hw_state")

    def __init__(self, time, worker, hw_state):
        self.time = time
        self.worker = worker
        self.hw_state = hw_state

    def to_record(self) -> list:
        return [self.time, "worker-overview", {"id": self.worker, "hw-state": self.hw_state}]

    @classmethod
    def _decode(cls, time, p):
        _ids(cls.kind, p, "id")
        return cls(time, p["id"], p["hw-state"])


# -- tasks ----------------------------------------------------------------------------------------
class TaskStarted(Event):
    """A task instance started on `worker`. `variant` (0: the first resource request) and
    `nodes` (multi-node tasks: every reserved worker, root first; else None) are left out of
    the record when they have these defaults (and journals older than them have neither)."""

    __slots__ = ("job", "task", "instance", "worker", "variant", "nodes")
    kind = "task-started"
    JOB_KEY = "job"
    WORKER_KEY = "worker"
    fields = ("time", "job", "task", "instance", "worker", "variant", "nodes")

    def __init__(self, time, job, task, instance, worker, variant=0, nodes=None):
        self.time = time
        self.job = job
        self.task = task
        self.instance = instance
        self.worker = worker
        self.variant = variant
        self.nodes = nodes

    def to_record(self) -> list:
        p = {"job": self.job, "task": self.task, "instance": self.instance,
             "worker": self.worker}
        if self.variant:
            p["variant"] = self.variant
        if self.nodes is not None:
            p["nodes"] = self.nodes
        return [self.time, "task-started", p]

    @classmethod
    def _decode(cls, time, p):
        job, task, instance, worker = p["job"], p["task"], p["instance"], p["worker"]
        if (type(job) is not int or type(task) is not int or type(instance) is not int
                or type(worker) is not int):
            _ids(cls.kind, p, "job", "task", "instance", "worker")
        if not 0 <= instance <= _MAX_ID:  # (it becomes the task's instance id: a u32)
            raise EventError(f"{cls.kind} event: instance {_shown(instance)} is not a u32 id")
        return cls(time, job, task, instance, worker, p.get("variant", 0), p.get("nodes"))


class TaskFinished(Event):
    """A task instance finished. `worker` (where it ran) is known to the live core only: it
    is not part of the record (nor of the event's fields), it lets `journal_records` batch
    the finish with others of that worker."""

    __slots__ = ("job", "task", "instance", "worker")
    kind = "task-finished"
    JOB_KEY = "job"
    fields = ("time", "job", "task", "instance")

    def __init__(self, time, job, task, instance, worker=None):
        self.time = time
        self.job = job
        self.task = task
        self.instance = instance
        self.worker = worker

    def to_record(self) -> list:
        return [self.time, "task-finished", {"job": self.job, "task": self.task,
                                             "instance": self.instance}]

    @classmethod
    def _decode(cls, time, p):
        job, task, instance = p["job"], p["task"], p["instance"]
        if type(job) is not int or type(task) is not int or type(instance) is not int:
            _ids(cls.kind, p, "job", "task", "instance")
        return cls(time, job, task, instance)


class TaskFailed(Event):
    __slots__ = ("job", "task", "instance", "error")
    kind = "task-failed"
    JOB_KEY = "job"
    fields = ("time", "job", "task", "instance", "error")

    def __init__(self, time, job, task, instance, error):
        self.time = time
        self.job = job
        self.task = task
        self.instance = instance
        self.error = error

    def to_record(self) -> list:
        return [self.time, "task-failed", {"job": self.job, "task": self.task,
                                           "instance": self.instance, "error": self.error}]

    @classmethod
    def _decode(cls, time, p):
        job, task, instance = p["job"], p["task"], p["instance"]
        if type(job) is not int or type(task) is not int or type(instance) is not int:
            _ids(cls.kind, p, "job", "task", "instance")
        return cls(time, job, task, instance, p.get("error"))


class TaskCanceled(Event):
    """Tasks of `job` canceled (derived: follows from a cancel, replayed by restore)."""

    __slots__ = ("job", "tasks")
    kind = "task-canceled"
    JOB_KEY = "job"
    fields = ("time", "job", "tasks")

    def __init__(self, time, job, tasks):
        self.time = time
        self.job = job
        self.tasks = tasks

    def to_record(self) -> list:
        return [self.time, self.kind, {"job": self.job, "tasks": self.tasks}]

    @classmethod
    def _decode(cls, time, p):
        _ids(cls.kind, p, "job")
        tasks = p["tasks"]
        if not isinstance(tasks, list) or any(type(t) is not int for t in tasks):
            raise EventError(f"{cls.kind} event: tasks is not a list of integers")
        return cls(time, p["job"], tasks)


class TaskAborted(TaskCanceled):
    """Tasks of `job` aborted (a dependency failed, max fails reached; derived)."""

    __slots__ = ()
    kind = "task-aborted"


class TaskProgress(Event):
    """Plain starts and finishes of tasks of `job` on `worker`, all at `time` and of one
    `instance` (journal only: written by `journal_records`, read by restore). `started` and
    `finished` are `IntRanges` (sorted ids). It stands for, in ascending task id order, the
    task's `task-started` (variant 0, single node) if it is in `started`, then its
    `task-finished` if it is in `finished` (`expand_record`)."""

    __slots__ = ("job", "worker", "instance", "started", "finished")
    kind = "task-progress"
    JOB_KEY = "job"
    WORKER_KEY = "worker"
    fields = ("time", "job", "worker", "instance", "started", "finished")

    def __init__(self, time, job, worker, instance, started, finished):
        self.time = time
        self.job = job
        self.worker = worker
        self.instance = instance
        self.started = started
        self.finished = finished

    def to_record(self) -> list:
        p = {"job": self.job, "worker": self.worker}
        if self.instance:
            p["instance"] = self.instance
        if self.started:
            p["started"] = self.started.to_text()
        if self.finished:
            p["finished"] = self.finished.to_text()
        return [self.time, "task-progress", p]

    @classmethod
    def _decode(cls, time, p):
        from .ranges import IntRanges

        instance = p.get("instance", 0)
        if type(p["job"]) is not int or type(p["worker"]) is not int or type(instance) is not int:
            _ids(cls.kind, {**p, "instance": instance}, "job", "worker", "instance")
        for key, value in (("job", p["job"]), ("worker", p["worker"]), ("instance", instance)):
            if not 0 <= value <= _MAX_ID:
                raise EventError(f"{cls.kind} event: {key} {_shown(value)} is not a u32 id")
        ids = []
        for key in ("started", "finished"):
            text = p.get(key, "")
            if text == "":
                ids.append(IntRanges.from_ids(()))
                continue
            if type(text) is not str:
                raise EventError(f"{cls.kind} event: {key} is not a range text")
            try:
                r = IntRanges.parse(text)
            except ValueError as e:
                raise EventError(f"{cls.kind} event: {key}: {e}") from None
            if r.ranges != r.sorted_ranges():
                raise EventError(f"{cls.kind} event: {key} is not sorted")
            ids.append(r)
        return cls(time, p["job"], p["worker"], instance, ids[0], ids[1])

    def steps(self):
        """``(task id, started, finished)`` in the order the events happened."""
        return _merge_steps(self.started.iter_sorted(), self.finished.iter_sorted())


def _merge_steps(started, finished):
    s = next(started, None)
    f = next(finished, None)
    while s is not None or f is not None:
        if f is None or (s is not None and s < f):
            yield s, True, False
            s = next(started, None)
        elif s is None or f < s:
            yield f, False, True
            f = next(finished, None)
        else:
            yield s, True, True
            s = next(started, None)
            f = next(finished, None)




class _Group:
    """Consecutive plain starts/finishes being batched into one `task-progress` record."""

    __slots__ = ("time", "job", "worker", "instance", "started", "finished", "last",
                 "last_done")

    def __init__(self, time, job, worker, instance):
        self.time = time
        self.job = job
        self.worker = worker
        self.instance = instance
        self.started: list[int] = []
        self.finished: list[int] = []
        self.last = -1
        self.last_done = True

    def record(self) -> list:
        from .ranges import compress_ids

        p = {"job": self.job, "worker": self.worker}
        if self.instance:
            p["instance"] = self.instance
        if self.started:
            p["started"] = compress_ids(self.started)
        if self.finished:
            p["finished"] = compress_ids(self.finished)
        return [self.time, "task-progress", p]


def journal_records(events) -> list:
    """The records of `events` as the journal stores them: runs of plain task starts (variant
    0, single node) and finishes of one job, worker, instance and time, in ascending task id
    order, become one `task-progress` record (the batching never reorders what a reader of
    the expanded records sees: `expand_record` gives back exactly the per-task records)."""
    out = []
    g = None
    for e in events:
        t = type(e)
        if not isinstance(e, Event):  # a record already
            if g is not None:
                out.append(g.record())
                g = None
            out.append(e)
            continue
        if t is TaskStarted:
            if e.variant == 0 and e.nodes is None:
                if (g is not None and g.time == e.time and g.job == e.job
                        and g.worker == e.worker and g.instance == e.instance
                        and e.task > g.last):
                    g.started.append(e.task)
                    g.last = e.task
                    g.last_done = False
                    continue
                if g is not None:
                    out.append(g.record())
                g = _Group(e.time, e.job, e.worker, e.instance)
                g.started.append(e.task)
                g.last = e.task
                g.last_done = False
                continue
        elif t is TaskFinished and e.worker is not None:
            if (g is not None and g.time == e.time and g.job == e.job and g.worker == e.worker
                    and g.instance == e.instance
                    and (e.task > g.last or (e.task == g.last and not g.last_done))):
                g.finished.append(e.task)
                g.last = e.task
                g.last_done = True
                continue
            if g is not None:
                out.append(g.record())
            g = _Group(e.time, e.job, e.worker, e.instance)
            g.finished.append(e.task)
            g.last = e.task
            continue
        if g is not None:
            out.append(g.record())
            g = None
        out.append(e.to_record())
    if g is not None:
        out.append(g.record())
    return out


def expand_record(record) -> list:
    """The per-task records a journal record stands for: a `task-progress` record gives its
    `task-started` / `task-finished` records (as `TaskStarted` / `TaskFinished` write them);
    any other record (or a malformed one) is given back alone."""
    if not isinstance(record, (list, tuple)) or len(record) != 3 or record[1] != "task-progress":
        return [record]
    try:
        e = from_record(record)
    except EventError:
        return [record]
    time, job, worker, instance = e.time, e.job, e.worker, e.instance
    out = []
    for tid, started, finished in e.steps():
        if started:
            out.append([time, "task-started", {"job": job, "task": tid, "instance": instance,
                                               "worker": worker}])
        if finished:
            out.append([time, "task-finished", {"job": job, "task": tid,
                                                "instance": instance}])
    return out


class _JobIds:
    """The task ids a job has, as its `job-created` records give them (`expand_records`)."""

    __slots__ = ("ranges", "_all", "_starts", "_ends")

    def __init__(self):
        self.ranges: list = []  # (start, end, step) of every batch so far
        self._all = None  # built on first use after a change

    def add(self, batches) -> None:
        from .ranges import IntRanges

        for b in batches if isinstance(batches, list) else ():
            if isinstance(b, list) and len(b) == 4 and isinstance(b[1], str):
                try:
                    self.ranges.extend(IntRanges.parse(b[1]).ranges)
                except ValueError:
                    continue  # (a malformed job-created record: restore refuses it)
        self._all = None

    def _build(self) -> None:
        from .ranges import IntRanges

        self._all = IntRanges(tuple(self.ranges))
        runs: list = []  # merged step-1 runs (stepped ranges: only through `_all`)
        for first, last, step in sorted(r for r in self.ranges if r[2] == 1):
            if runs and first <= runs[-1][1] + 1:
                if last > runs[-1][1]:
                    runs[-1][1] = last
            else:
                runs.append([first, last])
        self._starts = [r[0] for r in runs]
        self._ends = [r[1] for r in runs]

    def has(self, ids) -> bool:
        """Whether the job has every id of `ids` (an IntRanges); never expands a range."""
        from bisect import bisect_right

        if not ids:
            return True
        if self._all is None:
            self._build()
        starts, ends = self._starts, self._ends
        for first, last, _step in ids.ranges:  # (fast: within one step-1 run of the job)
            i = bisect_right(starts, first) - 1
            if i < 0 or last > ends[i]:
                break
        else:
            return True
        return len(ids) <= len(self._all) and len(ids.intersection(self._all)) == len(ids)


def expand_records(records) -> list:
    """`expand_record` of every record, in order, for the tools that read a journal offline:
    a `task-progress` record is expanded only into ids its job has (as the `job-created`
    records before it give them), so a corrupt or hostile record never becomes more records
    than the job has tasks. A malformed record is passed through as it is (as by
    `expand_record`).

    Raises:
        EventError: "record N: ..." for a `task-progress` record of a job that no earlier
            `job-created` record creates, or of task ids that its job does not have.
    """
    jobs: dict = {}
    out = []
    for i, r in enumerate(records):
        if isinstance(r, (list, tuple)) and len(r) == 3 and isinstance(r[2], dict):
            kind, p = r[1], r[2]
            if kind == "job-created" and type(p.get("job")) is int:
                sub = p.get("submit_desc")
                jobs.setdefault(p["job"], _JobIds()).add(
                    sub.get("batches") if isinstance(sub, dict) else None)
            elif kind == "task-progress":
                try:
                    e = from_record(r)
                except EventError:
                    out.append(r)
                    continue
                have = jobs.get(e.job)
                if have is None:
                    raise EventError(f"record {i + 1}: task-progress event of job {e.job}, "
                                     f"which no job-created event before it creates")
                for key in ("started", "finished"):
                    if not have.has(getattr(e, key)):
                        raise EventError(
                            f"record {i + 1}: task-progress event: {key} names tasks that job "
                            f"{e.job} does not have ({_cut(getattr(e, key).to_text())})")
                out.extend(expand_record(r))
                continue
        out.append(r)
    return out


def _cut(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n] + "..."


class Unknown(Event):
    """A record of a kind this hq does not know (a newer writer, or a kind no longer written):
    kept as it is, so tools can pass it on and restore can tell what it refuses."""

    __slots__ = ("record_kind", "payload")
    fields = ("time", "record_kind", "payload")

    def __init__(self, time, record_kind, payload):
        self.time = time
        self.record_kind = record_kind
        self.payload = payload

    def to_record(self) -> list:
        return [self.time, self.record_kind, self.payload]


def from_record(record) -> Event:
    """The event of a journal record ``[time, kind, payload]`` (a list or tuple).

    A kind not in `KINDS` gives an `Unknown` event.

    Raises:
        EventError: not a 3-item record, a time that is not a number, a kind that is not a
            string, a payload that is not a map, a required payload key missing, or an id that
            is not an integer.
    """
    try:
        time, kind, p = record
    except (TypeError, ValueError):
        raise EventError("not a [time, kind, payload] record") from None
    cls = _DECODERS.get(kind) if type(kind) is str else None
    if type(p) is not dict or (type(time) is not float and type(time) is not int) \
            or not -_MAX_TIME <= time <= _MAX_TIME:  # (also NaN, infinities, bignums)
        if type(kind) is not str:
            raise EventError(f"event type is not a string: {kind!r}")
        if type(p) is not dict:
            raise EventError(f"{kind} event: payload is not a map")
        raise EventError(f"event time is not a number of at most 2^53 s: {_shown(time)}")
    if cls is None:
        if type(kind) is not str:
            raise EventError(f"event type is not a string: {kind!r}")
        return Unknown(time, kind, p)
    try:
        return cls(time, p)
    except KeyError as e:
        raise EventError(f"{kind} event without {e.args[0]!r}") from None
    except TypeError as e:  # a nested desc that is not a map
        raise EventError(f"{kind} event: {e}") from None


def to_records(events) -> list:
    """The records of `events` (for the journal and the event stream)."""
    return [e.to_record() for e in events]


def to_public(record) -> dict:
    """The event of a record as `hq journal export/replay/stream` show it:
    ``{"type": kind, **payload}``, with a worker's wire configuration as a map.

    The on-disk payload keys are the public ones, so this is the one place where the shape is
    decided; it takes the record as read (unknown kinds pass through unchanged).

    Raises:
        ValueError, TypeError: not a ``[time, kind, payload]`` record with a map payload.
    """
    _when, kind, payload = record
    shape = _PUBLIC.get(kind)
    if shape is not None:
        try:
            return shape(payload)
        except (KeyError, TypeError, AttributeError):
            pass  # not as this hq writes it: shown as it is
    event = {"type": kind}
    event.update(payload)
    config = event.get("configuration")
    if isinstance(config, list):
        from .model import WorkerConfig

        event["configuration"] = dict(zip(WorkerConfig.FIELDS, config))
    return event


# Upstream's public shapes of the events whose on-disk payload differs (`journal/output.rs`).
def _loss_reason(label: str) -> str:
    """A `WorkerState` label (`CONNECTION LOST`) as upstream's enum variant (`ConnectionLost`)."""
    return "".join(w.capitalize() for w in label.replace("_", " ").split())


def _public_tasks(kind: str):
    def shape(p):
        job = p["job"]
        return {"type": kind, "tasks": [{"job_id": job, "job_task_id": t} for t in p["tasks"]]}
    return shape


_PUBLIC = {
    "worker-lost": lambda p: {"type": "worker-lost", "id": p["id"],
                              "reason": _loss_reason(p["reason"])},
    "job-cancel": lambda p: {"type": "job-cancel", "job_id": p["job_id"],
                             "reason": p["reason"] or ""},
    "task-canceled": _public_tasks("task-canceled"),
    "task-aborted": _public_tasks("task-aborted"),
}
