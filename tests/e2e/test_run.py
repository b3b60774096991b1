"""`hq run`: an embedded server and worker for one job."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from hqenv import HQ, pid_alive, read_file, wait_until


@pytest.mark.timeout(60)
def test_run_array(hq_env, tmp_path):
    res = hq_env.run(["run", "--array", "1-4", "--", "sh", "-c", "echo task $HQ_TASK_ID"],
                     cwd=tmp_path, timeout=50)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    for tid in range(1, 5):
        assert (tmp_path / "job-1" / f"{tid}.stdout").read_text() == f"task {tid}\n"
    # no server directory is needed or created
    assert not hq_env.server_dir.exists()


@pytest.mark.timeout(60)
def test_run_failing_task(hq_env, tmp_path):
    res = hq_env.run(["run", "--array", "1-3", "--", "sh", "-c", "[ $HQ_TASK_ID != 2 ]"],
                     cwd=tmp_path, timeout=50)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    out = res.stdout + res.stderr
    assert "task 2 failed" in out, out
    assert "Program terminated with exit code 1." in out, out
    assert "task 1 failed" not in out and "task 3 failed" not in out, out


@pytest.mark.timeout(60)
def test_run_interrupted(hq_env, tmp_path):
    proc = subprocess.Popen(
        HQ + ["run", "--", "sh", "-c", 'sh -c "echo \\$\\$ > child; exec sleep 100"; true'],
        cwd=tmp_path, env=hq_env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        child = int(read_file(tmp_path / "child", timeout=30))
        hq_env.track_pid(child)
        assert pid_alive(child)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=15)
        assert time.monotonic() - t0 < 10
        assert proc.returncode != 0
        assert "Traceback" not in stderr, stderr
        wait_until(lambda: not pid_alive(child), 5, 0.05, "the task process to die")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
