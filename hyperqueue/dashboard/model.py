"""The dashboard model: what the screens show, folded incrementally from event records.

`DashboardModel.apply(event)` costs O(size of the event) (a task event touches one task, a
cancel of N tasks touches N, a lost worker touches its running tasks): the history is never read
again per update. Per task it keeps a record only once the task left WAITING (like the core's
compact arrays), so a 100,000-task array costs nothing until its tasks run.

`Timeline` holds the decoded events with their times, the live model (always at the end) and
answers "the model as of time T" from snapshots taken every `snapshot_every` events on the way
(made lazily, the first time the past is looked at) plus a replay forward from the nearest one.

Series for charts (task-state counts per job, connected workers, per-worker utilisation) are
append-only lists of `(time, ...)` kept by the live model only; a view at time T cuts them with
`bisect`.

Pure: no textual, no I/O, no clock (`work` counts the units of work done, for tests).
"""

from __future__ import annotations

import math
from bisect import bisect_right

from ..core import events as ev
from ..core.model import WorkerConfig

WAITING, RUNNING, FINISHED, FAILED, CANCELED, ABORTED = range(6)
STATE_NAMES = ("waiting", "running", "finished", "failed", "canceled", "aborted")
TERMINAL = (FINISHED, FAILED, CANCELED, ABORTED)

#: Seconds of event time one point of a count series covers (later changes update the point).
SERIES_RESOLUTION = 1.0
#: Hardware overviews kept per worker (the utilisation history).
OVERVIEW_HISTORY = 2000
MAX_ERROR_TEXT = 4000


class TaskRec(tuple):
    """(state, worker, instance, start, end, error) of one task that left WAITING (immutable:
    snapshots share them)."""

    __slots__ = ()

    def __new__(cls, state, worker, instance, start, end, error):
        return tuple.__new__(cls, (state, worker, instance, start, end, error))

    state = property(lambda s: s[0])
    worker = property(lambda s: s[1])
    instance = property(lambda s: s[2])
    start = property(lambda s: s[3])
    end = property(lambda s: s[4])
    error = property(lambda s: s[5])


class BatchInfo:
    """What the dashboard shows of one submitted batch (template summary)."""

    __slots__ = ("ids", "n", "args", "cwd", "stdout", "stderr", "resources", "time_limit",
                 "priority", "crash_limit", "pin", "env", "submit_dir", "first")

    def __init__(self, template, ids_text: str, n: int, first: int, submit_dir: str):
        self.ids = ids_text
        self.n = n
        self.first = first
        self.submit_dir = submit_dir
        self.args = self.cwd = self.stdout = self.stderr = self.pin = None
        self.resources: list[str] = []
        self.env: dict = {}
        self.time_limit = None
        self.priority = 0
        self.crash_limit = None
        try:
            program, requests, self.time_limit, self.priority, self.crash_limit, self.pin = template
            self.args = [str(a) for a in program[0]]
            self.env = program[1] if isinstance(program[1], dict) else {}
            self.cwd = program[2]
            self.stdout = program[3][0] if isinstance(program[3], list) else None
            self.stderr = program[4][0] if isinstance(program[4], list) else None
            self.resources = [_request_text(r) for r in requests]
        except (TypeError, ValueError, IndexError, KeyError):
            pass  # a template of a shape this hq does not know: shown as far as read


def _request_text(r) -> str:
    """A resource request's wire form as `cpus: 1 compact, mem: 100 compact` (display only)."""
    from ..core.resources import ResourceRequest

    try:
        req = ResourceRequest.from_wire(r)
    except (ValueError, TypeError, KeyError):
        return "?"
    text = ", ".join(f"{e.name}: {e.to_text()}" for e in req.entries) or "cpus: 1 compact"
    return (f"nodes: {req.n_nodes}, " if req.n_nodes else "") + text


class JobView:
    __slots__ = ("id", "name", "submit_dir", "max_fails", "created", "completed", "is_open",
                 "cancel_reason", "n_tasks", "counts", "tasks", "batches", "forgotten", "bucket")

    def __init__(self, job_id: int, name, submit_dir, max_fails, created: float, is_open: bool):
        self.id = job_id
        self.name = name if isinstance(name, str) else str(name)
        self.submit_dir = submit_dir if isinstance(submit_dir, str) else ""
        self.max_fails = max_fails
        self.created = created
        self.completed: float | None = None
        self.is_open = is_open
        self.cancel_reason = None
        self.n_tasks = 0
        self.counts = [0] * 6
        self.tasks: dict[int, TaskRec] = {}
        self.batches: list[BatchInfo] = []
        self.forgotten = False
        self.bucket = None  # the count series' open period (see `DashboardModel.counts_series`)

    def copy(self) -> "JobView":
        j = JobView.__new__(JobView)
        for f in JobView.__slots__:
            setattr(j, f, getattr(self, f))
        j.counts = list(self.counts)
        j.tasks = dict(self.tasks)
        j.batches = list(self.batches)
        return j

    @property
    def state(self) -> str:
        """Upstream's derived job state (hq-features §4.7)."""
        c = self.counts
        if c[RUNNING]:
            return "RUNNING"
        if c[WAITING]:
            return "WAITING"
        if c[FAILED]:
            return "FAILED"
        if c[ABORTED]:
            return "ABORTED"
        if c[CANCELED]:
            return "CANCELED"
        if self.is_open:
            return "OPENED"
        return "FINISHED"

    def task(self, task_id: int) -> TaskRec:
        rec = self.tasks.get(task_id)
        return rec if rec is not None else TaskRec(WAITING, None, 0, None, None, None)

    def batch_of(self, task_id: int) -> BatchInfo | None:
        """The batch a task belongs to (first batch whose ids hold it)."""
        from ..core.ranges import IntRanges

        for b in self.batches:
            try:
                if task_id in IntRanges.parse(b.ids):
                    return b
            except ValueError:
                continue
        return self.batches[0] if self.batches else None


class WorkerView:
    __slots__ = ("id", "config", "hostname", "connected", "lost", "reason", "running",
                 "overview", "n_cpus")

    def __init__(self, worker_id: int, configuration, connected: float):
        self.id = worker_id
        self.config = _config_dict(configuration)
        self.hostname = str(self.config.get("hostname", "?"))
        self.connected = connected
        self.lost: float | None = None
        self.reason: str | None = None
        self.running: set = set()  # (job, task)
        self.overview = None  # the last hw_state["state"]
        self.n_cpus = _cpu_count(self.config.get("resources"))

    def copy(self) -> "WorkerView":
        w = WorkerView.__new__(WorkerView)
        for f in WorkerView.__slots__:
            setattr(w, f, getattr(self, f))
        w.running = set(self.running)
        return w

    @property
    def state(self) -> str:
        return "RUNNING" if self.lost is None else str(self.reason or "LOST")


def _config_dict(configuration) -> dict:
    if isinstance(configuration, list) and len(configuration) == len(WorkerConfig.FIELDS):
        return dict(zip(WorkerConfig.FIELDS, configuration))
    if isinstance(configuration, dict):
        return dict(configuration)
    return {}


def _cpu_count(resources) -> int:
    if not isinstance(resources, list):
        return 0
    for r in resources:
        try:
            from ..core.resources import ResourceDef

            d = ResourceDef.from_wire(r)
        except (ValueError, TypeError, KeyError, IndexError):
            continue
        if d.name == "cpus":
            return d.count
    return 0


def resource_lines(resources) -> list[str]:
    """A worker's resource pools as `name: kind ...` lines (display only)."""
    from ..core.resources import ResourceDef

    out = []
    for r in resources if isinstance(resources, list) else []:
        try:
            d = ResourceDef.from_wire(r)
        except (ValueError, TypeError, KeyError, IndexError):
            out.append(f"? {str(r)[:60]}")
            continue
        if d.kind == "sum":
            out.append(f"{d.name}: sum({d.size})")
        elif d.kind == "range":
            out.append(f"{d.name}: {d.count} (range {d.start}-{d.end})")
        else:
            groups = d.groups
            label = ",".join(groups[0][:8]) + (",..." if len(groups[0]) > 8 else "")
            out.append(f"{d.name}: {d.count} ({d.kind}"
                       + (f", {len(groups)} groups" if len(groups) > 1 else "") + f": {label})")
    return out


def _finite(x) -> float | None:
    """`x` as a finite float, or None (not a number, NaN, infinite, too large)."""
    if type(x) is not int and type(x) is not float:
        return None
    try:
        f = float(x)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def overview_numbers(state) -> tuple[float | None, float | None, list, list]:
    """(average CPU %, memory used %, per-core %, GPUs) of an overview's `state` map."""
    # (numbers from a worker or a server: only finite ones count, whatever else they send)
    try:
        cores = [_finite(x) for x in state["cpu_usage"]["cpu_per_core_percent_usage"]]
        cores = [] if None in cores else cores
    except (TypeError, KeyError):
        cores = []
    cpu = _finite(sum(cores) / len(cores)) if cores else None
    try:
        total = _finite(state["memory_usage"]["total"])
        free = _finite(state["memory_usage"]["free"])
        mem = (_finite((total - free) / total * 100.0)
               if total and total > 0 and free is not None else None)
    except (TypeError, KeyError):
        mem = None
    gpus = []
    for key in ("nvidia_gpus", "amd_gpus"):
        try:
            g = state[key]
            if g:
                gpus += [dict(x, vendor=key.split("_")[0]) for x in g["gpus"]]
        except (TypeError, KeyError):
            pass
    return cpu, mem, cores, gpus


class DashboardModel:
    """Jobs, tasks, workers, allocation records as of the last applied event."""

    def __init__(self, series: bool = True):
        self.jobs: dict[int, JobView] = {}
        self.workers: dict[int, WorkerView] = {}
        self.alloc_records: list = []  # (time, kind, payload) of autoalloc events
        self.server_uid: str = ""
        self.server_start: float | None = None
        self.last_time: float | None = None
        self.n_events = 0
        self.bad_records = 0
        self.work = 0  # units of work done (tests check it stays bounded per event)
        self.series = series
        # Series (live model only): job -> [(time, counts tuple)], [(time, n workers)],
        # worker -> [(time, cpu %, mem %, per-core list)]
        self.count_series: dict[int, list] = {}
        self.worker_series: list = []
        self.usage: dict[int, list] = {}
        self.alloc_kinds: frozenset = _autoalloc_kinds()

    def copy(self) -> "DashboardModel":
        m = DashboardModel(series=False)
        m.jobs = {k: j.copy() for k, j in self.jobs.items()}
        m.workers = {k: w.copy() for k, w in self.workers.items()}
        m.alloc_records = list(self.alloc_records)
        m.server_uid, m.server_start = self.server_uid, self.server_start
        m.last_time, m.n_events, m.bad_records = self.last_time, self.n_events, self.bad_records
        return m

    # -- folding ---------------------------------------------------------------------------------
    def apply_record(self, record) -> ev.Event | None:
        """Decodes and applies one `[time, kind, payload]` record; a malformed one is counted
        in `bad_records` and changes nothing. Returns the event (None if malformed)."""
        try:
            e = ev.from_record(record)
        except ev.EventError:
            self.bad_records += 1
            return None
        self.apply(e)
        return e

    def apply(self, e: ev.Event) -> None:
        self.n_events += 1
        self.work += 1
        self.last_time = e.time
        try:
            self._apply(e)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, ArithmeticError):
            self.bad_records += 1  # a record that does not fit: shown as far as it went

    def _apply(self, e) -> None:  # noqa: C901 (one case per event type)
        t = e.time
        match e:
            case ev.TaskStarted():
                job = self.jobs.get(e.job)
                if job is None:
                    return
                self._set(job, e.task, RUNNING, e.worker, e.instance, t, None, None)
                w = self.workers.get(e.worker)
                if w is not None:
                    w.running.add((e.job, e.task))
            case ev.TaskFinished():
                self._end(e.job, e.task, FINISHED, t, None)
            case ev.TaskFailed():
                err = e.error if isinstance(e.error, str) else (
                    None if e.error is None else str(e.error))
                self._end(e.job, e.task, FAILED, t, err[:MAX_ERROR_TEXT] if err else err)
            case ev.TaskAborted():
                for task in e.tasks:
                    self._end(e.job, task, ABORTED, t, None)
            case ev.TaskCanceled():
                for task in e.tasks:
                    self._end(e.job, task, CANCELED, t, None)
            case ev.JobCreated():
                job = self.jobs.get(e.job)
                if job is None:
                    mf = e.max_fails if isinstance(e.max_fails, int) else None
                    job = JobView(e.job, e.name, e.submit_dir, mf, t, not e.closed_job)
                    self.jobs[e.job] = job
                self._add_batches(job, e.batches, e.submit_dir, t)
            case ev.JobOpen():
                mf = e.max_fails if isinstance(e.max_fails, int) else None
                self.jobs[e.job] = JobView(e.job, e.name, e.submit_dir, mf, t, True)
            case ev.JobClose():
                job = self.jobs.get(e.job)
                if job is not None:
                    job.is_open = False
            case ev.JobCancel():
                job = self.jobs.get(e.job)
                if job is not None:
                    job.cancel_reason = e.reason if isinstance(e.reason, str) else None
            case ev.JobCompleted():
                job = self.jobs.get(e.job)
                if job is not None:
                    job.completed = t
            case ev.JobForget():
                job = self.jobs.pop(e.job, None)
                if job is not None:
                    self.work += len(job.tasks)
            case ev.WorkerConnected() | ev.WorkerReconnected():
                self.workers[e.worker] = WorkerView(e.worker, e.configuration, t)
                self._worker_count(t)
            case ev.WorkerLost():
                w = self.workers.get(e.worker)
                if w is None:
                    return
                w.lost, w.reason = t, str(e.reason)
                for job_id, task_id in list(w.running):
                    self.work += 1
                    job = self.jobs.get(job_id)
                    if job is not None:
                        rec = job.tasks.get(task_id)
                        if rec is not None and rec.state == RUNNING and rec.worker == w.id:
                            # back to waiting (a crash-limit failure follows as task-failed)
                            self._set(job, task_id, WAITING, None, rec.instance + 1, None, None,
                                      None)
                w.running.clear()
                self._worker_count(t)
            case ev.WorkerOverview():
                w = self.workers.get(e.worker)
                hw = e.hw_state
                if w is None or not isinstance(hw, dict) or not isinstance(hw.get("state"), dict):
                    return
                w.overview = hw["state"]
                if self.series:
                    cpu, mem, cores, _gpus = overview_numbers(w.overview)
                    hist = self.usage.setdefault(w.id, [])
                    hist.append((t, cpu, mem, cores))
                    if len(hist) > 2 * OVERVIEW_HISTORY:
                        del hist[:OVERVIEW_HISTORY]  # amortised O(1)
            case ev.ServerStart():
                self.server_uid = str(e.server_uid)
                if self.server_start is None:
                    self.server_start = t
            case ev.ServerStop():
                pass
            case ev.Unknown(record_kind=kind) if kind in self.alloc_kinds:
                self.alloc_records.append((t, kind, e.payload))
            case _:
                pass

    def _add_batches(self, job: JobView, batches, submit_dir, t: float) -> None:
        from ..core.ranges import IntRanges

        for batch in batches:
            template, ids_text = batch[0], batch[1]
            ids = IntRanges.parse(ids_text)
            n = len(ids)
            first = next(iter(ids.iter_sorted()), 0) if n else 0
            job.batches.append(BatchInfo(template, ids_text, n, first, submit_dir))
            job.n_tasks += n
            if self.series:
                self._count_point(job, t)
            job.counts[WAITING] += n
        job.completed = None

    def _set(self, job: JobView, task_id: int, state, worker, instance, start, end, error):
        old = job.tasks.get(task_id)
        old_state = WAITING if old is None else old.state
        if old is not None and start is None and state != WAITING:
            start = old.start
        job.tasks[task_id] = TaskRec(state, worker, instance, start, end, error)
        if self.series:
            self._count_point(job, end if end is not None else (start or self.last_time or 0))
        job.counts[old_state] -= 1
        job.counts[state] += 1

    def _end(self, job_id: int, task_id: int, state, t: float, error) -> None:
        self.work += 1
        job = self.jobs.get(job_id)
        if job is None:
            return
        old = job.tasks.get(task_id)
        worker = instance = start = None
        if old is not None:
            if old.state in TERMINAL:
                return
            worker, instance, start = old.worker, old.instance, old.start
            w = self.workers.get(worker) if worker is not None else None
            if w is not None:
                w.running.discard((job_id, task_id))
        self._set(job, task_id, state, worker, instance or 0, start, t, error)

    def _count_point(self, job: JobView, t: float) -> None:
        """Called before a change of `job.counts` at time `t`. The series' last point is open
        (`(time, None)`: the job's current counts) until a change falls into a later period;
        then it is closed with the counts as they were and a new open point starts."""
        bucket = t // SERIES_RESOLUTION
        if job.bucket == bucket:
            return
        s = self.count_series.setdefault(job.id, [])
        if s:
            s[-1] = (s[-1][0], tuple(job.counts))
        s.append((t, None))
        job.bucket = bucket

    def counts_series(self, job_id: int) -> list:
        """`[(time, counts)]` of a job: the counts at the end of each period of
        SERIES_RESOLUTION s in which they changed (the last one: the current counts)."""
        s = self.count_series.get(job_id)
        job = self.jobs.get(job_id)
        if not s:
            return []
        if s[-1][1] is None:
            return s[:-1] + [(s[-1][0], tuple(job.counts) if job is not None else (0,) * 6)]
        return s

    def _worker_count(self, t: float) -> None:
        if self.series:
            n = sum(1 for w in self.workers.values() if w.lost is None)
            self.worker_series.append((t, n))

    # -- queries ---------------------------------------------------------------------------------
    def allocation_registry(self):
        """The allocation queues and their allocations (`autoalloc.Registry`) rebuilt from the
        autoalloc records (few: one per queue change and allocation step)."""
        from ..autoalloc import Registry, event_from_wire

        reg = Registry()
        reasons: dict[int, str] = {}
        for _t, kind, payload in self.alloc_records:
            try:
                e = event_from_wire({"type": kind, **payload})
                reg.apply(e)
            except (ValueError, TypeError, KeyError):
                continue
            reason = getattr(e, "reason", None)
            qid = getattr(e, "queue_id", None)
            if isinstance(reason, str) and qid is not None:
                reasons[qid] = reason
        return reg, reasons


def _autoalloc_kinds() -> frozenset:
    try:
        from ..autoalloc.state import EVENT_TYPES
    except ImportError:  # pragma: no cover
        return frozenset()
    return frozenset(EVENT_TYPES)


class Timeline:
    """The decoded history, its time index, the live model and views as of a time."""

    def __init__(self, snapshot_every: int = 20_000):
        self.events: list = []
        self.times: list[float] = []
        self.live = DashboardModel(series=True)
        self.snapshot_every = snapshot_every
        self._snaps: dict[int, DashboardModel] = {}
        self._cache: tuple[int, DashboardModel] | None = None

    def extend(self, records) -> int:
        """Decodes and applies records to the live model; returns how many were applied."""
        n = 0
        live = self.live
        for r in records:
            e = live.apply_record(r)
            if e is None:
                continue
            t = e.time
            if self.times and t < self.times[-1]:
                t = self.times[-1]  # a clock step back: keep the index monotonic
            self.events.append(e)
            self.times.append(t)
            n += 1
        return n

    @property
    def start(self) -> float | None:
        return self.times[0] if self.times else None

    @property
    def end(self) -> float | None:
        return self.times[-1] if self.times else None

    def index_at(self, t: float) -> int:
        """How many events happened at or before `t`."""
        return bisect_right(self.times, t)

    def model_at(self, t: float | None) -> DashboardModel:
        """The model as of time `t` (None or past the end: the live model)."""
        if t is None:
            return self.live
        i = self.index_at(t)
        if i >= len(self.events):
            return self.live
        if self._cache is not None and self._cache[0] == i:
            return self._cache[1]
        k = max((s for s in self._snaps if s <= i), default=0)
        m = self._snaps[k].copy() if k else DashboardModel(series=False)
        every = self.snapshot_every
        for j in range(k, i):
            m.apply(self.events[j])
            if (j + 1) % every == 0 and (j + 1) not in self._snaps:
                self._snaps[j + 1] = m.copy()
        self._cache = (i, m)
        return m


def cut(series: list, t: float | None) -> list:
    """The points of a `(time, ...)` series at or before `t` (None: all)."""
    if t is None or not series:
        return series
    return series[:_bisect_time(series, t)]


def _bisect_time(series: list, t: float) -> int:
    lo, hi = 0, len(series)
    while lo < hi:
        mid = (lo + hi) // 2
        if series[mid][0] <= t:
            lo = mid + 1
        else:
            hi = mid
    return lo
