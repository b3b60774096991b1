"""LocalCluster: real encrypted server and worker processes, and none left behind however the
script ends (with block, exception, no `stop()`, SIGINT, SIGKILL of the script)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from hqenv import pid_alive, wait_until  # (not `conftest`: ambiguous across test directories)

pytestmark = pytest.mark.timeout(60)

SCRIPT = """
import json, os, sys, time
from hyperqueue import Job, LocalCluster
from hyperqueue.cluster import WorkerConfig

def pids(cluster):
    return [p.pid for p in cluster._res.procs]

MODE = sys.argv[1]
"""


def run_script(tmp_path, body: str, mode: str, *, wait=True):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT + textwrap.dedent(body))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    p = subprocess.Popen([sys.executable, str(script), mode], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return p
    out, err = p.communicate(timeout=40)
    return p.returncode, out, err


def assert_gone(pids):
    assert pids
    wait_until(lambda: not any(pid_alive(p) for p in pids), 10, 0.05, f"{pids} to exit")


CLUSTER_AND_TASK = """
cluster = LocalCluster(worker_config=WorkerConfig(cores=1))
client = cluster.client()
job = Job()
job.program(["bash", "-c", "echo $$ > task.pid; exec sleep 60"])
client.submit(job)
while not os.path.exists("task.pid") or not open("task.pid").read().strip():
    time.sleep(0.02)
print(json.dumps(pids(cluster) + [int(open("task.pid").read())]), flush=True)
"""


@pytest.mark.parametrize("mode", ["raise", "exit", "with-raise"])
def test_nothing_left_after_exception_or_exit(tmp_path, mode):
    code, out, err = run_script(tmp_path, CLUSTER_AND_TASK + """
if MODE == "raise":
    raise RuntimeError("script failed")
if MODE == "with-raise":
    with cluster:
        raise RuntimeError("script failed")
""", mode)
    assert code == (0 if mode == "exit" else 1), err
    if mode != "exit":
        assert "RuntimeError: script failed" in err
    assert_gone(json.loads(out.splitlines()[0]))  # server, worker and the running task


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_nothing_left_after_interrupt_or_kill(tmp_path, sig):
    p = run_script(tmp_path, CLUSTER_AND_TASK + "time.sleep(60)\n", "wait", wait=False)
    try:
        pids = json.loads(p.stdout.readline())
        assert all(pid_alive(x) for x in pids)
        p.send_signal(sig)
        p.wait(20)
        assert_gone(pids)
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()


def test_starts_fast_with_encryption_and_stops(tmp_path, monkeypatch):
    from hyperqueue.cluster import LocalCluster, WorkerConfig

    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    cluster = LocalCluster(worker_config=WorkerConfig(cores=1))
    started = time.monotonic() - t0
    try:
        access = json.loads(open(os.path.join(cluster.server_dir, "hq-current",
                                              "access.json")).read())
        assert access["client"]["secret_key"] and access["worker"]["secret_key"]
        procs = list(cluster._res.procs)
        assert len(procs) == 2 and all(pid_alive(p.pid) for p in procs)
        temp = cluster._res.temp_dir
        print(f"LocalCluster with a worker started in {started:.3f} s")
        assert started < 10  # (well under a second on an idle machine; CI machines are busy)
        cluster.start_worker(WorkerConfig(cores=1))
        assert len(cluster._res.procs) == 3
    finally:
        cluster.stop()
    cluster.stop()  # idempotent
    assert not any(pid_alive(p.pid) for p in cluster._res.procs + procs)
    assert not os.path.exists(temp)


def test_client_connection_stop_server(tmp_path):
    from hyperqueue.cluster import LocalCluster
    from hyperqueue.ffi.client import ClientConnection

    cluster = LocalCluster(tmp_path / "sd")
    try:
        server = cluster._res.procs[0]
        ClientConnection(tmp_path / "sd").stop_server()
        assert server.wait(10) == 0
    finally:
        cluster.stop()
