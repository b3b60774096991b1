"""`hyperqueue.AsyncClient`: the Python API's client operations as awaitables, over anyio (so
under asyncio and trio alike).

The connection is a small anyio shell around the sans-IO session driver (`protocol.session`:
the same handshake, frames and sealing as the blocking client and the trio transport); the
requests are the typed calls of `client.calls`, driven by `AsyncClient.call`.
Requests on one client are answered in order (a lock); waiting for jobs and following the event
stream use a connection of their own, so they never hold up other calls.
"""

from __future__ import annotations

import socket
from typing import Any, Dict, Optional, Sequence

import anyio

from ..errors import HqError, RequestFailed, ServerUnreachable
from ..protocol import messages as m
from ..protocol.cborshape import SCAN_THRESHOLD, check_frame
from ..protocol.errors import ConnectionClosed, HandshakeError, ProtocolError, describe
from ..protocol.handshake import Handshake
from ..protocol.session import CLOSED, ESTABLISHED, NEED_DATA, OPEN_IN_THREAD, LargeFrame, Session
from ..version import __version__
from . import calls

RECEIVE_CHUNK = 256 * 1024
CONNECT_TIMEOUT = 15.0


class _Connection:
    """One framed, sealed connection over an anyio byte stream: a shell over `Session`."""

    def __init__(self, stream, session: Session):
        self._stream = stream
        self._session = session
        self.peer = session.peer

    @classmethod
    async def open(cls, server_dir: str) -> "_Connection":
        from ..common import serverdir

        _record, section = serverdir.load_access(server_dir, "client")
        host, port = section["host"], section["port"]
        session = Session(Handshake(role="hq-client", peer_role="hq-server",
                                    key=serverdir.key_bytes(section), hq_version=__version__),
                          peer=f"{host}:{port}")
        stream = None
        try:
            with anyio.fail_after(CONNECT_TIMEOUT):
                try:
                    stream = await anyio.connect_tcp(host, port)
                except OSError:
                    if host != socket.gethostname():
                        raise
                    stream = await anyio.connect_tcp("localhost", port)
                await stream.send(session.start())
                while (event := session.next_event()) is not ESTABLISHED:
                    if event is NEED_DATA:
                        session.receive_data(await _receive_some(stream))
                    else:
                        await stream.send(event.data)  # a handshake reply
            return cls(stream, session)
        except BaseException as e:
            if stream is not None:
                await anyio.aclose_forcefully(stream)
            if isinstance(e, HandshakeError):
                raise HqError(f"Cannot connect to the server at {host}:{port}: {e}") from None
            if isinstance(e, (OSError, TimeoutError, ConnectionClosed, ProtocolError,
                              anyio.BrokenResourceError)):
                raise ServerUnreachable(
                    f"Access token found but HQ server {host}:{port} is unreachable",
                    "Is the server running? Start it with `hq server start`.") from None
            raise

    async def send(self, msg: m.Message) -> None:
        await self._stream.send(self._session.send(m.encode(msg)))

    async def receive(self) -> m.Message:
        session = self._session
        while (event := session.next_event(OPEN_IN_THREAD)) is NEED_DATA:
            session.receive_data(await _receive_some(self._stream))
        if event is CLOSED:
            raise ConnectionClosed(f"connection to {self.peer} closed")
        if type(event) is LargeFrame:  # decrypted in a thread, as the trio transport does
            event = await anyio.to_thread.run_sync(event.open)
        if len(event) > SCAN_THRESHOLD:  # in a thread: the caller's event loop keeps running
            await anyio.to_thread.run_sync(check_frame, event, f"the server at {self.peer}")
        return m.decode(event, m.TO_CLIENT)

    async def request(self, msg: m.Message, timeout: Optional[float]) -> m.Message:
        try:
            with anyio.fail_after(timeout):
                await self.send(msg)
                response = await self.receive()
        except TimeoutError:
            raise HqError(f"The server did not answer within {timeout} s") from None
        except (ConnectionClosed, OSError, anyio.BrokenResourceError,
                anyio.ClosedResourceError) as e:
            raise HqError(f"Connection to the server was lost: {e or 'closed'}") from None
        except ProtocolError as e:
            raise HqError(f"Protocol error: {e}") from None
        except Exception as e:  # whatever a rogue peer causes: an error, not a traceback
            raise HqError(f"Protocol error: unexpected {describe(e)}") from None
        if isinstance(response, m.ErrorResponse):
            raise RequestFailed(response.message)
        return response

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self._stream)


async def _receive_some(stream) -> bytes:
    """The next bytes of `stream`, b"" at its end (what `Session.receive_data` takes as EOF)."""
    try:
        return await stream.receive(RECEIVE_CHUNK)
    except anyio.EndOfStream:
        return b""


class AsyncClient:
    """The Python API's client as awaitables (anyio: asyncio or trio)::

        async with AsyncClient(server_dir) as client:
            submitted = await client.submit(job)
            await client.wait_for_jobs([submitted])

    `server_dir` and `python_env` as for `Client`. Nothing connects until the first call (or
    `async with`); `aclose()` closes the connection.
    """

    def __init__(self, server_dir=None, python_env=None):
        from ..common.serverdir import resolve_server_dir
        from ..task.function import PythonEnv

        self.server_dir = resolve_server_dir(None if server_dir is None else str(server_dir))
        self.python_env = python_env if python_env is not None else PythonEnv()
        self._conn: Optional[_Connection] = None
        self._lock = anyio.Lock()

    async def __aenter__(self) -> "AsyncClient":
        async with self._lock:
            await self._connection()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()

    async def _connection(self) -> _Connection:
        if self._conn is None:
            self._conn = await _Connection.open(self.server_dir)
        return self._conn

    async def call(self, call, timeout: Optional[float] = 60.0):
        """Drives a `client.calls` call: sends each request it yields and returns its result
        (`timeout` per request). A broken connection is dropped (the next call reconnects)."""
        async with self._lock:
            conn = await self._connection()
            try:
                request = next(call)
                while True:
                    request = call.send(await conn.request(request, timeout))
            except StopIteration as stop:
                return stop.value
            except RequestFailed:
                raise
            except HqError:
                self._conn = None
                await conn.aclose()
                raise

    # -- the operations of `Client` -----------------------------------------------------------

    async def submit(self, job):
        """Submits `job`; a `SubmittedJob` (the submit directory is the current directory)."""
        import os

        from ..job import SubmittedJob
        from .api import submit_request

        submit_dir = os.getcwd()
        request = submit_request(job, self, submit_dir)
        job_id = await self.call(calls.submit(request))
        return SubmittedJob(job=job, id=job_id, submit_dir=submit_dir)

    async def wait_for_jobs(self, jobs: Sequence, raise_on_error: bool = True) -> bool:
        """Waits until every job ends (on a connection of its own). True: every task finished;
        otherwise FailedJobsException, or False with `raise_on_error=False`."""
        from ..ffi.client import failed_job_ids, ids_selector
        from .api import FailedJobsException

        jobs = list(jobs)
        ids = [_job_id(j) for j in jobs]
        conn = await _Connection.open(self.server_dir)
        try:
            resp = await conn.request(m.WaitJobsRequest(ids_selector(ids), False), None)
        finally:
            await conn.aclose()
        failed = failed_job_ids(resp.jobs)
        if failed and raise_on_error:
            failed_tasks = await self._failed_tasks(failed)
            raise FailedJobsException(failed_tasks, {j.id: j.job for j in jobs
                                                     if hasattr(j, "job")})
        return not failed

    async def _failed_tasks(self, job_ids):
        from ..ffi.client import failure_map, ids_selector

        return failure_map(await self.call(calls.job_info(ids_selector(job_ids),
                                                          task_states=["failed"])))

    async def get_failed_tasks(self, job) -> Dict[int, Any]:
        """task id -> FailedTaskContext of the failed tasks of `job`."""
        job_id = _job_id(job)
        return (await self._failed_tasks([job_id])).get(job_id, {})

    async def job_info(self, job, *, tasks: bool = True) -> dict:
        """The job's details as `hq job info --output-mode json` shows them (with its tasks)."""
        from ..ffi.client import ids_selector

        job_id = _job_id(job)
        found = await self.call(calls.job_info(ids_selector([job_id]), tasks=tasks))
        if not found.jobs:
            raise HqError(f"Job {job_id} not found")
        return found.jobs[0]

    async def cancel(self, job, reason: Optional[str] = None) -> int:
        """Cancels the job's waiting and running tasks; returns how many were canceled."""
        from ..ffi.client import ids_selector

        job_id = _job_id(job)
        (row,) = await self.call(calls.cancel_jobs(ids_selector([job_id]), reason))
        if row[1] == "not-found":
            raise HqError(f"Job {job_id} not found")
        return row[2]

    async def forget(self, job) -> None:
        """Removes a completed job from the server (and its kept return values)."""
        from ..ffi.client import COMPLETED_STATES, forget_error, ids_selector
        from .api import drop_results

        job_id = _job_id(job)
        result = await self.call(calls.forget_jobs(ids_selector([job_id]), COMPLETED_STATES))
        if result.forgotten != 1:
            raise HqError(forget_error(job_id))
        drop_results(job)

    async def get_results(self, job) -> dict:
        """{task id: return value} of the finished function tasks of a `Job(keep_results=True)`."""
        from .api import load_results

        d = await self.job_info(job)
        finished = [t["id"] for t in d["tasks"] if t["state"] == "finished"]
        return await anyio.to_thread.run_sync(load_results, job, finished)

    def events(self, live: bool = True) -> "EventStream":
        """The server's events (`{"time": unix seconds, "type": ..., ...}`, as `hq journal
        stream` shows them) as an async iterator: the history, then (with `live`) new events
        as they happen. Use it as `async with client.events() as stream: async for e in stream`
        (or iterate it directly and `aclose()` it)."""
        return EventStream(self.server_dir, live)


class EventStream:
    """An async iterator over the server's event stream, on a connection of its own."""

    def __init__(self, server_dir: str, live: bool):
        self._server_dir = server_dir
        self._live = live
        self._conn: Optional[_Connection] = None
        self._pending: list = []
        self._done = False

    async def __aenter__(self) -> "EventStream":
        await self._open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def __aiter__(self) -> "EventStream":
        return self

    async def _open(self) -> None:
        if self._conn is None and not self._done:
            self._conn = await _Connection.open(self._server_dir)
            await self._conn.send(m.StreamEventsRequest(self._live))

    async def __anext__(self) -> dict:
        from ..core.events import to_public

        while not self._pending:
            if self._done:
                raise StopAsyncIteration
            await self._open()
            try:
                resp = await self._conn.receive()
            except (ConnectionClosed, ProtocolError, OSError, anyio.BrokenResourceError) as e:
                await self.aclose()
                raise HqError(f"Connection to the server was lost: {e or 'closed'}") from None
            if isinstance(resp, m.ErrorResponse):
                await self.aclose()
                raise RequestFailed(resp.message)
            if not isinstance(resp, m.EventsResponse):
                await self.aclose()
                raise HqError(f"Protocol error: unexpected {type(resp).__name__}")
            self._pending = [{"time": r[0], **to_public(r)} for r in resp.events]
            if resp.done:
                self._done = True
                await self._close_conn()
        return self._pending.pop(0)

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()

    async def aclose(self) -> None:
        self._done = True
        self._pending = []
        await self._close_conn()


def _job_id(job) -> int:
    from ..job import get_job_id

    return get_job_id(job)
