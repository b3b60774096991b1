"""Supervision of task processes: long time limits are honoured (no overflow after the spawn),
out-of-range durations are refused where they enter (CLI, job files, #HQ directives), a task's
process group dies with the task on every end path, and a task's CPUs are only handed out again
once its processes are gone."""

from __future__ import annotations

import time

import pytest

from hqenv import pid_alive, read_file, wait_until

TOO_LONG = "too long (maximum is 10 years)"


@pytest.fixture(scope="module")
def env(shared_env):
    # one CPU: a second task can only start once the first one's CPU is free
    shared_env.start_worker(cpus=1)
    return shared_env


def job_ids(env) -> list[int]:
    return [j["id"] for j in env.command(["job", "list", "--all"], as_json=True)]


def task_state(env, job) -> str:
    return env.tasks(job)[0]["state"]


def read_pid(env, path) -> int:
    pid = int(read_file(path).split()[0])
    env.track_pid(pid)
    return pid


@pytest.mark.timeout(60)
def test_long_time_limit_runs_normally_and_can_be_cancelled(env, tmp_path):
    # 30 days is 2.6e9 ms: more than poll() can wait in one call
    job = env.submit(["--time-limit", "30d", "--", "sh", "-c", "echo $$ > pid; sleep 100"],
                     cwd=tmp_path)
    pid = read_pid(env, tmp_path / "pid")
    other = env.submit(["--", "sh", "-c", "echo ran > other"], cwd=tmp_path)
    time.sleep(1.5)  # the bug reported the task FAILED within ~20 ms of its start
    assert task_state(env, job) == "running"
    assert pid_alive(pid)
    assert task_state(env, other) == "waiting"  # the only CPU is still taken
    assert env.job_info(job)["tasks"][0]["state"] == "running"

    env.command(["job", "cancel", str(job)])
    wait_until(lambda: not pid_alive(pid), 10, 0.05, "the cancelled task's process to die")
    env.wait_job(other)
    assert (tmp_path / "other").read_text() == "ran\n"
    assert task_state(env, job) == "canceled"


@pytest.mark.timeout(60)
def test_ten_year_time_limit_task_finishes(env, tmp_path):
    job = env.submit(["--time-limit", "10y", "--", "true"], cwd=tmp_path)
    env.wait_job(job)
    assert task_state(env, job) == "finished"
    assert env.job_info(job)["submits"][0]["array"]["time_limit"] == 10 * 365.25 * 86400


@pytest.mark.parametrize("value, reason", [
    ("11y", f"Invalid duration '11y': {TOO_LONG}"),
    ("3653d", f"Invalid duration '3653d': {TOO_LONG}"),
    ("1" + "0" * 400, TOO_LONG),
    ("inf", "Invalid duration 'inf': expected a number at 'inf'"),
    ("nan", "Invalid duration 'nan': expected a number at 'nan'"),
    ("-5s", "Invalid duration '-5s': expected a number at '-5s'"),
])
@pytest.mark.timeout(60)
def test_cli_refuses_out_of_range_durations(env, tmp_path, value, reason):
    before = job_ids(env)
    for option in ("--time-limit", "--time-request"):
        res = env.run(["submit", option, value, "--", "true"], cwd=tmp_path)
        assert res.returncode == 2, res  # a value-parser error, as upstream (clap)
        # clap's wording (upstream-facts F3)
        assert res.stderr.startswith(f"error: invalid value '{value}' for '{option} <"), res
        assert reason in res.stderr
    res = env.run(["worker", "start", "--cpus", "1", "--heartbeat", value])
    assert res.returncode == 2 and "invalid value '" in res.stderr, res
    assert "for '--heartbeat <HEARTBEAT>'" in res.stderr, res
    assert reason in res.stderr
    assert job_ids(env) == before


@pytest.mark.timeout(60)
def test_directive_refuses_out_of_range_time_limit(env, tmp_path):
    before = job_ids(env)
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\n#HQ --time-limit 11y\ntrue\n")
    script.chmod(0o755)
    res = env.run(["submit", "job.sh"], cwd=tmp_path)
    assert res.returncode == 1, res
    assert res.stderr.startswith(  # upstream-facts F24
        "Could not parse directives from job.sh: You have used invalid parameter(s) after a "
        "#HQ directive.\n"), res.stderr
    assert f"Invalid duration '11y': {TOO_LONG}" in res.stderr
    assert job_ids(env) == before


@pytest.mark.parametrize("key, value, reason", [
    ("time_limit", '"inf"', "Invalid duration 'inf': expected a number at 'inf'"),
    ("time_limit", "inf", f"Invalid duration: {TOO_LONG}"),
    ("time_limit", "1e400", f"Invalid duration: {TOO_LONG}"),
    ("time_limit", "nan", "Invalid duration: not a number"),
    ("time_limit", "-5", "Invalid duration: must be positive"),
    ("time_limit", "0", "Invalid duration: must be positive"),
    ("time_limit", "400000000", f"Invalid duration: {TOO_LONG}"),
    ("time_limit", '"11y"', f"Invalid duration '11y': {TOO_LONG}"),
    ("time_request", "1e400", f"Invalid duration: {TOO_LONG}"),
    ("time_request", "-1.5", "Invalid duration: must be positive"),
    ("time_request", '"20y"', f"Invalid duration '20y': {TOO_LONG}"),
])
@pytest.mark.timeout(60)
def test_job_file_refuses_out_of_range_durations(env, tmp_path, key, value, reason):
    before = job_ids(env)
    if key == "time_limit":
        text = f'[[task]]\ncommand = ["true"]\n{key} = {value}\n'
        where = "task[0].time_limit"
    else:
        text = f'[[task]]\ncommand = ["true"]\n[[task.request]]\n{key} = {value}\n'
        where = "task[0].request[0].time_request"
    (tmp_path / "job.toml").write_text(text)
    out = env.command(["job", "submit-file", "job.toml"], expect_fail=True, cwd=tmp_path)
    assert out.strip().endswith(f"Deserialization error: Invalid job file: {where}: {reason}"), out
    assert job_ids(env) == before


@pytest.mark.timeout(60)
def test_job_file_long_time_limit_runs(env, tmp_path):
    (tmp_path / "job.toml").write_text('[[task]]\ncommand = ["sh", "-c", "echo ok"]\n'
                                       'time_limit = 2592000.0\n'
                                       '[[task.request]]\ntime_request = "1s"\n')
    out = env.command(["job", "submit-file", "job.toml"], cwd=tmp_path)
    job = int(out.strip().rsplit(" ", 1)[1])
    env.wait_job(job)
    assert task_state(env, job) == "finished"


# -- a task's background children die with it ----------------------------------------------

# `sleep 100 &` in a non-interactive shell ignores SIGINT: only a kill of the group ends it
END_PATHS = {
    "finished": (["--"], "exit 0", "finished"),
    "failed": (["--"], "exit 3", "failed"),
    "time-limit": (["--time-limit", "1s", "--"], "sleep 60", "failed"),
    "cancelled": (["--"], "sleep 60", "canceled"),
    "streamed": (["--stream", "streams", "--"], "echo streamed", "finished"),
}


@pytest.mark.parametrize("path", sorted(END_PATHS))
@pytest.mark.timeout(60)
def test_background_child_dies_with_the_task(env, tmp_path, path):
    args, end, state = END_PATHS[path]
    job = env.submit([*args, "sh", "-c", f"sleep 100 & echo $! > bg; {end}"], cwd=tmp_path)
    child = read_pid(env, tmp_path / "bg")
    if path == "cancelled":
        wait_until(lambda: task_state(env, job) == "running", 10, 0.1, "task running")
        env.command(["job", "cancel", str(job)])
    env.wait_job(job)
    assert task_state(env, job) == state
    # the task is reported only after its group was killed
    assert not pid_alive(child), f"background child {child} outlived the {path} task"


@pytest.mark.timeout(60)
def test_cpus_are_not_reused_while_the_task_process_runs(env, tmp_path):
    """A task that ignores SIGINT past its time limit keeps its CPU until it is killed (after
    the grace period): the next task sees it gone when it starts."""
    job = env.submit(["--time-limit", "1s", "--", "sh", "-c",
                      "trap '' INT; echo $$ > pid; sleep 60; true"], cwd=tmp_path)
    pid = read_pid(env, tmp_path / "pid")
    nxt = env.submit(["--", "sh", "-c",
                      f"if kill -0 {pid} 2>/dev/null; then echo alive; else echo gone; fi > seen"],
                     cwd=tmp_path)
    env.wait_job(nxt)
    assert task_state(env, job) == "failed"
    info = env.command(["task", "info", str(job), "0"], as_json=True)[0]
    assert info["error"] == "Time limit reached"
    assert (tmp_path / "seen").read_text() == "gone\n"
    assert not pid_alive(pid)
