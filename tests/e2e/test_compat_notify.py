"""Task notifications (upstream-facts.md §15, F74-F75): `hq task notify` inside a task,
`hq submit --wait --on-notify CMD`, never journaled."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.timeout(90)

CALLBACK = """#!/bin/sh
echo "$HQ_JOB_ID $HQ_TASK_ID $HQ_WORKER_ID [$1] [$2] [$3]" >> "{log}"
sleep 0.2
echo "end $2" >> "{log}"
[ "$2" = "fail" ] && exit 3
exit 0
"""


def test_every_task_gets_the_access_key_and_the_hq_path(hq_env):
    hq_env.start_server()
    hq_env.start_worker()
    job = hq_env.submit(["--", "sh", "-c", 'echo "$HQ_ACCESS_KEY"; echo "$HQ"'])
    hq_env.wait_job(job)
    key, hq = (hq_env.work_dir / f"job-{job}" / "0.stdout").read_text().splitlines()
    path, token = key.rsplit(":", 1)
    assert os.path.basename(path).startswith("hq-lc-") and token.startswith("hq0-")
    assert os.path.isabs(hq) and os.path.basename(hq) == "hq"


def test_on_notify_runs_the_callback_per_notification_one_at_a_time(hq_env):
    journal = hq_env.root / "j.bin"
    hq_env.start_server("--journal", str(journal))
    w = hq_env.start_worker(cpus=2)
    log = hq_env.root / "cb.log"
    cb = hq_env.root / "cb.sh"
    cb.write_text(CALLBACK.format(log=log))
    cb.chmod(0o755)
    res = hq_env.run(["submit", "--wait", "--on-notify", f"{cb} 'two words'", "--",
                      "sh", "-c", '"$HQ" task notify "hello there"; "$HQ" task notify fail'])
    assert res.returncode == 0, res.stderr
    lines = log.read_text().splitlines()
    assert lines == [f"1 0 {w.worker_id} [two words] [hello there] []", "end hello there",
                     f"1 0 {w.worker_id} [two words] [fail] []", "end fail"]
    assert "on_notify callback finished with exit code: exit status: 3" in res.stderr
    # never journaled
    out = hq_env.command(["journal", "export", str(journal)], allow_stderr=True)
    kinds = [json.loads(line)["event"]["type"] for line in out.splitlines()]
    assert kinds == ["server-start", "worker-connected", "job-created", "task-started",
                     "task-finished", "job-completed"]


def test_on_notify_start_failure_is_only_logged_and_progress_ignores_it(hq_env):
    hq_env.start_server()
    hq_env.start_worker()
    res = hq_env.run(["submit", "--wait", "--on-notify", "/nonexistent/callback", "--",
                      "sh", "-c", '"$HQ" task notify hi'])
    assert res.returncode == 0
    assert ("Failed to run on_notify callback: No such file or directory (os error 2)"
            in res.stderr)
    res = hq_env.run(["submit", "--progress", "--on-notify", "/nonexistent/callback", "--",
                      "sh", "-c", '"$HQ" task notify hi'])
    assert res.returncode == 0 and "on_notify" not in res.stderr


def test_notify_errors(hq_env):
    hq_env.start_server()
    hq_env.start_worker()
    job = hq_env.submit(["--", "sh", "-c",
                         '"$HQ" task notify "$(head -c 1025 /dev/zero | tr "\\0" x)"'])
    hq_env.wait_job(job)
    assert hq_env.job_state(job)["failed"] == 1
    err = (hq_env.work_dir / f"job-{job}" / "0.stderr").read_text()
    assert "Notify message limit exceeded, message len: 1025, limit: 1024" in err
    res = hq_env.run(["task", "notify", "x"])
    assert res.returncode == 1
    assert ("HQ_ACCESS_KEY variable not found. Are you running this command inside a task?"
            in res.stderr)
    res = hq_env.run(["task", "notify", "x"], env={"HQ_ACCESS_KEY": "nocolon"})
    assert res.returncode == 1 and "Value of HQ_ACCESS_KEY has a wrong format" in res.stderr
