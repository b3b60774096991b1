"""The runner's supervision of a real task process: whatever ends a started task (its end, a
time limit, a cancel, an exception of the worker's own), the task's whole process group is dead
and its main process reaped when `TaskRun.execute` returns, i.e. before the worker reports the
task and frees its resources."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from hyperqueue.core.limits import MAX_DURATION
from hyperqueue.core.model import ProgramDef, StdioDef, TaskTemplate
from hyperqueue.core.resources import ResourceRequest
from hyperqueue.worker import runner as runner_mod
from hyperqueue.worker.runner import Runner, TaskRun, TaskSpec


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _dies(pid: int) -> bool:
    """The pid got its SIGKILL: it is gone within moments (the signal is delivered
    asynchronously, so a just-killed process may take a few microseconds to die)."""
    deadline = time.monotonic() + 5
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _exists(pid: int) -> bool:
    """The pid is still taken (alive or a zombie nobody reaped)."""
    return os.path.exists(f"/proc/{pid}")


def _wait_for_file(path, timeout=10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            text = open(path).read()
            if text.endswith("\n"):
                return text
        time.sleep(0.02)
    raise AssertionError(f"{path} not written")


@pytest.fixture
def make_run(tmp_path):
    runners = []
    pids = []

    def make(script: str, time_limit=None, stream: bool = False):
        runner = Runner(work_dir=str(tmp_path / "work"), hq_path="hq", server_uid="test")
        runners.append(runner)
        out = StdioDef(None, streamed=True) if stream else StdioDef(str(tmp_path / "out"))
        program = ProgramDef(["sh", "-c", script], cwd=str(tmp_path), stdout=out,
                             stderr=StdioDef(None), stream="streams" if stream else None)
        template = TaskTemplate(program, [ResourceRequest.default()], time_limit)
        spec = TaskSpec(1, 0, 0, template, str(tmp_path), None)
        return TaskRun(runner, spec, None)

    make.pids = pids
    yield make
    try:  # also when the test failed before it read them
        pids += [int(p) for p in (tmp_path / "pids").read_text().split()]
    except (OSError, ValueError):
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for r in runners:
        r.close_streams()
        os.close(r.devnull_r)
        os.close(r.devnull_w)


def _pids(make, tmp_path) -> tuple[int, int]:
    leader, child = map(int, _wait_for_file(tmp_path / "pids").split())
    make.pids += [leader, child]
    return leader, child


SCRIPT = "sleep 100 & echo $$ $! > pids; "


@pytest.mark.timeout(30)
def test_exception_after_spawn_kills_and_reaps_before_returning(make_run, tmp_path,
                                                                 monkeypatch):
    def broken_wait(pid, timeout):  # a bug of ours once the process runs
        _wait_for_file(tmp_path / "pids")
        raise RuntimeError("injected")

    monkeypatch.setattr(runner_mod, "wait_exit", broken_wait)
    run = make_run(SCRIPT + "sleep 60")
    run.execute()
    leader, child = _pids(make_run, tmp_path)
    assert run.error == "Worker error while running the task: RuntimeError('injected')"
    assert not _exists(leader), "the task's main process was not killed and reaped"
    assert _dies(child), "the task's background child survived"
    assert not run.live


@pytest.mark.timeout(30)
def test_exception_while_streaming_kills_and_reaps(make_run, tmp_path, monkeypatch):
    def broken_pump(*args, **kw):
        _wait_for_file(tmp_path / "pids")
        raise OSError(28, "No space left on device")

    import hyperqueue.worker.streamer as streamer

    monkeypatch.setattr(streamer, "pump", broken_pump)
    run = make_run(SCRIPT + "echo out; sleep 60", stream=True)
    run.execute()
    leader, child = _pids(make_run, tmp_path)
    assert run.error.startswith("Worker error while running the task: OSError(28")
    assert not _exists(leader) and _dies(child)


@pytest.mark.timeout(30)
def test_ten_year_time_limit_waits_and_cancel_ends_it(make_run, tmp_path):
    run = make_run(SCRIPT + "sleep 60", time_limit=MAX_DURATION)
    t = threading.Thread(target=run.execute)
    t.start()
    leader, child = _pids(make_run, tmp_path)
    time.sleep(0.5)
    assert t.is_alive() and run.error is None and _alive(leader)  # no overflow, still waiting
    pid = run.cancel()
    assert pid == leader
    t.join(10)
    assert not t.is_alive()
    assert run.canceled and not _exists(leader) and _dies(child)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("end, error", [("exit 0", None),
                                        ("exit 3", "Program terminated with exit code 3.")])
def test_background_child_killed_when_the_task_ends(make_run, tmp_path, end, error):
    run = make_run(SCRIPT + end)
    run.execute()
    leader, child = _pids(make_run, tmp_path)
    assert run.error == error
    assert not _exists(leader) and _dies(child)


@pytest.mark.timeout(30)
def test_streamed_task_ends_with_its_main_process(make_run, tmp_path):
    """A background child holding the streamed stdout open does not keep the task running."""
    run = make_run(SCRIPT + "echo done", stream=True)
    start = time.monotonic()
    run.execute()
    leader, child = _pids(make_run, tmp_path)
    assert run.error is None
    assert time.monotonic() - start < 10
    assert not _exists(leader) and _dies(child)


@pytest.mark.timeout(30)
def test_time_limit_sigint_then_sigkill(make_run, tmp_path):
    run = make_run("trap '' INT; " + SCRIPT + "sleep 60", time_limit=0.5)
    start = time.monotonic()
    run.execute()
    leader, child = _pids(make_run, tmp_path)
    assert run.error == "Time limit reached"
    assert 0.5 + runner_mod.KILL_GRACE <= time.monotonic() - start < 10
    assert not _exists(leader) and _dies(child)
