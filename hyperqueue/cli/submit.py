"""`hq submit` (also `hq job submit`): build a submit request from flags and send it."""

from __future__ import annotations

import os
import sys

from ..client import spec
from ..errors import SpecError
from .common import COUNT, DURATION, ID, RANGES, click_error
from .context import connect, printer
from .flavour import click


def _check_priority(_ctx, _param, value):
    if value is not None:
        try:
            spec.check_priority(value)
        except SpecError as e:  # an i32 upstream: Rust's ParseIntError text
            raise click.BadParameter(f"number too {'large' if value > 0 else 'small'} to fit "
                                     "in target type" if abs(value) >= 2**31 else e.message)
    return value


def _check_name(_ctx, _param, value):
    if value is not None and ("\n" in value or "\t" in value):
        raise click.BadParameter("name cannot have a newline or a tab")
    return value


def _check_env(_ctx, _param, values):
    for v in values or ():
        if not v:
            raise click.BadParameter("Environment variable cannot be empty")
    return values


def _check_cpus(_ctx, _param, value):
    if value is not None:
        _cpus_entry(value)
    return value


def _check_resources(_ctx, _param, values):
    for v in values or ():
        _resource_entry(v)
    return values


def _cpus_entry(text: str):
    try:
        return spec.resource_entry("cpus", text)
    except SpecError as e:
        raise click.BadParameter("Zero resources cannot be requested" if _is_zero_amount(text)
                                 else e.message) from None


def _resource_entry(text: str):
    try:
        return spec.resource_arg(text)
    except SpecError as e:
        raise click.BadParameter(
            "Zero resources cannot be requested" if _is_zero_amount(text.partition("=")[2])
            else e.message) from None


def _parse_weight(_ctx, _param, value):
    """f32 > 0, as upstream (stored as round(w * 10000))."""
    if value is None:
        return None
    try:
        w = float(value)
    except ValueError:
        w = float("nan")
    if not w > 0 or w == float("inf"):
        raise click.BadParameter("Resource weight has to be positive number")
    return w


def _parse_crash_limit(_ctx, _param, value):
    """`never-restart`, `unlimited` or a u16 other than 0 (upstream's texts)."""
    if value is None or value in ("never-restart", "unlimited"):
        return value
    kind = None
    if value == "":
        kind = "Empty"
    elif not (value.isascii() and value.lstrip("+").isdigit()) or value.startswith("+-"):
        kind = "InvalidDigit"
    elif int(value) > 65535:
        kind = "PosOverflow"
    if kind is not None:
        raise click.BadParameter(f"Invalid crash limit: ParseIntError {{ kind: {kind} }}")
    if int(value) == 0:
        raise click.BadParameter(
            "Crash limit cannot be 0. Use `never-restart` or `unlimited` instead.")
    return value


def submit_options(f):
    """The options shared by `hq submit` and `hq run`."""
    options = [
        click.option("--name", callback=_check_name, help="Job name (default: the program's file name)"),
        click.option("--cwd", help="Working directory of tasks (default: the submit dir)"),
        click.option("--stdout", help="Stdout path, 'none', or PATH:rm-if-finished"),
        click.option("--stderr", help="Stderr path, 'none', or PATH:rm-if-finished"),
        click.option("--stream", "stream", metavar="DIR",
                     help="Stream stdout/stderr (those not set explicitly) into one file per "
                          "worker in DIR; read them with `hq output-log DIR`"),
        click.option("--env", "env", multiple=True, callback=_check_env, help="KEY=VALUE for the task environment"),
        click.option("--array", type=RANGES, help="Task ids of a task array, e.g. 1-10,20"),
        click.option("--each-line", metavar="FILE",
                     help="One task per line of a file (the line is in HQ_ENTRY)"),
        click.option("--from-json", metavar="FILE",
                     help="One task per element of a JSON array (in HQ_ENTRY)"),
        click.option("--cpus", callback=_check_cpus, help="CPUs per task, e.g. '4' or '2 compact!'"),
        click.option("--resource", "resource", multiple=True, callback=_check_resources, help="NAME=AMOUNT [POLICY]"),
        click.option("--weight", callback=_parse_weight,
                     help="Weight of the resource request (higher is scheduled first among "
                          "equal priorities)"),
        click.option("--nodes", type=COUNT, default=0,
                     help="Run each task on this many whole workers of one group"),
        click.option("--time-request", type=DURATION,
                     help="Minimal remaining worker lifetime to start a task"),
        click.option("--priority", type=int, default=0, help="Higher runs first",
                     callback=_check_priority),
        click.option("--time-limit", type=DURATION, help="Per-task time limit"),
        click.option("--max-fails", type=COUNT,
                     help="Cancel the rest of the job when more tasks fail"),
        click.option("--crash-limit", callback=_parse_crash_limit, help="N, never-restart or unlimited (default 5)"),
        click.option("--pin", type=click.Choice(["taskset", "omp"]), help="CPU pinning"),
        click.option("--task-dir", is_flag=True, help="Give each task a temporary directory"),
        click.option("--stdin", "read_stdin", is_flag=True,
                     help="Read stdin and give it to every task"),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


KNOWN_PLACEHOLDERS = ("SERVER_UID", "TASK_ID", "JOB_ID", "INSTANCE_ID", "CWD", "SUBMIT_DIR")
READ_WARN_SIZE = 100 * 1024 * 1024


def _unknown_placeholders(text: str | None) -> list[str]:
    from ..core.placeholders import placeholder_names

    out: list[str] = []
    for name in placeholder_names(text or ""):
        if name not in KNOWN_PLACEHOLDERS and name not in out:
            out.append(name)
    return out


def _explicit_path(value: str | None) -> str | None:
    """The path a `--stdout`/`--stderr` value names explicitly (None: default, `none`, or a
    bare `:rm-if-finished`)."""
    if value is None or value == "none":
        return None
    if value.endswith(":rm-if-finished"):
        value = value[: -len(":rm-if-finished")]
    return value or None


def submit_warnings(opts: dict, task_count: int) -> None:
    """Upstream's submit warnings (WARN log records): an array whose output path lacks the task
    id, too many output files, unknown placeholders."""
    from .context import log_warn

    stream = opts.get("stream")
    cwd = opts.get("cwd") or ""
    if task_count > 1:
        for channel in ("stdout", "stderr"):
            path = _explicit_path(opts.get(channel))
            if path is not None and "%{TASK_ID}" not in os.path.join(cwd, path):
                log_warn(f"You have submitted an array job, but the `{channel}` path does not "
                         "contain the task ID placeholder.\nIndividual tasks might thus "
                         f"overwrite the file. Consider adding `%{{TASK_ID}}` to the "
                         f"`--{channel}` value.")
    if not stream:
        channels = [c for c in ("stdout", "stderr") if opts.get(c) != "none"]
        files = task_count * len(channels)
        if files > 999:
            log_warn(f"The job will create {files} files for {' and '.join(channels)}. Consider "
                     "using the `--stream` option to stream all outputs into a single file")
    for value, where in ((opts.get("stdout"), "stdout path"), (opts.get("stderr"), "stderr path"),
                         (stream, "log path"), (opts.get("cwd"), "working directory path")):
        unknown = _unknown_placeholders(value)
        if unknown:
            s = "s" if len(unknown) > 1 else ""
            log_warn(f"Found unknown placeholder{s} `{', '.join(unknown)}` in {where}")


def _read_entries(opts: dict):
    from .context import log_info, log_warn

    if opts.get("each_line") is not None:  # ("": the io error, as upstream)
        path = opts["each_line"]
        log_info(f"Reading file: {path}")
        if _size(path) > READ_WARN_SIZE:
            log_warn("Reading file bigger than 100MB")
        return spec.entries_from_lines(path)
    if opts.get("from_json") is not None:
        path = opts["from_json"]
        log_info(f"Reading json file: {path}")
        if _size(path) > READ_WARN_SIZE:
            log_warn("Reading file bigger then 100MB")
        return spec.entries_from_json(path)
    return None


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _env(items) -> dict[str, str]:
    from .context import log_warn

    env = {}
    for item in items or ():
        key, _, value = item.partition("=")
        env[key] = value
    if len(env) != len(items or ()):
        log_warn("Some environment variables were ignored. Check if you haven't used duplicate "
                 "keys.")
    return env


def build_request(opts: dict, command: tuple[str, ...], job_id: int | None = None,
                  stdin_data: bytes | None = None):
    """A SubmitRequest from the parsed options of `hq submit` / `hq run`, in upstream's order of
    checks: resources, ids and entries, warnings, the `%{CWD}` check. Raises SpecError
    (`field`: the option, a value error) or CommandError (a check after parsing, exit 1).

    `stdin_data`: what `--stdin` already read (for `--directives stdin`); read here otherwise.
    """
    from ..errors import CommandError

    if not command:
        raise SpecError("Missing the command to run (put it after `--`)")
    if opts.get("each_line") is not None and opts.get("from_json") is not None:
        raise SpecError("the argument '--each-line <EACH_LINE>' cannot be used with "  # clap's
                        "'--from-json <FROM_JSON>'")
    name = opts.get("name")
    if name is None:
        name = os.path.basename(command[0].rstrip("/")) or "job"
    spec.check_name(name)
    request = _resource_request(opts)
    entries = _read_entries(opts)
    array = opts.get("array")
    submit_warnings(opts, len(array) if array is not None else 0)
    cwd = opts.get("cwd") or spec.DEFAULT_CWD
    if "%{CWD}" in cwd:
        raise CommandError("Working directory path cannot contain the working directory "
                           "placeholder `%{CWD}`.")
    env = _env(opts.get("env"))
    stream = spec.stream_dir(opts.get("stream"), strict=False)
    task = spec.TaskSpec(
        list(command), env, cwd,
        spec.stdio_from_text(opts.get("stdout"), spec.DEFAULT_STDOUT, bool(stream)),
        spec.stdio_from_text(opts.get("stderr"), spec.DEFAULT_STDERR, bool(stream)),
        stream=stream, task_dir=bool(opts.get("task_dir")), time_limit=opts.get("time_limit"),
        priority=opts.get("priority") or 0, pin=opts.get("pin"))
    task.requests = [request]
    if opts.get("read_stdin"):
        task.stdin = stdin_data if stdin_data is not None else sys.stdin.buffer.read()
    task.crash_limit = spec.crash_limit(opts.get("crash_limit"))
    ids, entries = spec.array_ids(array, entries,
                                  auto_ids=job_id is not None and array is None)
    job = spec.JobSpec([spec.Batch(task, ids, entries)], name, opts.get("max_fails"),
                       os.getcwd(), job_id)
    return job.request()


def _is_zero_amount(text: str) -> bool:
    try:
        return float(text.split()[0]) == 0 if text.split() else False
    except ValueError:
        return False


def _resource_request(opts: dict):
    """`--cpus`, `--resource`, `--nodes`, `--time-request`, `--weight` as one request (cpus
    first)."""
    from ..errors import CommandError

    cpus = opts.get("cpus")
    entries = []
    if cpus is not None:
        entries.append(_cpus_entry(cpus))
    for r in opts.get("resource") or ():
        e = _resource_entry(r)
        if e.name == "cpus" and cpus is not None:
            raise CommandError("--cpus and --resource cpus=... cannot be combined")
        if any(x.name == e.name for x in entries):
            raise CommandError(f"Resource '{e.name}' defined more than once")
        entries.append(e)
    nodes = opts.get("nodes") or 0
    if nodes:
        if cpus is not None or opts.get("resource"):
            raise SpecError("--nodes cannot be combined with --cpus or --resource")
        if opts.get("pin"):
            raise SpecError("--nodes cannot be combined with --pin")
    elif not any(e.name == "cpus" for e in entries):
        entries.insert(0, spec.resource_entry("cpus", "1"))
    return spec.resource_request(entries, nodes, opts.get("time_request") or 0.0,
                                 opts.get("weight") or 1.0)


DIRECTIVE_SCAN_LIMIT = 32 * 1024


def read_directives(path: str) -> tuple[list[str], str | None]:
    """`#HQ` arguments at the top of a script, and its shebang interpreter (if any)."""
    try:
        with open(path, "rb") as f:
            head = f.read(DIRECTIVE_SCAN_LIMIT)
    except OSError as e:
        from ..errors import CommandError

        raise CommandError(f"Cannot read directives from {path}: {e.strerror}") from None
    return parse_directives(head, path)


def parse_directives(head: bytes, path: str) -> tuple[list[str], str | None]:
    """`#HQ` arguments at the top of a script's text, and its shebang line split into words
    (if any), as upstream: a directive is a line that starts with `#HQ ` after leading
    whitespace; scanning stops at the first line that is neither empty nor a comment (and
    after 32 KiB)."""
    import shlex

    from ..errors import CommandError

    head = head[:DIRECTIVE_SCAN_LIMIT]
    args: list[str] = []
    shebang = None
    for i, raw in enumerate(head.decode("utf-8", "replace").splitlines()):
        line = raw.lstrip()
        if i == 0 and line.startswith("#!"):
            shebang = line[2:].strip() or None
            continue
        if line.startswith("#HQ "):
            try:
                args.extend(shlex.split(line[4:]))
            except ValueError as e:
                raise CommandError(f"Could not parse directives from {path}: {e}") from None
        elif line.strip() and not line.startswith("#"):
            break
    return args, shebang


#: Options of `hq submit` that are not task configuration (a directive cannot give them).
NOT_IN_DIRECTIVES = {"job_id": "--job", "wait": "--wait", "progress": "--progress",
                     "directives": "--directives", "on_notify": "--on-notify"}
#: Given on the command line, any of these drops all three from the directives.
ENTRY_OPTIONS = ("each_line", "from_json", "array")
#: The directive value is ignored.
COMMAND_LINE_ONLY = ("weight",)


def _directive_error(source: str, e, args=()) -> Exception:
    from ..errors import CommandError
    from .main import clap_error_text

    text = clap_error_text(e, list(args), usage="Usage: #HQ <hq submit parameters>")
    return CommandError(f"Could not parse directives from {source}: You have used invalid "
                        f"parameter(s) after a #HQ directive.\n{text.rstrip()}")


def apply_directives(ctx, opts: dict, command: tuple, mode: str,
                     stdin_data: bytes | None = None) -> tuple[dict, tuple]:
    """Merges `#HQ` directives of the submitted script (or, with `--directives stdin`, of the
    script given on stdin) with the command-line flags, by upstream's rules (F25)."""
    from ..errors import CommandError

    if mode == "off" or not command:
        return opts, command
    if mode == "stdin":
        source = "stdin"
        args, shebang = parse_directives(stdin_data or b"", source)
    elif mode == "auto" and not command[0].endswith(".sh"):
        return opts, command
    elif not os.path.isfile(command[0]):
        if mode == "file":
            raise CommandError(f"Cannot read directives from {command[0]}: file not found")
        return opts, command
    else:
        source = command[0]
        args, shebang = read_directives(command[0])
    if shebang and stdin_data is None:
        command = (*shebang.split(), *command)
    if not args:
        return opts, command
    for a in args:
        name = a.partition("=")[0]
        if name in NOT_IN_DIRECTIVES.values():
            from .flavour import click as _click

            raise _directive_error(source, _click.NoSuchOption(name))
    try:
        sub = submit.make_context("submit", [*args, "--", "true"], parent=ctx.parent)
    except click.UsageError as e:
        raise _directive_error(source, e, args) from None
    cmdline = click.core.ParameterSource.COMMANDLINE

    def given(c, name):
        return c.get_parameter_source(name) == cmdline

    merged = dict(opts)
    entries_on_cli = any(given(ctx, n) for n in ENTRY_OPTIONS)
    for name, value in sub.params.items():
        if name == "command" or name not in opts or not given(sub, name):
            continue
        if name in COMMAND_LINE_ONLY or (name in ENTRY_OPTIONS and entries_on_cli):
            continue
        if given(ctx, name):
            if isinstance(value, tuple):  # --env, --resource: command line first
                merged[name] = (*opts[name], *value)
            continue
        merged[name] = value
    if entries_on_cli:
        for name in ENTRY_OPTIONS:
            merged[name] = opts.get(name)
    return merged, command


@click.command(context_settings={"allow_interspersed_args": False})
@submit_options
@click.option("--directives", type=click.Choice(["auto", "file", "stdin", "off"]),
              default="auto", help="Read #HQ directives from the submitted script")
@click.option("--job", "job_id", type=ID, help="Add the tasks to this open job")
@click.option("--wait", is_flag=True, help="Wait until the job completes")
@click.option("--progress", is_flag=True, help="Show a progress bar until the job completes")
@click.option("--on-notify", help="With --wait: run this command (with the message as its "
              "last argument) for each notification of the job's tasks")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def submit(job_id, wait, progress, command, directives, on_notify=None, **opts):
    """Submit a job: `hq submit [OPTIONS] -- COMMAND [ARGS]...`"""
    from ..errors import CommandError

    stdin_data = None
    if opts.get("read_stdin"):
        # upstream prints this with println!, in every output mode
        sys.stdout.write("Reading data from stdin. In the interactive mode press Ctrl-D to "
                         "submit.\n")
        sys.stdout.flush()
        stdin_data = sys.stdin.buffer.read()
    if directives == "stdin" and stdin_data is None:
        raise CommandError("You have to use `--stdin` when you specify `--directives=stdin`.")
    opts, command = apply_directives(click.get_current_context(), opts, command, directives,
                                     stdin_data)
    if wait and progress:
        raise click.UsageError("the argument '--wait' cannot be used with '--progress'")
    if job_id is not None:
        if opts.get("name") is not None:
            raise CommandError("Parameter --name is not allowed when submitting to an open job.")
        if opts.get("max_fails") is not None:
            raise CommandError(
                "Parameter --max-fails is not allowed when submitting to an open job.")
    try:
        request = build_request(opts, command, job_id, stdin_data)
    except SpecError as e:
        raise click_error(e) from None
    from ..client import calls

    with connect() as client:
        job = calls.send_submit(client, request)
        printer().submitted(job)
        if wait or progress:
            from .waiting import wait_for_jobs

            wait_for_jobs(client, [job], progress=progress,
                          on_notify=on_notify if wait else None)
