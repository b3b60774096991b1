"""The worker's warm Python runner (hyperqueue.worker.pyrunner) through the real `Runner`:
function tasks (upstream's command + a cloudpickle on stdin) run as forked children of a fork
server, with the semantics of a task process (env, cwd, stdio, session, exit status, error file,
time limit, cancel), and a runner crash fails the running task and is followed by a restart."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

cloudpickle = pytest.importorskip("cloudpickle")

from hyperqueue.core.model import ProgramDef, StdioDef, TaskTemplate  # noqa: E402
from hyperqueue.core.resources import ResourceRequest  # noqa: E402
from hyperqueue.task.function import FUNCTION_CODE, PythonEnv, function_task_args  # noqa: E402
from hyperqueue.worker.pyrunner import RUNNER_CRASHED  # noqa: E402
from hyperqueue.worker.runner import Runner, TaskRun, TaskSpec  # noqa: E402

PY = [sys.executable, "-c", FUNCTION_CODE]
# the tasks cannot import this test module: its functions travel by value (as closures do)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _reaped(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _wait_file(path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            text = open(path).read()
            if text.endswith("\n"):
                return text
        time.sleep(0.01)
    raise AssertionError(f"{path} not written")


class _Cpus:
    def __init__(self, cpus):
        self.cpus = cpus

    def labels(self, name):
        return self.cpus if name == "cpus" else []


@pytest.fixture
def env(tmp_path):
    (tmp_path / "work").mkdir()

    class Env:
        runner = Runner(work_dir=str(tmp_path / "work"), hq_path="hq", server_uid="test")
        pids: list[int] = []
        task_id = 0

        def run(self, fn, *args, args_list=None, time_limit=None, env=None, pin=None,
                cpus=None, start=False, **kwargs):
            program = ProgramDef(args_list or PY, env=env or {}, cwd=str(tmp_path / "cwd"),
                                 stdout=StdioDef(str(tmp_path / "out")),
                                 stderr=StdioDef(str(tmp_path / "err")),
                                 stdin=cloudpickle.dumps((fn, args, kwargs)), task_dir=True)
            template = TaskTemplate(program, [ResourceRequest.default()], time_limit, pin=pin)
            self.task_id += 1
            spec = TaskSpec(7, self.task_id, 0, template, str(tmp_path), None)
            run = TaskRun(self.runner, spec, _Cpus(cpus) if cpus else None)
            if start:
                t = threading.Thread(target=run.execute)
                t.start()
                return run, t
            run.execute()
            return run

        def out(self):
            return (tmp_path / "out").read_text()

        def err(self):
            return (tmp_path / "err").read_text()

        def server_pids(self):
            return [s.proc.pid for s in self.runner.pyrunners.servers.values()
                    if s is not None and s.proc is not None]

    e = Env()
    yield e
    e.runner.close_pyrunners()
    for pid in e.pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    os.close(e.runner.devnull_r)
    os.close(e.runner.devnull_w)


def _inheritable(fd):
    try:
        return os.get_inheritable(fd)
    except OSError:
        return False


def _report(tag):
    import json

    print(json.dumps({
        "tag": tag, "cwd": os.getcwd(), "pid": os.getpid(), "ppid": os.getppid(),
        "pgid": os.getpgid(0), "sid": os.getsid(0), "argv": sys.argv,
        "foo": os.environ.get("FOO"), "job": os.environ.get("HQ_JOB_ID"),
        "task": os.environ.get("HQ_TASK_ID"), "task_dir": os.environ.get("HQ_TASK_DIR"),
        "stdin": sys.stdin.read(), "affinity": sorted(os.sched_getaffinity(0)),
        "fds": sorted(int(f) for f in os.listdir("/proc/self/fd")),
        "inheritable": [fd for fd in range(3, 100) if _inheritable(fd)]}))
    print("to stderr", file=sys.stderr)
    return tag


@pytest.mark.timeout(60)
def test_function_task_runs_warm_as_a_task_process(env, tmp_path):
    import json

    run = env.run(_report, "a", env={"FOO": "bar"})
    assert run.error is None, run.error
    info = json.loads(env.out())
    assert env.err() == "to stderr\n"
    servers = env.server_pids()
    assert len(servers) == 1
    assert info["ppid"] == servers[0], "not forked by the warm runner"
    assert info["pid"] == info["pgid"] == info["sid"], "not in its own session"
    assert info["cwd"] == str(tmp_path / "cwd")
    assert info["argv"] == ["-c"]
    assert (info["foo"], info["job"], info["task"]) == ("bar", "7", "1")
    assert info["task_dir"].startswith(str(tmp_path / "work"))
    assert info["stdin"] == ""  # the pickle was consumed by task_main
    assert info["fds"][:3] == [0, 1, 2]
    # beyond stdio: what listdir opened, the status socket and (a warm child that may run
    # another task) its two sockets (requests from the worker, its own to the runner), all
    # close-on-exec; nothing of the runner leaks into what the task executes
    assert len(info["fds"]) <= 7 and info["inheritable"] == []
    # a second task reuses the same runner
    run = env.run(_report, "b")
    assert run.error is None
    info2 = json.loads(env.out())
    assert info2["ppid"] == servers[0] and info2["pid"] != info["pid"]
    assert info2["foo"] is None and info2["task"] == "2"
    assert not _alive(info["pid"]) and not _alive(info2["pid"])  # gone before the report
    assert _reaped(info["pid"]) and _reaped(info2["pid"])


def _exit(code):
    sys.exit(code)


@pytest.mark.timeout(60)
def test_exit_codes(env):
    # like upstream's task_main: any exception fails the task, also SystemExit
    for code in (0, 3, "a message"):
        run = env.run(_exit, code)
        assert run.error.startswith("Traceback (most recent call last):")
        assert run.error.rstrip().endswith(f"SystemExit: {code}")
    assert env.run(os._exit, 5).error == "Program terminated with exit code 5."
    assert env.run(os._exit, 0).error is None
    run = env.run(os.kill, 0, signal.SIGKILL)  # kills its own process group
    assert run.error == "Program terminated with exit code -1. Received signal 9 (SIGKILL)."  # F28


def _raise(long_context):
    if long_context:
        try:
            raise KeyError("context " * 500)
        except KeyError as e:
            raise ValueError("the actual problem") from e
    raise ValueError("the actual problem")


@pytest.mark.timeout(60)
def test_exception_becomes_the_error_with_traceback(env):
    run = env.run(_raise, False)
    assert run.error.startswith("Traceback (most recent call last):")
    assert run.error.rstrip().endswith("ValueError: the actual problem")
    assert "in _raise" in run.error
    assert env.err().startswith("Traceback") and "ValueError: the actual problem" in env.err()
    # a traceback longer than the error file keeps its end (the exception)
    run = env.run(_raise, True)
    assert len(run.error) <= 2048
    assert run.error.startswith("Traceback (most recent call last):\n  [...]\n")
    assert run.error.rstrip().endswith("ValueError: the actual problem")
    assert "context " * 500 in env.err()  # stderr has all of it


def _sleep_with_child(path):
    import subprocess

    child = subprocess.Popen(["sleep", "100"])
    with open(path, "w") as f:
        f.write(f"{os.getpid()} {child.pid}\n")
    time.sleep(100)


@pytest.mark.timeout(60)
def test_time_limit_kills_the_task_and_its_children(env, tmp_path):
    t0 = time.monotonic()
    path = str(tmp_path / "pids")
    run = env.run(_sleep_with_child, path, time_limit=1.0)
    assert run.error == "Time limit reached"
    assert time.monotonic() - t0 < 10
    leader, child = map(int, _wait_file(path).split())
    env.pids += [leader, child]
    assert _gone(leader) and _gone(child)


@pytest.mark.timeout(60)
def test_cancel_kills_the_task_and_its_children(env, tmp_path):
    path = str(tmp_path / "pids")
    run, thread = env.run(_sleep_with_child, path, start=True)
    leader, child = map(int, _wait_file(path).split())
    env.pids += [leader, child]
    assert run.cancel() == leader
    thread.join(10)
    assert not thread.is_alive()
    assert _gone(leader) and _gone(child)


@pytest.mark.timeout(60)
def test_runner_crash_fails_the_task_and_the_runner_restarts(env, tmp_path):
    path = str(tmp_path / "pids")
    run, thread = env.run(_sleep_with_child, path, start=True)
    leader, child = map(int, _wait_file(path).split())
    env.pids += [leader, child]
    (server,) = env.server_pids()
    with open(f"/proc/{server}/task/{server}/children") as f:
        spares = [int(p) for p in f.read().split() if int(p) != leader]
    assert spares  # the child forked ahead for the next task
    env.pids += spares
    os.kill(server, signal.SIGKILL)
    thread.join(10)
    assert not thread.is_alive()
    assert run.error == RUNNER_CRASHED
    assert _gone(leader) and _gone(child), "the task outlived its runner"
    assert all(_gone(p) for p in spares), "the spare outlived its runner"
    run = env.run(_report, "after")
    assert run.error is None, run.error
    (new_server,) = env.server_pids()
    assert new_server != server
    assert f'"ppid": {new_server}' in env.out()


def _big(n):
    return b"x" * n


@pytest.mark.timeout(60)
def test_return_values_opt_in_and_size_limit(env, tmp_path):
    import pickle

    from hyperqueue.core.limits import MAX_RESULT_SIZE

    results = tmp_path / "results"
    assert env.run(_big, 10).error is None
    assert not results.exists()  # not asked for: nothing stored
    run = env.run(_big, 10, env={"HQ_RESULT_DIR": str(results)})
    assert run.error is None
    assert pickle.loads((results / "7" / f"{env.task_id}.pickle").read_bytes()) == b"x" * 10
    assert os.listdir(results / "7") == [f"{env.task_id}.pickle"]  # no temporary left
    # relative: under the submit dir
    run = env.run(_report, "r", env={"HQ_RESULT_DIR": ".hq-results"})
    assert run.error is None
    assert pickle.loads((tmp_path / ".hq-results" / "7" / f"{env.task_id}.pickle")
                        .read_bytes()) == "r"
    run = env.run(_big, MAX_RESULT_SIZE + 1, env={"HQ_RESULT_DIR": str(results)})
    assert run.error.startswith("The return value of the function is too large: ")
    assert "the limit is 64 MiB" in run.error
    assert not (results / "7" / f"{env.task_id}.pickle").exists()
    run = env.run(threading.Lock, env={"HQ_RESULT_DIR": str(results)})
    assert run.error.startswith("Cannot store the return value of the function:")
    assert "TypeError" in run.error


@pytest.mark.timeout(60)
def test_pinning_sets_the_affinity(env):
    import json

    run = env.run(_report, "p", pin="taskset", cpus=["0"])
    assert run.error is None, run.error
    info = json.loads(env.out())
    assert info["affinity"] == [0]
    assert info["ppid"] in env.server_pids()


@pytest.mark.timeout(60)
def test_other_commands_fall_back_to_a_process_per_task(env, tmp_path):
    import json

    # a prologue (bash -c ...): upstream's way, a new interpreter
    args = function_task_args(PythonEnv(python_bin=sys.executable, prologue="export FOO=pro"))
    assert args[0] == "bash" and args[2].startswith("export FOO=pro\n\n")
    run = env.run(_report, "x", args_list=args)
    assert run.error is None, run.error
    info = json.loads(env.out())
    assert info["foo"] == "pro" and info["ppid"] not in env.server_pids()
    # an interpreter reached through a script (like a pyenv shim): no warm runner
    shim = tmp_path / "python3"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    shim.chmod(0o755)
    run = env.run(_report, "y", args_list=[str(shim), "-c", FUNCTION_CODE])
    assert run.error is None, run.error
    assert json.loads(env.out())["ppid"] not in env.server_pids()
    # an interpreter that cannot host the runner (here: not Python) is remembered as such
    fake = tmp_path / "python-fake"
    fake.symlink_to("/bin/true")
    run = env.run(_report, "z", args_list=[str(fake), "-c", FUNCTION_CODE])
    assert run.error is None  # /bin/true ran the normal way
    assert None in env.runner.pyrunners.servers.values()


def _log():
    import logging

    logging.getLogger("user").debug("a debug line")
    logging.getLogger("user").info("an info line")


@pytest.mark.timeout(60)
def test_hq_pylog_sets_the_log_level(env):
    import re

    line = r"\d\d-\d\d-\d{4} \d\d:\d\d:\d\d user:%s %s\n"
    assert env.run(_log).error is None  # upstream's default: INFO, timestamped
    assert re.fullmatch(line % ("INFO", "an info line"), env.err())
    assert env.run(_log, env={"HQ_PYLOG": "DEBUG"}).error is None
    assert re.fullmatch(line % ("DEBUG", "a debug line") + line % ("INFO", "an info line"),
                        env.err())
    assert env.run(_log, env={"HQ_PYLOG": "ERROR"}).error is None
    assert env.err() == ""
    assert env.run(_log, env={"HQ_PYLOG": "nonsense"}).error is None  # as upstream: INFO
    assert re.fullmatch(line % ("INFO", "an info line"), env.err())


@pytest.mark.timeout(60)
def test_upstream_payload_with_cloud_wrapper(env, tmp_path):
    import pickle

    from hyperqueue.task.function.wrapper import CloudWrapper

    assert CloudWrapper(_big)(3) == b"xxx"
    wrapped = CloudWrapper(_report)
    assert wrapped.__name__ == "_report"
    stdin = pickle.dumps((wrapped, ("wrapped",), None))  # what upstream's client submits
    program = ProgramDef(PY, cwd=str(tmp_path), stdout=StdioDef(str(tmp_path / "out")),
                         stderr=StdioDef(None), stdin=stdin, task_dir=True)
    spec = TaskSpec(7, 99, 0, TaskTemplate(program, [ResourceRequest.default()]), str(tmp_path),
                    None)
    run = TaskRun(env.runner, spec, None)
    run.execute()
    assert run.error is None, run.error
    assert '"tag": "wrapped"' in env.out()
    assert pickle.loads(pickle.dumps(wrapped)).pickled_fn == wrapped.pickled_fn  # cached once


def test_task_module_imports_neither_trio_nor_the_cli():
    import subprocess

    code = ("import sys, hyperqueue.task.function as f; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('trio', 'anyio', 'click', 'cbor2', 'nacl', 'cloudpickle', 'shlex') "
            "or m.startswith(('hyperqueue.cli', 'hyperqueue.worker', 'hyperqueue.client'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    env = PythonEnv()
    assert (env.python_bin, env.prologue, env.shell) == ("python3", None, "bash")
    assert PythonEnv("python3.11", "module load x", "zsh") == PythonEnv(
        python_bin="python3.11", prologue="module load x", shell="zsh")
    assert function_task_args() == ["python3", "-c", FUNCTION_CODE]
    assert function_task_args(PythonEnv(python_bin="/opt/py/bin/python", prologue="a=1")) == [
        "bash", "-c", 'a=1\n\n/opt/py/bin/python -c '
        '"from hyperqueue.task.function import task_main as m; m()"']
    assert PythonEnv(prologue="p", shell="zsh").args == [
        "zsh", "-c", 'p\n\npython3 -c "from hyperqueue.task.function import task_main as m; m()"']


@pytest.mark.timeout(60)
def test_worker_exception_after_the_spawn_kills_the_task(env, tmp_path, monkeypatch):
    from hyperqueue.worker import pyrunner

    path = str(tmp_path / "pids")

    def broken_wait(self, timeout):  # a bug of ours once the task runs
        _wait_file(path)
        raise RuntimeError("injected")

    monkeypatch.setattr(pyrunner.WarmProcess, "wait_exit", broken_wait)
    run = env.run(_sleep_with_child, path)
    leader, child = map(int, _wait_file(path).split())
    env.pids += [leader, child]
    assert run.error == "Worker error while running the task: RuntimeError('injected')"
    assert _gone(leader) and _gone(child)
    assert not run.live
    assert _reaped(leader)  # by the runner, once the worker closed the task's status pipe


@pytest.mark.timeout(60)
def test_runner_kills_a_task_the_worker_gave_up_on(tmp_path):
    from hyperqueue.worker.pyrunner import PyRunners

    runners = PyRunners(dict(os.environ))
    try:
        out = os.open(os.devnull, os.O_WRONLY)
        path = str(tmp_path / "pids")
        data = cloudpickle.dumps((_sleep_with_child, (path,), {}))
        proc = runners.spawn(PY, {}, os.environ["PATH"], str(tmp_path), None, data, [out, out])
        os.close(out)
        leader, child = map(int, _wait_file(path).split())
        assert proc.pid == leader
        proc.close()  # without killing it first (e.g. the worker's reply wait timed out)
        assert _reaped(leader), "the runner did not kill and reap the task"
        assert _gone(child), "the task's group was not killed"
        # and the runner still serves
        out = os.open(os.devnull, os.O_WRONLY)
        proc = runners.spawn(PY, {}, os.environ["PATH"], str(tmp_path), None,
                             cloudpickle.dumps((os._exit, (4,), {})), [out, out])
        os.close(out)
        assert proc.wait_exit(10) and proc.finish() == 4
    finally:
        runners.close()


# -- warm children that run many tasks (a task that leaves its process clean) ----------------


def _state(path, pollute):
    """Appends what this task sees to `path` (builtins only: no new module), then changes what
    a task may change in its process."""
    with open(path, "a") as f:
        f.write(repr((os.getpid(), os.getcwd(), os.environ.get("FOO"), os.environ.get("LEAK"),
                      os.environ.get("HQ_TASK_ID"), sys.argv, "/leak" in sys.path,
                      sorted(os.sched_getaffinity(0)))) + "\n")
    if pollute:
        os.environ["LEAK"] = "1"
        os.environ.pop("FOO", None)
        os.chdir("/")
        sys.path.append("/leak")
        sys.argv.append("leak")
        print("to stdout of task", os.environ.get("HQ_TASK_ID"))


def _lines(path):
    import ast

    return [ast.literal_eval(line) for line in open(path).read().splitlines()]


@pytest.mark.timeout(60)
def test_warm_children_run_consecutive_tasks_each_with_its_own_env_cwd_stdio(env, tmp_path):
    path = str(tmp_path / "state")
    cwd = str(tmp_path / "cwd")
    all_cpus = sorted(os.sched_getaffinity(0))
    # (idle children take the requests in turn: at most 3 here, 1 running + 2 waiting)
    for i in range(1, 7):
        pinned = i == 5
        run = env.run(_state, path, i < 6, env={"FOO": f"v{i}"} if i % 2 else None,
                      pin="taskset" if pinned else None,
                      cpus=[str(all_cpus[0])] if pinned else None)
        assert run.error is None, run.error
        if i < 6:  # a new file per task, written by whichever child ran it
            assert env.out() == f"to stdout of task {i}\n"
    seen = _lines(path)
    pids = [line[0] for line in seen]
    assert len(set(pids)) < len(pids), f"no child was reused: {pids}"
    for i, line in enumerate(seen, 1):
        # what earlier tasks changed is gone: env (also a variable one removed), cwd, sys.path,
        # argv, pinning
        assert line[1:] == (cwd, f"v{i}" if i % 2 else None, None, str(i), ["-c"], False,
                            [all_cpus[0]] if i == 5 else all_cpus), (i, pids)
    (server,) = env.server_pids()
    with open(f"/proc/{server}/task/{server}/children") as f:
        assert pids[-1] in [int(p) for p in f.read().split()]  # waiting for the next task


def _pollute(path, how):
    """Records "<how> <pid>" and, in a child that has run a task before (warm), does `how`;
    in a fresh child it records "cold <pid>" and does nothing."""
    import signal as signal_module

    with open(path) as f:
        warm = f" {os.getpid()}\n" in f.read()
    with open(path, "a") as f:
        f.write(f"{how if warm else 'cold'} {os.getpid()}\n")
    if not warm:
        return
    if how == "module":
        import colorsys  # noqa: F401 - (a module no runner imports)
    elif how == "thread":
        import threading as threading_module

        threading_module.Thread(target=time.sleep, args=(30,), daemon=True).start()
    elif how == "signal":
        signal_module.signal(signal_module.SIGUSR1, lambda *a: None)
    elif how == "fd":
        os.dup(0)
    elif how == "process":  # left running in its own session: not killed with the group
        os.spawnvp(os.P_NOWAIT, "setsid", ["setsid", "sleep", "30"])
    elif how == "failed":
        raise ValueError("failed")
    elif how == "stdout":
        import io

        sys.stdout = io.StringIO()
    elif how == "crash":
        os.kill(os.getpid(), signal_module.SIGKILL)
    elif how.startswith("wait"):  # until the test creates <path>.go
        deadline = time.monotonic() + 100
        while not os.path.exists(path + ".go") and time.monotonic() < deadline:
            time.sleep(0.01)


def _tagged(path):
    return [(tag, int(pid)) for tag, pid in (ln.split() for ln in open(path).read().splitlines())]


def _until_warm(env, path, how, **kwargs):
    """Runs `_pollute(path, how)` until it ran in a warm child (idle children take the
    requests in turn); returns that run and its pid."""
    for _ in range(12):
        run = env.run(_pollute, path, how, **kwargs)
        tag, pid = _tagged(path)[-1]
        if tag != "cold":
            return run, pid
    raise AssertionError("no request went to a warm child")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["module", "thread", "signal", "fd", "process", "failed",
                                 "stdout"])
def test_a_task_that_changes_its_process_ends_it(env, tmp_path, how):
    path = str(tmp_path / "pids")
    open(path, "w").close()
    assert env.run(_pollute, path, "clean").error is None
    run, victim = _until_warm(env, path, how)
    assert (run.error is None) == (how != "failed")
    n = len(_tagged(path))
    for _ in range(4):
        assert env.run(_pollute, path, "clean").error is None
    tagged = _tagged(path)
    env.pids += [pid for _, pid in tagged]
    assert victim not in [pid for _, pid in tagged[n:]], \
        f"the child was reused after a task changed its {how}"
    assert _gone(victim)
    pids = [pid for _, pid in tagged]
    assert len(set(pids)) < len(pids), "clean children were not reused"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("end", ["cancel", "time limit"])
def test_cancel_or_time_limit_of_one_warm_task_leaves_the_other_running(env, tmp_path, end):
    path = str(tmp_path / "pids")
    go = path + ".go"
    open(path, "w").close()
    limit = 1.5 if end == "time limit" else None
    for _attempt in range(10):
        n = len(_tagged(path))
        victim, vthread = env.run(_pollute, path, "wait-victim", time_limit=limit, start=True)
        other, othread = env.run(_pollute, path, "wait-other", start=True)
        deadline = time.monotonic() + 10
        while len(_tagged(path)) < n + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        tagged = dict(_tagged(path)[n:])
        env.pids += list(tagged.values())
        if set(tagged) == {"wait-victim", "wait-other"}:
            break  # both in warm children
        open(go, "w").close()  # (a cold one returned at once) the warm one ends normally
        vthread.join(10)
        othread.join(10)
        os.unlink(go)
    else:
        raise AssertionError("the two tasks never ran in warm children together")
    vpid, opid = tagged["wait-victim"], tagged["wait-other"]
    if end == "cancel":
        assert victim.cancel() == vpid
    vthread.join(10)
    assert not vthread.is_alive()
    assert victim.error == ("Time limit reached" if end == "time limit" else None)
    assert victim.canceled == (end == "cancel")
    assert _gone(vpid)
    assert _alive(opid), "the other task was killed too"
    assert othread.is_alive()
    open(go, "w").close()
    othread.join(10)
    assert other.error is None
    # the runner goes on; the killed child is never reused, warm ones are (which idle child
    # takes a request is up to the children: the other task's or another warm one)
    n = len(_tagged(path))
    before = {pid for _, pid in _tagged(path)[:n]} - {vpid}
    for _ in range(6):
        assert env.run(_pollute, path, "clean").error is None
    later = [pid for _, pid in _tagged(path)[n:]]
    assert vpid not in later
    assert before & set(later), (later, before)


@pytest.mark.timeout(60)
def test_crash_of_a_warm_child_fails_only_its_task(env, tmp_path):
    path = str(tmp_path / "pids")
    open(path, "w").close()
    assert env.run(_pollute, path, "clean").error is None
    (server,) = env.server_pids()
    run, crashed = _until_warm(env, path, "crash")
    assert run.error == "Program terminated with exit code -1. Received signal 9 (SIGKILL)."
    n = len(_tagged(path))
    for _ in range(4):
        assert env.run(_pollute, path, "clean").error is None
    tagged = _tagged(path)
    assert crashed not in [pid for _, pid in tagged[n:]]
    assert env.server_pids() == [server]  # the same runner: it recovered
    with open(f"/proc/{server}/task/{server}/children") as f:
        assert tagged[-1][1] in [int(p) for p in f.read().split()]
