"""`hq submit` (also `hq job submit`): build a submit request from flags and send it."""

from __future__ import annotations

import os
import sys

from ..client import spec
from ..errors import SpecError
from .common import DURATION, RANGES, click_error
from .context import connect, printer
from .flavour import click


def _check_priority(_ctx, _param, value):
    if value is not None:
        try:
            spec.check_priority(value)
        except SpecError as e:
            raise click.BadParameter(e.message)
    return value


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
    """A SubmitRequest from the parsed options of `hq submit` / `hq run`, through the client's
    spec builder. Raises SpecError (`field`: the option; None for a usage problem) or HqError.

    `stdin_data`: what `--stdin` already read (for `--directives stdin`); read here otherwise.
    """
    if not command:
        raise SpecError("Missing the command to run (put it after `--`)")
    name = spec.check_name(opts.get("name") or os.path.basename(command[0]))
    env = spec.env_from_items(opts.get("env"))
    cwd = spec.check_cwd(opts.get("cwd") or spec.DEFAULT_CWD, "--cwd")
    stream = spec.stream_dir(opts.get("stream"))
    task = spec.TaskSpec(
        list(command), env, cwd,
        spec.stdio_from_text(opts.get("stdout"), spec.DEFAULT_STDOUT, bool(stream)),
        spec.stdio_from_text(opts.get("stderr"), spec.DEFAULT_STDERR, bool(stream)),
        stream=stream, task_dir=bool(opts.get("task_dir")), time_limit=opts.get("time_limit"),
        priority=opts.get("priority") or 0, pin=opts.get("pin"))
    for unknown, text in task.unknown_placeholders():
        sys.stderr.write(f"Warning: unknown placeholder %{{{unknown}}} in '{text}'\n")
    task.requests = [_resource_request(opts)]
    if opts.get("read_stdin"):
        task.stdin = stdin_data if stdin_data is not None else sys.stdin.buffer.read()
    task.crash_limit = spec.crash_limit(opts.get("crash_limit"))
    if opts.get("each_line") and opts.get("from_json"):
        raise SpecError("--each-line and --from-json cannot be used together")
    entries = None
    if opts.get("each_line"):
        entries = spec.entries_from_lines(opts["each_line"])
    elif opts.get("from_json"):
        entries = spec.entries_from_json(opts["from_json"])
    ids, entries = spec.array_ids(opts.get("array"), entries,
                                  auto_ids=job_id is not None and opts.get("array") is None)
    job = spec.JobSpec([spec.Batch(task, ids, entries)], name, opts.get("max_fails"),
                       os.getcwd(), job_id)
    return job.request()


def _resource_request(opts: dict):
    """`--cpus`, `--resource`, `--nodes`, `--time-request`, `--weight` as one request."""
    cpus = opts.get("cpus")
    entries = []
    if cpus is not None:
        try:
            entries.append(spec.resource_entry("cpus", cpus))
        except SpecError as e:
            raise SpecError(e.message, "cpus") from None
    for r in opts.get("resource") or ():
        e = spec.resource_arg(r)
        if e.name == "cpus" and cpus is not None:
            raise SpecError("use either --cpus or --resource cpus=...", "resources")
        entries.append(e)
    nodes = opts.get("nodes") or 0
    if nodes:
        if cpus is not None or entries:
            raise SpecError("--nodes cannot be combined with --cpus or --resource")
        if opts.get("pin"):
            raise SpecError("--nodes cannot be combined with --pin")
    return spec.resource_request(entries, nodes, opts.get("time_request") or 0.0,
                                 opts.get("weight") or 1.0)


DIRECTIVE_SCAN_LIMIT = 32 * 1024
NOT_IN_DIRECTIVES = {"job_id", "wait", "progress", "directives", "on_notify"}


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
@click.option("--on-notify", help="With --wait: run this command (with the message as its "
              "last argument) for each notification of the job's tasks")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def submit(job_id, wait, progress, command, directives, on_notify=None, **opts):
    """Submit a job: `hq submit [OPTIONS] -- COMMAND [ARGS]...`"""
    stdin_data = sys.stdin.buffer.read() if opts.get("read_stdin") else None
    opts, command = apply_directives(click.get_current_context(), opts, command, directives,
                                     stdin_data)
    if wait and progress:
        raise click.UsageError("--wait and --progress cannot be used together")
    if job_id is not None and (opts.get("name") or opts.get("max_fails") is not None):
        raise click.UsageError("--name and --max-fails cannot be used with --job")
    try:
        request = build_request(opts, command, job_id, stdin_data)
    except SpecError as e:
        raise click_error(e) from None
    from ..client import calls

    with connect() as client:
        job = client.call(calls.submit(request))
        printer().submitted(job)
        if wait or progress:
            from .waiting import wait_for_jobs

            wait_for_jobs(client, [job], progress=progress,
                          on_notify=on_notify if wait else None)
