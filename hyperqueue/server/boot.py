"""What a server does before its event loop starts (no trio here).

`prepare` binds the listening sockets, restores the core from the journal and publishes the
access record (`<root>/NNN/access.json` and the `hq-current` link). Doing this before importing
trio (~100 ms) lets `hq server start` publish its access record and print its info within a few
tens of milliseconds of the interpreter starting; connections that arrive before the event loop
runs wait in the listen backlog. Everything that can fail for a user-facing reason (a busy port,
a damaged journal, a bad access file) fails here, before anything is written.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timezone

from ..common import serverdir
from ..common.rlimit import raise_open_file_limit
from ..core.state import Core
from ..errors import HqError
from ..version import __version__

log = logging.getLogger("hq.server")

BACKLOG = 1024


class Boot:
    """A prepared server: listening sockets, the (restored) core and the published record."""

    def __init__(self, root, client_socks, worker_socks, core, access, instance_dir, start_date,
                 journal_path):
        self.root = root
        self.client_socks: list[socket.socket] = client_socks
        self.worker_socks: list[socket.socket] = worker_socks
        self.core: Core = core
        self.access: dict = access
        self.instance_dir: str = instance_dir
        self.start_date: float = start_date
        self.journal_path: str | None = journal_path

    def info(self) -> dict:
        rec = self.access
        return {
            "server_dir": self.root,
            "server_uid": rec["server_uid"],
            "client_host": rec["client"]["host"],
            "client_port": rec["client"]["port"],
            "worker_host": rec["worker"]["host"],
            "worker_port": rec["worker"]["port"],
            "version": __version__,
            "pid": os.getpid(),
            "start_date": datetime.fromtimestamp(self.start_date, timezone.utc).isoformat(),
            "journal_path": self.journal_path,
            "instance_dir": self.instance_dir,
        }

    def close_sockets(self) -> None:
        for s in self.client_socks + self.worker_socks:
            s.close()


def prepare(root: str, *, host: str | None = None, client_port: int = 0, worker_port: int = 0,
            access_file: str | None = None, journal_path: str | None = None,
            disable_client_auth: bool = False, disable_worker_auth: bool = False) -> Boot:
    """Binds, restores and publishes (in that order; nothing is written if a step fails).

    `disable_*_auth`: that side runs without authentication and encryption (its key is
    recorded as null); otherwise it must have a key (an access file without one is refused).

    Raises:
        HqError: the server directory is unsafe, a port cannot be bound, the journal or the
            access file cannot be used.
    """
    raise_open_file_limit()  # a descriptor per connection: use all the system allows
    try:
        serverdir.ensure_root(root)
    except OSError as e:
        raise HqError(f"Cannot start the server: cannot create the server directory {root}: "
                      f"{e.strerror or e}") from None
    hostname = host or socket.gethostname()
    disabled = {"client": disable_client_auth, "worker": disable_worker_auth}
    record = serverdir.read_access_file(access_file) if access_file else None
    if record is not None:
        for side in ("client", "worker"):
            if record.get(side) is None:
                raise HqError(f"Access file {access_file} has no '{side}' section")
            if record[side].get("secret_key") is None and not disabled[side]:
                raise HqError(
                    f"Access file {access_file} has no secret key for {side}s",
                    f"Authentication and encryption of {side} connections can only be turned "
                    f"off explicitly: `hq server start "
                    f"--disable-{side}-authentication-and-encryption`.")
    client_port = client_port or (record["client"]["port"] if record else 0)
    worker_port = worker_port or (record["worker"]["port"] if record else 0)
    client_socks = worker_socks = []
    try:
        client_socks = listen(_bind_host(host), client_port)
        worker_socks = listen(_bind_host(host), worker_port)
        client_port = client_socks[0].getsockname()[1]
        worker_port = worker_socks[0].getsockname()[1]
        if record is not None:
            record = dict(record)
            if host:
                record["client"] = dict(record["client"], host=host)
                record["worker"] = dict(record["worker"], host=host)
            record["client"] = dict(record["client"], port=client_port)
            record["worker"] = dict(record["worker"], port=worker_port)
        else:
            record = serverdir.generate_access(hostname, client_port, worker_port)
        for side in ("client", "worker"):
            if disabled[side]:
                record[side] = dict(record[side], secret_key=None)
        autoalloc_records: list = []
        core = restore(journal_path, autoalloc_records) if journal_path is not None else None
        if core is not None:
            record["server_uid"] = core.server_uid
        else:
            core = Core(server_uid=record["server_uid"], record_events=True)
            if journal_path is not None and os.path.isfile(journal_path):
                core.next_worker_id = 2  # an existing (empty) journal: as upstream (F67)
        start_date = time.time()
        instance_dir = serverdir.create_instance_dir(root)
        serverdir.write_access_file(os.path.join(instance_dir, serverdir.ACCESS_FILE), record)
        serverdir.point_current_link(root, instance_dir)
    except BaseException as e:
        for s in client_socks + worker_socks:
            s.close()
        if isinstance(e, OSError):
            raise HqError(f"Cannot start the server: {e}") from None
        raise
    for side, what in (("client", "control this server and run commands as this user"),
                       ("worker", "join as a worker and receive every task to run")):
        if disabled[side]:
            log.warning("AUTHENTICATION AND ENCRYPTION OF %s CONNECTIONS ARE DISABLED "
                        "(--disable-%s-authentication-and-encryption): anyone who can reach "
                        "port %d can %s", side.upper(), side, record[side]["port"], what)
    boot = Boot(root, client_socks, worker_socks, core, record, instance_dir, start_date,
                journal_path)
    boot.autoalloc_records = autoalloc_records
    return boot


def listen(host: str | None, port: int) -> list[socket.socket]:
    """Listening TCP sockets on `port` (0: any free port): on every interface (one dual-stack
    IPv6 socket where the system has it, else IPv4), or on the given local address."""
    if host is None:
        if socket.has_dualstack_ipv6():
            try:
                return [socket.create_server(("", port), family=socket.AF_INET6,
                                             backlog=BACKLOG, dualstack_ipv6=True)]
            except OSError:
                pass  # IPv6 disabled at runtime: fall back to IPv4
        return [socket.create_server(("", port), family=socket.AF_INET, backlog=BACKLOG)]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host == "localhost":
        host, family = "127.0.0.1", socket.AF_INET
    return [socket.create_server((host, port), family=family, backlog=BACKLOG)]


def _bind_host(host: str | None) -> str | None:
    # Upstream listens on every interface; an explicit --host of 127.0.0.1 stays local.
    if host in ("127.0.0.1", "localhost", "::1"):
        return host
    return None


def restore(path: str, autoalloc_records: list | None = None) -> Core | None:
    """The core rebuilt from the journal file, or None when there is none yet. The records of
    automatic allocation go to `autoalloc_records` (replayed by the autoalloc service).

    A torn last record (the server died mid-write) is cut off with a warning; damage in the
    middle raises (the server refuses to start rather than lose events silently).
    """
    from ..core.events import EventError, from_record
    from ..core.outbox import Outbox
    from ..core.restore import RestoreError, apply_event
    from ..journal.format import read_all

    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise HqError(f"Cannot read journal {path}: {e.strerror}") from None
    if not data:
        return None
    records, tail = read_all(data, path=path)
    if not tail.clean:
        log.warning("%s", tail.warning(path))
        with open(path, "r+b") as f:
            f.truncate(tail.offset)
            f.flush()
            os.fsync(f.fileno())
    core = Core(record_events=True)
    outbox = Outbox()
    from .autoalloc import is_autoalloc_kind

    for i, record in enumerate(records):
        if autoalloc_records is not None and isinstance(record, (list, tuple)) \
                and len(record) == 3 and is_autoalloc_kind(record[1]):
            autoalloc_records.append((i + 1, record))
            continue
        try:
            apply_event(core, outbox, from_record(record))
        except (RestoreError, EventError, ValueError, TypeError) as e:
            raise HqError(f"Cannot restore from journal {path}: record {i + 1}: {e}") from None
        outbox.clear()
    _upstream_counters(core, outbox)
    log.info("Restored %d jobs and %d workers from journal %s (%d events)", len(core.jobs),
             len(core.workers), path, len(records))
    return core


def _upstream_counters(core: Core, outbox) -> Core:
    """What upstream's restore leaves out or moves on (upstream-facts.md F67): jobs whose
    completion was journaled are dropped (not even `job list --all` shows them; the job id
    counter still continues after them), and the worker id counter continues at the highest
    worker id in the journal + 2 (2 when it has none). Nothing of this is journaled. Ids of jobs
    and workers that `journal prune` dropped count too (its `id-floor` record)."""
    from ..core import reactor

    for job in [j for j in core.jobs.values() if j.is_terminated]:
        reactor.forget_job(core, outbox, job, 0.0)
    # (`next_worker_id - 1`: the highest worker id, also of an `id-floor` record of a prune)
    core.next_worker_id = max(max(core.workers, default=0), core.next_worker_id - 1) + 2
    outbox.clear()
    return core
