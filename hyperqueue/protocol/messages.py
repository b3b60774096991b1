"""Typed wire messages, grouped by direction, and their CBOR codec.

A message travels as a CBOR array `[tag, field, ...]`. `decode` checks that the tag belongs to the
expected direction and validates every field, so a handler only ever sees a well-formed message
object; anything else is a `ProtocolError` for that one connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar

import cbor2

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


def _list_of(check):
    def conv(v):
        if not isinstance(v, list):
            raise ValueError("expected a list")
        return [check(x) for x in v]
    return conv


def _dicts(v):
    return _list_of(DICT)(v)


def _task_update(v):
    if not (isinstance(v, list) and len(v) == 5):
        raise ValueError("malformed task update")
    kind, job, task, inst, err = v
    if kind not in (0, 1, 2) or not all(isinstance(x, int) for x in (job, task, inst)):
        raise ValueError("malformed task update")
    if err is not None and not isinstance(err, str):
        raise ValueError("malformed task update")
    return v


def _task_ref(v):
    if not (isinstance(v, list) and len(v) == 3 and all(isinstance(x, int) for x in v)):
        raise ValueError("malformed task reference")
    return v


def _compute_task(v):
    if not (isinstance(v, list) and len(v) == 7 and all(isinstance(x, int) for x in v[:4])
            and isinstance(v[5], int)):
        raise ValueError("malformed task assignment")
    if v[4] is not None and not isinstance(v[4], bytes):
        raise ValueError("malformed task entry")
    if v[6] is not None and not (isinstance(v[6], list) and v[6]
                                 and all(isinstance(h, str) for h in v[6])):
        raise ValueError("malformed node list")
    return v


def _template_entry(v):
    if not (isinstance(v, list) and len(v) == 3 and isinstance(v[0], int)
            and isinstance(v[2], str)):
        raise ValueError("malformed template")
    return [v[0], _template(v[1]), v[2]]


def _batch(v):
    if not (isinstance(v, list) and len(v) == 4):
        raise ValueError("malformed task batch")
    template, ids, entries, deps = v
    if not isinstance(ids, str):
        raise ValueError("batch ids must be a range string")
    if entries is not None and not (isinstance(entries, list)
                                    and all(isinstance(e, bytes) for e in entries)):
        raise ValueError("batch entries must be a list of bytes")
    if not (isinstance(deps, list) and all(isinstance(d, int) for d in deps)):
        raise ValueError("batch dependencies must be a list of task ids")
    return [_template(template), ids, entries, deps]


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


@message(FROM_CLIENT, 3, name=STR, max_fails=_opt(INT), submit_dir=STR, job_id=_opt(INT),
         batches=_list_of(_batch))
class SubmitRequest(Message):
    name: str
    max_fails: int | None
    submit_dir: str
    job_id: int | None
    batches: list  # [TaskTemplate, ids text, entries | None, deps]


@message(FROM_CLIENT, 4, states=_opt(_list_of(STR)))
class JobListRequest(Message):
    states: list | None  # None = every job


@message(FROM_CLIENT, 5, selector=ANY, with_tasks=BOOL, task_selector=ANY,
         task_states=_opt(_list_of(STR)))
class JobInfoRequest(Message):
    selector: Any
    with_tasks: bool
    task_selector: Any = None
    task_states: list | None = None


@message(FROM_CLIENT, 6, selector=ANY, reason=_opt(STR))
class CancelJobsRequest(Message):
    selector: Any
    reason: str | None


@message(FROM_CLIENT, 7, selector=ANY, without_close=BOOL)
class WaitJobsRequest(Message):
    selector: Any
    without_close: bool


@message(FROM_CLIENT, 8, include_offline=BOOL)
class WorkerListRequest(Message):
    include_offline: bool


@message(FROM_CLIENT, 9, selector=ANY)
class WorkerInfoRequest(Message):
    selector: Any


@message(FROM_CLIENT, 10, selector=ANY)
class StopWorkersRequest(Message):
    selector: Any


@message(FROM_CLIENT, 11, name=STR, max_fails=_opt(INT), submit_dir=STR)
class OpenJobRequest(Message):
    name: str
    max_fails: int | None
    submit_dir: str


@message(FROM_CLIENT, 12, selector=ANY)
class CloseJobsRequest(Message):
    selector: Any


@message(FROM_CLIENT, 13, selector=ANY, states=_list_of(STR))
class ForgetJobsRequest(Message):
    selector: Any
    states: list


@message(FROM_CLIENT, 14, action=STR)
class JournalRequest(Message):
    action: str  # "flush" or "prune"


@message(FROM_CLIENT, 16, job_id=ANY, task_id=INT)
class TaskExplainRequest(Message):
    job_id: Any  # a job selector (single id or last)
    task_id: int


@message(FROM_CLIENT, 15, live=BOOL)
class StreamEventsRequest(Message):
    live: bool  # False: the history only (replay); True: then follow new events (stream)


# -- server -> client -------------------------------------------------------------------------------


@message(TO_CLIENT, 101, info=DICT)
class ServerInfoResponse(Message):
    info: dict


@message(TO_CLIENT, 102, message=_opt(STR))
class OkResponse(Message):
    message: str | None = None


@message(TO_CLIENT, 103, message=STR)
class ErrorResponse(Message):
    message: str


@message(TO_CLIENT, 104, job_id=INT)
class SubmitResponse(Message):
    job_id: int


@message(TO_CLIENT, 105, jobs=_dicts, missing=_list_of(INT))
class JobsResponse(Message):
    jobs: list
    missing: list


@message(TO_CLIENT, 106, results=_list_of(LIST))
class ItemResultsResponse(Message):
    results: list  # [[id, text], ...]


@message(TO_CLIENT, 107, workers=_dicts, missing=_list_of(INT))
class WorkersResponse(Message):
    workers: list
    missing: list


@message(TO_CLIENT, 109, explanation=DICT)
class ExplainResponse(Message):
    explanation: dict


@message(TO_CLIENT, 108, events=_list_of(LIST), done=BOOL)
class EventsResponse(Message):
    events: list  # [time, type, payload]
    done: bool  # the last message of the stream


# -- worker -> server -------------------------------------------------------------------------------


def _previous(v):
    if v is None:
        return None
    if not (isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)
            and isinstance(v[1], int)):
        raise ValueError("malformed previous registration")
    return v


@message(FROM_WORKER, 201, config=_worker_config, previous=_previous,
         running=_list_of(_task_ref), results=_list_of(_task_update))
class RegisterWorker(Message):
    config: WorkerConfig
    # A worker reconnecting after losing its server: [server_uid, worker_id] it had, the
    # tasks it still runs, and the results the server has not confirmed as durable.
    previous: list | None = None
    running: list = []
    results: list = []


@message(FROM_WORKER, 202, seq=INT, updates=_list_of(_task_update))
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


@message(FROM_WORKER, 204, reason=STR)
class WorkerStopping(Message):
    reason: str  # a WorkerState name: IDLE_TIMEOUT, TIME_LIMIT_REACHED, CONNECTION_LOST


# -- server -> worker -------------------------------------------------------------------------------


@message(TO_WORKER, 301, worker_id=INT, server_uid=STR, idle_timeout=_opt(NUM),
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


@message(TO_WORKER, 305, seq=INT)
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
