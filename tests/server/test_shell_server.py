"""The server shell in-process (issue 11, item 6): the real server over in-memory streams, with
trio's MockClock (autojump): registration, heartbeat loss, graceful stop on each signal and on a
stop request, journal group commit and durable answers, a slow event subscriber."""

import os
import signal

import pytest
import trio
import trio.testing

from hyperqueue.common import serverdir
from hyperqueue.core.model import WorkerState
from hyperqueue.journal.format import read_all
from hyperqueue.protocol import messages as m
from hyperqueue.server.app import Service
from hyperqueue.server.requests import HANDLERS
from hyperqueue.server.subscriptions import LIVE
from hyperqueue.server.app import Server
from server_testkit import Harness, MemoryListener, running_server, submit_request, worker_states

pytestmark = [pytest.mark.trio, pytest.mark.timeout(20)]


class _Recorder(Service):
    def __init__(self):
        self.calls = []
        self.started = False

    async def run(self, server, *, task_status=trio.TASK_STATUS_IGNORED):
        self.started = True
        task_status.started()
        await trio.sleep_forever()

    def worker_connected(self, worker):
        self.calls.append(("connected", worker.id))

    def worker_lost(self, worker, reason):
        self.calls.append(("lost", worker.id, reason))


async def test_request_table_covers_every_client_request():
    kinds = {c for c in m._REGISTRY[m.FROM_CLIENT].values()}
    # streams, served by the connection: events (subscribe) and a wait with notifications
    assert kinds - set(HANDLERS) == {m.StreamEventsRequest, m.WaitNotifyRequest}


async def test_worker_registration_is_listed_and_told_to_services(tmp_path, autojump_clock):
    service = _Recorder()
    clients, workers = MemoryListener(), MemoryListener()
    server = Server(str(tmp_path / "c"), host="127.0.0.1", client_listeners=[clients],
                    worker_listeners=[workers])
    server.add_service(service)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        assert service.started
        h = Harness(server, clients, workers)
        w = await h.worker(heartbeat=1.0, hostname="node7")
        nursery.start_soon(w.beat)
        c = await h.client()
        resp = await c.ask(m.WorkerListRequest(False))
        assert [(x["id"], x["state"], x["configuration"]["hostname"]) for x in resp.workers] \
            == [(w.id, "RUNNING", "node7")]
        await trio.sleep(10)  # heartbeats keep it alive across many grace periods
        assert worker_states(await c.ask(m.WorkerListRequest(True))) == {w.id: "RUNNING"}
        assert service.calls == [("connected", w.id)]
        server.stop()
    assert service.calls[-1] == ("lost", w.id, WorkerState.CONNECTION_LOST)


async def test_heartbeat_loss(tmp_path, autojump_clock):
    async with running_server(tmp_path) as h:
        w = await h.worker(heartbeat=1.0)
        c = await h.client()
        start = trio.current_time()
        with trio.fail_after(5):
            await w.wait_closed()  # silent for 2 heartbeats: the server drops it
        assert 2.0 <= trio.current_time() - start < 3.0
        await trio.sleep(0.1)
        assert worker_states(await c.ask(m.WorkerListRequest(True))) == {w.id: "HEARTBEAT LOST"}
        assert worker_states(await c.ask(m.WorkerListRequest(False))) == {}


async def _stops(h, trigger) -> None:
    w = await h.worker()
    c = await h.client()
    await trigger(c)
    with trio.fail_after(3):
        await w.wait_closed()  # workers are told by closing their connection
        assert await c.closed()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
async def test_graceful_stop_on_signal(tmp_path, autojump_clock, sig):
    journal = str(tmp_path / "journal")
    async with running_server(tmp_path, journal_path=journal) as h:
        current = os.path.join(h.root, serverdir.CURRENT_LINK)
        assert os.path.lexists(current)

        async def trigger(_client):  # the server's signal receiver is open once it runs
            os.kill(os.getpid(), sig)

        with trio.fail_after(3):
            await _stops(h, trigger)
    assert not os.path.lexists(current)
    with open(journal, "rb") as f:
        records, tail = read_all(f.read())
    assert tail.clean and records[-1][1] == "server-stop"


async def test_graceful_stop_on_request(tmp_path, autojump_clock):
    async with running_server(tmp_path) as h:
        async def trigger(client):
            assert (await client.ask(m.StopServerRequest())).message == "Stopping server"

        await _stops(h, trigger)
    assert not os.path.lexists(os.path.join(h.root, serverdir.CURRENT_LINK))


async def test_group_commit_and_durable_answers(tmp_path, autojump_clock, inline_threads):
    """No answer leaves before the fsync covering it; one fsync serves a burst."""
    journal = str(tmp_path / "journal")
    async with running_server(tmp_path, journal_path=journal) as h:
        clients = [await h.client() for _ in range(5)]
        answers = {}

        async def submit(i, c):
            answers[i] = await c.ask(submit_request(name=f"j{i}"))
            with open(journal, "rb") as f:  # when the answer arrives, the job is on disk
                records, _ = read_all(f.read())
            assert answers[i].job_id in {r[2]["job"] for r in records if r[1] == "job-created"}

        inline_threads.held = trio.Event()
        before = inline_threads.fsyncs
        async with trio.open_nursery() as nursery:
            for i, c in enumerate(clients):
                nursery.start_soon(submit, i, c)
            await trio.sleep(5)  # the fsync is held: nothing is answered
            assert answers == {} and inline_threads.fsyncs == before + 1
            inline_threads.held.set()
        assert sorted(a.job_id for a in answers.values()) == [1, 2, 3, 4, 5]
        # the held fsync, then at most one for everything queued behind it
        assert inline_threads.fsyncs - before <= 2


async def test_slow_subscriber_is_dropped_with_lagged_error(tmp_path, autojump_clock):
    async with running_server(tmp_path, event_backlog=20) as h:
        slow = await h.client(capacity=1)  # back-pressure after one unread frame
        fast = await h.client()
        await slow.conn.send(m.encode(m.StreamEventsRequest(True)))
        history = await slow.receive()
        assert [e[1] for e in history.events] == ["server-start"]
        assert await slow.receive() == m.EventsResponse([], False)  # the live boundary
        # `slow` stops reading; the server keeps serving everyone else at full speed
        start = trio.current_time()
        for i in range(30):
            resp = await fast.ask(submit_request(name=f"j{i}"))
            assert resp.job_id == i + 1
        assert trio.current_time() - start < 1.0
        # the slow one then reads what was sent before it fell behind, then the error
        seen = []
        while True:
            msg = await slow.receive()
            if isinstance(msg, m.ErrorResponse):
                break
            seen += msg.events
        assert "did not keep up (more than 20 events were waiting)" in msg.message
        assert len(seen) < 30 * 2
        assert await slow.closed()
        assert isinstance(await fast.ask(m.ServerInfoRequest()), m.ServerInfoResponse)


async def test_subscribe_api_history_marker_live(tmp_path, autojump_clock):
    journal = str(tmp_path / "journal")
    async with running_server(tmp_path, journal_path=journal) as h:
        job = await h.server.submit(submit_request())
        async with h.server.subscribe(live=True) as sub:
            items = []
            async for item in sub:
                items.append(item)
                if item is LIVE:
                    break
            kinds = [r[1] for chunk in items[:-1] for r in chunk]
            assert kinds[0] == "server-start" and "job-created" in kinds
            await h.server.request(m.CancelJobsRequest([[job, job, 1]], None))
            live = await sub.__anext__()
            assert "job-cancel" in [r[1] for r in live]
        async with h.server.subscribe(live=False) as sub:
            assert [r[1] for chunk in [c async for c in sub] for r in chunk] == kinds + [
                r[1] for r in live]
