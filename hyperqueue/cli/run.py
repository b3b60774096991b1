"""`hq run`: an embedded server and worker in one process, for one job, with no cluster."""

from __future__ import annotations

from ..errors import SpecError
from .common import click_error
from .context import printer
from .flavour import click
from .submit import build_request, submit_options


@click.command(context_settings={"allow_interspersed_args": False})
@submit_options
@click.option("--worker-cpus", help="CPUs of the embedded worker (default: this machine's)")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(worker_cpus, command, **opts):
    """Run a job on this machine alone: `hq run [OPTIONS] -- COMMAND [ARGS]...`

    Starts a server and a worker inside this process (temporary server directory), runs the
    job, prints a summary, and exits 0 only if every task finished. Ctrl-C cancels the job.
    """
    from ..local import run_local

    try:
        request = build_request(opts, command)
    except SpecError as e:
        raise click_error(e) from None
    return run_local(request, worker_cpus=worker_cpus, out=printer())
