"""A rogue server that holds the keys: it completes real handshakes (the project's own protocol
code, keys from its access.json) and then sends a 64 MiB frame of empty arrays, which cbor2 would
decode to ~4 GB in ~25 s. The client and the worker refuse it after the shape check
(`cborshape.check_frame`): `hq job list` exits 1 at once with an error naming the server's
address, with a bounded peak memory; a worker treats it as a lost connection (its
--on-server-lost policy applies) and logs one line.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hyperqueue.common import serverdir
from hyperqueue.protocol import messages as m
from hyperqueue.protocol.framing import MAX_FRAME, encode_frames
from hyperqueue.protocol.handshake import Handshake
from hyperqueue.version import __version__

from hqenv import wait_until
from rogue import make_server_dir, sealed_messages

HOSTILE = b"\x9f" + b"\x80" * (MAX_FRAME - 64) + b"\xff"  # one indefinite array of empty ones
REFUSED = "refused: message has more than 262144 arrays and maps"
MAX_RSS_KB = 1_000_000


class RogueServer:
    """Listens on 127.0.0.1 (client and worker port) under a server directory of its own.

    Each client connection: handshake, read the request, send the hostile frame. Worker
    connections: handshake, read the registration, answer it; the first `hostile_workers`
    registrations then get the hostile frame, later ones stay connected (a worker that
    reconnects is served)."""

    def __init__(self, tmp_path: Path, hostile_workers: int = 1, payload: bytes = HOSTILE):
        self.payload = payload
        self.socks = {p: socket.create_server(("127.0.0.1", 0)) for p in ("client", "worker")}
        ports = {p: s.getsockname()[1] for p, s in self.socks.items()}
        self.root = str(tmp_path / "rogue")
        access = make_server_dir(self.root, ports["client"], ports["worker"])
        self.address = {p: f"127.0.0.1:{port}" for p, port in ports.items()}
        self.keys = {p: serverdir.key_bytes(access[p]) for p in ports}
        self.hostile_workers = hostile_workers
        self.registrations: list[m.RegisterWorker] = []
        self.hostile_sent = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, args=(p,), daemon=True)
                        for p in ports]
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)
        for s in self.socks.values():
            s.close()

    def _accept(self, port: str) -> None:
        lsock = self.socks[port]
        lsock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                c, _ = lsock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(port, c), daemon=True).start()

    def _serve(self, port: str, c: socket.socket) -> None:
        role, peer_role = ("hq-server", "hq-client") if port == "client" else ("server", "worker")
        hs = Handshake(role=role, peer_role=peer_role, key=self.keys[port],
                       hq_version=__version__)
        with c:
            try:
                c.settimeout(10)
                first = next(sealed_messages(c, hs), None)  # the request / registration
                if first is None:
                    return
                ch = hs.channel
                hostile = True
                if port == "worker":
                    reg = m.decode(first, m.FROM_WORKER)
                    self.registrations.append(reg)
                    hostile = len(self.registrations) <= self.hostile_workers
                    c.sendall(encode_frames([ch.seal(m.encode(
                        m.WorkerRegistered(7, "rogue-uid", None, [])))]))
                if hostile:
                    c.sendall(encode_frames([ch.seal(self.payload)]))
                    self.hostile_sent += 1
                while not self.stop.is_set():  # until the peer hangs up
                    try:
                        if not c.recv(65536):
                            return
                    except TimeoutError:
                        continue
            except OSError:
                pass


@pytest.fixture
def rogue(tmp_path):
    server = RogueServer(tmp_path)
    yield server
    server.close()


def _run_measured(hq_env, args: list[str], timeout: float = 60):
    """Runs `hq --server-dir ROOT args` and returns (exit code, stderr, seconds, peak RSS in kB)
    of that process alone (`os.wait4`)."""
    err_path = hq_env.root / f"client-{time.monotonic_ns()}.err"
    started = time.monotonic()
    with open(err_path, "wb") as err:
        p = subprocess.Popen([*hq_env.hq, *args], stdout=subprocess.DEVNULL, stderr=err,
                             cwd=hq_env.work_dir, env=hq_env.env)
    try:
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            assert time.monotonic() < deadline, "the client did not end"
            time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if p.returncode is None:
            p.kill()
            p.wait()
    return p.returncode, err_path.read_text(), time.monotonic() - started, usage.ru_maxrss


@pytest.mark.timeout(60)
def test_client_refuses_a_huge_frame_of_tiny_containers(hq_env, rogue):
    code, err, took, rss_kb = _run_measured(hq_env, ["--server-dir", rogue.root, "job", "list"])
    assert code == 1, err
    assert err.startswith("Error: ") and "Traceback" not in err, err
    assert f"the server at {rogue.address['client']} {REFUSED}" in err, err
    assert err.count("\n") <= 2, err
    assert rogue.hostile_sent == 1
    assert took < 15, took
    assert rss_kb < MAX_RSS_KB, f"client peak memory {rss_kb} kB"


def _peak_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("VmHWM:")))


@pytest.mark.timeout(60)
def test_worker_with_stop_policy_ends_on_the_frame(hq_env, rogue):
    w = hq_env.start_worker("--on-server-lost", "stop", server_dir=rogue.root, wait=False)
    wait_until(lambda: rogue.hostile_sent == 1, 20, 0.05, "hostile frame sent")
    peak = 0

    def ended():
        nonlocal peak
        if w.poll() is not None:
            return True
        try:
            peak = max(peak, _peak_kb(w.pid))
        except (OSError, StopIteration):
            pass
        return False

    wait_until(ended, 20, 0.02, "worker exit")
    assert w.wait(5) == 1
    err = w.stderr()
    assert "Traceback" not in err, err
    lost = [line for line in err.splitlines() if "Connection to the server lost" in line]
    assert len(lost) == 1, err
    assert f"message from the server at {rogue.address['worker']} {REFUSED}" in lost[0], err
    assert peak < MAX_RSS_KB, f"worker peak memory {peak} kB"


@pytest.mark.timeout(60)
def test_worker_with_reconnect_policy_reconnects_after_the_frame(hq_env, rogue):
    w = hq_env.start_worker("--on-server-lost", "reconnect", server_dir=rogue.root, wait=False)
    wait_until(lambda: len(rogue.registrations) == 2, 30, 0.05, "the worker registered again")
    assert rogue.registrations[1].previous == ["rogue-uid", 7]  # a reconnection
    wait_until(lambda: "Reconnected to the server as worker 7" in w.stderr(), 10, 0.05)
    assert w.poll() is None
    assert _peak_kb(w.pid) < MAX_RSS_KB
    err = w.stderr()
    lost = [line for line in err.splitlines() if "Connection to the server lost" in line]
    assert len(lost) == 1 and REFUSED in lost[0], err
    assert "Traceback" not in err, err


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_client_refuses_the_frame_without_holding_its_event_loop(tmp_path, backend):
    """`hyperqueue.AsyncClient` (anyio): the shape check runs in a thread, so the caller's
    event loop keeps ticking while it walks a frame of 4M small integers (seconds of pure
    Python); the call then fails with HqError naming the server."""
    import anyio

    from hyperqueue.protocol.cborshape import MAX_ITEMS

    from hyperqueue import AsyncClient
    from hyperqueue.errors import HqError

    async def main():
        gaps = []
        last = [time.monotonic()]

        async def ticker():
            while True:
                await anyio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last[0])
                last[0] = now

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            try:
                with pytest.raises(HqError) as info:
                    async with AsyncClient(rogue.root) as client:
                        await client.job_info(1)
                gaps.append(time.monotonic() - last[0])  # (a block just before the error)
            finally:
                tg.cancel_scope.cancel()
        return str(info.value), gaps

    rogue = RogueServer(tmp_path, payload=b"\x9f" + b"\x00" * (MAX_ITEMS + 16) + b"\xff")
    try:
        message, gaps = anyio.run(main, backend=backend)
    finally:
        rogue.close()
    assert message == (f"Protocol error: message from the server at "
                       f"{rogue.address['client']} refused: message has more than "
                       f"{MAX_ITEMS} items")
    assert rogue.hostile_sent == 1
    assert max(gaps) < 0.5, max(gaps)
