"""The worker process: connect and register, then run what the server assigns.

Shape:
    Worker.run
      connect (retry with backoff, re-reading the access record each time), handshake, register
      nursery: reader (assignments, cancels, stop), writer (batched task updates + heartbeats),
               one child task per running task, lifetime watchdog (idle timeout, time limit)
"""

from __future__ import annotations

import heapq
from functools import partial
import logging
import os
import signal
import threading
from collections import deque
from collections.abc import Awaitable, Callable

import trio

from ..common import gctune, serverdir
from ..common.hqpath import hq_executable
from ..common.waits import sleep as clamped_sleep
from ..common.rlimit import raise_open_file_limit
from ..core.model import WorkerConfig
from ..core.updates import UPDATE_FAILED, UPDATE_FINISHED, UPDATE_RUNNING
from ..errors import HqError, UnsafeAccess
from ..protocol import messages as m
from ..protocol.errors import ConnectionClosed, HandshakeError, ProtocolError, describe
from ..protocol.handshake import Handshake
from ..transport.connection import Connection, decode_message, open_connection
from ..version import __version__
from .allocator import Allocation, Allocator
from .runner import KILL_GRACE, Runner, TaskRun, TaskSpec
from .spawner import Spawner

log = logging.getLogger("hq.worker")

CONNECT_ATTEMPTS = 20
DEFAULT_RECONNECT_TIMEOUT = 300.0
NEVER_FITS = "The task's resource request can never be satisfied on this worker"
WRITE_COALESCE = 0.02  # seconds (see _writer)
NOTIFY_REQUEST_LIMIT = 16 * 1024  # bytes of one local notification request
RETRACT_CHECK_INTERVAL = 30.0  # seconds (`worker start --retract-check-interval`)
LOST_FINISH = -1
LOST_RECONNECT = -2


class WorkerExit(Exception):
    def __init__(self, code: int, message: str | None = None):
        super().__init__(message or "")
        self.code = code
        self.message = message


class Worker:
    """Args:
        root: the server directory (its access record is read on every connection attempt).
        connect: `await connect(host, port, handshake)` opens an authenticated connection to
            the server (default: TCP); tests pass one over memory streams.
    """

    def __init__(self, root: str, config: WorkerConfig, *, zero_spawn: bool = False,
                 connect_attempts: int = CONNECT_ATTEMPTS,
                 connect: Callable[[str, int, Handshake], Awaitable[Connection]] = open_connection,
                 retract_check_interval: float = RETRACT_CHECK_INTERVAL):
        self.root = root
        self.retract_check_interval = retract_check_interval
        self.config = config
        self.zero_spawn = zero_spawn  # benchmarking aid: complete tasks without a process
        self.zero_spawn_done = 0  # tasks it completed (logged once, at exit)
        self.connect_attempts = connect_attempts
        self.open_connection = connect
        self.allocator = Allocator(config.resources, config.coupling)
        self.templates: dict[int, tuple] = {}
        # Assigned tasks waiting for resources here, one heap per distinct request (so a
        # completion tries each kind of request once, not every queued task).
        self.queue = LocalQueue()
        self.running: dict[tuple[int, int], TaskRun] = {}
        self.updates: list = []
        # Spawner threads chain from a finished task into the next one (see spawner.py), so
        # the queue, the allocator, `running`, `updates` and `accepting` are shared with them.
        self.lock = threading.Lock()
        self.writer_idle = False  # the writer waits for `wakeup_writer`; threads must wake it
        self.token = None
        self.unconfirmed: deque = deque()  # (seq, results) not yet confirmed durable
        self.carried: list = []  # results taken out of `updates` for a re-registration
        self.seq = 0
        self.wakeup_writer = trio.Event()
        self.conn = None
        self.send_error: BaseException | None = None  # why a send on `conn` failed
        self.worker_id: int | None = None
        self.server_uid = ""
        self.idle_timeout = config.idle_timeout
        # Times are read from trio's clock (spawner threads too, through `self.clock`), so a
        # test's MockClock drives the idle timeout, the time limit and the reconnect deadline.
        self.clock: trio.abc.Clock | None = None
        self.idle_since = 0.0
        self.started_at = 0.0
        # A secondary node of a multi-node task (the server says so): runs nothing, not idle.
        self.reserved = False
        # Overviews a dashboard asked for (`SendOverviews`): interval, end (trio time), loop on
        self.asked_overviews: tuple[float, float] | None = None
        self.session = None
        # Set (and dropped) by the next task end while someone waits in `_wait_running`.
        self.task_ended: trio.Event | None = None
        self.runner: Runner | None = None
        self.accepting = True
        self.nursery = None
        self.spawner: Spawner | None = None
        self.notify_path = ""
        self.notify_token = ""

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> int:
        """Runs until stopped; returns the process exit code.

        `task_status.started(worker_id)` once registered.
        """
        raise_open_file_limit()
        gctune.tune()
        self.clock = trio.lowlevel.current_clock()
        self.idle_since = self.started_at = trio.current_time()
        self.token = trio.lowlevel.current_trio_token()
        await self._connect(deadline=None)
        self.runner = Runner(work_dir=self.config.work_dir, hq_path=hq_executable(),
                             server_uid=self.server_uid, worker_id=self.worker_id)
        if not self.zero_spawn:
            self.runner.start_reaper()
        notify_listener = await self._open_notify_socket()
        task_status.started(self.worker_id)
        code = 1
        self.spawner = Spawner(self._after_run)
        try:
            async with trio.open_nursery() as outer:
                self.nursery = outer
                outer.start_soon(self._watchdog)
                if notify_listener is not None:
                    outer.start_soon(partial(trio.serve_listeners, self._serve_notify,
                                             [notify_listener], handler_nursery=outer))
                while True:
                    async with trio.open_nursery() as session:
                        self.session = session
                        session.start_soon(self._writer)
                        session.start_soon(self._heartbeats)
                        if self.config.overview_interval:
                            session.start_soon(self._overviews)
                        if self.config.time_limit is not None and \
                                self.retract_check_interval > 0:
                            session.start_soon(self._retract_checks)
                        code = await self._reader()
                        session.cancel_scope.cancel()
                    if code == LOST_RECONNECT:
                        if await self._reconnect():
                            continue
                        code = 1
                    elif code == LOST_FINISH:  # drain running tasks, then exit 1
                        with self.lock:
                            self.accepting = False
                            self.queue.clear()
                        await self._wait_running(lambda: not self.running)
                        code = 1
                    break
                outer.cancel_scope.cancel()
        except* WorkerExit as eg:
            code = eg.exceptions[0].code
        finally:
            with self.lock:
                self.accepting = False  # no thread chains into another task from now on
            if self.zero_spawn:  # one line at exit: how the benchmarks see the spread
                log.info("Zero-spawn: %d tasks completed", self.zero_spawn_done)
            # Shielded (a cancelled worker still stops its tasks), bounded by _kill_running's
            # KILL_GRACE; the connection close below has its own deadline.
            with trio.CancelScope(shield=True):
                await self._kill_running()
            self.spawner.close()
            self.runner.stop_reaper()
            self.runner.close_streams()
            self.runner.close_pyrunners()
            if notify_listener is not None:
                _unlink_quietly(self.notify_path)
            if self.conn is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(0.5):
                    try:
                        await self.conn.aclose()
                    except Exception:
                        pass
        return code

    # -- task notifications (`hq task notify`) ----------------------------------------------
    async def _open_notify_socket(self):
        """A Unix socket for the tasks' notifications: `$TMPDIR/hq-lc-<8 random>`, announced
        to every task as `HQ_ACCESS_KEY=<path>:<token>`. None (no notifications) if it cannot
        be created."""
        import secrets
        import string
        import tempfile

        alphabet = string.ascii_letters + string.digits
        rnd = "".join(secrets.choice(alphabet) for _ in range(8))
        path = os.path.join(tempfile.gettempdir(), f"hq-lc-{rnd}")
        self.notify_token = "hq0-" + "".join(secrets.choice(alphabet) for _ in range(8))
        try:
            sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
            await sock.bind(path)
            os.chmod(path, 0o600)
            sock.listen(64)
        except OSError as e:
            log.warning("Task notifications are not available: cannot create %s: %s", path, e)
            return None
        self.notify_path = path
        self.runner.access_key = f"{path}:{self.notify_token}"
        return trio.SocketListener(sock)

    async def _serve_notify(self, stream) -> None:
        """One `hq task notify`: a JSON request `{"token", "job", "task", "instance",
        "message"}` (bounded size and time); the answer is `ok` or an error text."""
        import json

        reply = b"ok"
        try:
            with trio.move_on_after(5):
                data = b""
                while len(data) <= NOTIFY_REQUEST_LIMIT:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    data += chunk
                try:
                    req = json.loads(data) if len(data) <= NOTIFY_REQUEST_LIMIT else None
                    ok = (isinstance(req, dict) and req.get("token") == self.notify_token)
                    key = (req["job"], req["task"]) if ok else None
                    message = req["message"].encode() if ok else b""
                except (ValueError, KeyError, TypeError, AttributeError):
                    ok = False
                run = self.running.get(key) if ok else None
                if not ok:
                    reply = b"Invalid notification request"
                elif len(message) > m.MAX_NOTIFY_MESSAGE:
                    reply = b"Notify message limit exceeded"
                elif run is None or run.spec.instance != req.get("instance"):
                    reply = b"The task is not running on this worker"
                elif not await self._send(m.encode(m.TaskNotify(key[0], key[1],
                                                                run.spec.instance, message))):
                    reply = b"The worker is not connected to the server"
                await stream.send_all(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(0.5):
                await stream.aclose()

    async def _kill_running(self) -> None:
        """Stops every running task (SIGINT, SIGKILL after the grace period). Bounded."""
        with self.lock:
            runs = list(self.running.values())
        started = [run for run in runs if run.cancel() is not None]
        if not started:
            return
        with trio.move_on_after(KILL_GRACE):
            await self._wait_running(lambda: not self.running)
        for run in started:
            run.kill()  # a no-op for runs that ended (their group was killed at the end)

    async def _wait_running(self, done: Callable[[], bool]) -> None:
        """Waits until `done()` (evaluated under the lock) holds; it is evaluated again each
        time a task ends. Costs a task end nothing while nobody waits."""
        while True:
            with self.lock:
                if done():
                    return
                if self.task_ended is None:
                    self.task_ended = trio.Event()
                ended = self.task_ended
            await ended.wait()

    # -- connection -------------------------------------------------------------------------
    async def _connect(self, deadline: float | None, previous=None) -> None:
        """Connects, authenticates and registers (retrying with backoff; the access record is
        read again on every attempt, so a restarted server is found).

        Raises:
            HqError: wrong key, or no server within the attempts/deadline.
        """
        delay = 0.2
        last_error = None
        attempt = 0
        where = ""  # " at host:port" once the access record was read
        while True:
            attempt += 1
            try:
                _record, section = serverdir.load_access(self.root, "worker")
                where = f" at {section['host']}:{section['port']}"
                hs = Handshake(role="worker", peer_role="server",
                               key=serverdir.key_bytes(section), hq_version=__version__)
                conn = await self.open_connection(section["host"], section["port"], hs)
                with self.lock:
                    running, results = self._resume_state() if previous else ([], [])
                await conn.send(m.encode(m.RegisterWorker(self.config, previous, running,
                                                          results)))
                reply = await decode_message(await conn.receive(), m.TO_WORKER,
                                             f"the server at {conn.peer}")
                if not isinstance(reply, m.WorkerRegistered):
                    raise ProtocolError("unexpected reply to the registration")
                break
            except (HandshakeError, UnsafeAccess) as e:
                raise HqError(f"Cannot connect to the server{where}: {e}") from None
            except (HqError, OSError, ConnectionClosed, ProtocolError,
                    trio.BrokenResourceError) as e:
                last_error = e
                out_of_time = (trio.current_time() + delay > deadline if deadline is not None
                               else attempt >= self.connect_attempts)
                if out_of_time:
                    raise HqError(f"Cannot connect to the server{where}: {last_error}") from None
                log.info("Cannot connect to the server%s (%s); retrying in %.1f s", where, e,
                         delay)
                await trio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except Exception as e:  # whatever a rogue server causes: a clear error, no traceback
                log.debug("Traceback of the connection error", exc_info=True)
                raise HqError(f"Cannot connect to the server: unexpected {describe(e)}") from None
        self.conn = conn
        self.send_error = None
        self.worker_id = reply.worker_id
        if self.runner is not None:
            self.runner.worker_id = reply.worker_id
        self.server_uid = reply.server_uid
        self.seq = 0
        if self.reserved:  # a new registration: the server says again if it still holds
            self.reserved = False
            self.idle_since = trio.current_time()
        if self.idle_timeout is None:
            self.idle_timeout = reply.idle_timeout
        if previous:
            # Everything kept was handed over in the registration.
            self.unconfirmed.clear()
            self.carried = []
            for job, task, instance in reply.rejected:
                log.info("Task %d@%d is not wanted any more; killing it", job, task)
                self._cancel((job, task), instance)

    def _resume_state(self):
        """What a reconnecting worker reports: running tasks and unconfirmed results. Lock held.

        Results still in `updates` move to `carried` in the same step as `running` is read, so
        a task that ends meanwhile is either reported here or (not running any more at this
        point) sent as a normal update after the registration, never lost between the two."""
        self.carried += [u for u in self.updates if u[0] != UPDATE_RUNNING]
        self.updates = []
        running = [[r.spec.job_id, r.spec.task_id, r.spec.instance, r.spec.variant]
                   for r in self.running.values() if not r.canceled]
        results = [u for _seq, batch in self.unconfirmed for u in batch] + self.carried
        return running, results

    async def _reconnect(self) -> bool:
        """After losing the server with the `reconnect` policy: keeps tasks running and tries
        to register again until the reconnect timeout. Returns False when it gave up."""
        previous = [self.server_uid, self.worker_id]
        with self.lock:
            self.queue.clear()  # not started yet: the server will hand them out again
        timeout = self.config.reconnect_timeout or DEFAULT_RECONNECT_TIMEOUT
        log.info("Trying to reconnect to the server for %.0f s", timeout)
        try:
            await self._connect(deadline=trio.current_time() + timeout, previous=previous)
        except HqError as e:
            log.error("%s", e)
            return False
        log.info("Reconnected to the server as worker %d", self.worker_id)
        return True

    async def _reader(self) -> int:
        """Handles server messages; returns the exit code or a LOST_* action."""
        while True:
            try:
                msg = await decode_message(await self.conn.receive(), m.TO_WORKER,
                                           f"the server at {self.conn.peer}")
            except (ConnectionClosed, ProtocolError, OSError, trio.BrokenResourceError,
                    trio.ClosedResourceError) as e:
                log.error("Connection to the server lost: %s", self.send_error or e or "closed")
                return self._on_lost()
            try:
                if isinstance(msg, m.ComputeTasks):
                    self._on_compute(msg)
                elif isinstance(msg, m.ConfirmResults):
                    unconfirmed = self.unconfirmed
                    while unconfirmed and unconfirmed[0][0] <= msg.seq:
                        unconfirmed.popleft()
                elif isinstance(msg, m.RetractTasks):
                    retracted, refused = [], []
                    with self.lock:
                        for job, task, instance in msg.tasks:
                            if self.queue.remove((job, task), instance):
                                retracted.append([job, task, instance])
                            else:
                                refused.append([job, task, instance])
                    await self.conn.send(m.encode(m.TasksRetracted(retracted, refused)))
                elif isinstance(msg, m.WorkerReserved):
                    if self.reserved and not msg.reserved:
                        self.idle_since = trio.current_time()
                    self.reserved = msg.reserved
                elif isinstance(msg, m.CancelTasks):
                    for job, task, instance in msg.tasks:
                        self._cancel((job, task), instance)
                elif isinstance(msg, m.StopWorkerCommand):
                    log.info("Stopped by the server")
                    return 0
                elif isinstance(msg, m.SendOverviews) and not self.config.overview_interval:
                    running = self.asked_overviews is not None
                    self.asked_overviews = (msg.interval, trio.current_time() + msg.lease)
                    if not running and self.session is not None:
                        self.session.start_soon(self._asked_overviews)
            except Exception as e:  # a message the worker cannot act on: drop the connection
                log.error("Connection to the server lost: cannot handle its message: %s",
                          describe(e))
                log.debug("Traceback of the error", exc_info=True)
                return self._on_lost()

    def _on_lost(self) -> int:
        policy = self.config.on_server_lost
        if policy == "finish-running":
            return LOST_FINISH
        if policy == "reconnect":
            return LOST_RECONNECT
        return 1

    def _on_compute(self, msg: m.ComputeTasks) -> None:
        for tid, template, submit_dir in msg.templates:
            self.templates[tid] = (template, submit_dir)
        templates = self.templates
        can_ever_fit = self.allocator.can_ever_fit
        fits: dict = {}  # (template id, variant) -> can ever fit (one check per request)
        with self.lock:
            if self.zero_spawn and self.accepting and not self.queue:
                self._zero_spawn_complete(msg.tasks, fits)
                return
            push = self.queue.push
            for job, task, instance, tid, entry, variant, nodes in msg.tasks:
                template, submit_dir = templates[tid]
                spec = TaskSpec(job, task, instance, template, submit_dir, entry, variant, nodes)
                fit = fits.get((tid, variant))
                if fit is None:
                    fit = fits[tid, variant] = can_ever_fit(spec.request)
                if nodes is None and not fit:
                    # The server counts amounts; only the worker knows the exact indices.
                    self.updates.append([UPDATE_FAILED, job, task, instance, NEVER_FITS])
                    continue
                push(spec)
        self._start_ready()

    def _zero_spawn_complete(self, tasks: list, fits: dict) -> None:
        """Zero-spawn, nothing queued: every assigned task completes on the spot. Nothing ever
        runs on such a worker, so a task that can ever fit fits now: only its FINISHED update
        is recorded (the server starts a task on its result, as when the RUNNING update of a
        task is dropped with its result in the same report), without a queue entry, an
        allocation or a run. Lock held."""
        templates = self.templates
        can_ever_fit = self.allocator.can_ever_fit
        append = self.updates.append
        failed = 0
        for job, task, instance, tid, _entry, variant, nodes in tasks:
            fit = fits.get((tid, variant))
            if fit is None:
                fit = fits[tid, variant] = can_ever_fit(templates[tid][0].requests[variant])
            if nodes is None and not fit:
                append([UPDATE_FAILED, job, task, instance, NEVER_FITS])
                failed += 1
            else:
                append([UPDATE_FINISHED, job, task, instance, None])
        self.zero_spawn_done += len(tasks) - failed
        self.idle_since = self.clock.current_time()
        self.writer_idle = False
        self.wakeup_writer.set()

    def _start_ready(self) -> None:
        """Starts what fits now (trio thread); zero-spawn runs complete on the spot."""
        if self.zero_spawn:
            while True:
                with self.lock:
                    started = self._take_startable()
                    for run in started:
                        self._finish(run)
                    self.zero_spawn_done += len(started)
                if not started:
                    break
        else:
            with self.lock:
                started = self._take_startable()
            for run in started:
                self.spawner.submit(run)
        self._wake_writer()

    def _take_startable(self) -> list[TaskRun]:
        """Pops the queued tasks that fit now and marks them running. Lock held."""
        if not self.queue or not self.accepting:
            return []
        started = []
        updates = self.updates
        running = self.running
        runner = self.runner
        for spec, alloc in self.queue.pop_startable(self.allocator):
            updates.append([UPDATE_RUNNING, spec.job_id, spec.task_id, spec.instance, None])
            run = TaskRun(runner, spec, alloc)
            running[spec.key] = run
            started.append(run)
        return started

    def _finish(self, run: TaskRun) -> None:
        """Records the end of `run` and frees its resources. Lock held."""
        spec = run.spec
        self.allocator.release(run.allocation)
        if self.running.get(spec.key) is run:
            del self.running[spec.key]
        if not run.canceled:
            if run.error is None:
                self.updates.append([UPDATE_FINISHED, spec.job_id, spec.task_id, spec.instance,
                                     None])
            else:
                self.updates.append([UPDATE_FAILED, spec.job_id, spec.task_id, spec.instance,
                                     run.error])
        ended = self.task_ended
        if ended is not None:  # someone waits in _wait_running (from any thread: trio sets it)
            self.task_ended = None
            try:
                self.token.run_sync_soon(ended.set)
            except RuntimeError:  # the event loop has ended
                pass
        if not self.running and not self.queue:
            self.idle_since = self.clock.current_time()

    def _after_run(self, run: TaskRun) -> TaskRun | None:
        """Spawner thread, once `run` ended: records it and returns the next task that fits
        (others that fit too go to other threads), or None."""
        with self.lock:
            self._finish(run)
            started = self._take_startable()
            wake = self.writer_idle
            self.writer_idle = False
        for extra in started[1:]:
            self.spawner.submit(extra)
        if wake:
            try:
                self.token.run_sync_soon(self._wake_writer)
            except RuntimeError:  # the event loop has ended (worker shutting down)
                pass
        return started[0] if started else None

    def _wake_writer(self) -> None:
        """Trio thread: lets the writer send what is in `updates`."""
        with self.lock:
            self.writer_idle = False
        self.wakeup_writer.set()

    def _cancel(self, key, instance) -> None:
        with self.lock:
            run = self.running.get(key)
            if run is None or run.spec.instance != instance:
                self.queue.remove(key, instance)
                return
        pid = run.cancel()
        if pid is not None:
            self.nursery.start_soon(self._escalate, run, pid)

    async def _escalate(self, run: TaskRun, pid: int) -> None:
        """SIGKILL to the task's process group once its main process ended or the grace
        period passed: members that ignored the SIGINT do not outlive a cancel."""
        with trio.move_on_after(KILL_GRACE):
            await self._wait_running(lambda: self.running.get(run.spec.key) is not run)
        run.kill()  # a no-op if it ended meanwhile (the runner killed the group then)

    async def _writer(self) -> None:
        last = 0.0
        while True:
            with self.lock:
                idle = not self.updates
                if idle:
                    self.wakeup_writer = trio.Event()
                    self.writer_idle = True
            if idle:
                await self.wakeup_writer.wait()
            # Under a stream of completions, at most one message per WRITE_COALESCE (fewer
            # frames, syscalls and wake-ups on both sides); an idle worker answers at once.
            wait = last + WRITE_COALESCE - trio.current_time()
            await trio.sleep(wait if wait > 0 else 0)
            last = trio.current_time()
            with self.lock:
                batch, self.updates = self.updates, []
            if batch:
                batch = _without_redundant_starts(batch)
                self.seq += 1
                results = [u for u in batch if u[0] != UPDATE_RUNNING]
                if results:
                    # Kept until the server confirms them durable (resent after a reconnect).
                    self.unconfirmed.append((self.seq, results))
                if not await self._send(m.encode(m.TaskUpdates(self.seq, batch))):
                    return

    async def _heartbeats(self) -> None:
        payload = m.encode(m.Heartbeat())
        while True:
            await clamped_sleep(self.config.heartbeat)
            if not await self._send(payload):
                return

    async def _overviews(self) -> None:
        """A hardware overview every `overview_interval` (the first one after one interval)."""
        from .hwmonitor import for_resources

        monitor = for_resources(r.name for r in self.config.resources)
        while True:
            await clamped_sleep(self.config.overview_interval)
            state = await trio.to_thread.run_sync(monitor.sample)
            if not await self._send(m.encode(m.WorkerOverview(state))):
                return

    async def _asked_overviews(self) -> None:
        """Overviews a dashboard asked for, until its lease ends (not renewed)."""
        from .hwmonitor import for_resources

        monitor = for_resources(r.name for r in self.config.resources)
        try:
            while self.asked_overviews is not None:
                interval, until = self.asked_overviews
                if trio.current_time() >= until:
                    return
                await clamped_sleep(interval)
                state = await trio.to_thread.run_sync(monitor.sample)
                if not await self._send(m.encode(m.WorkerOverview(state))):
                    return
        finally:
            self.asked_overviews = None

    async def _retract_checks(self) -> None:
        """Every `retract_check_interval`: queued (prefilled, not started) tasks whose
        minimal time request exceeds the worker's remaining lifetime are given back to the
        server, which schedules them elsewhere (it never assigns a request to a worker with
        less time left than the request's minimum). Running tasks are not affected."""
        limit = self.config.time_limit
        while True:
            await clamped_sleep(self.retract_check_interval)
            remaining = self.started_at + limit - trio.current_time()
            with self.lock:
                specs = [e[-1] for heap in self.queue.heaps.values() for e in heap
                         if e[-1].request.min_time and e[-1].request.min_time > remaining]
                for spec in specs:
                    self.queue.remove(spec.key, spec.instance)
            if specs:
                log.debug("Rejecting %d queued tasks: their time request exceeds the "
                          "remaining lifetime", len(specs))
                refs = [[s.job_id, s.task_id, s.instance] for s in specs]
                if not await self._send(m.encode(m.TasksRetracted(refs, []))):
                    return

    async def _send(self, payload: bytes) -> bool:
        """Sends on the current connection (writer and heartbeats). A failed send means the
        server is gone: the connection is closed, so the reader stops with the lost-server
        policy (the reader alone decides what a loss means), and False is returned."""
        try:
            await self.conn.send(payload)
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            self.send_error = self.send_error or e
            with trio.move_on_after(0.5):
                try:
                    await self.conn.aclose()
                except Exception:
                    pass
            return False

    async def _watchdog(self) -> None:
        started = self.started_at
        limit = self.config.time_limit
        while True:
            await trio.sleep(0.25)
            now = trio.current_time()
            if limit is not None and now - started >= limit:
                log.info("Worker time limit reached")
                await self._say_stopping("TIME_LIMIT_REACHED")
                raise WorkerExit(0)
            if (self.idle_timeout and not self.running and not self.queue
                    and not self.reserved and now - self.idle_since >= self.idle_timeout):
                log.info("Idle timeout reached")
                await self._say_stopping("IDLE_TIMEOUT")
                raise WorkerExit(0)

    async def _say_stopping(self, reason: str) -> None:
        with trio.move_on_after(1.0):
            try:
                await self.conn.send(m.encode(m.WorkerStopping(reason)))
            except Exception:
                pass


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def run_until_signal(worker: Worker, *, signals=STOP_SIGNALS,
                           task_status=trio.TASK_STATUS_IGNORED) -> int:
    """Runs `worker` until it ends (its exit code) or one of `signals` arrives: then its
    tasks are stopped, the connection is closed and the exit code is 0 (a graceful stop).

    `task_status.started(worker_id)` once registered (the signals are watched by then)."""
    result = {}
    with trio.open_signal_receiver(*signals) as received:
        async with trio.open_nursery() as nursery:
            async def watch_signals():
                async for _ in received:
                    result["signal"] = True
                    nursery.cancel_scope.cancel()
                    return

            async def run_worker():
                result["code"] = await worker.run(task_status=task_status)
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_signals)
            nursery.start_soon(run_worker)
    if result.get("signal"):
        return 0
    return result.get("code", 1)


def _without_redundant_starts(batch: list) -> list:
    """Drops the RUNNING update of a task whose result is in the same batch: the server
    starts a task on its result anyway (same events), and under a stream of short tasks this
    halves what both sides encode, decode and apply."""
    if not any(u[0] == UPDATE_RUNNING for u in batch):
        return batch
    ended = {(u[1], u[2], u[3]) for u in batch if u[0] != UPDATE_RUNNING}
    if not ended:
        return batch
    return [u for u in batch if u[0] != UPDATE_RUNNING or (u[1], u[2], u[3]) not in ended]


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class LocalQueue:
    """Tasks assigned to this worker that wait for resources: heaps by request, priority first."""

    def __init__(self):
        self.heaps: dict = {}  # ResourceRequest -> heap of (-priority, job, task, seq, spec)
        self.seq = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def push(self, spec: TaskSpec) -> None:
        t = spec.template
        request = spec.request
        heap = self.heaps.get(request)
        if heap is None:
            heap = self.heaps[request] = []
        self.seq += 1
        heapq.heappush(heap, (-t.priority, spec.job_id, spec.task_id, self.seq, spec))
        self.size += 1

    def pop_startable(self, allocator):
        """Yields `(spec, allocation)` for every queued task that fits now, best first.

        Strict priority (F58): once a task that could run here waits for resources, a task of
        a lower priority starts only in the gap, i.e. if the waiting one's amounts would still
        be free beside it (`Allocator.fits_beside`)."""
        heaps = self.heaps
        # the server's order: priority, the request's weight (F59), job, task
        items = (list(heaps.items()) if len(heaps) == 1
                 else sorted(heaps.items(), key=lambda kv: (kv[1][0][0], -kv[0].weight,
                                                            kv[1][0][1], kv[1][0][2])))
        blocked = None  # amounts of waiting tasks of higher priority levels
        level = level_blocked = None  # the same for the level of `level`
        for request, heap in items:
            while heap:
                prio = heap[0][0]  # -priority
                if prio != level:
                    if level_blocked:
                        blocked = allocator.merge_need(blocked, level_blocked)
                    level, level_blocked = prio, None
                if request.n_nodes:  # the server reserved whole workers: nothing to split
                    alloc = Allocation()
                elif blocked is not None and not allocator.fits_beside(request, blocked):
                    alloc = None
                else:
                    alloc = allocator.try_allocate(request)
                if alloc is None:
                    if not request.n_nodes and allocator.can_ever_fit(request):
                        level_blocked = allocator.merge_need(level_blocked,
                                                             allocator.need_of(request))
                    break
                spec = heapq.heappop(heap)[-1]
                self.size -= 1
                yield spec, alloc
            if not heap:
                del self.heaps[request]

    def remove(self, key, instance) -> bool:
        """Drops a queued task; False if it is not queued here."""
        for request, heap in list(self.heaps.items()):
            kept = [e for e in heap if not (e[-1].key == key and e[-1].instance == instance)]
            if len(kept) != len(heap):
                self.size -= len(heap) - len(kept)
                heapq.heapify(kept)
                if kept:
                    self.heaps[request] = kept
                else:
                    del self.heaps[request]
                return True
        return False

    def clear(self) -> None:
        self.heaps.clear()
        self.size = 0
