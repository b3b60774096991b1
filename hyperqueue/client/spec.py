"""Job specifications: plain values in, a validated `SubmitRequest` out (no click, no I/O
beyond reading the entry files a caller names).

One builder for every front end: `hq submit` / `hq run` options (`cli/submit.py`), job files
(`client/jobfile.py`) and the Python API's `Job` objects all describe their tasks as `TaskSpec`s,
group them into `Batch`es of a `JobSpec`, and call `JobSpec.request()`. The value parsers below
(`crash_limit`, `stream_dir`, `stdio`, `env_from_items`, `resource_request`, ...) turn the
textual forms into domain values.

Every problem is a `hyperqueue.errors.SpecError` naming its field (`"cwd"`, `"crash_limit"`,
...); a front end words it in its own terms (`'--cwd'`, `task[2].cwd`). Functions whose message
mentions the field take a `label` for that.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field as dc_field

from ..core.model import (CRASH_LIMIT_NEVER_RESTART, CRASH_LIMIT_UNLIMITED, DEFAULT_CRASH_LIMIT,
                          MAX_VARIANTS, ProgramDef, StdioDef, TaskTemplate)
from ..core.graph import find_cycle as graph_cycle
from ..core.ranges import IntRanges
from ..core.resources import (UNIT, ResourceRequest, ResourceRequestEntry,
                              parse_request_arg, parse_resource_request)
from ..errors import HqError, SpecError

#: Where stdout/stderr of a task go unless told otherwise (`hq submit`, job files).
DEFAULT_STDOUT = "%{CWD}/job-%{JOB_ID}/%{TASK_ID}.stdout"
DEFAULT_STDERR = "%{CWD}/job-%{JOB_ID}/%{TASK_ID}.stderr"
DEFAULT_CWD = "%{SUBMIT_DIR}"
#: The placeholders a stream directory may use (one file per worker, not per task).
STREAM_PLACEHOLDERS = ("JOB_ID", "SUBMIT_DIR", "SERVER_UID")
PIN_MODES = ("taskset", "omp")
PRIORITY_MIN, PRIORITY_MAX = -(2**31), 2**31 - 1
CRASH_LIMIT_MAX = 2**32 - 1


# ---------------------------------------------------------------------------------------------
# Value parsers


def crash_limit(value: str | int | None) -> int:
    """`None` (the default, 5), a positive number, `"never-restart"` or `"unlimited"`."""
    if value is None:
        return DEFAULT_CRASH_LIMIT
    if value == "never-restart":
        return CRASH_LIMIT_NEVER_RESTART
    if value == "unlimited":
        return CRASH_LIMIT_UNLIMITED
    try:
        n = int(value) if not isinstance(value, bool) else -1
    except ValueError:
        n = -1
    if n <= 0 or n > CRASH_LIMIT_MAX:
        raise SpecError("expected a positive number, 'never-restart' or 'unlimited'",
                        "crash_limit")
    return n


def check_priority(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (
            PRIORITY_MIN <= value <= PRIORITY_MAX):
        raise SpecError(f"{value} is not in the range {PRIORITY_MIN}<=x<={PRIORITY_MAX}",
                        "priority")
    return value


def stream_dir(value: str | None, submit_dir: str | None = None,
               strict: bool = True) -> str | None:
    """The stream directory template: relative paths are relative to the submit directory
    (default: the current one); only job-level placeholders (STREAM_PLACEHOLDERS) are allowed
    when `strict` (`hq submit` accepts any, as upstream: it only warns about unknown ones)."""
    if value is None:
        return None
    if not value:
        raise SpecError("expected a directory", "stream")
    from ..core.placeholders import placeholder_names

    for name in placeholder_names(value) if strict else ():
        if name not in STREAM_PLACEHOLDERS:
            raise SpecError(
                f"placeholder %{{{name}}} cannot be used in a stream directory (allowed: "
                + ", ".join(f"%{{{p}}}" for p in STREAM_PLACEHOLDERS) + ")", "stream")
    if value.startswith("%{") or os.path.isabs(value):
        return value
    return os.path.join(submit_dir or os.getcwd(), value)


def stdio(path: str | None, rm_if_finished: bool = False) -> StdioDef:
    """A stdout/stderr destination: a path template, or None for no file."""
    return StdioDef(path, rm_if_finished)


def stdio_from_text(value: str | None, default: str, streamed: bool = False) -> StdioDef:
    """The `--stdout`/`--stderr` text form: None (the default, or the stream when `streamed`),
    `none`, `PATH` or `PATH:rm-if-finished` (an empty PATH: the default one)."""
    if value is None:
        return StdioDef(None, streamed=True) if streamed else StdioDef(default)
    if value == "none":
        return StdioDef(None)
    if value.endswith(":rm-if-finished"):
        return StdioDef(value[: -len(":rm-if-finished")] or default, True)
    return StdioDef(value)


def env_from_items(items) -> dict[str, str]:
    """`KEY=VALUE` texts -> a dict (later keys win)."""
    env = {}
    for item in items or ():
        key, _, value = item.partition("=")
        if not key:
            raise SpecError(f"invalid environment variable '{item}'", "env")
        env[key] = value
    return env


def check_name(name: str) -> str:
    if "\n" in name or "\t" in name:
        raise SpecError("the name must not contain a newline or a tab", "name")
    if "\0" in name:
        raise SpecError("the name must not contain a NUL character", "name")
    return name


def check_cwd(cwd: str, label: str = "cwd") -> str:
    if "%{CWD}" in cwd:
        raise SpecError(f"%{{CWD}} cannot be used in {label}", "cwd")
    return cwd


def resource_entry(name: str, amount) -> ResourceRequestEntry:
    """One `name = "<amount> [policy]"` (or a number) of a request."""
    try:
        return parse_resource_request(name, str(amount))
    except ValueError as e:
        raise SpecError(str(e), "resources") from None


def resource_arg(text: str) -> ResourceRequestEntry:
    """`NAME=<amount> [policy]` (the `--resource` form)."""
    try:
        return parse_request_arg(text)
    except ValueError as e:
        raise SpecError(str(e), "resources") from None


def resource_request(entries, n_nodes: int = 0, min_time: float = 0.0,
                     weight: float = 1.0, default_cpus: bool = True) -> ResourceRequest:
    """One resource variant; a request without `cpus` (and not multi-node) gets `cpus = 1`
    unless `default_cpus` is False (a job file's explicit request: F43)."""
    from ..core.limits import MAX_COUNT

    entries = list(entries)
    if default_cpus and not n_nodes and not any(e.name == "cpus" for e in entries):
        entries.append(ResourceRequestEntry("cpus", UNIT, "compact"))
    if isinstance(n_nodes, int) and n_nodes > MAX_COUNT:
        raise SpecError(f"{n_nodes} is not in the range 0<=x<={MAX_COUNT}", "nodes")
    if (isinstance(weight, bool) or not isinstance(weight, (int, float))
            or not 0 < weight < 2**32):  # (NaN fails too)
        raise SpecError("Resource weight has to be positive number", "weight")
    try:
        return ResourceRequest(entries, n_nodes, min_time, int(round(weight * UNIT)))
    except ValueError as e:
        raise SpecError(str(e), "resources") from None


def _io_error(e: OSError) -> HqError:
    """An OS error as upstream's client prints a bare `std::io::Error`:
    `No such file or directory (os error 2)` (no path)."""
    from ..errors import CommandError

    if e.errno:
        return CommandError(f"{e.strerror} (os error {e.errno})")
    return CommandError(str(e))


def entries_from_lines(path: str) -> list[bytes]:
    """One entry per line of a file (`--each-line`). Errors as upstream's: the bare io error."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise _io_error(e) from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def entries_from_json(path: str) -> list[bytes]:
    """One entry per element of a JSON array (`--from-json`), each as compact JSON. Errors as
    upstream's (bare): the io error, serde_json's syntax error (`expected value at line 1
    column 1`), or `<path>: The top element of the provided JSON file has to be an array`."""
    from ..errors import CommandError
    from .serde_json import loads

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise _io_error(e) from None
    try:
        value = loads(data)
    except ValueError as e:
        raise CommandError(str(e)) from None
    if not isinstance(value, list):
        raise CommandError(f"{path}: The top element of the provided JSON file has to be an "
                           "array")
    return [json_entry(v) for v in value]


def json_entry(value) -> bytes:
    """Compact like serde_json: no spaces, non-ASCII kept as UTF-8 (no \\u escapes), floats
    as ryu writes them (`1e16`, `1.5e-7`, `0.00001`; Python's repr gives `1e+16`)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if "e" in text:
        import re

        text = re.sub(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?e[+-]\d+', _ryu_float, text)
    return text.encode()


def _ryu_float(m) -> str:
    """A float token of Python's repr in exponent form, laid out as ryu (serde_json) does;
    strings are kept."""
    token = m.group(0)
    if token[0] == '"':
        return token
    mantissa, exp = token.split("e")
    sign = ""
    if mantissa[0] == "-":
        sign, mantissa = "-", mantissa[1:]
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0") or "0"
    point = int(exp) + len(whole)  # the decimal point's place after the first digit
    k = point - len(digits)
    if 0 <= k and point <= 16:
        return f"{sign}{digits}{'0' * k}.0"
    if 0 < point <= 16:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -5 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if len(digits) == 1:
        return f"{sign}{digits}e{point - 1}"
    return f"{sign}{digits[0]}.{digits[1:]}e{point - 1}"


def array_ids(array: IntRanges | None, entries: list[bytes] | None, auto_ids: bool):
    """The ids (None: the server picks the next free ones) and entries of a task array.

    `array`: the ids asked for; with entries, only those below the entry count are kept (and
    their entries). `auto_ids`: the tasks go into an open job without explicit ids.
    """
    if entries is not None:
        if auto_ids:
            ids = None
        elif array is not None:
            ids = IntRanges.from_ids([i for i in array if i < len(entries)])
            entries = [entries[i] for i in ids]
        else:
            ids = IntRanges.from_ids(range(len(entries)))
        if ids is not None and len(ids) == 0 or not entries:
            raise SpecError("The submit would create no tasks")
        return ids, entries
    if array is not None:
        return array, None
    return (None if auto_ids else IntRanges.from_ids([0])), None


# ---------------------------------------------------------------------------------------------
# Tasks and jobs


@dataclass
class TaskSpec:
    """What a task (or each task of an array) runs and needs, as domain values."""

    command: list[str]
    env: dict[str, str] = dc_field(default_factory=dict)
    cwd: str = DEFAULT_CWD
    stdout: StdioDef | None = None  # None: DEFAULT_STDOUT (or the stream, when streamed)
    stderr: StdioDef | None = None
    stdin: bytes | None = None
    task_dir: bool = False
    stream: str | None = None  # a directory from `stream_dir`
    requests: list[ResourceRequest] | None = None  # resource variants; None: cpus = 1
    time_limit: float | None = None
    priority: int = 0
    crash_limit: int = DEFAULT_CRASH_LIMIT
    pin: str | None = None

    def validate(self) -> None:
        if not (isinstance(self.command, list) and self.command
                and all(isinstance(a, str) for a in self.command)):
            raise SpecError("expected a non-empty list of strings", "command")
        check_cwd(self.cwd)
        self._check_texts()
        check_priority(self.priority)
        if self.pin is not None and self.pin not in PIN_MODES:
            raise SpecError("expected \"none\", \"taskset\" or \"omp\"", "pin")
        requests = self.requests or []
        if len(requests) > MAX_VARIANTS:
            raise SpecError(f"at most {MAX_VARIANTS} resource variants are allowed", "request")
        if len(requests) > 1 and any(r.n_nodes for r in requests):
            raise SpecError("a multi-node task cannot have resource variants", "request")
        if self.time_limit is not None:
            from ..core.limits import check_duration

            try:
                # zero passes here as it always has from the CLI (the server refuses it)
                check_duration(self.time_limit, "duration", allow_zero=True)
            except ValueError as e:
                raise SpecError(str(e), "time_limit") from None

    def _check_texts(self) -> None:
        """No NUL character in what becomes an argument, an environment entry or a path."""
        from ..core.limits import check_text

        try:
            for arg in self.command:
                check_text(arg, "a program argument")
        except ValueError as e:
            raise SpecError(str(e), "command") from None
        if not isinstance(self.env, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()):
            raise SpecError("expected a dict of strings to strings", "env")
        try:
            for k, v in self.env.items():
                check_text(k + v, "an environment variable")
        except ValueError as e:
            raise SpecError(str(e), "env") from None
        for field, value in (("cwd", self.cwd), ("stream", self.stream),
                             ("stdout", self.stdout and self.stdout.path),
                             ("stderr", self.stderr and self.stderr.path)):
            if value is not None:
                try:
                    check_text(str(value), "the path")
                except ValueError as e:
                    raise SpecError(str(e), field) from None

    def unknown_placeholders(self) -> list[tuple[str, str]]:
        """(placeholder, text) pairs of the cwd and stdio paths that no task would expand."""
        from ..core.placeholders import unknown_placeholders

        out = []
        for text in (self.cwd, self._stdout().path or "", self._stderr().path or ""):
            out.extend((name, text) for name in unknown_placeholders(text))
        return out

    def _channel(self, given: StdioDef | None, default: str) -> StdioDef:
        if given is not None:
            return given
        return StdioDef(None, streamed=True) if self.stream else StdioDef(default)

    def _stdout(self) -> StdioDef:
        return self._channel(self.stdout, DEFAULT_STDOUT)

    def _stderr(self) -> StdioDef:
        return self._channel(self.stderr, DEFAULT_STDERR)

    def template(self) -> TaskTemplate:
        """The validated TaskTemplate (raises SpecError)."""
        self.validate()
        program = ProgramDef(self.command, self.env, self.cwd, self._stdout(), self._stderr(),
                             self.stdin, self.task_dir, self.stream)
        return TaskTemplate(program, self.requests or [ResourceRequest.default()],
                            self.time_limit, self.priority, self.crash_limit, self.pin)


@dataclass
class Batch:
    """Tasks sharing one TaskSpec: the ids (None: the server picks them, in an open job), one
    entry per task (`HQ_ENTRY`) or None, and the ids of tasks they depend on."""

    task: TaskSpec
    ids: IntRanges | None = None
    entries: list[bytes] | None = None
    deps: list[int] = dc_field(default_factory=list)


@dataclass
class JobSpec:
    """A submission: a new job (`job_id` None) or tasks added to an open job."""

    batches: list[Batch]
    name: str = "job"
    max_fails: int | None = None
    submit_dir: str = dc_field(default_factory=os.getcwd)
    job_id: int | None = None

    def validate(self) -> None:
        if not self.batches:
            raise SpecError("The submit would create no tasks")
        if not isinstance(self.name, str):
            raise SpecError("expected a single-line string", "name")
        check_name(self.name)
        from ..core.limits import MAX_COUNT, MAX_NAME_LEN

        if len(self.name) > MAX_NAME_LEN:
            raise SpecError(f"the name is longer than {MAX_NAME_LEN} characters", "name")
        if self.max_fails is not None and (isinstance(self.max_fails, bool) or not isinstance(
                self.max_fails, int) or self.max_fails < 0):
            raise SpecError("expected a non-negative integer", "max_fails")
        if self.max_fails is not None and self.max_fails > MAX_COUNT:
            raise SpecError(f"{self.max_fails} is not in the range 0<=x<={MAX_COUNT}",
                            "max_fails")
        # (Whether a name or max_fails may be given with `job_id` is the front end's rule: the
        # wire always carries a name, and an open job keeps its own.)

    def request(self):
        """The SubmitRequest to send (raises SpecError)."""
        from ..protocol import messages as m

        self.validate()
        batches = [[b.task.template(), "" if b.ids is None else b.ids.to_text(), b.entries,
                    sorted(set(b.deps))] for b in self.batches]
        return m.SubmitRequest(self.name, self.max_fails, self.submit_dir, self.job_id, batches)


class GraphError(SpecError):
    """A task graph problem. `kind`: "duplicate" (`ids`: the repeated ids), "self" / "unknown"
    (`index`: the position of the task, `task`, `dep`) or "cycle" (`cycle`: ids, first = last)."""

    def __init__(self, message: str, kind: str, **data):
        super().__init__(message, "deps")
        self.kind = kind
        self.ids = data.get("ids")
        self.index = data.get("index")
        self.task = data.get("task")
        self.dep = data.get("dep")
        self.cycle = data.get("cycle")


def check_graph(ids: list[int], deps: list[list[int]]) -> None:
    """Checks a task graph given as task ids and, per task, the ids it depends on: unique ids,
    every dependency defined and not the task itself (in task order), no cycle."""
    if len(set(ids)) != len(ids):
        seen, dup = set(), set()
        for x in ids:
            (dup if x in seen else seen).add(x)
        raise GraphError(f"duplicate task ids {sorted(dup)}", "duplicate", ids=sorted(dup))
    defined = set(ids)
    for i, (tid, ds) in enumerate(zip(ids, deps)):
        for d in ds:
            if d == tid:
                raise GraphError(f"task {tid} depends on itself", "self", index=i, task=tid,
                                 dep=d)
            if d not in defined:
                raise GraphError(f"task {d} is not defined", "unknown", index=i, task=tid,
                                 dep=d)
    cycle = find_cycle(ids, deps)
    if cycle:
        raise GraphError("dependency cycle: " + " -> ".join(map(str, cycle)), "cycle",
                         cycle=cycle)


def find_cycle(ids: list[int], deps_lists: list[list[int]]) -> list[int] | None:
    """A dependency cycle (`[a, b, a]`) or None (`core.graph.find_cycle`)."""
    return graph_cycle(dict(zip(ids, deps_lists)))
