"""Job definition files (`hq job submit-file job.toml`): TOML -> a validated submit request.

The file's tables become `client.spec` TaskSpecs/JobSpec (the builder the CLI and the Python API
use too); this module checks the TOML types and words every error in file terms: each names the
offending key (`task[2].deps`, `array.entries`, ...) and nothing is sent.
"""

from __future__ import annotations

import os

from ..core.ranges import MAX_ID
from ..errors import HqError, SpecError
from . import spec

TOP_KEYS = {"name", "max_fails", "stream", "task", "array", "data_layer"}
TASK_KEYS = {"id", "command", "env", "stdout", "stderr", "cwd", "pin", "task_dir", "time_limit",
             "priority", "crash_limit", "stdin", "deps", "request"}
ARRAY_KEYS = (TASK_KEYS - {"id", "deps"}) | {"ids", "entries"}
REQUEST_KEYS = {"resources", "time_request", "n_nodes", "weight"}


class JobFileError(HqError):
    """A file that does not describe a job: upstream's deserialization error (F42), printed
    `Deserialization error: <message>` (the text carries it: no `Error: ` prefix)."""

    prefix = ""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__("Deserialization error: " + message, hint)


class _ReadError(HqError):
    """The file cannot be read: the bare message (`Cannot read <path>: <io error>`)."""

    prefix = ""


def _graph_error(task_id: int):
    """Upstream's one error for a cycle, a self-dependency or an unknown dependency (F42)."""
    raise HqError(f"Task {task_id} is part of dependency cycle or has an invalid dependencies")


def _fail(where: str, message: str):
    raise JobFileError(f"Invalid job file: {where}: {message}")


def _check_keys(obj, allowed, where):
    if not isinstance(obj, dict):
        _fail(where, "expected a table")
    for key in obj:
        if key not in allowed:
            # serde's wording (deny_unknown_fields), with where it is
            _fail(f"{where}.{key}" if where else key,
                  f"unknown field `{key}`, expected one of "
                  f"{', '.join(f'`{k}`' for k in sorted(allowed))}")


def _duration(value, where, *, allow_zero: bool = True) -> float:
    """A duration key: a string (`"1h 30m"`, `"01:30:00"`) or a number of seconds; finite,
    not negative (not zero unless `allow_zero`) and at most 10 years (core.limits)."""
    from ..common.durations import parse_duration
    from ..core.limits import check_duration

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError as e:
            _fail(where, str(e))
    else:
        _fail(where, "expected a duration such as \"10s\" or \"1h 30m\"")
    try:
        return check_duration(seconds, "duration", allow_zero=allow_zero)
    except ValueError as e:
        _fail(where, str(e))


def _stdio(value, where):
    """A `stdout`/`stderr` key (given: not None): a path, "none" or {path, on_close}."""
    default = spec.DEFAULT_STDOUT if where.endswith("stdout") else spec.DEFAULT_STDERR
    if value == "none":
        return spec.stdio(None)
    if isinstance(value, str):
        return spec.stdio(value)
    if isinstance(value, dict):
        _check_keys(value, {"path", "on_close"}, where)
        on_close = value.get("on_close", "none")
        if on_close not in ("none", "rm-if-finished"):
            _fail(f"{where}.on_close", "expected \"none\" or \"rm-if-finished\"")
        path = value.get("path", default)
        if not isinstance(path, str):
            _fail(f"{where}.path", "expected a string")
        return spec.stdio(path, on_close == "rm-if-finished")
    _fail(where, "expected a path, \"none\" or {path, on_close}")


def _request(value, where):
    """The resource variants of a task: `[[task.request]]` tables, earlier ones preferred."""
    from ..core.model import MAX_VARIANTS

    if value is None:
        return None
    if not isinstance(value, list) or not value:
        _fail(where, "expected a list of [[request]] tables")
    if len(value) > MAX_VARIANTS:
        _fail(where, f"at most {MAX_VARIANTS} resource variants are allowed")
    variants = [_one_request(req, f"{where}[{i}]") for i, req in enumerate(value)]
    if len(variants) > 1 and any(v.n_nodes for v in variants):
        _fail(where, "a multi-node task cannot have resource variants")
    return variants


def _one_request(req, w):
    _check_keys(req, REQUEST_KEYS, w)
    entries = []
    resources = req.get("resources", {})
    if not isinstance(resources, dict):
        _fail(f"{w}.resources", "expected a table of name = amount")
    for name, amount in resources.items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float, str)):
            _fail(f"{w}.resources.{name}", "expected a number or \"<amount> [policy]\"")
        try:
            entries.append(spec.resource_entry(name, amount))
        except SpecError as e:
            _fail(f"{w}.resources.{name}", str(e))
    n_nodes = req.get("n_nodes", 0)
    if isinstance(n_nodes, bool) or not isinstance(n_nodes, int) or n_nodes < 0:
        _fail(f"{w}.n_nodes", "expected a non-negative integer")
    if n_nodes and entries:
        _fail(f"{w}.resources", "a multi-node request takes whole workers; resources cannot "
                                "be requested with n_nodes")
    weight = req.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
        _fail(f"{w}.weight", "expected a positive number")
    min_time = _duration(req["time_request"], f"{w}.time_request") if "time_request" in req \
        else 0.0
    try:
        # an explicit request without `cpus` requests no CPUs at all (upstream, F43)
        return spec.resource_request(entries, n_nodes, min_time, weight, default_cpus=False)
    except SpecError as e:
        _fail(w, str(e))


def _task(t: dict, where: str, submit_dir: str, stream: str | None = None) -> spec.TaskSpec:
    """The TaskSpec of a `[[task]]` or `[array]` table."""
    command = t.get("command")
    if not (isinstance(command, list) and command and all(isinstance(a, str) for a in command)):
        _fail(f"{where}.command", "expected a non-empty list of strings")
    env = t.get("env", {})
    if not isinstance(env, dict):
        _fail(f"{where}.env", "expected a table")
    for k, v in env.items():
        if not isinstance(v, str):  # (upstream's env is a map of strings: `A = 5` is refused)
            _fail(f"{where}.env.{k}", "expected a string")
    cwd = t.get("cwd", submit_dir)
    if not isinstance(cwd, str):
        _fail(f"{where}.cwd", "expected a string")
    try:
        spec.check_cwd(cwd)
    except SpecError as e:
        _fail(f"{where}.cwd", str(e))
    pin = t.get("pin", "none")
    if pin not in ("none", *spec.PIN_MODES):
        _fail(f"{where}.pin", "expected \"none\", \"taskset\" or \"omp\"")
    task_dir = t.get("task_dir", False)
    if not isinstance(task_dir, bool):
        _fail(f"{where}.task_dir", "expected true or false")
    priority = t.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or not (
            spec.PRIORITY_MIN <= priority <= spec.PRIORITY_MAX):
        _fail(f"{where}.priority", "expected an integer")
    stdin = t.get("stdin")
    if stdin is not None and not isinstance(stdin, str):
        _fail(f"{where}.stdin", "expected a string")
    crash = t.get("crash_limit")
    try:
        crash_limit = spec.crash_limit(None if crash is None else str(crash))
    except SpecError:
        _fail(f"{where}.crash_limit", "expected a positive number, \"never-restart\" or "
                                      "\"unlimited\"")
    time_limit = (_duration(t["time_limit"], f"{where}.time_limit", allow_zero=False)
                  if "time_limit" in t else None)
    stdout, stderr = (None if t.get(key) is None else _stdio(t[key], f"{where}.{key}")
                      for key in ("stdout", "stderr"))
    task = spec.TaskSpec(command, env, cwd, stdout, stderr,
                         stdin.encode() if stdin is not None else None, task_dir, stream,
                         _request(t.get("request"), f"{where}.request"), time_limit,
                         priority, crash_limit, None if pin == "none" else pin)
    try:
        task.validate()
    except SpecError as e:  # (everything above is checked in file terms already)
        _fail(f"{where}.{e.field}", str(e))
    return task


def _toml_error(path: str, message: str) -> str:
    """A TOML syntax error in the form of upstream's `toml` crate: `TOML parse error at line
    L, column C`, the line with a caret under the column, then the reason (tomllib's words)."""
    import re

    m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if m is None:
        return f"TOML parse error: {message}"
    reason = message[:m.start()]
    reason = reason[:1].lower() + reason[1:]
    line_no, column = int(m.group(1)), int(m.group(2))
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        text = lines[line_no - 1] if 0 < line_no <= len(lines) else ""
    except OSError:
        text = ""
    gutter = " " * len(str(line_no))
    return (f"TOML parse error at line {line_no}, column {column}\n{gutter} |\n"
            f"{line_no} | {text}\n{gutter} | {' ' * (column - 1)}^\n{reason}")


def load_job_file(path: str, job_id: int | None = None):
    """Parses and validates a job file; returns a SubmitRequest. Raises JobFileError."""
    import tomllib

    from ..core.ranges import IntRanges

    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise _ReadError(f"Cannot read {path}: {e.strerror} (os error {e.errno})") from None
    except tomllib.TOMLDecodeError as e:
        raise JobFileError(_toml_error(path, str(e))) from None
    _check_keys(doc, TOP_KEYS, "")
    submit_dir = os.getcwd()
    name = doc.get("name", "job")
    if not isinstance(name, str) or "\n" in name or "\t" in name:
        _fail("name", "expected a single-line string")
    max_fails = doc.get("max_fails")
    if max_fails is not None and (isinstance(max_fails, bool) or not isinstance(max_fails, int)
                                  or max_fails < 0):
        _fail("max_fails", "expected a non-negative integer")
    stream = None
    if "stream" in doc:
        if not isinstance(doc["stream"], str) or not doc["stream"]:
            _fail("stream", "expected a directory path")
        try:
            stream = spec.stream_dir(doc["stream"], submit_dir)
        except SpecError as e:
            _fail("stream", str(e))
    if job_id is not None and ("name" in doc or "max_fails" in doc):
        _fail("name", "name and max_fails cannot be set when submitting into an open job")
    has_tasks, has_array = "task" in doc, "array" in doc
    if has_tasks and has_array:
        raise JobFileError("Definition of array job and individual task cannot be mixed")
    if not has_tasks and not has_array:
        raise JobFileError("No tasks defined")
    batches = []
    if has_array:
        arr = doc["array"]
        _check_keys(arr, ARRAY_KEYS, "array")
        task = _task(arr, "array", submit_dir, stream)
        entries = arr.get("entries")
        if entries is not None:
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                _fail("array.entries", "expected a list of strings")
        ids = None
        if "ids" in arr:
            if not isinstance(arr["ids"], str):
                _fail("array.ids", "expected a range string such as \"1-10,20\"")
            try:
                ids = IntRanges.parse(arr["ids"])
            except ValueError as e:
                _fail("array.ids", str(e))
        if ids is None and entries is None:
            raise JobFileError("One of attributes of array must be defined: 'ids', 'entries'")
        if ids is not None and entries is not None and len(ids) != len(entries):
            raise JobFileError("Items 'ids' and 'entries' does not match")
        if ids is None:
            ids = IntRanges.span(0, len(entries))
        batches.append(spec.Batch(task, ids, [e.encode() for e in entries]
                                  if entries is not None else None))
    else:
        tasks = doc["task"]
        if isinstance(tasks, list) and not tasks:
            raise JobFileError("No tasks defined")
        if not isinstance(tasks, list):
            _fail("task", "expected a list of [[task]] tables")
        explicit = []
        for i, t in enumerate(tasks):
            _check_keys(t, TASK_KEYS, f"task[{i}]")
            if "id" in t:
                if isinstance(t["id"], bool) or not isinstance(t["id"], int) or t["id"] < 0:
                    _fail(f"task[{i}].id", "expected a non-negative integer")
                if t["id"] > MAX_ID:
                    _fail(f"task[{i}].id", f"expected an integer between 0 and {MAX_ID}")
                explicit.append(t["id"])
        seen: set[int] = set()
        for x in explicit:
            if x in seen:
                raise HqError(f"Task {x} is defined multiple times")
            seen.add(x)
        next_id = max(explicit, default=0) + 1
        ids = []
        for t in tasks:
            if "id" in t:
                ids.append(t["id"])
            else:
                ids.append(next_id)
                next_id += 1
        if next_id > MAX_ID + 1:  # an id given after an explicit MAX_ID
            raise JobFileError(f"Invalid job file: task ids must be between 0 and {MAX_ID}")
        defined = set(ids)
        for i, (t, tid) in enumerate(zip(tasks, ids)):
            deps = t.get("deps", [])
            if not isinstance(deps, list) or not all(
                    isinstance(d, int) and not isinstance(d, bool) for d in deps):
                _fail(f"task[{i}].deps", "expected a list of task ids")
            for d in deps:
                if d == tid or d not in defined:
                    _graph_error(tid)
            batches.append(spec.Batch(_task(t, f"task[{i}]", submit_dir, stream),
                                      IntRanges.from_ids([tid]), None, sorted(set(deps))))
        cycle = spec.find_cycle(ids, [b.deps for b in batches])
        if cycle:
            _graph_error(cycle[0])
    job = spec.JobSpec(batches, name, max_fails, submit_dir, job_id)
    try:
        return job.request()
    except SpecError as e:  # (checked above in file terms; kept as a last guard)
        _fail(e.field or "task", str(e))

