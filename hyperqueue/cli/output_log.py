"""`hq output-log <dir> ...`: read the output streams written with `--stream`."""

from __future__ import annotations

import sys

from .common import RANGES
from .context import printer
from .flavour import click
from .output import OUTPUT_LOG_CHANNELS as CHANNEL_NAMES


class _OutputLogGroup(click.Group):
    """Accepts `--server-uid` also after PATH (`hq output-log PATH --server-uid UID summary`):
    a click group stops parsing its own options at its first positional argument."""

    def parse_args(self, ctx, args):
        front, rest = [], []
        i = positionals = 0
        while i < len(args):
            a = args[i]
            if a == "--":
                break
            if a == "--server-uid" and i + 1 < len(args):
                front += args[i:i + 2]
                i += 2
                continue
            if a.startswith("--server-uid="):
                front.append(a)
            elif not a.startswith("-"):
                positionals += 1
                if positionals == 2:  # the subcommand: the rest is its own
                    break
                rest.append(a)
            else:
                rest.append(a)
            i += 1
        return super().parse_args(ctx, front + rest + list(args[i:]))


@click.group(name="output-log", cls=_OutputLogGroup)
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--server-uid", metavar="UID",
              help="Read only the files of this server instance")
@click.pass_context
def output_log(ctx, path, server_uid):
    """Inspect a stream directory (the output of tasks submitted with --stream)."""
    ctx.obj = {"path": path, "server_uid": server_uid}


def _load(ctx):
    from ..errors import HqError
    from ..streaming.reader import StreamReadError, load

    obj = ctx.find_object(dict)
    try:
        return load(obj["path"], obj["server_uid"])
    except StreamReadError as e:
        raise HqError(str(e)) from None


def _check_job(log, job: int) -> None:
    if not log.has_job(job):
        from ..errors import HqError

        raise HqError(f"Job {job} not found")


@output_log.command()
@click.pass_context
def summary(ctx):
    """Print statistics of the stream files."""
    log = _load(ctx)
    printer().log_summary(log.path, log.summary())


@output_log.command()
@click.pass_context
def jobs(ctx):
    """Print the ids of the jobs in the stream files."""
    log = _load(ctx)
    printer().log_jobs(log.job_ids())


@output_log.command()
@click.option("--job", type=int, help="Only chunks of this job")
@click.option("--channel", type=click.Choice(CHANNEL_NAMES), help="Only chunks of this channel")
@click.pass_context
def show(ctx, job, channel):
    """Print all chunks in time order, each line prefixed by `job.task:channel>`."""
    from ..streaming.format import CHANNELS

    log = _load(ctx)
    printer().log_chunks(log.chunks(job=job, channel=None if channel is None
                                    else CHANNELS[channel]), log.id_widths())


@output_log.command()
@click.argument("job", type=int)
@click.argument("channel", type=click.Choice(CHANNEL_NAMES))
@click.option("--task", "tasks", type=RANGES, help="Only these tasks (e.g. 1-3,7)")
@click.option("--allow-unfinished", is_flag=True, help="Also print streams that are not closed")
@click.pass_context
def cat(ctx, job, channel, tasks, allow_unfinished):
    """Print the raw output of a channel of the tasks of a job (in task id order, or in the
    order of --task)."""
    from ..errors import HqError
    from ..streaming.format import CHANNELS

    log = _load(ctx)
    _check_job(log, job)
    data = _task_data(log, job, CHANNELS[channel], tasks)
    if not allow_unfinished:
        for task, _, finished in data:
            if not finished:
                raise HqError(f"Stream for task {task} is not finished")
    buf = sys.stdout.buffer
    for _, chunk, _ in data:
        buf.write(chunk)
    buf.flush()


@output_log.command()
@click.argument("job", type=int)
@click.option("--task", "tasks", type=RANGES, help="Only these tasks (e.g. 1-3,7)")
@click.pass_context
def export(ctx, job, tasks):
    """Print the stdout of the tasks of a job as JSON (whatever the output mode)."""
    from ..streaming.format import STDOUT

    log = _load(ctx)
    _check_job(log, job)
    printer().json([{"id": task, "finished": finished,
                    "stdout": chunk.decode("utf-8", "replace")}
                   for task, chunk, finished in _task_data(log, job, STDOUT, tasks)])


def _task_data(log, job, channel, tasks):
    from ..errors import HqError
    from ..streaming.reader import StreamReadError

    try:
        return log.task_data(job, channel, tasks)
    except StreamReadError as e:  # `Task <T> not found`
        raise HqError(str(e)) from None
