"""`hq alloc ...`: automatic allocation queues (Slurm, PBS).

The flags of `add` / `dry-run` come from one table (`autoalloc.params.ADD_FLAGS`); the values
are checked by `QueueParams` here (a usage problem is reported before anything is sent) and
again by the server. Status messages are log lines on stderr (as upstream); results go to the
printer of the output mode.
"""

from __future__ import annotations

import logging
import os
import sys

from ..client import calls
from .common import DURATION, ID, states_option
from .context import connect, printer, setup_logging
from .flavour import click

log = logging.getLogger("hq.alloc")

ALLOC_STATES = ("queued", "running", "finished", "failed")


@click.group()
def alloc():
    """Automatic allocation: queues that submit workers to Slurm or PBS."""


def _options(fn):
    from ..client.alloc import ADD_FLAGS, ON_SERVER_LOST

    for flag in reversed(ADD_FLAGS):
        dest = flag.names[0].lstrip("-").replace("-", "_") if len(flag.names[0]) > 2 \
            else flag.names[1].lstrip("-").replace("-", "_")
        kw = {"help": flag.help}
        if flag.kind == "duration":
            kw.update(type=DURATION, required=flag.names[-1] == "--time-limit")
        elif flag.kind == "int":
            kw.update(type=int)
        elif flag.kind == "float":
            kw.update(type=float)
        elif flag.kind == "flag":
            kw.update(is_flag=True)
        elif flag.kind == "multi":
            kw.update(multiple=True)
        elif flag.kind == "choice":
            kw.update(type=click.Choice(ON_SERVER_LOST))
        if flag.default is not None and flag.kind not in ("flag", "multi"):
            default = flag.default
            if flag.kind == "duration":
                from ..common.durations import format_duration

                default = format_duration(default)
            kw.update(default=default, show_default=True)
        fn = click.option(*flag.names, dest, **kw)(fn)
    fn = click.argument("manager_args", nargs=-1, type=click.UNPROCESSED)(fn)
    return fn


def _params(manager: str, kw: dict):
    from ..client.alloc import queue_params
    from ..errors import CommandError

    kw = dict(kw)
    no_dry_run = kw.pop("no_dry_run")
    try:
        p = queue_params(manager, kw)
    except ValueError as e:  # checks of the client command: bare, as upstream's bail!
        raise CommandError(str(e)) from None
    return p, no_dry_run


def _add(manager: str, kw: dict) -> None:
    setup_logging()
    p, no_dry_run = _params(manager, kw)
    for w in p.warnings():
        log.warning("%s", w)
    with connect() as client:
        res = client.call(calls.alloc_add(p.to_wire(), dry_run=not no_dry_run))
    log.info("Allocation queue %d successfully created", res["queue_id"])
    printer().ok()


def _dry_run(manager: str, kw: dict) -> None:
    setup_logging()
    p, _ = _params(manager, kw)
    with connect() as client:
        res = client.call(calls.alloc_dry_run(p.to_wire()))
    log.info("Allocation was submitted successfully (job %s) and cancelled", res["job_id"])
    printer().ok()


@alloc.group()
def add():
    """Create an allocation queue."""


@add.command("slurm", context_settings={"ignore_unknown_options": False})
@_options
def add_slurm(**kw):
    """A queue of Slurm allocations (arguments after `--` go to sbatch)."""
    _add("slurm", kw)


@add.command("pbs")
@_options
def add_pbs(**kw):
    """A queue of PBS allocations (arguments after `--` go to qsub)."""
    _add("pbs", kw)


@alloc.group("dry-run")
def dry_run():
    """Submit one trial allocation with the given parameters and cancel it."""


@dry_run.command("slurm")
@_options
def dry_run_slurm(**kw):
    """Try a Slurm allocation."""
    _dry_run("slurm", kw)


@dry_run.command("pbs")
@_options
def dry_run_pbs(**kw):
    """Try a PBS allocation."""
    _dry_run("pbs", kw)


@alloc.command("list")
def list_():
    """List allocation queues."""
    with connect() as client:
        queues = client.call(calls.alloc_list())
    printer().alloc_list(queues)


@alloc.command()
@click.argument("queue_id", type=ID)
@click.option("--filter", "filter_", help="Only allocations in these states "
              "(queued, running, finished, failed)")
@click.option("--explain", is_flag=True,
              help="In JSON mode, print the queue's decision and its reasons with the "
                   "allocations (an object instead of upstream's array)")
def info(queue_id, filter_, explain):
    """Show the allocations of a queue and why it submits (or not)."""
    states = states_option(filter_, ALLOC_STATES, "'--filter'")
    with connect() as client:
        data = client.call(calls.alloc_info(queue_id, states))
    printer().alloc_info(data, explain)


@alloc.command("log")
@click.argument("allocation_id")
@click.argument("channel", type=click.Choice(["stdout", "stderr"]))
def log_(allocation_id, channel):
    """Print the stdout or stderr of an allocation."""
    from ..errors import HqError

    printer().require_text("`hq alloc log`")
    with connect() as client:
        workdir = client.call(calls.alloc_workdir(allocation_id))
    path = os.path.join(workdir, channel)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 16):
                sys.stdout.buffer.write(chunk)
    except OSError as e:
        raise HqError(f"Cannot read {path}: {e.strerror or e}") from None
    sys.stdout.flush()


def _queue_action(queue_id: int, action: str, force: bool = False) -> None:
    setup_logging()
    with connect() as client:
        message = client.call(calls.alloc_queue_action(queue_id, action, force))
    log.info("%s", message)
    printer().ok()


@alloc.command()
@click.argument("queue_id", type=ID)
def pause(queue_id):
    """Stop submitting new allocations of a queue."""
    _queue_action(queue_id, "pause")


@alloc.command()
@click.argument("queue_id", type=ID)
def resume(queue_id):
    """Submit allocations of a paused queue again."""
    _queue_action(queue_id, "resume")


@alloc.command()
@click.argument("queue_id", type=ID)
@click.option("--force", is_flag=True, help="Also when allocations of the queue are running "
              "(they are cancelled)")
def remove(queue_id, force):
    """Remove a queue and cancel its queued (and with --force running) allocations."""
    _queue_action(queue_id, "remove", force)
