"""`hq submit` (also `hq job submit`): build a submit request from flags and send it."""

from __future__ import annotations

import json
import os
import sys

from ._click import click
from .common import DURATION, RANGES, connect
from .main import output


STREAM_PLACEHOLDERS = ("JOB_ID", "SUBMIT_DIR", "SERVER_UID")


def stream_dir(value: str | None, hint: str = "'--stream'") -> str | None:
    """The stream directory template: relative paths are relative to the submit directory;
    only job-level placeholders make sense (one file per worker, not per task)."""
    if value is None:
        return None
    if not value:
        raise click.BadParameter("expected a directory", param_hint=hint)
    from ..core.placeholders import placeholder_names

    for name in placeholder_names(value):
        if name not in STREAM_PLACEHOLDERS:
            raise click.BadParameter(
                f"placeholder %{{{name}}} cannot be used in a stream directory (allowed: "
                + ", ".join(f"%{{{p}}}" for p in STREAM_PLACEHOLDERS) + ")", param_hint=hint)
    if value.startswith("%{") or os.path.isabs(value):
        return value
    return os.path.join(os.getcwd(), value)


def _stdio(value: str | None, default: str, stream: str | None = None):
    from ..core.model import StdioDef

    if value is None:
        return StdioDef(None, streamed=True) if stream else StdioDef(default)
    if value == "none":
        return StdioDef(None)
    if value.endswith(":rm-if-finished"):
        path = value[: -len(":rm-if-finished")] or default
        return StdioDef(path, True)
    return StdioDef(value)


def _check_priority(_ctx, _param, value):
    if value is not None and not -(2**31) <= value < 2**31:
        raise click.BadParameter(f"{value} is not in the range -2147483648<=x<=2147483647")
    return value


def _crash_limit(value: str | None) -> int:
    from ..core.model import (CRASH_LIMIT_NEVER_RESTART, CRASH_LIMIT_UNLIMITED,
                              DEFAULT_CRASH_LIMIT)

    if value is None:
        return DEFAULT_CRASH_LIMIT
    if value == "never-restart":
        return CRASH_LIMIT_NEVER_RESTART
    if value == "unlimited":
        return CRASH_LIMIT_UNLIMITED
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n <= 0 or n > 2**32 - 1:
        raise click.BadParameter("expected a positive number, 'never-restart' or 'unlimited'",
                                 param_hint="'--crash-limit'")
    return n


def submit_options(f):
    """The options shared by `hq submit` and `hq run`."""
    options = [
        click.option("--name", help="Job name (default: the program's file name)"),
        click.option("--cwd", help="Working directory of tasks (default: the submit dir)"),
        click.option("--stdout", help="Stdout path, 'none', or PATH:rm-if-finished"),
        click.option("--stderr", help="Stderr path, 'none', or PATH:rm-if-finished"),
        click.option("--stream", "stream", metavar="DIR",
                     help="Stream stdout/stderr (those not set explicitly) into one file per "
                          "worker in DIR; read them with `hq output-log DIR`"),
        click.option("--env", "env", multiple=True, help="KEY=VALUE for the task environment"),
        click.option("--array", type=RANGES, help="Task ids of a task array, e.g. 1-10,20"),
        click.option("--each-line", type=click.Path(dir_okay=False),
                     help="One task per line of a file (the line is in HQ_ENTRY)"),
        click.option("--from-json", type=click.Path(dir_okay=False),
                     help="One task per element of a JSON array (in HQ_ENTRY)"),
        click.option("--cpus", help="CPUs per task, e.g. '4' or '2 compact!'"),
        click.option("--resource", "resource", multiple=True, help="NAME=AMOUNT [POLICY]"),
        click.option("--weight", type=click.FloatRange(0, min_open=True), default=1.0,
                     help="Weight of the resource request (higher is scheduled first among "
                          "equal priorities)"),
        click.option("--nodes", type=click.IntRange(0), default=0,
                     help="Run each task on this many whole workers of one group"),
        click.option("--time-request", type=DURATION,
                     help="Minimal remaining worker lifetime to start a task"),
        click.option("--priority", type=int, default=0, help="Higher runs first",
                     callback=_check_priority),
        click.option("--time-limit", type=DURATION, help="Per-task time limit"),
        click.option("--max-fails", type=click.IntRange(0),
                     help="Cancel the rest of the job when more tasks fail"),
        click.option("--crash-limit", help="N, never-restart or unlimited (default 5)"),
        click.option("--pin", type=click.Choice(["taskset", "omp"]), help="CPU pinning"),
        click.option("--task-dir", is_flag=True, help="Give each task a temporary directory"),
        click.option("--stdin", "read_stdin", is_flag=True,
                     help="Read stdin and give it to every task"),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def build_request(opts: dict, command: tuple[str, ...], job_id: int | None = None,
                  stdin_data: bytes | None = None):
    """A SubmitRequest from the parsed options (raises click errors for bad input).

    `stdin_data`: what `--stdin` already read (for `--directives stdin`); read here otherwise.
    """
    from ..core.model import ProgramDef, TaskTemplate
    from ..core.placeholders import unknown_placeholders
    from ..core.ranges import IntRanges
    from ..core.resources import (ResourceRequest, ResourceRequestEntry, UNIT,
                                  parse_request_arg, parse_resource_request)
    from ..protocol import messages as m

    if not command:
        raise click.UsageError("Missing the command to run (put it after `--`)")
    name = opts.get("name") or os.path.basename(command[0])
    if "\n" in name or "\t" in name:
        raise click.BadParameter("the name must not contain a newline or a tab",
                                 param_hint="'--name'")
    env = {}
    for item in opts.get("env") or ():
        key, _, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"invalid environment variable '{item}'",
                                     param_hint="'--env'")
        env[key] = value
    cwd = opts.get("cwd") or "%{SUBMIT_DIR}"
    if "%{CWD}" in cwd:
        raise click.BadParameter("%{CWD} cannot be used in --cwd", param_hint="'--cwd'")
    stream = stream_dir(opts.get("stream"))
    stdout = _stdio(opts.get("stdout"), "%{CWD}/job-%{JOB_ID}/%{TASK_ID}.stdout", stream)
    stderr = _stdio(opts.get("stderr"), "%{CWD}/job-%{JOB_ID}/%{TASK_ID}.stderr", stream)
    for text in (cwd, stdout.path or "", stderr.path or ""):
        for unknown in unknown_placeholders(text):
            sys.stderr.write(f"Warning: unknown placeholder %{{{unknown}}} in '{text}'\n")
    entries_ = []
    if opts.get("cpus") is not None:
        try:
            entries_.append(parse_resource_request("cpus", opts["cpus"]))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="'--cpus'")
    for r in opts.get("resource") or ():
        try:
            e = parse_request_arg(r)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="'--resource'")
        if e.name == "cpus" and opts.get("cpus") is not None:
            raise click.BadParameter("use either --cpus or --resource cpus=...",
                                     param_hint="'--resource'")
        entries_.append(e)
    nodes = opts.get("nodes") or 0
    if nodes:
        if opts.get("cpus") is not None or entries_:
            raise click.UsageError("--nodes cannot be combined with --cpus or --resource")
        if opts.get("pin"):
            raise click.UsageError("--nodes cannot be combined with --pin")
    elif not any(e.name == "cpus" for e in entries_):
        entries_.append(ResourceRequestEntry("cpus", UNIT, "compact"))
    try:
        request = ResourceRequest(entries_, nodes, opts.get("time_request") or 0.0,
                                  int(round((opts.get("weight") or 1.0) * UNIT)))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--resource'")
    stdin = None
    if opts.get("read_stdin"):
        stdin = stdin_data if stdin_data is not None else sys.stdin.buffer.read()
    program = ProgramDef(list(command), env, cwd, stdout, stderr, stdin,
                         bool(opts.get("task_dir")), stream)
    template = TaskTemplate(program, request, opts.get("time_limit"), opts.get("priority") or 0,
                            _crash_limit(opts.get("crash_limit")), opts.get("pin"))
    array = opts.get("array")
    entries = None
    if opts.get("each_line") and opts.get("from_json"):
        raise click.UsageError("--each-line and --from-json cannot be used together")
    if opts.get("each_line"):
        entries = _read_lines(opts["each_line"])
    elif opts.get("from_json"):
        entries = _read_json(opts["from_json"])
    auto_ids = job_id is not None and array is None
    if entries is not None:
        if auto_ids:
            ids = None
        elif array is not None:
            picked = [i for i in array if i < len(entries)]
            ids = IntRanges.from_ids(picked)
            entries = [entries[i] for i in ids]
        else:
            ids = IntRanges.from_ids(range(len(entries)))
        if ids is not None and len(ids) == 0 or not entries:
            raise click.UsageError("The submit would create no tasks")
    elif array is not None:
        ids = array
    elif auto_ids:
        ids = None
    else:
        ids = IntRanges.from_ids([0])
    ids_text = "" if ids is None else ids.to_text()  # "" = the server picks the next ids
    return m.SubmitRequest(name, opts.get("max_fails"), os.getcwd(), job_id,
                           [[template, ids_text, entries, []]])


def _read_lines(path: str) -> list[bytes]:
    from ..errors import HqError

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise HqError(f"Cannot read {path}: {e.strerror}") from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _read_json(path: str) -> list[bytes]:
    from ..errors import HqError

    try:
        with open(path, "rb") as f:
            value = json.load(f)
    except OSError as e:
        raise HqError(f"Cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise HqError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(value, list):
        raise HqError(f"{path} must contain a JSON array at the top level")
    # compact like serde_json: no spaces, non-ASCII kept as UTF-8 (no \u escapes)
    return [json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode() for v in value]


def print_job_id(job_id: int, cli_text: str) -> None:
    """`{"id": N}` in json mode, `N` in quiet mode, `cli_text` otherwise."""
    out = output()
    if out.is_json:
        out.json({"id": job_id})
    elif out.is_quiet:
        out.line(str(job_id))
    else:
        out.line(cli_text)


def print_submitted(job_id: int) -> None:
    print_job_id(job_id, f"Job submitted successfully, job ID: {job_id}")


DIRECTIVE_SCAN_LIMIT = 32 * 1024
NOT_IN_DIRECTIVES = {"job_id", "wait", "progress", "directives"}


def read_directives(path: str) -> tuple[list[str], str | None]:
    """`#HQ` arguments at the top of a script, and its shebang interpreter (if any)."""
    from ..errors import HqError

    try:
        with open(path, "rb") as f:
            head = f.read(DIRECTIVE_SCAN_LIMIT)
    except OSError as e:
        raise HqError(f"Cannot read directives from {path}: {e.strerror}") from None
    return parse_directives(head, path)


def parse_directives(head: bytes, path: str) -> tuple[list[str], str | None]:
    """`#HQ` arguments at the top of a script's text, and its shebang interpreter (if any).

    Only comments and blank lines may precede the directives; scanning stops at the first
    other line (and after 32 KiB).
    """
    import shlex

    from ..errors import HqError

    head = head[:DIRECTIVE_SCAN_LIMIT]
    args: list[str] = []
    shebang = None
    for i, raw in enumerate(head.decode("utf-8", "replace").splitlines()):
        line = raw.strip()
        if i == 0 and line.startswith("#!"):
            shebang = line[2:].strip() or None
            continue
        if line.startswith("#HQ"):
            try:
                args.extend(shlex.split(line[3:]))
            except ValueError as e:
                raise HqError(f"Invalid #HQ directive in {path}: {raw.strip()!r}: {e}") from None
        elif line and not line.startswith("#"):
            break
    return args, shebang


def apply_directives(ctx, opts: dict, command: tuple, mode: str,
                     stdin_data: bytes | None = None) -> tuple[dict, tuple]:
    """Merges `#HQ` directives of the submitted script (or, with `--directives stdin`, of the
    script given on stdin) under the command-line flags."""
    from ..errors import HqError

    if mode == "off" or not command:
        return opts, command
    source = "stdin" if mode == "stdin" else command[0]
    if mode == "stdin":
        if stdin_data is None:
            raise HqError("You have to use `--stdin` when you specify `--directives=stdin`")
        # the command is given explicitly (it reads the script): no shebang prefix
        args, _ = parse_directives(stdin_data, "stdin")
    elif mode == "auto" and not command[0].endswith(".sh"):
        return opts, command
    elif not os.path.isfile(command[0]):
        if mode == "file":
            raise HqError(f"Cannot read directives: {command[0]} is not a file")
        return opts, command
    else:
        args, shebang = read_directives(command[0])
        if shebang:
            command = (*shebang.split(), *command)
    if not args:
        return opts, command
    try:
        sub = submit.make_context("submit", [*args, "--", "true"], parent=ctx.parent)
    except click.ClickException as e:
        raise HqError(f"Invalid #HQ directive in {source}: {e.format_message()}") from None
    merged = dict(opts)
    for name, value in sub.params.items():
        if name in ("command",) or name not in opts:
            continue
        if sub.get_parameter_source(name) != click.core.ParameterSource.COMMANDLINE:
            continue
        if name in NOT_IN_DIRECTIVES:
            raise HqError(f"Option for '{name}' cannot be used in a #HQ directive")
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            if isinstance(value, tuple):
                merged[name] = (*value, *opts[name])
            continue
        merged[name] = value
    return merged, command


@click.command(context_settings={"allow_interspersed_args": False})
@submit_options
@click.option("--directives", type=click.Choice(["auto", "file", "stdin", "off"]),
              default="auto", help="Read #HQ directives from the submitted script")
@click.option("--job", "job_id", type=int, help="Add the tasks to this open job")
@click.option("--wait", is_flag=True, help="Wait until the job completes")
@click.option("--progress", is_flag=True, help="Show a progress bar until the job completes")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def submit(job_id, wait, progress, command, directives, **opts):
    """Submit a job: `hq submit [OPTIONS] -- COMMAND [ARGS]...`"""
    stdin_data = sys.stdin.buffer.read() if opts.get("read_stdin") else None
    opts, command = apply_directives(click.get_current_context(), opts, command, directives,
                                     stdin_data)
    if wait and progress:
        raise click.UsageError("--wait and --progress cannot be used together")
    if job_id is not None and (opts.get("name") or opts.get("max_fails") is not None):
        raise click.UsageError("--name and --max-fails cannot be used with --job")
    request = build_request(opts, command, job_id, stdin_data)
    with connect() as client:
        resp = client.request(request)
        print_submitted(resp.job_id)
        if wait or progress:
            from .job import wait_for_jobs

            wait_for_jobs(client, [resp.job_id], progress=progress)
