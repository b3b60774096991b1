"""Connection floods: held unauthenticated connections on both ports, and the open-file limit.

The server keeps at most MAX_UNAUTHENTICATED unauthenticated connections per port (a new one
evicts the oldest), gives each PREAUTH_TIMEOUT seconds, and keeps serving real clients and
workers meanwhile.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import time

import pytest
from hqenv import HQ, HqEnv, Process, wait_until

from hyperqueue.server.app import MAX_UNAUTHENTICATED, PREAUTH_TIMEOUT

FLOOD = 1000  # held connections per port
JOB_LIST_BOUND = 1.0  # seconds; a functional bound (the same call takes ~0.1 s unloaded)


def _raise_own_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files, the hard RLIMIT_NOFILE is {hard}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _flood(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    return socks


def _closed_by_server(s: socket.socket) -> bool:
    """True once the server closed `s` (its hello may be buffered before the end)."""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def _timed_job_list(env: HqEnv) -> float:
    start = time.monotonic()
    env.command(["job", "list"])
    return time.monotonic() - start


def _ports(env: HqEnv, server_dir=None) -> tuple[int, int]:
    from hyperqueue.common import serverdir

    access = serverdir.load_access(str(server_dir or env.server_dir), "client")[0]
    return access["client"]["port"], access["worker"]["port"]


@pytest.mark.timeout(90)
def test_held_unauthenticated_connections_do_not_starve_clients_or_workers(hq_env):
    _raise_own_limit(2 * FLOOD + 500)
    env = hq_env
    env.start_server()
    worker = env.start_worker("--heartbeat", "1s")  # lost after 2 s without a heartbeat
    client_port, worker_port = _ports(env)
    held: list[socket.socket] = []
    try:
        started = time.monotonic()
        for port in (client_port, worker_port):
            held += _flood(port, FLOOD)
        flood_time = time.monotonic() - started
        # Beyond the cap, the oldest are closed at once (long before the pre-auth deadline).
        closed = wait_until(lambda: (n := sum(map(_closed_by_server, held)))
                            >= 2 * (FLOOD - MAX_UNAUTHENTICATED) and n, 3.0, 0.1,
                            "connections beyond the cap to be closed")
        assert time.monotonic() - started < PREAUTH_TIMEOUT, "closed by the deadline, not the cap"
        assert closed <= 2 * (FLOOD - MAX_UNAUTHENTICATED) + 20, closed  # the rest are held
        times = [_timed_job_list(env) for _ in range(3)]
        assert max(times) < JOB_LIST_BOUND, (times, flood_time)
        # The worker kept its heartbeats through the flood (grace is 2 s).
        time.sleep(2.5)
        assert env.worker_states()[worker.worker_id] == "RUNNING"
        job = env.submit(["--", "true"])
        env.wait_job(job, timeout=20)
        # And the held ones are gone once the pre-authentication deadline has passed.
        wait_until(lambda: all(map(_closed_by_server, held)), PREAUTH_TIMEOUT + 3, 0.2,
                   "the pre-authentication deadline")
    finally:
        for s in held:
            s.close()
    err = env.processes[0].stderr()
    assert "Traceback" not in err
    assert "too many unauthenticated connections" in err and "suppressed" in err
    assert len(err.splitlines()) < 200, len(err.splitlines())


@pytest.mark.timeout(90)
def test_at_the_open_file_limit_accept_backs_off_and_clients_are_served(hq_env, tmp_path):
    """A server whose hard open-file limit is tiny: accept fails with EMFILE. It must log that
    rate-limited (no traceback flood), free a descriptor, and keep serving real clients."""
    _raise_own_limit(2 * FLOOD + 500)
    env = hq_env
    limit = 200  # below what the cap would allow on two ports
    sd = env.server_dir
    out, err = tmp_path / "srv.out", tmp_path / "srv.err"

    def lower_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    with open(out, "wb") as fo, open(err, "wb") as fe:
        popen = subprocess.Popen(HQ + ["--server-dir", str(sd), "server", "start", "--host",
                                       "127.0.0.1"], stdout=fo, stderr=fe,
                                 stdin=subprocess.DEVNULL, cwd=str(env.work_dir), env=env.env,
                                 preexec_fn=lower_limit)
    proc = Process("server", popen, out, err)
    env.processes.append(proc)
    wait_until(lambda: (sd / "hq-current" / "access.json").exists()
               and proc.stdout().rstrip().endswith("+"), 20, 0.05, "server start")
    client_port, worker_port = _ports(env)
    held: list[socket.socket] = []
    try:
        for port in (client_port, worker_port):
            held += _flood(port, FLOOD // 2)
        time.sleep(1.0)  # the accept loops hit EMFILE for a while
        assert proc.poll() is None
        times = [_timed_job_list(env) for _ in range(3)]
        assert max(times) < JOB_LIST_BOUND * 2, times
    finally:
        for s in held:
            s.close()
    text = proc.stderr()
    assert "Traceback" not in text
    assert "Cannot accept a connection" in text
    assert len(text.splitlines()) < 200, len(text.splitlines())
