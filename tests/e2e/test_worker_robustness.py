"""What a worker must survive (upstream facts F4, F76): a task that reads only part of its stdin."""

from __future__ import annotations

import subprocess

import pytest

from hqenv import HQ


@pytest.mark.timeout(60)
def test_worker_survives_task_that_closes_its_stdin_early(hq_env):
    env = hq_env
    env.start_server()
    worker = env.start_worker(cpus=1)
    # Far more than a pipe buffer: the worker is still writing when the task exits.
    data = b"x" * (8 * 1024 * 1024)
    res = subprocess.run(
        HQ + ["--server-dir", str(env.server_dir), "--output-mode", "quiet", "submit", "--stdin",
              "--", "head", "-c", "1"],
        input=data, capture_output=True, timeout=30, cwd=str(env.work_dir), env=env.env)
    assert res.returncode == 0, res.stderr
    job = int(res.stdout.strip().splitlines()[-1])  # after "Reading data from stdin..."
    env.wait_job(job)
    assert env.job_state(job)["finished"] == 1
    assert worker.poll() is None, f"worker died with {worker.poll()}\n{worker.stderr()}"
    # ... and keeps working.
    job2 = env.submit(["--", "true"])
    env.wait_job(job2)
    assert env.job_state(job2)["finished"] == 1
    assert worker.poll() is None


def test_short_lived_commands_still_end_quietly_on_a_closed_pipe(hq_env):
    env = hq_env
    env.start_server()
    for _ in range(3):
        env.submit(["--", "true"])
    # `hq job list | head -1`: the client dies of SIGPIPE quietly, never a traceback.
    res = subprocess.run(
        " ".join(HQ) + f" --server-dir {env.server_dir} job list --all | head -c 1",
        shell=True, capture_output=True, text=True, timeout=30, env=env.env)
    assert "Traceback" not in res.stderr
