"""An in-process server for tests: the real `Server` (real core, journal, handshakes and
encryption) served over in-memory streams through injected listeners, with fake peers that
speak the real protocol. Run under pytest-trio with `autojump_clock` (trio's MockClock with
autojump): waits that pass time take no real time."""

from __future__ import annotations

import math
from contextlib import asynccontextmanager

import trio

from hyperqueue.common import serverdir
from hyperqueue.core.model import WorkerConfig
from hyperqueue.core.resources import ResourceDef
from hyperqueue.protocol import messages as m
from hyperqueue.protocol.errors import ConnectionClosed
from hyperqueue.protocol.handshake import Handshake
from hyperqueue.server.app import Server
from hyperqueue.transport.connection import perform_handshake
from hyperqueue.version import __version__


class InlineThreads:
    """A stand-in for `trio.to_thread.run_sync` that runs the function inline. `held`: while
    it is set to an unset trio.Event, the journal's write+fsync waits for it (an fsync held
    by a slow disk); `fsyncs` counts the journal's write+fsync calls."""

    def __init__(self):
        self.held: trio.Event | None = None
        self.fsyncs = 0
        self.calls: list[str] = []  # names of the functions run

    async def run_sync(self, fn, *args, **_kwargs):
        from hyperqueue.journal import writer

        await trio.lowlevel.checkpoint()
        self.calls.append(getattr(fn, "__name__", repr(fn)))
        if fn is writer._write_all_fsync:
            self.fsyncs += 1
            if self.held is not None:
                await self.held.wait()
        return fn(*args)


class ChannelStream(trio.abc.Stream):
    """One end of an in-memory byte stream with back-pressure: at most `capacity` unread
    writes are buffered, then `send_all` blocks (like a full socket buffer)."""

    def __init__(self, send, receive):
        self._send, self._receive = send, receive
        self._buffer = b""

    async def send_all(self, data) -> None:
        if data:
            await self._send.send(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes=None) -> bytes:
        if not self._buffer:
            try:
                self._buffer = await self._receive.receive()
            except trio.EndOfChannel:
                return b""
        n = max_bytes or len(self._buffer)
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()


def stream_pair(capacity: int = 64) -> tuple[ChannelStream, ChannelStream]:
    a_send, b_receive = trio.open_memory_channel(capacity)
    b_send, a_receive = trio.open_memory_channel(capacity)
    return ChannelStream(a_send, a_receive), ChannelStream(b_send, b_receive)


class MemoryListener(trio.abc.Listener):
    """A listener whose connections are made by `connect()` in the same process."""

    def __init__(self):
        self._send, self._receive = trio.open_memory_channel(math.inf)

    async def accept(self):
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError from None

    async def aclose(self) -> None:
        await self._receive.aclose()

    async def connect(self, capacity: int = 64) -> ChannelStream:
        ours, theirs = stream_pair(capacity)
        await self._send.send(theirs)
        return ours


class Harness:
    def __init__(self, server: Server, clients: MemoryListener, workers: MemoryListener):
        self.server = server
        self.root = server.root
        self.clients = clients
        self.workers = workers

    async def _connect(self, listener, section: str, role: str, peer_role: str, capacity):
        _record, sec = serverdir.load_access(self.root, section)
        stream = await listener.connect(capacity)
        hs = Handshake(role=role, peer_role=peer_role, key=serverdir.key_bytes(sec),
                       hq_version=__version__)
        return await perform_handshake(stream, hs, "test peer", 5.0)

    async def client(self, capacity: int = 64) -> "Client":
        return Client(await self._connect(self.clients, "client", "hq-client", "hq-server",
                                          capacity))

    async def worker(self, heartbeat: float = 1.0, hostname: str = "fake") -> "FakeWorker":
        conn = await self._connect(self.workers, "worker", "worker", "server", 64)
        config = WorkerConfig(hostname, [ResourceDef.range_of("cpus", 0, 0)],
                              heartbeat=heartbeat)
        await conn.send(m.encode(m.RegisterWorker(config)))
        reply = m.decode(await conn.receive(), m.TO_WORKER)
        assert isinstance(reply, m.WorkerRegistered)
        return FakeWorker(conn, reply.worker_id, heartbeat)


class Client:
    def __init__(self, conn):
        self.conn = conn

    async def ask(self, req: m.Message) -> m.Message:
        await self.conn.send(m.encode(req))
        return await self.receive()

    async def receive(self) -> m.Message:
        return m.decode(await self.conn.receive(), m.TO_CLIENT)

    async def closed(self) -> bool:
        """Whether the server closed this connection (reads what is left first)."""
        try:
            while True:
                await self.conn.receive()
        except (ConnectionClosed, trio.BrokenResourceError):
            return True


class FakeWorker:
    """A registered worker that sends heartbeats only while `beating`."""

    def __init__(self, conn, worker_id: int, heartbeat: float):
        self.conn = conn
        self.id = worker_id
        self.heartbeat = heartbeat

    async def beat(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await trio.sleep(self.heartbeat / 2)
                await self.conn.send(m.encode(m.Heartbeat()))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the server closed the connection

    async def wait_closed(self) -> None:
        """Returns once the server closed the connection (drops anything it sends)."""
        try:
            while True:
                await self.conn.receive()
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            return


@asynccontextmanager
async def running_server(tmp_path, **kwargs):
    """A started server (`Harness`); stopped at exit (and `run` must return)."""
    clients, workers = MemoryListener(), MemoryListener()
    server = Server(str(tmp_path / "server"), host="127.0.0.1", client_listeners=[clients],
                    worker_listeners=[workers], **kwargs)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        yield Harness(server, clients, workers)
        server.stop()


def worker_states(resp: m.WorkersResponse) -> dict:
    return {w["id"]: w["state"] for w in resp.workers}


def submit_request(ids: str = "0-3", name: str = "job") -> m.SubmitRequest:
    from hyperqueue.core.model import ProgramDef, TaskTemplate

    template = TaskTemplate(ProgramDef(["sleep", "1"], cwd="%{SUBMIT_DIR}"), None)
    return m.SubmitRequest(name, None, "/submit", None, [[template, ids, None, []]])
