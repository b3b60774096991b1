"""`hq run`: an embedded server and worker in one process, for one job, with no cluster."""

from __future__ import annotations

from ._click import click
from .main import output
from .submit import submit_options


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

    from .submit import build_request

    request = build_request(opts, command)
    return run_local(request, worker_cpus=worker_cpus, out=output())
