"""Python function tasks end to end: upstream's exact function-task command submitted with the
CLI (`hq submit --stdin --task-dir -- python3 -c "from hyperqueue.task.function import task_main
as m; m()"` with a cloudpickle of `(fn, args, kwargs)` on stdin), run by a real worker on its warm
runner (a fork server) or, for a prologue, the normal way."""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import time
from pathlib import Path

import pytest

cloudpickle = pytest.importorskip("cloudpickle")

from hqenv import HqEnv, pid_alive, read_file, wait_until  # noqa: E402
from hqenv import clean_env, function_task_cluster  # noqa: E402

from hyperqueue.task.function import FUNCTION_CODE, PythonEnv, function_task_args  # noqa: E402
from hyperqueue.worker.pyrunner import RUNNER_CRASHED  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # tasks cannot import this module


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with function_task_cluster(tmp_path_factory.mktemp("fn")) as e:
        yield e


def submit_fn(env, fn, *args, flags=(), command=None, data=None, **kwargs) -> int:
    if data is None:
        data = cloudpickle.dumps((fn, args, kwargs))
    res = env.procs.run(
        [*env.hq, "--server-dir", str(env.server_dir), "--output-mode", "quiet", "submit",
         "--stdin", "--task-dir", *flags, "--", *(command or ["python3", "-c", FUNCTION_CODE])],
        cwd=env.work_dir, env=env.env, input=data, text=False, timeout=30)
    assert res.returncode == 0, res.stderr
    return int(res.stdout.splitlines()[-1])  # after "Reading data from stdin..."


def task_info(env, job, task=0) -> dict:
    return env.command(["task", "info", str(job), str(task)], as_json=True)[0]


def wait_state(env, job, state, timeout=30.0) -> dict:
    return wait_until(lambda: (lambda t: t if t["state"] == state else None)(task_info(env, job)),
                      timeout, 0.1, f"job {job} task 0 {state}")


def parent_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:  # gone (e.g. a shell that ran the interpreter)
        return ""


def describe(tag, *args, **kwargs):
    captured = {"secret": 42}

    def inner():  # a closure over local state
        return captured["secret"]

    info = {"tag": tag, "args": list(args), "kwargs": kwargs, "closure": inner(),
            "cwd": os.getcwd(), "foo": os.environ.get("FOO"), "job": os.environ["HQ_JOB_ID"],
            "task": os.environ["HQ_TASK_ID"], "cpus": os.environ.get("HQ_CPUS"),
            "task_dir": os.environ.get("HQ_TASK_DIR"), "pid": os.getpid(),
            "ppid": os.getppid(), "sid": os.getsid(0)}
    with open(f"info-{tag}-{os.environ['HQ_TASK_ID']}.json", "w") as f:
        json.dump(info, f)
    print(f"out {tag}")
    print(f"err {tag}", file=sys.stderr)
    return {"tag": tag, "sum": sum(args)}


@pytest.mark.timeout(60)
def test_function_task_args_closure_env_cwd_stdio_and_result(env):
    job = submit_fn(env, describe, "a", 1, 2, flags=["--env", "FOO=bar", "--env",
                                                        "HQ_RESULT_DIR=.hq-results"], k="v")
    env.wait_job(job)
    info = json.loads((env.work_dir / "info-a-0.json").read_text())
    assert info["args"] == [1, 2] and info["kwargs"] == {"k": "v"} and info["closure"] == 42
    assert info["cwd"] == str(env.work_dir) and info["foo"] == "bar"
    assert (info["job"], info["task"]) == (str(job), "0")
    assert info["cpus"] in ("0", "1") and info["task_dir"]
    assert not os.path.exists(info["task_dir"])  # removed at the end, as for any task
    assert info["pid"] == info["sid"]
    # it ran on the worker's warm runner, not in an interpreter of its own
    assert "hyperqueue.worker.pyrunner" in parent_cmdline(info["ppid"])
    assert (env.work_dir / f"job-{job}" / "0.stdout").read_text() == "out a\n"
    assert (env.work_dir / f"job-{job}" / "0.stderr").read_text() == "err a\n"
    result = pickle.loads((env.work_dir / ".hq-results" / str(job) / "0.pickle").read_bytes())
    assert result == {"tag": "a", "sum": 3}
    # without HQ_RESULT_DIR (upstream's scripts) nothing is stored
    job = submit_fn(env, describe, "b")
    env.wait_job(job)
    assert not (env.work_dir / ".hq-results" / str(job)).exists()


@pytest.mark.timeout(60)
def test_array_of_function_tasks(env):
    job = submit_fn(env, describe, "arr", 5, flags=["--array", "1-20"])
    env.wait_job(job)
    infos = [json.loads((env.work_dir / f"info-arr-{i}.json").read_text()) for i in range(1, 21)]
    assert {i["task"] for i in infos} == {str(i) for i in range(1, 21)}
    assert len({i["pid"] for i in infos}) == 20


def fail(message):
    raise RuntimeError(message)


@pytest.mark.timeout(60)
def test_exception_is_the_task_error_with_traceback(env):
    job = submit_fn(env, fail, "something broke")
    wait_state(env, job, "failed")
    error = task_info(env, job)["error"]
    assert error.startswith("Traceback (most recent call last):")
    assert 'in fail\n    raise RuntimeError(message)' in error
    assert error.rstrip().endswith("RuntimeError: something broke")
    assert "RuntimeError: something broke" in (env.work_dir / f"job-{job}" / "0.stderr").read_text()


def sleeper(path):
    import subprocess

    child = subprocess.Popen(["sleep", "100"])
    with open(path, "w") as f:
        f.write(f"{os.getpid()} {child.pid} {os.getppid()}\n")
    time.sleep(100)


def read_pids(env, path):
    pids = [int(x) for x in read_file(path).split()]
    for p in pids[:2]:
        env.track_pid(p)
    return pids


@pytest.mark.timeout(60)
def test_time_limit_kills_the_function_task(env, tmp_path):
    path = tmp_path / "pids"
    job = submit_fn(env, sleeper, str(path), flags=["--time-limit", "1s"])
    leader, child, _ = read_pids(env, path)
    t = wait_state(env, job, "failed")
    assert t["error"] == "Time limit reached"
    wait_until(lambda: not pid_alive(leader) and not pid_alive(child), 10, 0.05, "task gone")


@pytest.mark.timeout(60)
def test_cancel_kills_the_function_task(env, tmp_path):
    path = tmp_path / "pids"
    job = submit_fn(env, sleeper, str(path))
    leader, child, _ = read_pids(env, path)
    env.command(["job", "cancel", str(job)])
    wait_state(env, job, "canceled")
    wait_until(lambda: not pid_alive(leader) and not pid_alive(child), 10, 0.05, "task gone")


@pytest.mark.timeout(60)
def test_runner_crash_fails_the_task_and_the_next_one_works(env, tmp_path):
    path = tmp_path / "pids"
    job = submit_fn(env, sleeper, str(path))
    leader, child, runner = read_pids(env, path)
    assert "hyperqueue.worker.pyrunner" in parent_cmdline(runner)
    os.kill(runner, signal.SIGKILL)
    t = wait_state(env, job, "failed")
    assert t["error"] == RUNNER_CRASHED
    wait_until(lambda: not pid_alive(leader) and not pid_alive(child), 10, 0.05, "task gone")
    job = submit_fn(env, describe, "after")
    env.wait_job(job)
    info = json.loads((env.work_dir / "info-after-0.json").read_text())
    assert info["ppid"] != runner and "hyperqueue.worker.pyrunner" in parent_cmdline(info["ppid"])
    assert env.worker.poll() is None  # the worker itself is fine


@pytest.mark.timeout(60)
def test_prologue_runs_the_upstream_way(env):
    command = function_task_args(PythonEnv(prologue="export FOO=from-prologue"))
    assert command == ["bash", "-c", 'export FOO=from-prologue\n\npython3 -c '
                       '"from hyperqueue.task.function import task_main as m; m()"']
    job = submit_fn(env, describe, "pro", command=command)
    env.wait_job(job)
    info = json.loads((env.work_dir / "info-pro-0.json").read_text())
    assert info["foo"] == "from-prologue"
    assert "pyrunner" not in parent_cmdline(info["ppid"])  # its own interpreter
    assert (env.work_dir / f"job-{job}" / "0.stdout").read_text() == "out pro\n"


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


@pytest.mark.timeout(60)
def test_worker_killed_leaves_no_runner_and_no_task_behind(tmp_path):
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    e = HqEnv(tmp_path, env=clean_env(PATH=path))
    try:
        e.start_server()
        worker = e.start_worker(cpus=1)
        pids_file = tmp_path / "pids"
        submit_fn(e, sleeper, str(pids_file))
        leader, child, runner = read_pids(e, pids_file)
        spare = [p for p in children_of(runner) if p != leader]
        assert "pyrunner" in parent_cmdline(runner) and spare  # a child forked ahead
        for p in (runner, *spare):
            e.track_pid(p)
        e.kill(worker)  # SIGKILL: no clean-up of its own
        wait_until(lambda: not any(pid_alive(p) for p in (leader, child, runner, *spare)), 15,
                   0.1, "runner, spare and task gone")
    finally:
        e.close()


@pytest.mark.timeout(60)
def test_worker_stop_stops_the_runner(tmp_path):
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    e = HqEnv(tmp_path, env=clean_env(PATH=path))
    try:
        e.start_server()
        worker = e.start_worker(cpus=1)
        job = submit_fn(e, describe, "stop")
        e.wait_job(job)
        info = json.loads((e.work_dir / "info-stop-0.json").read_text())
        runner = info["ppid"]
        spare = children_of(runner)
        assert spare
        for p in (runner, *spare):
            e.track_pid(p)
        e.command(["worker", "stop", str(worker.worker_id)], allow_stderr=True)
        worker.wait(15)
        wait_until(lambda: not any(pid_alive(p) for p in (runner, *spare)), 10, 0.1,
                   "runner and spare gone")
    finally:
        e.close()


def chatty(n):
    for i in range(n):
        print(f"line {i} of task {os.environ['HQ_TASK_ID']}")
    print("to stderr", file=sys.stderr)


@pytest.mark.timeout(60)
def test_streamed_output_of_function_tasks(env, tmp_path):
    job = submit_fn(env, chatty, 3, flags=["--array", "1-4", "--stream", str(tmp_path / "logs")])
    env.wait_job(job)
    out = env.command(["output-log", str(tmp_path / "logs"), "cat", str(job), "stdout"])
    assert out == "".join(f"line {i} of task {t}\n" for t in range(1, 5) for i in range(3))
    err = env.command(["output-log", str(tmp_path / "logs"), "cat", str(job), "stderr"])
    assert err == "to stderr\n" * 4


@pytest.mark.timeout(60)
def test_upstream_client_payload(env):
    # upstream's client pickles (CloudWrapper(fn), args, kwargs) with plain pickle
    from hyperqueue.task.function.wrapper import CloudWrapper

    data = pickle.dumps((CloudWrapper(describe), ("up", 4), None))
    job = submit_fn(env, None, data=data)
    env.wait_job(job)
    info = json.loads((env.work_dir / "info-up-0.json").read_text())
    assert info["args"] == [4] and "hyperqueue.worker.pyrunner" in parent_cmdline(info["ppid"])
