"""Parameters of an allocation queue (`hq alloc add slurm|pbs ...`): validation and wire form.

`ADD_FLAGS` lists every flag of `hq alloc add` / `hq alloc dry-run` with its aliases and default,
so the CLI builds its options from one table. The CLI parses durations and numbers; `QueueParams`
checks every value again (the same checks run on the wire and on journal replay), so a queue
that exists is always renderable into a submission script.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

from ..batch.script import MANAGERS, check_script_text
from ..common.durations import format_duration
from ..core.limits import MAX_ID, MAX_LIST_LEN, MAX_NAME_LEN, MAX_STRING_LEN, check_duration
from ..core.resources import ResourceDef, parse_resource_arg, parse_resource_def

__all__ = ["Flag", "ADD_FLAGS", "ON_SERVER_LOST", "DEFAULT_IDLE_TIMEOUT", "IDLE_TIMEOUT_WARN",
           "QueueParams", "WORKER_TIME_LIMIT_ERROR"]

ON_SERVER_LOST = ("stop", "finish-running", "reconnect")
DEFAULT_IDLE_TIMEOUT = 300.0  # 5m
IDLE_TIMEOUT_WARN = 600.0  # warn above 10m
#: Upstream's error when `--worker-time-limit` exceeds `--time-limit`.
WORKER_TIME_LIMIT_ERROR = "Worker time limit cannot be larger than queue time limit"


class Flag(NamedTuple):
    """One option of `hq alloc add`: names (first is canonical), value kind, default, help."""

    names: tuple[str, ...]
    kind: str  # duration | int | str | float | flag | multi | choice
    default: object
    help: str


ADD_FLAGS: tuple[Flag, ...] = (
    Flag(("-t", "--time-limit"), "duration", None,
         "Walltime of each allocation (required); also the default worker time limit"),
    Flag(("-b", "--backlog"), "int", 1, "Maximum number of allocations queued at once"),
    Flag(("-m", "--max-workers-per-alloc", "--workers-per-alloc"), "int", 1,
         "Maximum number of workers (nodes) in one allocation"),
    Flag(("--max-worker-count",), "int", None, "Maximum number of queued+running workers"),
    Flag(("-n", "--name"), "str", None, "Name of the queue (used in allocation names)"),
    Flag(("--cpus",), "str", None, "CPUs of the workers"),
    Flag(("--resource",), "multi", (), "A resource of the workers, NAME=DEF"),
    Flag(("--group",), "str", None, "Worker group"),
    Flag(("--coupling",), "str", None, "Resource coupling of the workers"),
    Flag(("--detect-resources",), "str", None, "Which resources workers detect"),
    Flag(("--no-hyper-threading",), "flag", False, "Workers use one thread of each core"),
    Flag(("--idle-timeout",), "duration", DEFAULT_IDLE_TIMEOUT, "Idle timeout of the workers"),
    Flag(("--overview-interval",), "duration", None, "Hardware overview period of the workers"),
    Flag(("--min-utilization",), "float", 0.0, "Minimal utilization of the workers (0..1)"),
    Flag(("--on-server-lost",), "choice", "finish-running",
         "What workers do when the server goes away: stop, finish-running, reconnect"),
    Flag(("--worker-time-limit",), "duration", None,
         "Time limit of the workers (at most --time-limit)"),
    Flag(("--worker-start-cmd",), "str", None, "Shell command run before the worker starts"),
    Flag(("--worker-stop-cmd",), "str", None, "Shell command run after the worker stops"),
    Flag(("--worker-wrap-cmd",), "str", None, "Prefix of the worker command"),
    Flag(("--no-dry-run",), "flag", False, "Do not submit a trial allocation first"),
)


def _opt_text(value, what: str, limit: int = MAX_STRING_LEN) -> None:
    if value is None:
        return
    check_script_text(value, what)
    if len(value) > limit:
        raise ValueError(f"Invalid {what}: longer than {limit} characters")


def _count(value, what: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise ValueError(f"Invalid {what}: expected an integer between 1 and {MAX_ID}")


@dataclass(frozen=True, slots=True)
class QueueParams:
    """What `hq alloc add` stores for a queue (durations in seconds).

    `worker_time_limit` None means "the time limit". `cpus`/`resources` keep the user's text
    (`"4"`, `"gpus=[0,1]"`): it is passed to `hq worker start` as given.
    """

    manager: str
    time_limit: float
    backlog: int = 1
    max_workers_per_alloc: int = 1
    max_worker_count: int | None = None
    name: str | None = None
    cpus: str | None = None
    resources: tuple[str, ...] = ()
    group: str | None = None
    coupling: str | None = None
    detect_resources: str | None = None
    no_hyper_threading: bool = False
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    overview_interval: float | None = None
    min_utilization: float = 0.0
    on_server_lost: str = "finish-running"
    worker_time_limit: float | None = None
    worker_start_cmd: str | None = None
    worker_stop_cmd: str | None = None
    worker_wrap_cmd: str | None = None
    additional_args: tuple[str, ...] = ()

    def __post_init__(self):
        if self.manager not in MANAGERS:
            raise ValueError(f"Invalid manager {self.manager!r}: expected slurm or pbs")
        check_duration(self.time_limit, "time limit")
        _count(self.backlog, "backlog")
        _count(self.max_workers_per_alloc, "max workers per allocation")
        _count(self.max_worker_count, "max worker count", optional=True)
        if self.name is not None:
            _opt_text(self.name, "queue name", MAX_NAME_LEN)
            if not self.name or "/" in self.name or any(c.isspace() for c in self.name):
                raise ValueError("Invalid queue name: it must be non-empty, without '/' "
                                 "or whitespace")
        if not isinstance(self.resources, tuple) or not isinstance(self.additional_args, tuple):
            raise ValueError("resources and additional args must be tuples")
        if len(self.resources) > 1024 or len(self.additional_args) > MAX_LIST_LEN:
            raise ValueError("Too many resources or manager arguments")
        for what in ("cpus", "group", "coupling", "detect_resources", "worker_start_cmd",
                     "worker_stop_cmd", "worker_wrap_cmd"):
            _opt_text(getattr(self, what), what.replace("_", " "))
        for a in (*self.resources, *self.additional_args):
            _opt_text(a, "argument")
        self.declared_resources()  # validates --cpus / --resource
        if type(self.no_hyper_threading) is not bool:
            raise ValueError("no_hyper_threading must be a boolean")
        check_duration(self.idle_timeout, "idle timeout")
        if self.overview_interval is not None:
            check_duration(self.overview_interval, "overview interval")
        mu = self.min_utilization
        if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not 0.0 <= mu <= 1.0:
            raise ValueError("Invalid min utilization: expected a number between 0 and 1")
        if self.on_server_lost not in ON_SERVER_LOST:
            raise ValueError(f"Invalid on-server-lost policy {self.on_server_lost!r}")
        if self.worker_time_limit is not None:
            check_duration(self.worker_time_limit, "worker time limit")
            if self.worker_time_limit > self.time_limit:
                raise ValueError(WORKER_TIME_LIMIT_ERROR)

    # ------------------------------------------------------------------------ derived values

    @property
    def effective_worker_time_limit(self) -> float:
        """The worker's `--time-limit`: `--worker-time-limit`, else the queue's time limit."""
        return self.worker_time_limit if self.worker_time_limit is not None else self.time_limit

    def declared_resources(self) -> dict[str, ResourceDef]:
        """Resources given on the command line (`--cpus`, `--resource`): name -> pool."""
        defs: dict[str, ResourceDef] = {}
        if self.cpus is not None:
            defs["cpus"] = parse_resource_def("cpus", self.cpus)
        for text in self.resources:
            d = parse_resource_arg(text)
            if d.name in defs:
                raise ValueError(f"Resource '{d.name}' is defined twice")
            defs[d.name] = d
        return defs

    @property
    def resources_complete(self) -> bool:
        """True when the declared resources are all a worker will have (detection is off)."""
        return self.detect_resources is not None and self.detect_resources.strip() == "none" \
            and self.cpus is not None

    def worker_args(self) -> tuple[str, ...]:
        """The queue's worker flags as argv tokens, in upstream's order (Args column too)."""
        out: list[str] = []
        if self.cpus is not None:
            out += ["--cpus", self.cpus]
        for r in self.resources:
            out += ["--resource", r]
        if self.coupling is not None:
            out += ["--coupling", self.coupling]
        if self.group is not None:
            out += ["--group", self.group]
        if self.no_hyper_threading:
            out.append("--no-hyper-threading")
        if self.detect_resources is not None:
            out += ["--detect-resources", self.detect_resources]
        if self.overview_interval is not None:
            out += ["--overview-interval", format_duration(self.overview_interval)]
        if self.min_utilization:
            out += ["--min-utilization", repr(float(self.min_utilization))]
        return tuple(out)

    def warnings(self) -> list[str]:
        """Warnings `hq alloc add` prints (the queue is still created)."""
        out = []
        if self.idle_timeout > IDLE_TIMEOUT_WARN:
            out.append(f"Idle timeout is set to {format_duration(self.idle_timeout)}: an idle "
                       "allocation keeps its nodes that long before its workers stop")
        if not self.declared_resources():
            out.append("No worker resources were given (--cpus/--resource): the queue runs in "
                       "probing mode and submits one allocation at a time until a worker of "
                       "the queue connects and its resources are known")
        return out

    # ------------------------------------------------------------------------------- wire

    def to_wire(self) -> dict:
        d = asdict(self)
        d["resources"] = list(self.resources)
        d["additional_args"] = list(self.additional_args)
        return d

    @classmethod
    def from_wire(cls, obj) -> "QueueParams":
        """Inverse of `to_wire`; exact key set, exact types. Raises ValueError."""
        names = {f.name for f in fields(cls)}
        if not isinstance(obj, dict) or set(obj) != names:
            raise ValueError("Invalid queue parameters: unexpected or missing fields")
        kw = dict(obj)
        for key in ("resources", "additional_args"):
            v = kw[key]
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ValueError(f"Invalid queue parameters: {key} must be a list of strings")
            kw[key] = tuple(v)
        for key in ("time_limit", "idle_timeout", "overview_interval", "worker_time_limit",
                    "min_utilization"):
            v = kw[key]
            if type(v) is int:
                if abs(v) > 2**53:  # (no such duration or fraction; float() would overflow)
                    raise ValueError(f"Invalid queue parameters: {key} is out of range")
                kw[key] = float(v)
        for key in ("manager", "on_server_lost"):
            if not isinstance(kw[key], str):
                raise ValueError(f"Invalid queue parameters: {key} must be a string")
        for key in ("name", "cpus", "group", "coupling", "detect_resources", "worker_start_cmd",
                    "worker_stop_cmd", "worker_wrap_cmd"):
            if kw[key] is not None and not isinstance(kw[key], str):
                raise ValueError(f"Invalid queue parameters: {key} must be a string or null")
        for key in ("time_limit", "idle_timeout", "min_utilization"):
            if type(kw[key]) is not float:
                raise ValueError(f"Invalid queue parameters: {key} must be a number")
        return cls(**kw)
