"""The worker shell (`worker/app.py`) in-process, against a fake server over memory streams.

The fake server below speaks the real protocol with the project's own modules (handshake with
a key, sealed frames, the worker messages): it registers the worker, assigns tasks, confirms
results and vanishes when a test says so. The worker's `connect` argument opens the memory
stream to whichever fake server is "up" (the access record is still read from a real server
directory on every attempt).

Time is trio's `MockClock` with autojump: heartbeats, the idle timeout, the time limit and the
reconnect backoff run in virtual time. Tasks are zero-spawn (completed without a process) where
no task has to stay running; where one must, it is a real `sh` process held by a gate file the
test creates. While such a process runs, virtual time races ahead, so those tests never bound a
wait in virtual time (pytest-timeout bounds them) and assert nothing about virtual durations.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time

import pytest
import trio
import trio.testing

from hyperqueue.common import serverdir
from hyperqueue.core.model import ProgramDef, StdioDef, TaskTemplate, WorkerConfig
from hyperqueue.core.resources import ResourceDef, parse_resource_def
from hyperqueue.protocol import messages as m
from hyperqueue.protocol.errors import ConnectionClosed
from hyperqueue.protocol.handshake import ROLE_WORKER, ROLE_WORKER_SERVER, Handshake
from hyperqueue.transport.connection import perform_handshake
from hyperqueue.version import __version__
from hyperqueue.worker.app import (UPDATE_FINISHED, UPDATE_RUNNING, Worker,
                                   run_until_signal)

KEY = bytes(range(32))
JOB = 1

pytestmark = pytest.mark.timeout(30)


# -- the fake server ----------------------------------------------------------------------------


class FakeServer:
    """One server instance: `uid` and the worker id it gives. Like the real server, it adopts
    a reconnecting worker's running tasks only if the worker was registered at this uid (else
    it names them `rejected`, and the worker must kill them)."""

    def __init__(self, uid="srv001", worker_id=7, idle_timeout=None):
        self.uid = uid
        self.worker_id = worker_id
        self.idle_timeout = idle_timeout
        self.up = True
        self.conn = None
        self.registrations: list[m.RegisterWorker] = []
        self.received: list[tuple[float, m.Message]] = []  # (virtual time, message)
        self.closed_at: float | None = None  # when the worker closed its connection
        self._changed = trio.Event()

    async def serve(self, stream) -> None:
        hs = Handshake(role=ROLE_WORKER_SERVER, peer_role=ROLE_WORKER, key=KEY,
                       hq_version=__version__)
        conn = await perform_handshake(stream, hs, "worker")
        reg = m.decode(await conn.receive(), m.FROM_WORKER)
        assert isinstance(reg, m.RegisterWorker)
        adopt = reg.previous is not None and reg.previous[0] == self.uid
        rejected = [] if adopt else [r[:3] for r in reg.running]
        await conn.send(m.encode(m.WorkerRegistered(self.worker_id, self.uid, self.idle_timeout,
                                                    rejected)))
        self.conn = conn
        self.registrations.append(reg)
        self._notify()
        while True:
            try:
                msg = m.decode(await conn.receive(), m.FROM_WORKER)
            except (ConnectionClosed, trio.ClosedResourceError):
                if self.up:
                    self.closed_at = trio.current_time()
                self._notify()
                return
            self.received.append((trio.current_time(), msg))
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate):
        """Waits until `predicate()` is true (re-checked on every message); returns its value."""
        while not (value := predicate()):
            await self._changed.wait()
        return value

    async def send(self, msg: m.Message) -> None:
        await self.conn.send(m.encode(msg))

    async def vanish(self) -> None:
        """The server dies: the connection closes and nobody answers at its address."""
        self.up = False
        await self.conn.aclose()

    def messages(self, kind) -> list:
        return [msg for _t, msg in self.received if isinstance(msg, kind)]

    def updates(self) -> list:
        return [u for msg in self.messages(m.TaskUpdates) for u in msg.updates]

    def results(self) -> list:
        return [u for u in self.updates() if u[0] != UPDATE_RUNNING]

    def result_of(self, task: int):
        """The TaskUpdates message carrying task `task`'s result, or None."""
        for msg in self.messages(m.TaskUpdates):
            if any(u[0] != UPDATE_RUNNING and u[2] == task for u in msg.updates):
                return msg
        return None


class Network:
    """Where the worker's `connect` leads: the current server, if it is up."""

    def __init__(self, nursery, server: FakeServer | None):
        self.nursery = nursery
        self.server = server
        self.attempts = 0

    async def connect(self, host, port, handshake):
        self.attempts += 1
        server = self.server
        if server is None or not server.up:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        ours, theirs = trio.testing.memory_stream_pair()
        self.nursery.start_soon(server.serve, theirs)
        return await perform_handshake(ours, handshake, f"{host}:{port}")


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path):
    """A real server directory holding an access record with the worker key."""
    path = str(tmp_path / "server")
    serverdir.ensure_root(path)
    record = serverdir.generate_access("fake-host", 1, 2, "srv001")
    record["worker"]["secret_key"] = KEY.hex()
    serverdir.write_access_file(os.path.join(path, serverdir.ACCESS_FILE), record)
    return path


def config(tmp_path, **kw) -> WorkerConfig:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    kw.setdefault("heartbeat", 3600.0)
    return WorkerConfig("node-a", kw.pop("resources", [ResourceDef.range_of("cpus", 0, 1)]),
                        work_dir=str(work), **kw)


def template(*args) -> TaskTemplate:
    return TaskTemplate(ProgramDef(list(args), stdout=StdioDef(None), stderr=StdioDef(None)))


def compute(tasks, args=("true",), tid=1, submit_dir="/tmp") -> m.ComputeTasks:
    """Assigns task ids `tasks` of job JOB (instance 0, variant 0) with one template."""
    return m.ComputeTasks([[tid, template(*args), submit_dir]],
                          [[JOB, t, 0, tid, None, 0, None] for t in tasks])


GATED = ('echo $$ > "$0.pid"; while [ ! -e "$0" ]; do sleep 0.005; done; touch "$0.done"')


def gated(gate) -> tuple:
    """A task that runs until the file `gate` exists, then leaves `gate.done`."""
    return ("sh", "-c", GATED, str(gate))


REAL_WAIT = 10.0  # seconds of real time for a process to start or go (virtual time races)


async def task_pid(gate) -> int:
    """The pid of the gated task (written once it started; real time)."""
    path = f"{gate}.pid"
    deadline = time.monotonic() + REAL_WAIT
    while True:
        assert time.monotonic() < deadline, "the gated task did not start"
        try:
            with open(path) as f:
                text = f.read()
            if text.endswith("\n"):
                return int(text)
        except FileNotFoundError:
            pass
        await trio.to_thread.run_sync(time.sleep, 0.005)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def wait_gone(pid: int) -> None:
    """Waits (real time) until the process `pid` was reaped by the worker."""
    deadline = time.monotonic() + REAL_WAIT
    while not _gone(pid):
        assert time.monotonic() < deadline, f"task process {pid} still exists"
        await trio.to_thread.run_sync(time.sleep, 0.005)


async def start(nursery, worker: Worker, run=None) -> dict:
    """Starts `worker.run` (or `run(worker)`); returns a dict that gets "code" when it ends."""
    out = {"ended": trio.Event()}

    async def go(task_status=trio.TASK_STATUS_IGNORED):
        try:
            out["code"] = await (run or Worker.run)(worker, task_status=task_status)
        finally:
            out["ended"].set()

    out["started"] = await nursery.start(go)
    return out


# -- tests --------------------------------------------------------------------------------------


@pytest.mark.trio
async def test_registration_carries_the_config_and_a_stop_command_ends_the_worker(
        root, tmp_path, autojump_clock):
    cfg = config(tmp_path, group="g1", heartbeat=2.5, time_limit=3600.0,
                 on_server_lost="reconnect", reconnect_timeout=60.0,
                 resources=[ResourceDef.range_of("cpus", 0, 3),
                            parse_resource_def("fairy", "sum(1000)")])
    server = FakeServer(worker_id=42, idle_timeout=None)
    async with trio.open_nursery() as nursery:
        net = Network(nursery, server)
        worker = Worker(root, cfg, zero_spawn=True, connect=net.connect)
        run = await start(nursery, worker)
        assert run["started"] == 42 == worker.worker_id
        assert worker.server_uid == "srv001"
        [reg] = server.registrations
        assert (reg.previous, reg.running, reg.results) == (None, [], [])
        got = reg.config
        for field in ("hostname", "group", "heartbeat", "time_limit", "on_server_lost",
                      "reconnect_timeout", "work_dir"):
            assert getattr(got, field) == getattr(cfg, field), field
        assert [r.to_wire() for r in got.resources] == [r.to_wire() for r in cfg.resources]

        await server.send(m.StopWorkerCommand())
        await run["ended"].wait()
        nursery.cancel_scope.cancel()
    assert run["code"] == 0
    assert server.closed_at is not None  # the worker closed its connection


@pytest.mark.trio
async def test_heartbeats_at_the_configured_period(root, tmp_path, autojump_clock):
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        net = Network(nursery, server)
        worker = Worker(root, config(tmp_path, heartbeat=2.0), zero_spawn=True,
                        connect=net.connect)
        await start(nursery, worker)
        registered = trio.current_time()
        await trio.sleep(21.0)
        times = [t - registered for t, msg in server.received if isinstance(msg, m.Heartbeat)]
        nursery.cancel_scope.cancel()
    assert times == pytest.approx([2.0 * i for i in range(1, 11)])


@pytest.mark.trio
async def test_zero_spawn_results_are_batched_and_kept_until_confirmed(root, tmp_path,
                                                                        autojump_clock):
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        net = Network(nursery, server)
        worker = Worker(root, config(tmp_path), zero_spawn=True, connect=net.connect)
        await start(nursery, worker)
        await server.send(compute(range(5)))
        await server.wait_for(lambda: len(server.results()) == 5)
        assert sorted(u[2] for u in server.results()) == list(range(5))
        assert all(u[0] == UPDATE_FINISHED for u in server.results())
        seq = server.messages(m.TaskUpdates)[-1].seq
        assert len(worker.unconfirmed) == 1  # kept for a reconnect until confirmed
        await server.send(m.ConfirmResults(seq))
        await trio.testing.wait_all_tasks_blocked()
        assert len(worker.unconfirmed) == 0
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_zero_spawn_completes_a_batch_and_fails_what_can_never_fit(root, tmp_path,
                                                                         autojump_clock):
    """The zero-spawn fast path: tasks that can ever fit finish (a result only, no RUNNING
    update), in one report; a task asking for more CPUs than the worker has fails with the
    worker's message; the count of completed tasks is logged once at exit."""
    from hyperqueue.core.resources import (UNIT, ResourceRequest, ResourceRequestEntry)

    server = FakeServer()
    too_big = TaskTemplate(ProgramDef(["true"], stdout=StdioDef(None), stderr=StdioDef(None)),
                           ResourceRequest([ResourceRequestEntry("cpus", 4 * UNIT)]))
    async with trio.open_nursery() as nursery:
        net = Network(nursery, server)
        worker = Worker(root, config(tmp_path), zero_spawn=True, connect=net.connect)
        await start(nursery, worker)
        msg = compute(range(1, 1001))
        msg.templates.append([2, too_big, "/tmp"])
        msg.tasks.insert(500, [JOB, 5000, 0, 2, None, 0, None])
        await server.send(msg)
        await server.wait_for(lambda: len(server.results()) == 1001)
        results = {u[2]: u for u in server.results()}
        assert sorted(results) == list(range(1, 1001)) + [5000]
        assert all(results[t][0] == UPDATE_FINISHED for t in range(1, 1001))
        assert results[5000][0] != UPDATE_FINISHED
        assert "can never be satisfied" in results[5000][4]
        assert not [u for u in server.updates() if u[0] == UPDATE_RUNNING]
        assert len(server.messages(m.TaskUpdates)) == 1  # one report for the whole batch
        assert worker.zero_spawn_done == 1000
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_idle_timeout_counts_from_the_last_task_end(root, tmp_path, autojump_clock):
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        net = Network(nursery, server)
        worker = Worker(root, config(tmp_path, idle_timeout=5.0), zero_spawn=True,
                        connect=net.connect)
        run = await start(nursery, worker)
        registered = trio.current_time()
        await trio.sleep(3.0)
        await server.send(compute([0]))  # resets the idle time at t=3
        await run["ended"].wait()
        [(when, stopping)] = [(t, msg) for t, msg in server.received
                              if isinstance(msg, m.WorkerStopping)]
    assert run["code"] == 0
    assert stopping.reason == "IDLE_TIMEOUT"
    assert 8.0 <= when - registered <= 8.25 + 1e-9  # 5 s after the task, one watchdog tick


@pytest.mark.trio
async def test_idle_timeout_defaults_to_the_servers(root, tmp_path, autojump_clock):
    server = FakeServer(idle_timeout=4.0)
    async with trio.open_nursery() as nursery:
        net = Network(nursery, server)
        worker = Worker(root, config(tmp_path), zero_spawn=True, connect=net.connect)
        run = await start(nursery, worker)
        registered = trio.current_time()
        await run["ended"].wait()
        ended = trio.current_time()
    assert run["code"] == 0
    assert [msg.reason for msg in server.messages(m.WorkerStopping)] == ["IDLE_TIMEOUT"]
    assert 4.0 <= ended - registered <= 4.25 + 1e-9


@pytest.mark.trio
async def test_time_limit_stops_a_busy_worker(root, tmp_path, autojump_clock):
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        net = Network(nursery, server)
        worker = Worker(root, config(tmp_path, time_limit=10.0, idle_timeout=2.0),
                        zero_spawn=True, connect=net.connect)
        run = await start(nursery, worker)
        registered = trio.current_time()
        for task in range(7):  # never idle for 2 s: only the time limit can stop it
            await server.send(compute([task]))
            await trio.sleep(1.5)
        await run["ended"].wait()
        [(when, stopping)] = [(t, msg) for t, msg in server.received
                              if isinstance(msg, m.WorkerStopping)]
    assert run["code"] == 0
    assert stopping.reason == "TIME_LIMIT_REACHED"
    assert 10.0 <= when - registered <= 10.25 + 1e-9
    assert len(server.results()) == 7  # tasks assigned at 0, 1.5, ..., 9.0


# -- the server vanishes ------------------------------------------------------------------------


@pytest.mark.trio
async def test_server_lost_stop_kills_tasks_and_exits_1(root, tmp_path, autojump_clock,
                                                        caplog):
    gate = tmp_path / "gate"
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        net = Network(nursery, server)
        worker = Worker(root, config(tmp_path), connect=net.connect)
        run = await start(nursery, worker)
        await server.send(compute([0], gated(gate)))
        pid = await task_pid(gate)
        with caplog.at_level(logging.INFO, logger="hq.worker"):
            await server.vanish()
            await run["ended"].wait()
        await wait_gone(pid)
    assert run["code"] == 1
    assert "Connection to the server lost" in caplog.text
    assert net.attempts == 1  # the stop policy does not reconnect
    gate.touch()
    assert not (tmp_path / "gate.done").exists()  # killed, not finished


@pytest.mark.trio
async def test_server_lost_finish_running_lets_running_tasks_end_then_exits_1(
        root, tmp_path, autojump_clock):
    gate = tmp_path / "gate"
    queued = tmp_path / "queued"
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        net = Network(nursery, server)
        # one cpu: task 0 runs, task 1 waits in the worker's queue
        worker = Worker(root, config(tmp_path, on_server_lost="finish-running",
                                     resources=[ResourceDef.range_of("cpus", 0, 0)]),
                        connect=net.connect)
        run = await start(nursery, worker)
        await server.send(compute([0], gated(gate)))
        await server.send(compute([1], ("touch", str(queued)), tid=2))
        await task_pid(gate)
        await server.vanish()
        await trio.testing.wait_all_tasks_blocked()  # the worker noticed; the task still runs
        assert not run["ended"].is_set()
        gate.touch()
        await run["ended"].wait()
    assert run["code"] == 1
    assert (tmp_path / "gate.done").exists()  # the running task finished
    assert not queued.exists()  # the queued one never started
    assert net.attempts == 1


@pytest.mark.trio
async def test_server_lost_reconnect_resends_running_and_unconfirmed_only(
        root, tmp_path, autojump_clock):
    gate = tmp_path / "gate"
    first, second = FakeServer(), FakeServer()  # a restart: same server uid
    async with trio.open_nursery() as nursery:
        net = Network(nursery, first)
        worker = Worker(root, config(tmp_path, on_server_lost="reconnect"),
                        connect=net.connect)
        run = await start(nursery, worker)
        await first.send(compute([0], gated(gate)))
        await task_pid(gate)
        await first.send(compute([1]))
        confirmed = await first.wait_for(lambda: first.result_of(1))
        await first.send(m.ConfirmResults(confirmed.seq))
        await first.send(compute([2]))
        await first.wait_for(lambda: first.result_of(2))  # sent, never confirmed

        net.server = None  # nobody answers for a while: the worker retries
        await first.vanish()
        await trio.sleep(1.0)
        assert net.attempts >= 3 and not run["ended"].is_set()
        net.server = second
        [reg] = await second.wait_for(lambda: second.registrations)
        assert reg.previous == ["srv001", 7]
        assert reg.running == [[JOB, 0, 0, 0]]
        assert reg.results == [[UPDATE_FINISHED, JOB, 2, 0, None]]  # not task 1's
        assert worker.worker_id == 7

        gate.touch()  # the adopted task ends: its result goes to the new server
        update = await second.wait_for(lambda: second.result_of(0))
        assert update.seq == 1  # sequence numbers restart with the connection
        assert second.results() == [[UPDATE_FINISHED, JOB, 0, 0, None]]
        await second.send(m.StopWorkerCommand())
        await run["ended"].wait()
    assert run["code"] == 0
    assert (tmp_path / "gate.done").exists()
    assert first.results() == [[UPDATE_FINISHED, JOB, 1, 0, None],
                               [UPDATE_FINISHED, JOB, 2, 0, None]]


@pytest.mark.trio
async def test_reconnect_to_another_server_kills_the_tasks_it_rejects(root, tmp_path,
                                                                      autojump_clock):
    gate = tmp_path / "gate"
    first, other = FakeServer(), FakeServer(uid="other1", worker_id=1)
    async with trio.open_nursery() as nursery:
        net = Network(nursery, first)
        worker = Worker(root, config(tmp_path, on_server_lost="reconnect"),
                        connect=net.connect)
        run = await start(nursery, worker)
        await first.send(compute([0], gated(gate)))
        pid = await task_pid(gate)
        net.server = other
        await first.vanish()
        [reg] = await other.wait_for(lambda: other.registrations)
        assert reg.previous == ["srv001", 7] and reg.running == [[JOB, 0, 0, 0]]
        await wait_gone(pid)  # the new server did not adopt it: killed
        assert worker.worker_id == 1
        # the worker serves the new server
        await other.send(compute([5]))
        await other.wait_for(lambda: other.result_of(5))
        await other.send(m.StopWorkerCommand())
        await run["ended"].wait()
    assert run["code"] == 0
    gate.touch()
    assert not (tmp_path / "gate.done").exists()
    assert [u[2] for u in other.results()] == [5]  # nothing about the killed task


@pytest.mark.trio
async def test_reconnect_gives_up_after_the_reconnect_timeout(root, tmp_path, autojump_clock,
                                                              caplog):
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        net = Network(nursery, server)
        worker = Worker(root, config(tmp_path, on_server_lost="reconnect",
                                     reconnect_timeout=30.0),
                        zero_spawn=True, connect=net.connect)
        run = await start(nursery, worker)
        with caplog.at_level(logging.INFO, logger="hq.worker"):
            await server.vanish()
            lost = trio.current_time()
            await run["ended"].wait()
        gave_up = trio.current_time() - lost
    assert run["code"] == 1
    assert 28.0 <= gave_up <= 30.0
    assert "Cannot connect to the server at fake-host:2" in caplog.text


# -- graceful stop ------------------------------------------------------------------------------


@pytest.mark.trio
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_signal_stops_tasks_and_exits_0(root, tmp_path, autojump_clock, sig):
    gate = tmp_path / "gate"
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        net = Network(nursery, server)
        worker = Worker(root, config(tmp_path), connect=net.connect)
        # The signal receiver is open from before the registration until run_until_signal
        # returns, so the signal raised here never reaches pytest's own handlers.
        run = await start(nursery, worker, run_until_signal)
        assert run["started"] == 7
        await server.send(compute([0], gated(gate)))
        pid = await task_pid(gate)
        signal.raise_signal(sig)
        await run["ended"].wait()
        await wait_gone(pid)
        await server.wait_for(lambda: server.closed_at is not None)
    assert run["code"] == 0
    assert server.messages(m.WorkerStopping) == []  # the server sees the connection close
    gate.touch()
    assert not (tmp_path / "gate.done").exists()


@pytest.mark.trio
@pytest.mark.parametrize("policy", ["stop", "reconnect"])
async def test_a_send_to_a_vanished_server_counts_as_losing_it(root, tmp_path, autojump_clock,
                                                               policy):
    """The server dies just as a heartbeat goes out: the failed send is a lost server (the
    policy applies), not a crash of the worker."""
    first, second = FakeServer(), FakeServer()
    async with trio.open_nursery() as nursery:
        net = Network(nursery, first)
        worker = Worker(root, config(tmp_path, heartbeat=1.0, on_server_lost=policy),
                        zero_spawn=True, connect=net.connect)
        run = await start(nursery, worker)
        first.up = False
        await first.conn._stream.receive_stream.aclose()  # the worker's sends fail at once
        net.server = second
        if policy == "reconnect":
            await second.wait_for(lambda: second.registrations)
            await second.send(m.StopWorkerCommand())
        await run["ended"].wait()
    assert run["code"] == (1 if policy == "stop" else 0)


@pytest.mark.trio
async def test_a_reserved_worker_is_not_idle_until_released(root, tmp_path, autojump_clock):
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        net = Network(nursery, server)
        worker = Worker(root, config(tmp_path, idle_timeout=2.0), zero_spawn=True,
                        connect=net.connect)
        run = await start(nursery, worker)
        # F46/F77: a secondary node of a multi-node task is not idle until released
        await trio.sleep(1.0)
        await server.send(m.WorkerReserved(True))
        await trio.sleep(30.0)  # fifteen idle timeouts
        assert not run["ended"].is_set()
        assert not server.messages(m.WorkerStopping)
        await server.send(m.WorkerReserved(False))
        released = trio.current_time()
        await run["ended"].wait()
        [(when, stopping)] = [(t, msg) for t, msg in server.received
                              if isinstance(msg, m.WorkerStopping)]
    assert run["code"] == 0 and stopping.reason == "IDLE_TIMEOUT"
    assert 2.0 <= when - released <= 2.25 + 1e-9  # from the release, one watchdog tick
