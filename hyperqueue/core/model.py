"""Records of the pure core: programs, task templates, jobs, tasks and workers.

Nothing here does I/O or reads the clock; times are plain floats (seconds since the epoch) handed in
by the shells. Arrays stay compact: a `TaskBatch` holds the ids of many tasks as `IntRanges` and a
`Task` record is created only when a task is first handed to a worker (or needs individual state).
"""

from __future__ import annotations

from enum import IntEnum

from .compact import FinishedRuns
from .limits import (MAX_ID, MAX_LIST_LEN, MAX_NAME_LEN, MAX_PRIORITY, MAX_STRING_LEN,
                     check_duration)
from .ranges import IntRanges
from .resources import ResourceRequest


def _check_str(v, what: str, max_len: int = MAX_STRING_LEN, optional: bool = False) -> None:
    if v is None and optional:
        return
    if not isinstance(v, str):
        raise ValueError(f"{what} must be a string")
    if len(v) > max_len:
        raise ValueError(f"{what} is longer than {max_len} characters")


def _check_bool(v, what: str) -> None:
    if not isinstance(v, bool):
        raise ValueError(f"{what} must be true or false")


class TaskState(IntEnum):
    WAITING = 0
    ASSIGNED = 1  # handed to a worker, not yet reported running; shown as WAITING
    RUNNING = 2
    FINISHED = 3
    FAILED = 4
    CANCELED = 5
    ABORTED = 6

    @property
    def is_terminal(self) -> bool:
        return self >= TaskState.FINISHED

    @property
    def public_name(self) -> str:
        """The lowercase name users see (ASSIGNED is still WAITING for them)."""
        return _PUBLIC_NAMES[self]


_PUBLIC_NAMES = {
    TaskState.WAITING: "waiting",
    TaskState.ASSIGNED: "waiting",
    TaskState.RUNNING: "running",
    TaskState.FINISHED: "finished",
    TaskState.FAILED: "failed",
    TaskState.CANCELED: "canceled",
    TaskState.ABORTED: "aborted",
}

# Legal transitions of a task, in one table (h11 style): anything else is a bug in the caller.
# Enforced by `reactor._set_state`, the only place that changes a task's state (a task record
# is born WAITING; an array remainder ends in bulk from WAITING, checked by `reactor._end_bulk`).
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.WAITING: frozenset(
        {TaskState.ASSIGNED, TaskState.FAILED, TaskState.CANCELED, TaskState.ABORTED}
    ),
    TaskState.ASSIGNED: frozenset(
        {TaskState.WAITING, TaskState.RUNNING, TaskState.FINISHED, TaskState.FAILED,
         TaskState.CANCELED, TaskState.ABORTED}
    ),
    TaskState.RUNNING: frozenset(
        {TaskState.WAITING, TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELED,
         TaskState.ABORTED}
    ),
    TaskState.FINISHED: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.CANCELED: frozenset(),
    TaskState.ABORTED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A state change that the transition table forbids: a bug in the core (never something a
    peer sent, which the reactor filters before changing any state). Raised before anything of
    the change is applied; names the task or worker and both states."""

    def __init__(self, subject: str, old, new):
        super().__init__(f"{subject}: illegal state change {old.name} -> {new.name}")
        self.subject = subject
        self.old = old
        self.new = new


class JobState(IntEnum):
    WAITING = 0
    RUNNING = 1
    FINISHED = 2
    FAILED = 3
    CANCELED = 4
    ABORTED = 5
    OPENED = 6


JOB_STATE_NAMES = {
    JobState.WAITING: "WAITING",
    JobState.RUNNING: "RUNNING",
    JobState.FINISHED: "FINISHED",
    JobState.FAILED: "FAILED",
    JobState.CANCELED: "CANCELED",
    JobState.ABORTED: "ABORTED",
    JobState.OPENED: "OPENED",
}


class WorkerState(IntEnum):
    RUNNING = 0
    CONNECTION_LOST = 1
    HEARTBEAT_LOST = 2
    IDLE_TIMEOUT = 3
    STOPPED = 4
    TIME_LIMIT_REACHED = 5

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")

    @property
    def is_failure(self) -> bool:
        """A loss that counts as a crash for the tasks that were running there."""
        return self in (WorkerState.CONNECTION_LOST, WorkerState.HEARTBEAT_LOST)


# Legal transitions of a worker: a running worker ends once, for one reason; an ended worker
# stays ended (a reconnecting worker of a previous run comes back while still RUNNING, awaited).
# Enforced by `reactor._set_worker_state`, the only place that changes a worker's state.
WORKER_TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.RUNNING: frozenset(s for s in WorkerState if s != WorkerState.RUNNING),
    **{s: frozenset() for s in WorkerState if s != WorkerState.RUNNING},
}


# Crash limit encodings (a positive number is the limit itself).
CRASH_LIMIT_UNLIMITED = 0
CRASH_LIMIT_NEVER_RESTART = -1
DEFAULT_CRASH_LIMIT = 5


class StdioDef:
    """Where a task's stdout or stderr goes: a path template, nowhere (`path is None`), or the
    job's output stream (`streamed`, see `ProgramDef.stream`)."""

    __slots__ = ("path", "rm_if_finished", "streamed")

    def __init__(self, path: str | None, rm_if_finished: bool = False, streamed: bool = False):
        self.path = None if streamed else path
        self.rm_if_finished = rm_if_finished and not streamed
        self.streamed = streamed

    def to_wire(self):
        return [self.path, self.rm_if_finished, self.streamed]

    @classmethod
    def from_wire(cls, obj) -> "StdioDef":
        # (2 elements: journals written before streaming existed)
        if not (isinstance(obj, list) and len(obj) in (2, 3)):
            raise ValueError("stdio definition must be [path, rm_if_finished, streamed]")
        path, rm = obj[0], obj[1]
        _check_str(path, "stdio path", optional=True)
        _check_bool(rm, "stdio rm_if_finished")
        streamed = obj[2] if len(obj) == 3 else False
        _check_bool(streamed, "stdio streamed")
        return cls(path, rm, streamed)

    def __eq__(self, other):
        return isinstance(other, StdioDef) and self.to_wire() == other.to_wire()

    def __repr__(self):
        return f"StdioDef({self.path!r}, rm_if_finished={self.rm_if_finished})"


class ProgramDef:
    """The program a task runs, with placeholders still in its paths."""

    __slots__ = ("args", "env", "cwd", "stdout", "stderr", "stdin", "task_dir", "stream")

    def __init__(self, args, env=None, cwd="%{SUBMIT_DIR}", stdout=None, stderr=None,
                 stdin: bytes | None = None, task_dir: bool = False, stream: str | None = None):
        self.args: list[str] = list(args)
        self.env: dict[str, str] = dict(env or {})
        self.cwd: str = cwd
        self.stdout: StdioDef = stdout or StdioDef("%{CWD}/job-%{JOB_ID}/%{TASK_ID}.stdout")
        self.stderr: StdioDef = stderr or StdioDef("%{CWD}/job-%{JOB_ID}/%{TASK_ID}.stderr")
        self.stdin = stdin
        self.task_dir = task_dir
        self.stream = stream  # directory (template) of the output stream, if streamed

    def to_wire(self):
        return [self.args, self.env, self.cwd, self.stdout.to_wire(), self.stderr.to_wire(),
                self.stdin, self.task_dir, self.stream]

    @classmethod
    def from_wire(cls, obj) -> "ProgramDef":
        # (7 elements: journals written before streaming existed)
        if not (isinstance(obj, list) and len(obj) in (7, 8)):
            raise ValueError("malformed program definition")
        args, env, cwd, out, err, stdin, task_dir = obj[:7]
        stream = obj[7] if len(obj) == 8 else None
        _check_str(stream, "program stream directory", optional=True)
        if not (isinstance(args, list) and 0 < len(args) <= MAX_LIST_LEN
                and all(isinstance(a, str) and len(a) <= MAX_STRING_LEN for a in args)):
            raise ValueError("program arguments must be a non-empty list of strings")
        if not (isinstance(env, dict) and len(env) <= MAX_LIST_LEN and all(
                isinstance(k, str) and isinstance(v, str) and len(k) <= MAX_STRING_LEN
                and len(v) <= MAX_STRING_LEN for k, v in env.items())):
            raise ValueError("program environment must map strings to strings")
        _check_str(cwd, "program cwd")
        if stdin is not None and not isinstance(stdin, bytes):
            raise ValueError("program stdin must be bytes or null")
        _check_bool(task_dir, "program task_dir")
        stdout, stderr = StdioDef.from_wire(out), StdioDef.from_wire(err)
        if (stdout.streamed or stderr.streamed) and stream is None:
            raise ValueError("a streamed channel needs a stream directory")
        return cls(args, env, cwd, stdout, stderr, stdin, bool(task_dir), stream)


MAX_VARIANTS = 32
MAX_RESOURCES = 1024  # resource pools of one worker


class TaskTemplate:
    """Everything tasks of one submitted batch share.

    `requests` are the resource variants: alternatives, earlier ones preferred; the scheduler
    picks exactly one per task instance (most tasks have a single variant).
    """

    __slots__ = ("program", "requests", "time_limit", "priority", "crash_limit", "pin")

    def __init__(self, program: ProgramDef, request=None,
                 time_limit: float | None = None, priority: int = 0,
                 crash_limit: int = DEFAULT_CRASH_LIMIT, pin: str | None = None):
        self.program = program
        if request is None:
            requests = (ResourceRequest.default(),)
        elif isinstance(request, ResourceRequest):
            requests = (request,)
        else:
            requests = tuple(request)
        if not 1 <= len(requests) <= MAX_VARIANTS:
            raise ValueError(f"a task has 1 to {MAX_VARIANTS} resource variants")
        self.requests = requests
        self.time_limit = time_limit
        self.priority = priority
        self.crash_limit = crash_limit
        self.pin = pin

    @property
    def request(self) -> ResourceRequest:
        """The first (preferred) variant."""
        return self.requests[0]

    @property
    def is_multi_node(self) -> bool:
        return self.requests[0].n_nodes > 0

    def to_wire(self):
        return [self.program.to_wire(), [r.to_wire() for r in self.requests], self.time_limit,
                self.priority, self.crash_limit, self.pin]

    @classmethod
    def from_wire(cls, obj) -> "TaskTemplate":
        if not (isinstance(obj, list) and len(obj) == 6):
            raise ValueError("malformed task template")
        program, request, time_limit, priority, crash_limit, pin = obj
        if time_limit is not None:
            time_limit = check_duration(time_limit, "time limit", allow_zero=True)
        if type(priority) is not int or not -MAX_PRIORITY - 1 <= priority <= MAX_PRIORITY:
            raise ValueError(f"priority must be an integer between {-MAX_PRIORITY - 1} and "
                             f"{MAX_PRIORITY}")
        if type(crash_limit) is not int or not -1 <= crash_limit <= MAX_ID:
            raise ValueError(f"crash limit must be an integer between -1 and {MAX_ID}")
        if pin is not None and pin not in ("taskset", "omp"):
            raise ValueError(f"invalid pin mode {str(pin)[:50]!r}")
        if not (isinstance(request, list) and 1 <= len(request) <= MAX_VARIANTS):
            raise ValueError(f"resource requests must be a list of 1 to {MAX_VARIANTS} variants")
        requests = [ResourceRequest.from_wire(r) for r in request]
        if any(r.n_nodes for r in requests) and len(requests) > 1:
            raise ValueError("a multi-node task cannot have resource variants")
        return cls(ProgramDef.from_wire(program), requests,
                   float(time_limit) if time_limit is not None else None, priority,
                   crash_limit, pin)


class TaskBatch:
    """Tasks submitted together with one template: an array, or one task of a job file.

    `entries`, when present, is aligned with the iteration order of `ids` (HQ_ENTRY values).
    `deps` are task ids of the same job that every task of the batch waits for.
    """

    __slots__ = ("index", "template", "ids", "entries", "deps", "template_id", "submit_dir")

    def __init__(self, index: int, template: TaskTemplate, ids: IntRanges,
                 entries: list[bytes] | None = None, deps: tuple[int, ...] = (),
                 submit_dir: str = ""):
        self.index = index
        self.template = template
        self.ids = ids
        self.entries = entries
        self.deps = deps
        self.submit_dir = submit_dir  # where the submit that brought this batch ran
        self.template_id = -1  # a server-wide id, given when the batch joins the core

    def entry_at(self, position: int) -> bytes | None:
        return None if self.entries is None else self.entries[position]


class Task:
    """A task with individual state; created lazily when it leaves the compact array form."""

    __slots__ = ("job", "id", "batch", "position", "state", "instance", "crash_count",
                 "worker", "start_time", "end_time", "error", "deps_pending", "consumers",
                 "variant", "nodes", "retracting", "started_nodes")

    def __init__(self, job: "Job", task_id: int, batch: TaskBatch, position: int):
        self.job = job
        self.id = task_id
        self.batch = batch
        self.position = position
        self.state = TaskState.WAITING
        self.instance = 0
        self.crash_count = 0
        self.worker: "Worker | None" = None
        self.start_time: float | None = None
        self.end_time: float | None = None
        self.error: str | None = None
        self.deps_pending = 0
        self.consumers: list[Task] | None = None
        self.variant = 0  # the resource variant of the current assignment
        self.nodes: list[Worker] | None = None  # multi-node: all reserved workers, root first
        self.retracting = False  # asked back from its worker (a higher priority waits)
        # multi-node: ((worker id, hostname), ...) of the nodes it started on, root first; kept
        # after the task ends (task list/info show every node)
        self.started_nodes: tuple | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.job.id, self.id)

    def __repr__(self):
        return f"Task({self.job.id}@{self.id}, {self.state.name}, inst={self.instance})"


NO_RUNS = FinishedRuns()  # shared and always empty: never added to (see `Job.own_done`)

#: Tasks of a job with fewer tasks keep their records when they finish (a record is smaller
#: than a store of runs for a handful of tasks); `Core.compact_min_tasks` is this by default.
COMPACT_MIN_TASKS = 16


class Job:
    __slots__ = ("id", "name", "max_fails", "is_open", "submit_dir", "submit_date",
                 "cancel_reason", "batches", "tasks", "bulk", "counts", "n_tasks",
                 "started_at", "finished_at", "workers_used", "_id_set", "sorted_record_ids",
                 "submits", "done", "_batch_owner")

    def __init__(self, job_id: int, name: str, max_fails: int | None, is_open: bool,
                 submit_dir: str, submit_date: float):
        self.id = job_id
        self.name = name
        self.max_fails = max_fails
        self.is_open = is_open
        self.submit_dir = submit_dir
        self.submit_date = submit_date
        self.cancel_reason: str | None = None
        self.batches: list[TaskBatch] = []
        self.tasks: dict[int, Task] = {}
        # Ranges of never-materialized tasks that ended in bulk (canceled/aborted while waiting).
        self.bulk: list[tuple[IntRanges, TaskState]] = []
        self.counts = [0] * len(TaskState)
        self.n_tasks = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.workers_used: dict[int, str] = {}
        self._id_set: IntRanges | None = None
        self.sorted_record_ids: list[int] | None = None  # cache of core.views
        # One entry per submit: (number of batches, is a task graph), in submission order.
        self.submits: list[tuple[int, bool]] = []
        # Finished tasks that gave their record up (see `core.compact`); a job with none
        # shares one empty store (`own_done` makes the job's own).
        self.done = NO_RUNS
        self._batch_owner: tuple | None = None  # (IntRanges of all ranges, batch of each)

    @property
    def n_completed(self) -> int:
        c = self.counts
        return (c[TaskState.FINISHED] + c[TaskState.FAILED] + c[TaskState.CANCELED]
                + c[TaskState.ABORTED])

    @property
    def is_done(self) -> bool:
        """No task of the job can change any more (an open job may still get new tasks)."""
        return self.n_completed == self.n_tasks

    @property
    def is_terminated(self) -> bool:
        return self.is_done and not self.is_open

    def state(self) -> JobState:
        c = self.counts
        if c[TaskState.RUNNING]:
            return JobState.RUNNING
        if c[TaskState.WAITING] or c[TaskState.ASSIGNED]:
            return JobState.WAITING
        if c[TaskState.FAILED]:
            return JobState.FAILED
        if c[TaskState.ABORTED]:
            return JobState.ABORTED
        if c[TaskState.CANCELED]:
            return JobState.CANCELED
        if self.is_open:
            return JobState.OPENED
        return JobState.FINISHED

    def task_stats(self) -> dict[str, int]:
        c = self.counts
        return {
            "aborted": c[TaskState.ABORTED],
            "canceled": c[TaskState.CANCELED],
            "failed": c[TaskState.FAILED],
            "finished": c[TaskState.FINISHED],
            "running": c[TaskState.RUNNING],
            "waiting": c[TaskState.WAITING] + c[TaskState.ASSIGNED],
        }

    def all_ids(self) -> IntRanges:
        if self._id_set is None:
            # One sort of all the ranges (the batches never share an id): linear in the
            # number of ranges, not quadratic in the number of batches.
            rs = sorted(r for b in self.batches for r in b.ids.ranges)
            out: list = []
            for r in rs:
                if out and out[-1][2] == 1 and r[2] == 1 and out[-1][1] + 1 == r[0]:
                    out[-1] = (out[-1][0], r[1], 1)
                else:
                    out.append(r)
            self._id_set = IntRanges(tuple(out), self.n_tasks)
        return self._id_set

    def add_batch(self, batch: TaskBatch) -> None:
        self.batches.append(batch)
        self.n_tasks += len(batch.ids)
        self._id_set = None
        self._batch_owner = None

    def own_done(self) -> FinishedRuns:
        """The job's own store of finished tasks without records (made on first use)."""
        done = self.done
        if done is NO_RUNS:
            done = self.done = FinishedRuns()
        return done

    def batch_of(self, task_id: int) -> TaskBatch | None:
        """The batch holding `task_id` (a lookup over the ranges), or None."""
        batches = self.batches
        if len(batches) == 1:
            return batches[0] if task_id in batches[0].ids else None
        owner = self._batch_owner
        if owner is None:
            ranges, which = [], []
            for b in batches:
                for r in b.ids.ranges:
                    ranges.append(r)
                    which.append(b)
            owner = self._batch_owner = (IntRanges(tuple(ranges)), which)
        i = owner[0].locate(task_id)
        return None if i is None else owner[1][i]


class WorkerConfig:
    """What a worker tells the server about itself when it registers."""

    __slots__ = ("hostname", "resources", "group", "time_limit", "heartbeat", "idle_timeout",
                 "work_dir", "on_server_lost", "manager", "manager_job_id", "pid",
                 "overview_interval", "min_utilization", "listen_address", "reconnect_timeout",
                 "coupling")

    FIELDS = __slots__

    def __init__(self, hostname: str, resources: list, group: str = "default",
                 time_limit: float | None = None, heartbeat: float = 8.0,
                 idle_timeout: float | None = None, work_dir: str = "",
                 on_server_lost: str = "stop", manager: str | None = None,
                 manager_job_id: str | None = None, pid: int = 0,
                 overview_interval: float | None = None, min_utilization: float = 0.0,
                 listen_address: str = "", reconnect_timeout: float | None = None,
                 coupling: list | None = None):
        self.hostname = hostname
        self.resources = resources  # list[ResourceDef]
        self.group = group
        self.time_limit = time_limit
        self.heartbeat = heartbeat
        self.idle_timeout = idle_timeout
        self.work_dir = work_dir
        self.on_server_lost = on_server_lost
        self.manager = manager
        self.manager_job_id = manager_job_id
        self.pid = pid
        self.overview_interval = overview_interval
        self.min_utilization = min_utilization
        self.listen_address = listen_address
        self.reconnect_timeout = reconnect_timeout
        # [[resource, group, resource, group, weight], ...]: groups that work well together
        self.coupling = coupling or []

    def to_wire(self):
        return [getattr(self, f) if f != "resources" else [r.to_wire() for r in self.resources]
                for f in self.FIELDS]

    @classmethod
    def from_wire(cls, obj) -> "WorkerConfig":
        from .resources import ResourceDef

        if not (isinstance(obj, list) and len(obj) == len(cls.FIELDS)):
            raise ValueError("malformed worker configuration")
        kw = dict(zip(cls.FIELDS, obj))
        _check_str(kw["hostname"], "worker hostname", MAX_NAME_LEN)
        if not (isinstance(kw["resources"], list) and len(kw["resources"]) <= MAX_RESOURCES):
            raise ValueError(f"worker resources must be a list of at most {MAX_RESOURCES}")
        _check_str(kw["group"], "worker group", MAX_NAME_LEN)
        _check_str(kw["work_dir"], "worker work_dir")
        _check_str(kw["manager"], "worker manager", MAX_NAME_LEN, optional=True)
        _check_str(kw["manager_job_id"], "worker manager job id", MAX_NAME_LEN, optional=True)
        _check_str(kw["listen_address"], "worker listen address", MAX_NAME_LEN)
        if type(kw["pid"]) is not int or not 0 <= kw["pid"] <= MAX_ID:
            raise ValueError(f"worker pid must be an integer between 0 and {MAX_ID}")
        mu = kw["min_utilization"]
        if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not 0 <= mu <= 1:
            raise ValueError("worker min_utilization must be a number between 0 and 1")
        kw["resources"] = [ResourceDef.from_wire(r) for r in kw["resources"]]
        for f in ("time_limit", "idle_timeout", "overview_interval", "reconnect_timeout"):
            if kw[f] is not None:
                kw[f] = check_duration(kw[f], f"worker {f}", allow_zero=True)
        kw["heartbeat"] = check_duration(kw["heartbeat"], "worker heartbeat")
        coupling = kw["coupling"]
        if coupling is None:
            kw["coupling"] = []
        elif not (isinstance(coupling, list) and len(coupling) <= MAX_LIST_LEN and all(
                isinstance(c, list) and len(c) == 5 and isinstance(c[0], str)
                and isinstance(c[2], str) and len(c[0]) <= MAX_NAME_LEN
                and len(c[2]) <= MAX_NAME_LEN
                and all(type(x) is int and 0 <= x <= MAX_ID for x in (c[1], c[3], c[4]))
                for c in coupling)):
            raise ValueError("malformed resource coupling")
        if kw["on_server_lost"] not in ("stop", "finish-running", "reconnect"):
            raise ValueError("invalid on-server-lost policy")
        return cls(**kw)


class Worker:
    __slots__ = ("id", "config", "state", "capacity", "load", "tasks", "n_running",
                 "started_at", "ended_at", "last_task_started", "templates_sent",
                 "idle_since", "stopping", "prefill", "rate", "done_in_window",
                 "window_start", "mn_task", "mn_reserved")

    def __init__(self, worker_id: int, config: WorkerConfig, now: float):
        self.id = worker_id
        self.config = config
        self.state = WorkerState.RUNNING
        self.capacity: dict[str, int] = {r.name: r.amount for r in config.resources}
        self.load: dict[str, int] = dict.fromkeys(self.capacity, 0)
        self.tasks: set[Task] = set()  # assigned or running here
        self.n_running = 0
        self.started_at = now
        self.ended_at: float | None = None
        self.last_task_started: tuple[int, int, float] | None = None
        self.templates_sent: set[int] = set()
        self.idle_since: float | None = now
        self.stopping = False
        # Adaptive prefill: how many times its capacity the worker may hold (see scheduler).
        self.prefill = 2.0
        self.rate = 0.0  # tasks completed per second (smoothed)
        self.done_in_window = 0
        self.window_start = now
        self.mn_task: Task | None = None  # the multi-node task this worker is reserved for
        self.mn_reserved = False  # held free for a waiting multi-node task (scheduler)

    @property
    def is_running(self) -> bool:
        return self.state == WorkerState.RUNNING

    def remaining_time(self, now: float) -> float | None:
        tl = self.config.time_limit
        return None if tl is None else self.started_at + tl - now

    def __repr__(self):
        return f"Worker({self.id}, {self.state.name})"
