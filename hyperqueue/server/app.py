"""The server process: listeners, the dispatcher that runs the scheduler, signals, graceful stop.

Shape (one owner per lifetime):
    Server.run
      nursery "services": client listener, worker listener, dispatcher, housekeeping, signals,
        and the subsystems (`Service`s); each connection handler lives in the services nursery
        too; a stop request cancels the listeners, closes worker connections (workers apply
        their on-server-lost policy), and leaves the rest a bounded time to drain.

The surface for code outside this package (client connections, `hq run`, and next the
dashboard and the automatic allocator) is small and explicit; nothing else of `Server` is
meant to be touched from outside `server/`:
    Server(..., client_listeners=, worker_listeners=)   any `trio.abc.Listener`s (tests, embedding)
    server.add_service(service)   a subsystem: started in the services nursery, told of workers
    await server.run(task_status=)   serves until stopped
    server.stop(), server.info()
    await server.request(msg)     any client request through the handler table (`requests.py`)
    await server.submit(req)      -> job id (raises RequestFailed)
    await server.wait(job_ids)    returns once those jobs ended and that is on disk
    server.subscribe(live=)       async context manager -> `Subscription` (`subscriptions.py`):
                                  history, the LIVE marker, then live events; bounded queue
    server.job(job_id)            the core's record of a job, read-only (None: no such job)
Every answer obeys the durability rule (`reported`): nothing is told before it is on disk.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
from collections import deque
import time

import trio

from ..common import gctune, serverdir
from ..common.ratelimit import RateLimitedLog
from ..core import reactor, scheduler
from ..core.model import WorkerState
from ..core.events import (ServerStart, ServerStop, WorkerOverview, expand_record,
                           journal_records, to_records)
from ..core.outbox import Outbox
from ..core.state import Core
from ..errors import HqError, RequestFailed
from ..protocol import messages as m
from ..protocol.errors import ConnectionClosed, ProtocolError, describe
from ..protocol.handshake import Handshake
from ..transport.connection import Connection, decode_message, perform_handshake
from ..version import __version__
from .autoalloc import AutoallocService
from .requests import ClientRequests, RequestContext, Waits
from .subscriptions import EVENT_BACKLOG, LIVE, SubscriberLagged, Subscription

log = logging.getLogger("hq.server")

STOP_GRACE = 1.0  # seconds connections get to drain at stop
DISPATCH_COALESCE = 0.01  # seconds between scheduling passes under load
EVENT_LOG_LIMIT = 100_000  # events kept in memory for `journal replay` without a journal
JOURNAL_CLOSE_TIMEOUT = 5.0  # seconds the final journal flush may take at stop
NOTIFY_BACKLOG = 10_000  # notifications waiting for one slow client before some are dropped
LAG_GRACE = 5.0  # seconds a lagged subscriber's connection gets to take its error


class Service:
    """A server subsystem (e.g. automatic allocation). Register it with `add_service` before
    `run`. `run` is started in the server's services nursery once the core is restored and
    before the server reports itself ready (call `task_status.started()` when ready); it is
    cancelled at stop. `worker_connected`/`worker_lost` are called on the server's thread,
    after the core has registered or lost the worker; they must not block (start work in your
    own task), and an exception they raise is logged, not propagated."""

    async def run(self, server: "Server", *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    def worker_connected(self, worker) -> None:
        pass

    def worker_lost(self, worker, reason: WorkerState) -> None:
        pass


class WorkerLink:
    """The server's side of one worker connection: an outgoing buffer and its writer."""

    __slots__ = ("worker", "conn", "pending", "wakeup", "stop_reason", "seen_seq",
                 "stamped_seq", "stamps")

    def __init__(self, worker, conn: Connection):
        self.worker = worker
        self.conn = conn
        self.pending: list[bytes] = []
        self.wakeup = trio.Event()
        self.stop_reason: WorkerState | None = None
        # Result confirmation: the last TaskUpdates seq received, the last one tied to a
        # journal position, and (journal position, seq) pairs awaiting an fsync.
        self.seen_seq = 0
        self.stamped_seq = 0
        self.stamps: list[tuple[int, int]] = []

    def push(self, payload: bytes) -> None:
        self.pending.append(payload)
        self.wakeup.set()


class Server:
    def __init__(self, root: str, *, host: str | None = None, client_port: int = 0,
                 worker_port: int = 0, access_file: str | None = None,
                 idle_timeout: float | None = None, journal_path: str | None = None,
                 journal_flush_period: float = 30.0, boot=None,
                 early_signals: list[int] | None = None, disable_client_auth: bool = False,
                 disable_worker_auth: bool = False, client_listeners=None,
                 worker_listeners=None, event_backlog: int = EVENT_BACKLOG):
        """`boot`: the result of `boot.prepare` when the caller already bound and published
        (see `hq server start`); otherwise `run` prepares first. `early_signals`: stop signals
        the caller caught before the event loop could (acted on once it runs).
        `client_listeners`/`worker_listeners`: serve these `trio.abc.Listener`s instead of the
        bound sockets (in-process tests, embedding; the access record still names the bound
        ports). `event_backlog`: the default queue limit of a live event subscription."""
        self.root = root
        self.boot = boot
        self.host = host
        self.client_port = client_port
        self.worker_port = worker_port
        self.access_file = access_file
        self.disable_client_auth = disable_client_auth
        self.disable_worker_auth = disable_worker_auth
        self.idle_timeout = idle_timeout
        self.journal_path = journal_path
        self.journal = None
        if journal_path is not None:
            from ..journal.writer import JournalWriter

            self.journal = JournalWriter(journal_path, journal_flush_period)
        self.core: Core | None = None
        self.outbox = Outbox()
        self.links: dict[int, WorkerLink] = {}
        self._links_gone: trio.Event | None = None  # set at stop once `links` is empty
        self.waits: Waits | None = None
        self.wakeup = trio.Event()
        self.stop_event = trio.Event()
        self.instance_dir: str | None = None
        self.access: dict | None = None
        self.start_date = 0.0
        self._requests: ClientRequests | None = None
        self._listeners = (client_listeners, worker_listeners)
        self._services: list[Service] = []
        self.event_backlog = event_backlog
        self.autoalloc = AutoallocService(self)
        # Events for `journal replay/stream`: the journal file when there is one, else the
        # most recent events kept in memory.
        self.event_log: deque = deque(maxlen=EVENT_LOG_LIMIT)
        self.subscribers: list[Subscription] = []
        # With a journal, live subscribers get events only once they are durable: (journal
        # position, events) batches waiting for the fsync that covers them.
        self.undurable_events: deque = deque()
        self.early_signals = early_signals if early_signals is not None else []
        # Clients waiting with task notifications: (job ids, memory channel); never journaled.
        self.notify_listeners: list[tuple[set, trio.MemorySendChannel]] = []

    # -- the API for code outside server/ --------------------------------------------------------
    def add_service(self, service: Service) -> None:
        """Registers a subsystem (before `run`); see `Service`."""
        self._services.append(service)

    async def request(self, req: m.Message) -> m.Message:
        """The answer to a client request, as a client connection would get it (through the
        handler table; an error is an ErrorResponse). Call once `run` has started."""
        return await self._requests.handle(req)

    async def submit(self, req: m.SubmitRequest) -> int:
        """Submits a job; returns its id once the submit is on disk.

        Raises:
            RequestFailed: the submit was refused (nothing changed).
        """
        resp = await self.request(req)
        if isinstance(resp, m.ErrorResponse):
            raise RequestFailed(resp.message)
        return resp.job_id

    async def wait(self, job_ids, *, without_close: bool = False) -> None:
        """Returns once every job of `job_ids` has ended (and, unless `without_close`, is
        closed) or is gone, and that is on disk. No polling: woken by the server's flush."""
        await self.waits.wait(job_ids, without_close)
        await self.reported()

    def job(self, job_id: int):
        """The core's record of a job (read it, never change it), or None."""
        return self.core.jobs.get(job_id)

    @contextlib.asynccontextmanager
    async def subscribe(self, *, live: bool = True, limit: int | None = None):
        """A `Subscription`: every durable event so far, then (live) the `LIVE` marker and new
        events as they become durable. At most `limit` (default: the server's
        `event_backlog`) live events wait for the subscriber; past that it is lagged (see
        `subscriptions.py`). The subscriber is registered before the history is read, so no
        event falls between the two."""
        sub = Subscription(live, self.event_backlog if limit is None else limit)
        if live:
            self.subscribers.append(sub)
        try:
            history, after = await self._history()
            sub.set_history(history, after)
            yield sub
        finally:
            if live:
                self.subscribers.remove(sub)

    # -- lifetime -----------------------------------------------------------------------------
    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Serves until stopped; `task_status.started(info)` once the access file exists.

        Raises:
            HqError: the server cannot start, or it stopped because its journal cannot be
                written (after a clean stop: workers told, `hq-current` removed).
        An unexpected error is logged with its traceback before it propagates.
        """
        try:
            await self._run(task_status)
        except HqError:
            raise
        except Exception:
            log.critical("The server crashed", exc_info=True)
            raise
        failed = self.journal.failed if self.journal is not None else None
        if failed is not None:
            raise HqError(f"The server stopped because it cannot write its journal "
                          f"{self.journal_path}: {failed.strerror or failed}")

    async def _run(self, task_status) -> None:
        boot = self.boot
        if boot is None:
            from .boot import prepare

            boot = self.boot = prepare(self.root, host=self.host, client_port=self.client_port,
                                       worker_port=self.worker_port,
                                       access_file=self.access_file,
                                       journal_path=self.journal_path,
                                       disable_client_auth=self.disable_client_auth,
                                       disable_worker_auth=self.disable_worker_auth)
        try:
            client_listeners, worker_listeners = self._listeners
            if client_listeners is None and worker_listeners is None:
                client_listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(s))
                                    for s in boot.client_socks]
                worker_listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(s))
                                    for s in boot.worker_socks]
            else:  # injected: the bound sockets are not served
                boot.close_sockets()
                client_listeners = list(client_listeners or [])
                worker_listeners = list(worker_listeners or [])
            try:
                self.autoalloc.restore(getattr(boot, "autoalloc_records", ()))
            except ValueError as e:
                raise HqError(f"Cannot restore from journal {self.journal_path}: {e}") from None
            if self.journal is not None:
                try:
                    self.journal.open()
                except OSError as e:
                    raise HqError(f"Cannot start the server: cannot open the journal "
                                  f"{self.journal_path}: {e.strerror or e}") from None
        except BaseException:
            boot.close_sockets()
            serverdir.remove_current_link(self.root, boot.instance_dir)
            raise
        self.core = boot.core
        gctune.tune()
        self.waits = Waits(self.core)
        self._requests = ClientRequests(RequestContext(
            self.core, self.outbox, changed=self.kick, reported=self.reported, waits=self.waits,
            info=self.info, journal=_JournalControl(self) if self.journal is not None else None,
            autoalloc=self.autoalloc, overviews=self._ask_overviews))
        record = self.access = boot.access
        self.start_date = boot.start_date
        self.instance_dir = boot.instance_dir
        client_key = serverdir.key_bytes(record["client"])
        worker_key = serverdir.key_bytes(record["worker"])
        try:
            async with trio.open_nursery() as nursery:
                if self.journal is not None:
                    self.journal.on_durable = self._on_journal_durable
                    # A journal that cannot be written stops the server (cleanly: below).
                    self.journal.on_failure = lambda _error: self.stop()
                    self._after_restore()
                    self.journal.append([ServerStart(self.start_date,
                                                     self.core.server_uid).to_record()])
                    self.flush()
                    nursery.start_soon(self.journal.run)
                    await self.journal.flush()
                else:
                    self.event_log.append(ServerStart(self.start_date, self.core.server_uid))
                listen_scope = trio.CancelScope()
                nursery.start_soon(self._serve, listen_scope, client_listeners, worker_listeners,
                                   client_key, worker_key)
                nursery.start_soon(self._dispatcher)
                nursery.start_soon(self._housekeeping)
                await nursery.start(self._signals)  # stop signals are ours from here on
                for service in self._services:
                    await nursery.start(service.run, self)
                nursery.start_soon(self.autoalloc.run)
                task_status.started(self.info())
                await self.stop_event.wait()
                log.info("Stopping server")
                with trio.move_on_after(10):
                    await self.autoalloc.shutdown()
                listen_scope.cancel()
                self._links_gone = trio.Event()
                for link in list(self.links.values()):
                    await _close_quietly(link.conn)
                if self.links:
                    with trio.move_on_after(STOP_GRACE):
                        await self._links_gone.wait()
                if self.journal is not None:
                    self.flush()  # what the stop did (allocations cancelled) before its record
                    self.journal.append([ServerStop(time.time()).to_record()])
                    await self.journal.aclose(JOURNAL_CLOSE_TIMEOUT)
                nursery.cancel_scope.cancel()
        finally:
            serverdir.remove_current_link(self.root, self.instance_dir)

    # -- journal -------------------------------------------------------------------------------
    async def reported(self) -> None:
        """Returns once everything the core's state reflects now is on disk: call it after
        computing an answer that reveals state and before sending it. The events of reactions
        not flushed yet are appended first; one fsync serves every caller waiting at the same
        time (group commit), and none is needed when everything is already durable."""
        if self.journal is None:
            return
        self.flush()
        await self.journal.durable()

    async def _history(self) -> tuple[list, int]:
        """Every durable event so far as records (the journal file's, or those of the
        in-memory log) and the journal position they end at (0 without a journal)."""
        if self.journal is None:
            return to_records(self.event_log), 0
        from ..journal.format import read_all

        self.flush()
        data, pos = await self.journal.read_durable()
        def expanded():  # (in the thread too: a large job's records are millions of events)
            records, _tail = read_all(data)
            # (batched `task-progress` records: shown as the per-task events they stand for)
            return [tuple(one) for r in records for one in expand_record(r)]

        return await trio.to_thread.run_sync(expanded), pos

    async def _stream_events(self, conn, live: bool) -> bool:
        """Serves a StreamEventsRequest: the history in EventsResponse chunks, then (live) an
        empty EventsResponse marking the live boundary and the live events; a replay ends with
        `done`. A lagged subscriber gets an ErrorResponse (within LAG_GRACE) and its connection
        is closed: returns False then (True: the connection can take more requests)."""
        async with self.subscribe(live=live) as sub:
            scope = trio.CancelScope()

            def lagged():  # a send blocked on this slow client gets LAG_GRACE to finish
                scope.deadline = min(scope.deadline, trio.current_time() + LAG_GRACE)

            sub.on_lag = lagged
            try:
                with scope:
                    async for item in sub:
                        if item is LIVE:
                            await conn.send(m.encode(m.EventsResponse([], False)))
                            continue
                        for i in range(0, len(item), 1000):
                            await conn.send(m.encode(m.EventsResponse(
                                [list(e) for e in item[i:i + 1000]], False)))
                    await conn.send(m.encode(m.EventsResponse([], True)))
                    return True
            except SubscriberLagged:
                pass
        # Lagged. After a send cut short the stream is unusable: just close it.
        if not scope.cancelled_caught:
            with trio.move_on_after(LAG_GRACE):
                await conn.send(m.encode(m.ErrorResponse(
                    f"The event stream was dropped: the client did not keep up (more than "
                    f"{sub.limit} events were waiting)")))
        log.warning("Event subscriber dropped: more than %d events were waiting", sub.limit)
        return False

    async def prune_journal(self) -> tuple[int, int]:
        """Drops the events of terminated jobs and of workers that are gone (and not needed to
        replay a live job) from the journal file; returns (kept, dropped).

        What is live is decided here, on the server's thread, with the journal locked and
        the outbox appended first: the file the rewrite reads ends exactly at that decision,
        and everything recorded later is kept (see `journal.prune`).

        Raises:
            ValueError: the journal could not be rewritten (it is unchanged).
        """
        from functools import partial

        from ..core.events import IdFloor
        from ..journal.format import JournalError
        from ..journal.prune import select_records

        core = self.core

        def snapshot():
            self.flush()
            live_jobs = frozenset(j.id for j in core.jobs.values() if not j.is_terminated)
            live_workers = frozenset(w.id for w in core.workers.values() if w.is_running)
            # Ids continue after these on restore, whatever the prune drops.
            floor = IdFloor(time.time(), core.next_job_id - 1, max(core.workers, default=0))
            return partial(select_records, live_jobs=live_jobs, live_workers=live_workers,
                           id_floor=floor)

        try:
            return await self.journal.rewrite(snapshot)
        except (OSError, JournalError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            log.warning("Journal prune failed: %s", reason)
            raise ValueError(f"Cannot prune the journal: {reason}") from None

    def _after_restore(self) -> None:
        """Workers of the previous server run: those that can reconnect get a grace period
        (scheduling waits for them); the others are gone, and their tasks will rerun."""
        core, now = self.core, time.time()
        core.record_events = True
        for w in list(core.workers.values()):
            if not w.is_running:
                continue
            if w.config.on_server_lost == "reconnect":
                core.awaiting[w.id] = now + (w.config.reconnect_timeout or 0)
            else:
                reactor.lose_worker(core, self.outbox, w, WorkerState.CONNECTION_LOST, now,
                                    count_crash=False)
        if core.awaiting:
            log.info("Waiting for %d workers of the previous run to reconnect",
                     len(core.awaiting))

    def _on_journal_durable(self, pos: int) -> None:
        """Confirms to each worker the task results that are now on disk, and hands the events
        that are now on disk to the live event streams."""
        pending = self.undurable_events
        while pending and pending[0][0] <= pos:
            end, events = pending.popleft()
            for sub in self.subscribers:
                if sub.after is not None and end > sub.after:
                    sub.push(events)
        for link in self.links.values():
            confirm = None
            while link.stamps and link.stamps[0][0] <= pos:
                confirm = link.stamps.pop(0)[1]
            if confirm is not None:
                link.push(m.encode(m.ConfirmResults(confirm)))

    def stop(self) -> None:
        self.stop_event.set()

    def info(self) -> dict:
        return self.boot.info()

    async def _signals(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as sigs:
            task_status.started()
            if self.early_signals:  # received while starting (see `hq server start`)
                self.stop()
                return
            async for _ in sigs:
                self.stop()
                return

    async def _serve(self, scope, client_listeners, worker_listeners, client_key, worker_key):
        ports = (_Port("client"), _Port("worker"))
        with scope:
            async with trio.open_nursery() as nursery:
                for listener in client_listeners:
                    nursery.start_soon(self._accept_loop, nursery, listener, ports[0],
                                       self._client_connection, client_key, ports)
                for listener in worker_listeners:
                    nursery.start_soon(self._accept_loop, nursery, listener, ports[1],
                                       self._worker_connection, worker_key, ports)
                while True:  # summaries of rate-limited log lines
                    await trio.sleep(1.0)
                    for port in ports:
                        port.log.flush()

    async def _accept_loop(self, nursery, listener, port: _Port, handler, key, ports) -> None:
        """Accepts connections forever; each one runs under `_supervise`. Accept errors (out
        of descriptors, ...) are logged rate-limited and retried after a short back-off."""
        while True:
            try:
                stream = await listener.accept()
            except trio.ClosedResourceError:
                return
            except OSError as e:
                port.log.warning("Cannot accept a connection on the %s port: %s", port.kind,
                                 e.strerror or e)
                # Out of descriptors: close the oldest unauthenticated connections (of any
                # port) so that queued real peers get in; back off if there are none.
                if e.errno in (errno.EMFILE, errno.ENFILE) and _evict_some(ports):
                    await trio.sleep(0.005)  # let the evicted ones close their sockets
                else:
                    await trio.sleep(ACCEPT_BACKOFF)
                continue
            nursery.start_soon(self._supervise, port, handler, stream, key)

    async def _supervise(self, port: _Port, handler, stream, key) -> None:
        """Runs one connection: whatever it raises closes this connection only, with one
        (rate-limited) log line, and a traceback at DEBUG for an unexpected error."""
        conn = _ConnState(_peer_name(stream), port)
        try:
            await handler(stream, key, conn)
        except Exception as e:  # noqa: BLE001 - the supervisor; Cancelled etc. pass through
            leaves = _leaves(e)
            if conn.evicted:
                port.log.warning("%s connection from %s closed: too many unauthenticated "
                                 "connections on the %s port (at most %d)", port.title,
                                 conn.peer, port.kind, port.limit)
            elif all(isinstance(x, _EXPECTED) for x in leaves):
                port.log.warning("%s: %s", conn.label(), _reasons(leaves, False))
            else:
                port.log.warning("%s: closed after an unexpected error: %s", conn.label(),
                                 _reasons(leaves, True))
                log.debug("Traceback of the error on %s", conn.label(), exc_info=e)
        finally:
            port.done(conn)
            with trio.CancelScope(shield=True), trio.move_on_after(0.5):
                await _close_quietly(stream)

    # -- the core's pulse ----------------------------------------------------------------------
    def kick(self) -> None:
        """Something changed: run the scheduler and flush the outbox soon (coalesced)."""
        self.wakeup.set()

    async def _dispatcher(self) -> None:
        last = 0.0
        while True:
            await self.wakeup.wait()
            # Let every connection that has data process it first: one pass for all of them;
            # under a stream of updates, at most one pass per DISPATCH_COALESCE.
            wait = last + DISPATCH_COALESCE - trio.current_time()
            await trio.sleep(wait if wait > 0 else 0)
            self.wakeup = trio.Event()
            self.flush()
            last = trio.current_time()

    def flush(self) -> None:
        core, outbox = self.core, self.outbox
        if core.needs_schedule:
            scheduler.schedule(core, outbox, time.time())
            if self.autoalloc.registry.queues:
                self.autoalloc.poke()  # new ready tasks may be demand
        if outbox.is_empty():
            return
        for wid, tasks in outbox.compute.items():
            link = self.links.get(wid)
            if link is None:
                continue
            sent = link.worker.templates_sent
            templates = []
            wire_tasks = []
            for t in tasks:
                batch = t.batch
                tid = batch.template_id
                if tid not in sent:
                    sent.add(tid)
                    templates.append([tid, batch.template, batch.submit_dir])
                nodes = None
                if t.nodes is not None:
                    nodes = [n.config.hostname for n in t.nodes]
                wire_tasks.append([t.job.id, t.id, t.instance, tid, batch.entry_at(t.position),
                                   t.variant, nodes])
            link.push(m.encode(m.ComputeTasks(templates, wire_tasks)))
        for wid, refs in outbox.cancel.items():
            link = self.links.get(wid)
            if link is not None:
                link.push(m.encode(m.CancelTasks([list(r) for r in refs])))
        for wid, refs in outbox.retract.items():
            link = self.links.get(wid)
            if link is not None:
                link.push(m.encode(m.RetractTasks([list(r) for r in refs])))
        for wid, reserved in outbox.reserve.items():
            link = self.links.get(wid)
            if link is not None:
                link.push(m.encode(m.WorkerReserved(reserved)))
        for wid in outbox.stop_workers:
            link = self.links.get(wid)
            if link is not None:
                link.push(m.encode(m.StopWorkerCommand()))
        if outbox.changed_jobs and self.waits:
            self.waits.jobs_changed(outbox.changed_jobs)
        if self.journal is not None:
            if outbox.events:
                pos = self.journal.append(journal_records(outbox.events))
                if self.subscribers:
                    records = to_records(outbox.events)
                    # streamed once on disk (`_on_journal_durable`), and soon
                    self.undurable_events.append((pos, records))
                    self.journal.request_flush()
            else:
                pos = self.journal.appended
            for link in self.links.values():
                if link.seen_seq != link.stamped_seq:
                    link.stamped_seq = link.seen_seq
                    link.stamps.append((pos, link.seen_seq))
        else:
            if outbox.events and self.subscribers:
                records = to_records(outbox.events)
                for sub in self.subscribers:
                    sub.push(records)
            self.event_log.extend(outbox.events)
            for link in self.links.values():
                if link.seen_seq != link.stamped_seq:
                    link.stamped_seq = link.seen_seq
                    link.push(m.encode(m.ConfirmResults(link.seen_seq)))
        outbox.clear()

    async def _housekeeping(self) -> None:
        """Periodic checks that depend on the clock (idle workers)."""
        while True:
            await trio.sleep(0.5)
            now = time.time()
            if self.core.awaiting and reactor.expire_awaited_workers(self.core, self.outbox,
                                                                     now):
                self.kick()
            for link in list(self.links.values()):
                w = link.worker
                timeout = w.config.idle_timeout or self.idle_timeout
                if (timeout and w.is_running and not w.stopping and not w.tasks
                        and w.mn_task is None and w.idle_since is not None and now - w.idle_since >= timeout):
                    link.stop_reason = WorkerState.IDLE_TIMEOUT
                    reactor.stop_worker(self.core, self.outbox, w)
                    self.kick()

    # -- workers ---------------------------------------------------------------------------------
    def _notify_services(self, what: str, *args) -> None:
        for service in self._services:
            try:
                getattr(service, what)(*args)
            except Exception:  # noqa: BLE001 - a subsystem's bug must not cost a worker
                log.error("Service %s failed in %s", type(service).__name__, what,
                          exc_info=True)

    async def _worker_connection(self, stream, key, state: _ConnState) -> None:
        peer = state.peer
        hs = Handshake(role="server", peer_role="worker", key=key, hq_version=__version__)
        with state.unauthenticated():  # handshake and registration: bounded time, capped
            conn = await perform_handshake(stream, hs, peer, PREAUTH_TIMEOUT)
            try:
                data = await conn.receive()
            except ConnectionClosed:
                raise ProtocolError("connection closed before the worker registered") from None
            msg = await decode_message(data, m.FROM_WORKER)
            if not isinstance(msg, m.RegisterWorker):
                raise ProtocolError(f"expected a worker registration, got {type(msg).__name__}")
        now = time.time()
        try:
            worker, rejected = reactor.register_worker(self.core, self.outbox, msg.config,
                                                       msg.previous, msg.running, msg.results,
                                                       now)
        except (ValueError, TypeError, AttributeError) as e:
            raise ProtocolError(f"registration rejected: {e}") from None
        link = WorkerLink(worker, conn)
        self.links[worker.id] = link
        self._notify_services("worker_connected", worker)
        state.what = f"Worker {worker.id} ({peer})"
        log.info("Worker %d %s from %s", worker.id,
                 "reconnected" if msg.previous else "registered", peer)
        self.autoalloc.worker_connected(worker)
        reason = WorkerState.CONNECTION_LOST
        try:
            if self.journal is not None:
                # A worker's arrival is rare and must survive a crash: wait for the disk.
                self.flush()
                await self.journal.durable()
            await conn.send(m.encode(m.WorkerRegistered(worker.id, self.core.server_uid,
                                                        self.idle_timeout, rejected)))
            self.kick()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._worker_writer, link)
                reason = await self._worker_reader(link)
                nursery.cancel_scope.cancel()
        finally:  # errors are logged by _supervise, once
            del self.links[worker.id]
            if not self.links and self._links_gone is not None:
                self._links_gone.set()
            if link.stop_reason is not None:
                reason = link.stop_reason
            elif worker.stopping:
                reason = WorkerState.STOPPED
            reactor.lose_worker(self.core, self.outbox, worker, reason, time.time())
            log.info("Worker %d lost: %s", worker.id, reason.label)
            self._notify_services("worker_lost", worker, reason)
            self.autoalloc.worker_lost(worker, reason)
            self.kick()
            with trio.CancelScope(shield=True), trio.move_on_after(0.5):
                await _close_quietly(conn)

    async def _worker_reader(self, link: WorkerLink) -> WorkerState:
        conn, worker = link.conn, link.worker
        grace = 2 * worker.config.heartbeat
        core, outbox = self.core, self.outbox
        while True:
            with trio.move_on_after(grace):
                try:
                    data = await conn.receive()
                except ConnectionClosed:
                    return WorkerState.CONNECTION_LOST
                msg = await decode_message(data, m.FROM_WORKER)
                if isinstance(msg, m.TaskUpdates):
                    reactor.task_updates(core, outbox, worker, msg.updates, time.time())
                    link.seen_seq = msg.seq
                    self.kick()
                elif isinstance(msg, m.TasksRetracted):
                    reactor.tasks_retracted(core, outbox, worker, msg.retracted, msg.refused)
                    self.kick()
                elif isinstance(msg, m.WorkerOverview):
                    if worker.config.overview_interval:  # asked for: persisted and streamed
                        outbox.events.append(WorkerOverview(time.time(), worker.id,
                                                            msg.hw_state))
                        self.kick()
                    else:  # asked for by a dashboard: streamed only (F56)
                        record = WorkerOverview(time.time(), worker.id,
                                                msg.hw_state).to_record()
                        for sub in self.subscribers:
                            if sub.after is not None:
                                sub.push([record])
                elif isinstance(msg, m.TaskNotify):
                    self._on_task_notify(worker, msg)
                elif isinstance(msg, m.WorkerStopping):
                    try:
                        link.stop_reason = WorkerState[msg.reason]
                    except KeyError:
                        raise ProtocolError(f"unknown stop reason {msg.reason!r}") from None
                elif not isinstance(msg, m.Heartbeat):
                    raise ProtocolError(f"unexpected {type(msg).__name__} from a worker")
                continue
            log.warning("Worker %d: no heartbeat for %.1f s", worker.id, grace)
            return WorkerState.HEARTBEAT_LOST

    def _ask_overviews(self, interval: float, lease: float) -> int:
        """Asks every connected worker for overviews (`OverviewsRequest`); returns how many."""
        payload = m.encode(m.SendOverviews(interval, lease))
        for link in self.links.values():
            link.push(payload)
        return len(self.links)

    def _on_task_notify(self, worker, msg: m.TaskNotify) -> None:
        """Hands a running task's notification to the clients waiting for its job (a slow
        client loses notifications beyond NOTIFY_BACKLOG, with a warning, never the server's
        time). Notifications of tasks not running on `worker` are ignored."""
        if not self.notify_listeners:
            return
        job = self.core.jobs.get(msg.job_id)
        task = job.tasks.get(msg.task_id) if job is not None else None
        if task is None or task.worker is not worker or task.instance != msg.instance:
            return
        note = m.TaskNotification(msg.job_id, msg.task_id, worker.id, msg.message)
        for ids, channel in self.notify_listeners:
            if msg.job_id in ids:
                try:
                    channel.send_nowait(note)
                except trio.WouldBlock:
                    log.warning("A client waiting for notifications does not keep up; "
                                "a notification of task %d@%d was dropped", msg.job_id,
                                msg.task_id)
                except trio.BrokenResourceError:
                    pass

    async def _wait_with_notifications(self, conn, req: m.WaitNotifyRequest) -> None:
        """Serves a WaitNotifyRequest: TaskNotifications while the jobs run, in arrival
        order, then the JobsResponse of the wait (after every notification that came first)."""
        from ..common.selectors import Selector, missing_to_wire
        from ..core import views

        found, missing = Selector.from_wire(req.selector).select(self.core.jobs)
        send, receive = trio.open_memory_channel(NOTIFY_BACKLOG)
        listener = (set(found), send)
        self.notify_listeners.append(listener)
        try:
            async with trio.open_nursery() as nursery:
                async def wait_then_mark():
                    await self.waits.wait(found, req.without_close)
                    await self.reported()
                    await send.send(None)  # after every notification that came before

                nursery.start_soon(wait_then_mark)
                async for note in receive:
                    if note is None:
                        break
                    await conn.send(m.encode(note))
                nursery.cancel_scope.cancel()
        finally:
            self.notify_listeners.remove(listener)
        jobs = self.core.jobs
        out = [views.job_info(jobs[j]) for j in found if j in jobs]
        await conn.send(m.encode(m.JobsResponse(out, missing_to_wire(missing))))

    async def _worker_writer(self, link: WorkerLink) -> None:
        while True:
            await link.wakeup.wait()
            link.wakeup = trio.Event()
            batch, link.pending = link.pending, []
            if batch:
                await link.conn.send_many(batch)

    # -- clients ---------------------------------------------------------------------------------
    async def _client_connection(self, stream, key, state: _ConnState) -> None:
        hs = Handshake(role="hq-server", peer_role="hq-client", key=key, hq_version=__version__)
        with state.unauthenticated():
            conn = await perform_handshake(stream, hs, state.peer, PREAUTH_TIMEOUT)
        state.what = f"Client {state.peer}"
        try:
            while True:
                try:
                    data = await conn.receive()
                except ConnectionClosed:
                    return
                try:
                    request = await decode_message(data, m.FROM_CLIENT)
                except ProtocolError as e:
                    # The frame was sealed and authentic, only its message is invalid: tell the
                    # client why (bounded text, no peer value) before closing the connection.
                    with trio.move_on_after(1.0):
                        try:
                            await conn.send(m.encode(m.ErrorResponse(f"Invalid request: {e}")))
                        except _EXPECTED:
                            pass
                    raise
                if isinstance(request, m.StreamEventsRequest):
                    if not await self._stream_events(conn, request.live):
                        return
                    continue
                if isinstance(request, m.WaitNotifyRequest):
                    await self._wait_with_notifications(conn, request)
                    continue
                response = await self._requests.handle(request)
                await conn.send(m.encode(response))
                if isinstance(request, m.StopServerRequest):
                    self.stop()
        finally:  # errors are logged by _supervise, once
            with trio.CancelScope(shield=True), trio.move_on_after(0.5):
                await _close_quietly(conn)


# -- connection supervision ---------------------------------------------------------------------
MAX_UNAUTHENTICATED = 256  # per port; beyond it the oldest unauthenticated one is closed
PREAUTH_TIMEOUT = 5.0  # seconds a peer has to authenticate (and a worker to register)
ACCEPT_BACKOFF = 0.1  # seconds an accept loop waits after an accept error (e.g. EMFILE)

# What a misbehaving or vanishing peer normally causes: one line, no traceback.
_EXPECTED = (ProtocolError, ConnectionClosed, trio.BrokenResourceError,
             trio.ClosedResourceError, OSError)


class _Port:
    """Bookkeeping of one listening port: its unauthenticated connections (at most `limit`;
    a new one evicts the oldest, so a flood of idle connections cannot lock real peers out)
    and its rate-limited log."""

    def __init__(self, kind: str, limit: int = MAX_UNAUTHENTICATED):
        self.kind = kind
        self.title = kind.capitalize()
        self.limit = limit
        self.pending: dict[int, _ConnState] = {}  # insertion order: oldest first
        self.log = RateLimitedLog(log, f"{kind} port")

    def admit(self, state: _ConnState) -> None:
        while len(self.pending) >= self.limit:
            self.evict_oldest()
        self.pending[id(state)] = state

    def evict_oldest(self) -> None:
        if self.pending:
            state = self.pending.pop(next(iter(self.pending)))
            state.evicted = True
            state.scope.cancel()

    def done(self, state: _ConnState) -> None:
        self.pending.pop(id(state), None)


class _ConnState:
    """One supervised connection: its peer, and the log label for its stage."""

    __slots__ = ("peer", "port", "scope", "evicted", "what")

    def __init__(self, peer: str, port: _Port):
        self.peer = peer
        self.port = port
        self.scope = trio.CancelScope()
        self.evicted = False
        self.what: str | None = None  # set once authenticated, e.g. "Client 1.2.3.4:5"

    def label(self) -> str:
        return self.what or f"{self.port.title} connection from {self.peer} rejected"

    @contextlib.contextmanager
    def unauthenticated(self):
        """The pre-authentication stage: counted against the port's cap (eviction cancels it)."""
        self.port.admit(self)
        # The handshake has its own (same) timeout with a clearer message; this one also
        # bounds a worker's registration.
        self.scope.deadline = trio.current_time() + PREAUTH_TIMEOUT + 0.5
        try:
            with self.scope:
                yield
        finally:
            self.port.done(self)
        if self.scope.cancelled_caught:
            if self.evicted:
                raise ProtocolError("evicted")  # logged by _supervise
            raise ProtocolError(f"not authenticated within {PREAUTH_TIMEOUT:g} s")


def _evict_some(ports, n: int = 16) -> int:
    """Evicts up to `n` unauthenticated connections, oldest first from the fullest port."""
    evicted = 0
    while evicted < n:
        port = max(ports, key=lambda p: len(p.pending))
        if not port.pending:
            break
        port.evict_oldest()
        evicted += 1
    return evicted


def _leaves(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in _leaves(sub)]
    return [e]


def _reasons(errors: list[BaseException], with_type: bool) -> str:
    parts = [describe(e, with_type) for e in errors[:3]]
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more")
    return "; ".join(parts)


class _JournalControl:
    """The journal operations a client may request (`RequestContext.journal`)."""

    __slots__ = ("server",)

    def __init__(self, server: Server):
        self.server = server

    async def flush(self) -> None:
        self.server.flush()
        await self.server.journal.durable()

    async def prune(self) -> tuple[int, int]:
        return await self.server.prune_journal()


def _peer_name(stream) -> str:
    try:
        addr = stream.socket.getpeername()
        return f"{addr[0]}:{addr[1]}"
    except Exception:
        return "<unknown peer>"


async def _close_quietly(closable) -> None:
    try:
        await closable.aclose()
    except Exception:
        pass
