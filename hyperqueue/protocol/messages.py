"""Typed wire messages, grouped by direction, and their CBOR codec.

A message travels as a CBOR array `[tag, field, ...]`. `decode` checks that the tag belongs to the
expected direction and validates every field, so a handler only ever sees a well-formed message
object; anything else is a `ProtocolError` for that one connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar

import cbor2

from ..core.limits import MAX_ID, MAX_LIST_LEN, MAX_NAME_LEN, MAX_STRING_LEN
from ..core.updates import UPDATE_KINDS
from .errors import ProtocolError, describe, shown

if TYPE_CHECKING:
    from ..core.model import WorkerConfig

# -- field validators (wire value -> python value, ValueError on garbage) ----------------------------


def _is(*types) -> Callable[[Any], Any]:
    def check(v):
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            raise ValueError(f"expected {'/'.join(t.__name__ for t in types)}, "
                             f"got {type(v).__name__}")
        return v
    return check


def _opt(check):
    return lambda v: None if v is None else check(v)


INT = _is(int)
STR = _is(str)
BOOL = _is(bool)
LIST = _is(list)
DICT = _is(dict)
NUM = _is(int, float)
ANY = lambda v: v  # noqa: E731 - selectors/views validate themselves where they are used


def _int_in(lo: int, hi: int, what: str = "integer") -> Callable[[Any], int]:
    def check(v):
        if type(v) is not int or not lo <= v <= hi:
            raise ValueError(f"{what} must be an integer between {lo} and {hi}")
        return v
    return check


def _str_max(n: int, what: str = "string") -> Callable[[Any], str]:
    def check(v):
        if not isinstance(v, str):
            raise ValueError(f"{what}: expected str, got {type(v).__name__}")
        if len(v) > n:
            raise ValueError(f"{what} is longer than {n} characters")
        return v
    return check


ID = _int_in(0, MAX_ID, "an id")  # job, task and worker ids (u32)
SEQ = _int_in(0, 2**63 - 1, "a sequence number")
INSTANCE = _int_in(0, MAX_ID, "a task instance")
COUNT = _int_in(0, MAX_ID, "a count")
NAME = _str_max(MAX_NAME_LEN, "a name")
TEXT = _str_max(MAX_STRING_LEN, "a string")


def _list_of(check, max_len: int = MAX_LIST_LEN):
    def conv(v):
        if not isinstance(v, list):
            raise ValueError("expected a list")
        if len(v) > max_len:
            raise ValueError(f"a list of more than {max_len} items")
        return [check(x) for x in v]
    return conv


def _selector(v):
    """A job/worker/task selector on the wire: checked here (ids, range count, interleaving),
    kept in wire form (handlers build the `Selector` where they use it)."""
    from ..common.selectors import Selector

    Selector.from_wire(v)
    return v


def _id_ranges(v):
    """`[start, end, step]` triples (the ids that were not found)."""
    from ..core.ranges import IntRanges

    if not isinstance(v, list):
        raise ValueError("expected a list of id ranges")
    IntRanges.from_ranges(v)
    return v


def _dicts(v):
    return _list_of(DICT)(v)


def _is_id(x) -> bool:
    return type(x) is int and 0 <= x <= MAX_ID


def _task_update(v):
    # Hot path (one per task result): plain type checks, no generator.
    if type(v) is not list or len(v) != 5:
        raise ValueError("malformed task update")
    kind, job, task, inst, err = v
    if (type(kind) is not int or type(job) is not int or type(task) is not int
            or type(inst) is not int or kind not in UPDATE_KINDS
            or not (0 <= job <= MAX_ID and 0 <= task <= MAX_ID and 0 <= inst <= MAX_ID)):
        raise ValueError("malformed task update")
    if err is not None and not (isinstance(err, str) and len(err) <= MAX_STRING_LEN):
        raise ValueError("malformed task update")
    return v


def _task_ref(v):
    if not (isinstance(v, list) and len(v) == 3 and all(_is_id(x) for x in v)):
        raise ValueError("malformed task reference")
    return v


def _running_ref(v):
    """A task a reconnecting worker still runs: [job, task, instance] or, since the variant is
    reported too, [job, task, instance, variant]."""
    from ..core.model import MAX_VARIANTS

    if not (isinstance(v, list) and len(v) in (3, 4) and all(_is_id(x) for x in v[:3])):
        raise ValueError("malformed running task reference")
    if len(v) == 4 and not (type(v[3]) is int and 0 <= v[3] < MAX_VARIANTS):
        raise ValueError("malformed running task variant")
    return v


_MAX_VARIANTS: list = []  # core.model.MAX_VARIANTS, imported on first use


def _compute_task(v):
    # Hot path (one per assigned task): plain type checks, no generator.
    if not _MAX_VARIANTS:
        from ..core.model import MAX_VARIANTS

        _MAX_VARIANTS.append(MAX_VARIANTS)
    if type(v) is not list or len(v) != 7:
        raise ValueError("malformed task assignment")
    job, task, inst, tid, entry, variant, nodes = v
    if (type(job) is not int or type(task) is not int or type(inst) is not int
            or type(tid) is not int or type(variant) is not int
            or not (0 <= job <= MAX_ID and 0 <= task <= MAX_ID and 0 <= inst <= MAX_ID
                    and 0 <= tid <= MAX_ID and 0 <= variant < _MAX_VARIANTS[0])):
        raise ValueError("malformed task assignment")
    if entry is not None and not (isinstance(entry, bytes) and len(entry) <= MAX_STRING_LEN):
        raise ValueError("malformed task entry")
    if nodes is not None and not (isinstance(nodes, list) and 0 < len(nodes) <= MAX_LIST_LEN
                                  and all(isinstance(h, str) and len(h) <= MAX_NAME_LEN
                                          for h in nodes)):
        raise ValueError("malformed node list")
    return v


def _template_entry(v):
    if not (isinstance(v, list) and len(v) == 3 and _is_id(v[0])
            and isinstance(v[2], str) and len(v[2]) <= MAX_STRING_LEN):
        raise ValueError("malformed template")
    return [v[0], _template(v[1]), v[2]]


def _batches(v):
    """A submit's batches. A batch whose template is on the wire exactly as the previous
    batch's shares that batch's `TaskTemplate` (decoded once): the server then gives both one
    template id, so a worker gets (and keeps) it once, not once per task of a task graph."""
    if not isinstance(v, list):
        raise ValueError("expected a list")
    if len(v) > MAX_LIST_LEN:
        raise ValueError(f"a list of more than {MAX_LIST_LEN} items")
    out = []
    prev_wire = prev = None
    for x in v:
        if prev is not None and isinstance(x, list) and len(x) == 4 and x[0] == prev_wire:
            b = _batch(x, prev)
        else:
            b = _batch(x)
            prev_wire, prev = x[0], b[0]
        out.append(b)
    return out


def _batch(v, tmpl=None):
    if not (isinstance(v, list) and len(v) == 4):
        raise ValueError("malformed task batch")
    template, ids, entries, deps = v
    if not (isinstance(ids, str) and len(ids) <= MAX_STRING_LEN):
        raise ValueError("batch ids must be a range string")
    if entries is not None and not (isinstance(entries, list) and len(entries) <= MAX_LIST_LEN
                                    and all(isinstance(e, bytes) and len(e) <= MAX_STRING_LEN
                                            for e in entries)):
        raise ValueError("batch entries must be a list of bytes")
    if not (isinstance(deps, list) and len(deps) <= MAX_LIST_LEN
            and all(_is_id(d) for d in deps)):
        raise ValueError("batch dependencies must be a list of task ids")
    return [_template(template) if tmpl is None else tmpl, ids, entries, deps]


def _item_result(v):
    """`[id or [start, end, step], status, ...numbers]` (ids not found come as ranges)."""
    if not (isinstance(v, list) and 1 <= len(v) <= 4):
        raise ValueError("malformed item result")
    first = v[0]
    if isinstance(first, list):
        _id_ranges([first])
    elif type(first) is not int or first < 0:
        raise ValueError("malformed item result")
    for x in v[1:]:
        if not ((isinstance(x, str) and len(x) <= MAX_NAME_LEN)
                or (type(x) is int and 0 <= x <= 2**63)):
            raise ValueError("malformed item result")
    return v


_STATE_NAMES = _list_of(NAME, 64)


def _duration(v):
    from ..core.limits import check_duration

    return check_duration(v, "duration", allow_zero=True)


# The model is imported on first use: most CLI calls never decode a template or a worker
# configuration, and importing it costs them ~3 ms of start-up.
def _template(v):
    from ..core.model import TaskTemplate

    return TaskTemplate.from_wire(v)


def _worker_config(v):
    from ..core.model import WorkerConfig

    return WorkerConfig.from_wire(v)


# -- registry -----------------------------------------------------------------------------------------
_REGISTRY: dict[str, dict[int, type]] = {}


class Message:
    """Base of all messages: immutable, slotted, positional fields in declaration order.

    Built by `message()` rather than `dataclasses`: generating ~25 dataclasses costs ~30 ms at
    import, which every short CLI call would pay.
    """

    __slots__ = ()
    TAG: ClassVar[int]
    DIRECTION: ClassVar[str]
    CHECKS: ClassVar[tuple]
    _FIELDS: ClassVar[tuple[str, ...]] = ()
    _DEFAULTS: ClassVar[dict] = {}

    def __init__(self, *args, **kwargs):
        fields = self._FIELDS
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes {len(fields)} fields")
        values = dict(zip(fields, args))
        for k, v in kwargs.items():
            if k not in fields or k in values:
                raise TypeError(f"{type(self).__name__}: unexpected or repeated field {k!r}")
            values[k] = v
        for name in fields:
            if name in values:
                value = values[name]
            elif name in self._DEFAULTS:
                value = self._DEFAULTS[name]
                if isinstance(value, list):
                    value = list(value)
            else:
                raise TypeError(f"{type(self).__name__}: missing field {name!r}")
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, f) == getattr(other, f) for f in self._FIELDS)

    def __hash__(self):
        return hash((type(self), *(repr(getattr(self, f)) for f in self._FIELDS)))

    def __repr__(self):
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._FIELDS)
        return f"{type(self).__name__}({inner})"


def message(direction: str, tag: int, **checks):
    """Class decorator: an immutable slotted message registered under `tag` for `direction`.

    Fields are the class annotations, in order; a class attribute gives a field's default.
    """

    def wrap(cls):
        names = tuple(cls.__dict__.get("__annotations__", {}))
        defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
        missing = set(names) ^ set(checks)
        assert not missing, (cls, missing)
        ns = {
            "__slots__": names, "__doc__": cls.__doc__, "__module__": cls.__module__,
            "__qualname__": cls.__qualname__, "TAG": tag, "DIRECTION": direction,
            "_FIELDS": names, "_DEFAULTS": defaults, "CHECKS": tuple(checks[n] for n in names),
        }
        new = type(cls.__name__, (Message,), ns)
        table = _REGISTRY.setdefault(direction, {})
        assert tag not in table, tag
        table[tag] = new
        return new

    return wrap


FROM_CLIENT = "from-client"
TO_CLIENT = "to-client"
FROM_WORKER = "from-worker"
TO_WORKER = "to-worker"

# -- client -> server ------------------------------------------------------------------------------


@message(FROM_CLIENT, 1)
class ServerInfoRequest(Message):
    pass


@message(FROM_CLIENT, 2)
class StopServerRequest(Message):
    pass


@message(FROM_CLIENT, 3, name=NAME, max_fails=_opt(COUNT), submit_dir=TEXT, job_id=_opt(ID),
         batches=_batches)
class SubmitRequest(Message):
    name: str
    max_fails: int | None
    submit_dir: str
    job_id: int | None
    batches: list  # [TaskTemplate, ids text, entries | None, deps]


@message(FROM_CLIENT, 4, states=_opt(_STATE_NAMES))
class JobListRequest(Message):
    """The first page of jobs (at most `JOB_PAGE`); use JobListPageRequest for all."""
    states: list | None  # None = every job


@message(FROM_CLIENT, 5, selector=_selector, with_tasks=BOOL, task_selector=_opt(_selector),
         task_states=_opt(_STATE_NAMES))
class JobInfoRequest(Message):
    selector: Any
    with_tasks: bool
    task_selector: Any = None
    task_states: list | None = None


@message(FROM_CLIENT, 6, selector=_selector, reason=_opt(NAME))
class CancelJobsRequest(Message):
    selector: Any
    reason: str | None


@message(FROM_CLIENT, 7, selector=_selector, without_close=BOOL)
class WaitJobsRequest(Message):
    selector: Any
    without_close: bool


@message(FROM_CLIENT, 8, include_offline=BOOL)
class WorkerListRequest(Message):
    include_offline: bool


@message(FROM_CLIENT, 9, selector=_selector)
class WorkerInfoRequest(Message):
    selector: Any


@message(FROM_CLIENT, 10, selector=_selector)
class StopWorkersRequest(Message):
    selector: Any


@message(FROM_CLIENT, 11, name=NAME, max_fails=_opt(COUNT), submit_dir=TEXT)
class OpenJobRequest(Message):
    name: str
    max_fails: int | None
    submit_dir: str


@message(FROM_CLIENT, 12, selector=_selector)
class CloseJobsRequest(Message):
    selector: Any


@message(FROM_CLIENT, 13, selector=_selector, states=_STATE_NAMES)
class ForgetJobsRequest(Message):
    selector: Any
    states: list


@message(FROM_CLIENT, 14, action=NAME)
class JournalRequest(Message):
    action: str  # "flush" or "prune"


@message(FROM_CLIENT, 16, job_id=_selector, task_id=ID)
class TaskExplainRequest(Message):
    job_id: Any  # a job selector (single id or last)
    task_id: int


@message(FROM_CLIENT, 15, live=BOOL)
class StreamEventsRequest(Message):
    live: bool  # False: the history only (replay); True: then follow new events (stream)


@message(FROM_CLIENT, 17, job_id=ID, task_selector=_opt(_selector),
         task_states=_opt(_STATE_NAMES), after=_int_in(-1, MAX_ID, "a task id"))
class TaskPageRequest(Message):
    """The next page of a job's tasks: those with an id greater than `after`."""
    job_id: int
    task_selector: Any
    task_states: list | None
    after: int


@message(FROM_CLIENT, 18, states=_opt(_STATE_NAMES), after=_int_in(-1, MAX_ID, "a job id"))
class JobListPageRequest(Message):
    """Jobs with an id greater than `after` (`job list` asks page by page)."""
    states: list | None
    after: int


@message(FROM_CLIENT, 25, path=_str_max(4096, "a path"))
class DebugDumpRequest(Message):
    """`hq server debug-dump PATH`: the server writes its scheduler state to PATH (as given:
    a relative path is resolved against the server's working directory)."""
    path: str


@message(FROM_CLIENT, 26, selector=_selector, without_close=BOOL)
class WaitNotifyRequest(Message):
    """Like WaitJobsRequest, and every task notification of the jobs (`hq task notify`) is
    sent as a `TaskNotification` while waiting; the final answer is a JobsResponse."""
    selector: Any
    without_close: bool


MIN_OVERVIEW_INTERVAL = 0.1  # seconds: the fastest overviews a client may ask for
MAX_OVERVIEW_LEASE = 3600.0  # seconds one OverviewsRequest lasts at most


def _overview_interval(v):
    v = _duration(v)
    if not MIN_OVERVIEW_INTERVAL <= v <= MAX_OVERVIEW_LEASE:
        raise ValueError(f"overview interval must be between {MIN_OVERVIEW_INTERVAL} and "
                         f"{MAX_OVERVIEW_LEASE} s")
    return v


def _overview_lease(v):
    v = _duration(v)
    if not 0 < v <= MAX_OVERVIEW_LEASE:
        raise ValueError(f"overview lease must be between 0 and {MAX_OVERVIEW_LEASE} s")
    return v


@message(FROM_CLIENT, 40, interval=_overview_interval, lease=_overview_lease)
class OverviewsRequest(Message):
    """A dashboard asks every connected worker for a hardware overview every `interval` s
    during the next `lease` s (it renews the request while it runs). Overviews of workers
    without their own `--overview-interval` are streamed to event subscribers but not
    journaled (F56). Answered with an OkResponse."""
    interval: float
    lease: float


# -- automatic allocation (`hq alloc ...`) ---------------------------------------------------------


def _queue_params(v):
    """Every field of a queue's parameters checked (`QueueParams.from_wire`); kept in wire form."""
    from ..autoalloc.params import QueueParams

    QueueParams.from_wire(v)
    return v


_ALLOC_STATES = ("queued", "running", "finished", "failed")


def _alloc_states(v):
    v = _list_of(NAME, 8)(v)
    for s in v:
        if s not in _ALLOC_STATES:
            raise ValueError(f"unknown allocation state {s!r}")
    return v


def _allocation_id(v):
    if not isinstance(v, str) or not v or len(v) > 256 or any(c.isspace() for c in v):
        raise ValueError("an allocation id must be a non-empty string without whitespace")
    return v


@message(FROM_CLIENT, 19, params=_queue_params, dry_run=BOOL)
class AllocAddRequest(Message):
    """`hq alloc add`: create a queue (after a trial submission unless `dry_run` is False)."""
    params: dict  # QueueParams.to_wire()
    dry_run: bool


@message(FROM_CLIENT, 20, params=_queue_params)
class AllocDryRunRequest(Message):
    """`hq alloc dry-run`: submit one trial allocation and cancel it."""
    params: dict


@message(FROM_CLIENT, 21)
class AllocListRequest(Message):
    pass


@message(FROM_CLIENT, 22, queue_id=ID, states=_opt(_alloc_states))
class AllocInfoRequest(Message):
    queue_id: int
    states: list | None  # None: allocations in every state


@message(FROM_CLIENT, 23, queue_id=ID, action=NAME, force=BOOL)
class AllocQueueRequest(Message):
    """`hq alloc pause|resume|remove` of one queue."""
    queue_id: int
    action: str  # "pause", "resume" or "remove"
    force: bool = False


@message(FROM_CLIENT, 24, allocation_id=_allocation_id)
class AllocLogRequest(Message):
    """Where the output of an allocation is (`hq alloc log` reads the file itself)."""
    allocation_id: str


# -- server -> client -------------------------------------------------------------------------------


@message(TO_CLIENT, 101, info=DICT)
class ServerInfoResponse(Message):
    info: dict


@message(TO_CLIENT, 102, message=_opt(TEXT))
class OkResponse(Message):
    message: str | None = None


@message(TO_CLIENT, 103, message=TEXT)
class ErrorResponse(Message):
    message: str


@message(TO_CLIENT, 104, job_id=ID)
class SubmitResponse(Message):
    job_id: int


@message(TO_CLIENT, 105, jobs=_dicts, missing=_id_ranges)
class JobsResponse(Message):
    jobs: list
    missing: list  # [start, end, step] triples: the selected ids that are no job


@message(TO_CLIENT, 106, results=_list_of(_item_result))
class ItemResultsResponse(Message):
    results: list  # [[id, text, ...], ...]; ids not found as [[start, end, step], text, ...]


@message(TO_CLIENT, 107, workers=_dicts, missing=_id_ranges)
class WorkersResponse(Message):
    workers: list
    missing: list  # [start, end, step] triples


@message(TO_CLIENT, 109, explanation=DICT)
class ExplainResponse(Message):
    explanation: dict


@message(TO_CLIENT, 110, items=_dicts, next=_opt(_int_in(-1, MAX_ID, "an id")))
class PageResponse(Message):
    """One page of a long listing (tasks of a job, jobs)."""
    items: list
    next: int | None  # where the next page starts (the request's `after`); None: no more


@message(TO_CLIENT, 111, data=DICT)
class AllocResponse(Message):
    """The answer to an `Alloc*Request`: {"queue_id", "warnings"} (add), {"queues"} (list),
    {"queue", "allocations", "decision"} (info), {"script", "job_id"} (dry run), {"workdir"} (log),
    {"message"} (pause/resume/remove)."""
    data: dict


@message(TO_CLIENT, 108, events=_list_of(LIST), done=BOOL)
class EventsResponse(Message):
    """One chunk of an event stream. In a live stream, an empty not-done chunk marks the live
    boundary: the events before it are the history, those after it are live."""
    events: list  # [time, type, payload]
    done: bool  # the last message of the stream


MAX_NOTIFY_MESSAGE = 1024  # bytes of one `hq task notify` message (as upstream)


def _notify_message(v):
    if not isinstance(v, bytes) or len(v) > MAX_NOTIFY_MESSAGE:
        raise ValueError(f"a notification must be at most {MAX_NOTIFY_MESSAGE} bytes")
    return v


@message(TO_CLIENT, 112, job_id=ID, task_id=ID, worker_id=ID, message=_notify_message)
class TaskNotification(Message):
    """A running task's `hq task notify` message, to a client waiting with notifications."""
    job_id: int
    task_id: int
    worker_id: int
    message: bytes


# -- worker -> server -------------------------------------------------------------------------------


def _previous(v):
    if v is None:
        return None
    if not (isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)
            and len(v[0]) <= MAX_NAME_LEN and _is_id(v[1])):
        raise ValueError("malformed previous registration")
    return v


@message(FROM_WORKER, 201, config=_worker_config, previous=_previous,
         running=_list_of(_running_ref), results=_list_of(_task_update))
class RegisterWorker(Message):
    config: WorkerConfig
    # A worker reconnecting after losing its server: [server_uid, worker_id] it had, the
    # tasks it still runs ([job, task, instance, variant]), and the results the server has not
    # confirmed as durable.
    previous: list | None = None
    running: list = []
    results: list = []


@message(FROM_WORKER, 202, seq=SEQ, updates=_list_of(_task_update))
class TaskUpdates(Message):
    seq: int  # increasing per connection; the server confirms results up to a seq
    updates: list  # [kind, job, task, instance, error | None]


@message(FROM_WORKER, 205, retracted=_list_of(_task_ref), refused=_list_of(_task_ref))
class TasksRetracted(Message):
    retracted: list  # given back: they were only queued on the worker
    refused: list  # already started (or ended) there


@message(FROM_WORKER, 203)
class Heartbeat(Message):
    pass


@message(FROM_WORKER, 204, reason=NAME)
class WorkerStopping(Message):
    reason: str  # a WorkerState name: IDLE_TIMEOUT, TIME_LIMIT_REACHED, CONNECTION_LOST


@message(FROM_WORKER, 206, job_id=ID, task_id=ID, instance=INSTANCE, message=_notify_message)
class TaskNotify(Message):
    """A running task sent a notification (`hq task notify`); never journaled."""
    job_id: int
    task_id: int
    instance: int
    message: bytes


def _hw_state(v):
    """A worker's hardware overview (`worker/hwmonitor.py`): checked key by key, bounded."""
    from ..core.limits import MAX_LIST_LEN

    def num(x):  # counters and percentages: finite, and within a u64
        if (type(x) is not int and type(x) is not float) or not -(2**64) <= x <= 2**64:
            raise ValueError("malformed hardware overview (not a finite number within a u64)")
        return x

    def gpus(g):
        if g is None:
            return None
        if not (isinstance(g, dict) and set(g) == {"gpus"} and isinstance(g["gpus"], list)
                and len(g["gpus"]) <= 256):
            raise ValueError("malformed GPU overview")
        for x in g["gpus"]:
            if not (isinstance(x, dict) and set(x) == {"id", "processor_usage", "mem_usage"}
                    and isinstance(x["id"], str) and len(x["id"]) <= MAX_NAME_LEN):
                raise ValueError("malformed GPU overview")
            num(x["processor_usage"]), num(x["mem_usage"])
        return g

    if v is None:
        return None
    keys = {"cpu_usage", "memory_usage", "network_usage", "nvidia_gpus", "amd_gpus", "timestamp"}
    if not (isinstance(v, dict) and set(v) == {"state"} and isinstance(v["state"], dict)
            and set(v["state"]) == keys):
        raise ValueError("malformed hardware overview")
    st = v["state"]
    cpu, mem, net = st["cpu_usage"], st["memory_usage"], st["network_usage"]
    if not (isinstance(cpu, dict) and set(cpu) == {"cpu_per_core_percent_usage"}
            and isinstance(cpu["cpu_per_core_percent_usage"], list)
            and len(cpu["cpu_per_core_percent_usage"]) <= MAX_LIST_LEN):
        raise ValueError("malformed CPU overview")
    for x in cpu["cpu_per_core_percent_usage"]:
        num(x)
    if not (isinstance(mem, dict) and set(mem) == {"total", "free"}):
        raise ValueError("malformed memory overview")
    num(mem["total"]), num(mem["free"])
    net_keys = {"rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_errors", "tx_errors"}
    if not (isinstance(net, dict) and set(net) == net_keys):
        raise ValueError("malformed network overview")
    for k in net_keys:
        num(net[k])
    num(st["timestamp"])
    gpus(st["nvidia_gpus"]), gpus(st["amd_gpus"])
    return v


@message(FROM_WORKER, 207, hw_state=_hw_state)
class WorkerOverview(Message):
    """A periodic hardware overview (`worker start --overview-interval`)."""
    hw_state: dict | None


# -- server -> worker -------------------------------------------------------------------------------


@message(TO_WORKER, 301, worker_id=ID, server_uid=NAME, idle_timeout=_opt(_duration),
         rejected=_list_of(_task_ref))
class WorkerRegistered(Message):
    worker_id: int
    server_uid: str
    idle_timeout: float | None  # the server's default when the worker set none
    rejected: list = []  # running tasks the server did not adopt: the worker kills them


@message(TO_WORKER, 302, templates=_list_of(_template_entry), tasks=_list_of(_compute_task))
class ComputeTasks(Message):
    templates: list  # [template_id, TaskTemplate, submit_dir]
    tasks: list  # [job, task, instance, template_id, entry | None, variant, nodes | None]


@message(TO_WORKER, 303, tasks=_list_of(_task_ref))
class CancelTasks(Message):
    tasks: list  # [job, task, instance]


@message(TO_WORKER, 304)
class StopWorkerCommand(Message):
    pass


@message(TO_WORKER, 306, tasks=_list_of(_task_ref))
class RetractTasks(Message):
    tasks: list  # [job, task, instance] prefilled tasks the server wants back


@message(TO_WORKER, 307, reserved=BOOL)
class WorkerReserved(Message):
    """The worker became a secondary node of a multi-node task (`reserved`: it runs nothing
    itself but is not idle) or was released from it (its idle time starts again)."""
    reserved: bool


@message(TO_WORKER, 320, interval=_overview_interval, lease=_overview_lease)
class SendOverviews(Message):
    """Send a WorkerOverview every `interval` s during the next `lease` s (for a dashboard;
    besides the worker's own `--overview-interval`, if any)."""
    interval: float
    lease: float


@message(TO_WORKER, 305, seq=SEQ)
class ConfirmResults(Message):
    seq: int  # task results of TaskUpdates up to this seq are durable: the worker drops them


# -- codec ----------------------------------------------------------------------------------------------


def _wire_default(encoder, value):
    to_wire = getattr(value, "to_wire", None)
    if to_wire is None:
        raise TypeError(f"cannot encode {type(value).__name__}")
    encoder.encode(to_wire())


def encode(msg: Message) -> bytes:
    """CBOR bytes of a message (objects with `to_wire()` inside fields are encoded by it)."""
    return cbor2.dumps([msg.TAG, *(getattr(msg, n) for n in msg._FIELDS)], default=_wire_default)


MAX_TAG = 1 << 16  # tags are small positive integers; anything else is unknown


def decode(data: bytes, direction: str) -> Message:
    """Parses and validates one message expected to travel in `direction`.

    Never raises anything but ProtocolError for any `data` (garbage, deep nesting, huge
    integers, wrong types), and its message never embeds an unbounded peer value.

    Raises:
        ProtocolError: not CBOR, an unknown tag for this direction, or a malformed field.
    """
    try:
        obj = cbor2.loads(data)
    except Exception as e:  # cbor2 raises several types for garbage (incl. RecursionError)
        raise ProtocolError(f"undecodable message ({e.__class__.__name__})") from None
    if type(obj) is not list or not obj or type(obj[0]) is not int:
        raise ProtocolError("malformed message: not a tagged array")
    tag = obj[0]
    cls = _REGISTRY[direction].get(tag) if 0 <= tag < MAX_TAG else None
    if cls is None:
        raise ProtocolError(f"unknown message tag {shown(tag)} for {direction}")
    values = obj[1:]
    if len(values) != len(cls.CHECKS):
        raise ProtocolError(f"malformed {cls.__name__}: expected {len(cls.CHECKS)} fields, "
                            f"got {len(values)}")
    try:
        return cls(*[check(v) for check, v in zip(cls.CHECKS, values)])
    except (ValueError, TypeError) as e:
        raise ProtocolError(f"malformed {cls.__name__}: {describe(e, with_type=False)}") from None
    except Exception as e:  # a validator choking on a value (OverflowError, RecursionError...)
        raise ProtocolError(f"malformed {cls.__name__} ({e.__class__.__name__})") from None
