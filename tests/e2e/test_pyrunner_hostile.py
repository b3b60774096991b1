"""A function task is user code running inside the worker's warm runner child: whatever it does
to the runner's private protocol (garbage or forged lines on its status socket, an endless line,
descriptors passed to the fork server, killing the fork server, crashing itself) ends that task
at most -- the worker keeps running, reports the task, and the next function task works."""

from __future__ import annotations

import os
import sys

import pytest

cloudpickle = pytest.importorskip("cloudpickle")

from hqenv import function_task_cluster, wait_until  # noqa: E402

from hyperqueue.task.function import FUNCTION_CODE  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # tasks cannot import this module
pytestmark = pytest.mark.timeout(120)


def _sockets() -> list[int]:
    import stat

    out = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and stat.S_ISSOCK(os.fstat(fd).st_mode):
                out.append(fd)
        except OSError:
            pass
    return out


def scribble(lines):
    """Writes `lines` to every socket the task's process holds (its status socket is one)."""
    for fd in _sockets():
        for line in lines:
            try:
                os.write(fd, line)
            except OSError:
                pass
    return "done"


def endless_line(n):
    for fd in _sockets():
        try:
            os.set_blocking(fd, False)
            chunk = b"E" + b"x" * 65536
            for _ in range(n):
                os.write(fd, chunk)
        except OSError:
            pass
    return "done"


def pass_descriptors():
    import socket

    r, w = os.pipe()
    for fd in _sockets():
        s = socket.socket(fileno=os.dup(fd))
        for _ in range(20):
            try:
                socket.send_fds(s, [b"T"], [r, w])
                socket.send_fds(s, [b"D"], [r])
            except OSError:
                break
        s.detach()
    return "done"


def forge_done_and_linger(path):
    """Says "done, reusable" on its status socket, then keeps running (and records its pid)."""
    import time

    with open(path, "w") as f:
        f.write(str(os.getpid()))
    scribble([b"R0\n", b"X0\n"])
    time.sleep(30)


def kill_the_fork_server():
    import signal
    import time

    parent = os.getppid()
    with open(f"/proc/{parent}/cmdline", "rb") as f:
        if b"hyperqueue.worker.pyrunner" not in f.read():  # (only ever the fork server)
            raise RuntimeError("not on a warm runner")
    os.kill(parent, signal.SIGKILL)
    time.sleep(5)


def crash():
    import ctypes

    ctypes.string_at(0)  # SIGSEGV


def ok(x):
    return x + 1


HOSTILE = {
    "garbage lines": (scribble, ([b"Xgarbage\n", b"P\n", b"Pxyz\n", b"R\xff\n", b"E\xff\xfe\n",
                                  b"X" + b"9" * 5000 + b"\n", b"\n\n\n"],)),
    "forged exit codes": (scribble, ([b"X-1\n", b"X-99999\n", b"X99999999999999999999999\n"],)),
    "endless line": (endless_line, (400,)),  # 26 MB without a newline
    "descriptors to the fork server": (pass_descriptors, ()),
    "fork server killed": (kill_the_fork_server, ()),
    "segfault": (crash, ()),
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with function_task_cluster(tmp_path_factory.mktemp("fn")) as e:
        yield e


def submit_fn(env, fn, *args) -> int:
    res = env.procs.run(
        [*env.hq, "--server-dir", str(env.server_dir), "--output-mode", "quiet", "submit",
         "--stdin", "--", "python3", "-c", FUNCTION_CODE],
        cwd=env.work_dir, env=env.env, input=cloudpickle.dumps((fn, args, {})), text=False,
        timeout=30)
    assert res.returncode == 0, res.stderr
    return int(res.stdout.splitlines()[-1])


def _state(env, job) -> str:
    return env.command(["task", "info", str(job), "0"], as_json=True)[0]["state"]


def _ends(env, job) -> str:
    return wait_until(lambda: (lambda s: s if s in ("finished", "failed") else None)(
        _state(env, job)), 40, 0.1, f"job {job} ends")


def _worker_fine(env) -> None:
    assert env.worker.poll() is None, env.worker.stderr()[-3000:]
    assert "Traceback" not in env.worker.stderr(), env.worker.stderr()[-3000:]
    job = submit_fn(env, ok, 1)
    assert _ends(env, job) == "finished"
    assert env.worker_states()[env.worker.worker_id] == "RUNNING"


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_function_task_ends_only_itself(env, case):
    fn, args = HOSTILE[case]
    job = submit_fn(env, fn, *args)
    _ends(env, job)
    _worker_fine(env)


def test_a_task_that_forges_its_end_is_still_killed_at_its_end(env, tmp_path):
    path = tmp_path / "pid"
    job = submit_fn(env, forge_done_and_linger, str(path))
    wait_until(lambda: path.exists() and path.read_text(), 20, 0.1, "task started")
    pid = int(path.read_text())
    state = _ends(env, job)
    # whatever the task claimed, once the worker reports it its process is gone (or exits at
    # once): nothing of a task runs unsupervised after its report
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z", 5, 0.1,
               f"task process {pid} ({state}) gone")
    _worker_fine(env)


def test_a_forged_pid_is_never_signaled(env):
    """The task claims another process is its own (here a decoy in a group of its own; a
    forged `P-1` once made the worker SIGKILL every process it could) and is then canceled
    (the worker signals the task's group) or ends: the decoy lives on."""
    import subprocess

    decoy = subprocess.Popen(["sleep", "300"], start_new_session=True)
    env.track_pid(decoy.pid)
    try:
        job = submit_fn(env, forge_pid_and_linger, decoy.pid)
        wait_until(lambda: _state(env, job) == "running", 20, 0.1, "forging task runs")
        env.command(["job", "cancel", str(job)])
        job = submit_fn(env, scribble, [b"P%d\n" % decoy.pid, b"X0\n"])
        _ends(env, job)
        assert decoy.poll() is None, "the worker signaled a process the task named"
        _worker_fine(env)
    finally:
        decoy.kill()
        decoy.wait()


def forge_pid_and_linger(pid):
    import time

    scribble([b"P%d\n" % pid])
    time.sleep(60)
