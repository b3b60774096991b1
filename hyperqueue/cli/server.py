"""`hq server ...`"""

from __future__ import annotations

import os
import signal
import time

from ..client import calls
from .common import DURATION, FilePathType, first_leaf, trio_run
from .context import connect, printer, server_root, setup_logging
from .flavour import click


@click.group()
def server():
    """Manage the HyperQueue server."""


@server.command()
@click.option("--host", help="Hostname or address that clients and workers connect to")
@click.option("--client-port", type=click.IntRange(0, 65535), default=0,
              help="Port for client connections (default: random)")
@click.option("--worker-port", type=click.IntRange(0, 65535), default=0,
              help="Port for worker connections (default: random)")
@click.option("--idle-timeout", type=DURATION, help="Default idle timeout of workers")
@click.option("--journal", type=FilePathType(),
              help="Journal file: restore from it if it exists, then append to it")
@click.option("--journal-flush-period", type=DURATION, default="30s",
              help="How often the journal is flushed to disk")
@click.option("--access-file", type=click.Path(exists=True, dir_okay=False),
              help="Use keys, hosts and ports from a file made by `server generate-access`")
@click.option("--disable-client-authentication-and-encryption", is_flag=True, hidden=True)
@click.option("--disable-worker-authentication-and-encryption", is_flag=True, hidden=True)
def start(host, client_port, worker_port, idle_timeout, journal, journal_flush_period,
          access_file, disable_client_authentication_and_encryption,
          disable_worker_authentication_and_encryption):
    """Start the server (runs until stopped by a signal or `hq server stop`)."""
    from ..errors import HqError

    setup_logging()
    root = server_root()
    from ..common import serverdir
    from ..server.boot import prepare

    _refuse_if_running(root)

    journal_path = os.path.abspath(journal) if journal else None
    # A stop signal that arrives before the event loop listens for signals is kept and acted
    # on as soon as it does (instead of the default action killing the process uncleanly).
    early_signals: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: early_signals.append(signum))
    # Bound, restored and published before the event loop (and trio) is even imported: the
    # access record and the info table appear within a few tens of ms; early clients wait in
    # the listen backlog.
    disable_client = disable_client_authentication_and_encryption
    disable_worker = disable_worker_authentication_and_encryption
    try:
        boot = prepare(root, host=host, client_port=client_port, worker_port=worker_port,
                       access_file=access_file, journal_path=journal_path,
                       disable_client_auth=disable_client, disable_worker_auth=disable_worker)
    except HqError:
        raise
    except Exception as e:
        import logging

        logging.getLogger("hq.server").critical("The server crashed while starting",
                                                exc_info=True)
        raise HqError(f"Cannot start the server: {type(e).__name__}: {e}") from None
    try:
        printer().server_info(boot.info(), with_dir=True)
        from ..server.app import Server

        srv = Server(root, host=host, client_port=client_port, worker_port=worker_port,
                     access_file=access_file, idle_timeout=idle_timeout,
                     journal_path=journal_path, journal_flush_period=journal_flush_period,
                     boot=boot, early_signals=early_signals,
                     disable_client_auth=disable_client, disable_worker_auth=disable_worker)
        trio_run(srv.run)
    except (HqError, KeyboardInterrupt):
        raise
    except Exception as e:  # Server.run logged the traceback
        leaf = first_leaf(e, (Exception,)) if isinstance(e, BaseExceptionGroup) else e
        leaf = leaf or e
        raise HqError(f"The server crashed: {type(leaf).__name__}: {leaf}") from None
    finally:  # also when the server never ran (Server.run removes it otherwise)
        serverdir.remove_current_link(root, boot.instance_dir)
    return 0


def _refuse_if_running(root: str) -> None:
    from ..client.blocking import BlockingClient
    from ..common import serverdir
    from ..errors import HqError

    link = os.path.join(root, serverdir.CURRENT_LINK, serverdir.ACCESS_FILE)
    if not os.path.exists(link):
        return
    try:
        BlockingClient(root, timeout=2.0).close()
    except HqError:
        return  # a stale link of a crashed server
    raise HqError(f"HyperQueue server is already running in {root!r}; stop it first "
                  "(`hq server stop`)")


@server.command()
def stop():
    """Stop the server."""
    with connect() as client:
        client.call(calls.stop_server())
    printer().ok("Stopping server")


@server.command()
def info():
    """Show information about the running server."""
    with connect() as client:
        info = client.call(calls.server_info())
    printer().server_info(info, with_dir=False)


@server.command()
@click.option("--timeout", type=DURATION, default="5m", help="How long to wait")
def wait(timeout):
    """Wait until a server is running."""
    from ..common.durations import format_duration
    from ..errors import HqError

    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            with connect() as client:
                client.call(calls.server_info())
            printer().ok()
            return
        except HqError as e:
            last = e
        if time.monotonic() >= deadline:
            raise HqError(f"Timeout after {format_duration(timeout)}: Could not connect to "
                          f"server ({last.message if last else 'no answer'})")
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


@server.command("debug-dump")
@click.argument("path")
def debug_dump(path):
    """Dump the server's internal (scheduler) state into PATH as JSON (written by the server:
    a relative PATH is relative to the server's working directory)."""
    import logging

    setup_logging()
    log = logging.getLogger("hq")
    log.info("Dumping server state ...")
    with connect() as client:
        client.call(calls.debug_dump(path))  # the path unchanged, as upstream
    log.info("Dump finished")


@server.command("generate-access")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--client-file", type=click.Path(dir_okay=False),
              help="Also write a file with only the client part")
@click.option("--worker-file", type=click.Path(dir_okay=False),
              help="Also write a file with only the worker part")
@click.option("--host", help="Host for both clients and workers (default: this host)")
@click.option("--client-host")
@click.option("--worker-host")
@click.option("--client-port", type=click.IntRange(0, 65535), required=True)
@click.option("--worker-port", type=click.IntRange(0, 65535), required=True)
def generate_access(file, client_file, worker_file, host, client_host, worker_host,
                    client_port, worker_port):
    """Generate an access file (keys, hosts, ports) without starting a server."""
    import socket

    from ..common import serverdir
    from ..errors import HqError

    record = serverdir.generate_access(host or socket.gethostname(), client_port, worker_port,
                                       client_host=client_host, worker_host=worker_host)
    try:
        serverdir.write_access_file(file, record)
        if client_file:
            serverdir.write_access_file(client_file, {"version": record["version"],
                                                      "client": record["client"]})
        if worker_file:
            serverdir.write_access_file(worker_file, {"version": record["version"],
                                                      "worker": record["worker"]})
    except FileExistsError as e:
        raise HqError(f"Cannot write access file: {e.filename} already exists") from None
    except OSError as e:
        raise HqError(f"Cannot write access file {e.filename}: {e.strerror}") from None
    printer().ok()

