"""Facts F65-F67 (upstream-facts.md §12): journal event shapes, flushing before replies, and
what a restart restores."""

from __future__ import annotations

import json
import signal

import pytest

from hqenv import wait_until

pytestmark = pytest.mark.timeout(90)

LONG_FLUSH = ("--journal-flush-period", "1h")


def export(env, journal) -> list[dict]:
    out = env.command(["journal", "export", str(journal)], allow_stderr=True)
    return [json.loads(line) for line in out.splitlines()]


def test_event_shapes_and_cancel_order(hq_env):
    journal = hq_env.root / "j.bin"
    server = hq_env.start_server("--journal", str(journal))
    worker = hq_env.start_worker(cpus=1)
    job = hq_env.submit(["--array", "1-3", "--", "sleep", "30"])
    wait_until(lambda: any(t["state"] == "running" for t in hq_env.tasks(job)))
    hq_env.command(["job", "cancel", str(job)])
    hq_env.command(["worker", "stop", str(worker.worker_id)], allow_stderr=True)
    w2 = hq_env.start_worker(cpus=1)
    hq_env.kill(w2, signal.SIGTERM)  # interrupted: recorded as ConnectionLost
    w2.wait(10)
    wait_until(lambda: not hq_env.command(["worker", "list"], as_json=True))
    hq_env.stop(server)
    events = export(hq_env, journal)
    for e in events:
        assert e["time"].endswith("Z") and "+00:00" not in e["time"]
    kinds = [e["event"]["type"] for e in events]
    i = kinds.index("job-cancel")
    assert kinds[i:i + 3] == ["job-cancel", "task-canceled", "job-completed"]
    assert events[i]["event"] == {"type": "job-cancel", "job_id": job, "reason": ""}
    assert events[i + 1]["event"] == {"type": "task-canceled", "tasks": [
        {"job_id": job, "job_task_id": t} for t in (1, 2, 3)]}  # waiting tasks too
    lost = [e["event"] for e in events if e["event"]["type"] == "worker-lost"]
    assert lost[:2] == [{"type": "worker-lost", "id": worker.worker_id, "reason": "Stopped"},
                        {"type": "worker-lost", "id": w2.worker_id,
                         "reason": "ConnectionLost"}]


@pytest.mark.parametrize("action", ["submit", "cancel", "open", "close"])
def test_the_journal_is_on_disk_before_the_reply(hq_env, action):
    journal = hq_env.root / "j.bin"
    server = hq_env.start_server("--journal", str(journal), *LONG_FLUSH)
    if action in ("cancel", "close"):
        job = (hq_env.submit(["--", "sleep", "30"]) if action == "cancel" else
               int(hq_env.command(["job", "open"], mode="quiet").strip()))
        hq_env.command(["job", action, str(job)])
        expected = "job-cancel" if action == "cancel" else "job-close"
    elif action == "submit":
        hq_env.submit(["--", "true"])
        expected = "job-created"
    else:
        hq_env.command(["job", "open"])
        expected = "job-open"
    server.signal(signal.SIGKILL)  # no chance to flush after the reply
    server.wait(10)
    assert expected in [e["event"]["type"] for e in export(hq_env, journal)]


def test_restore_drops_completed_jobs_and_moves_worker_ids_on(hq_env):
    journal = hq_env.root / "j.bin"
    server = hq_env.start_server("--journal", str(journal))
    hq_env.start_worker(cpus=1)
    hq_env.start_worker(cpus=1)
    done = hq_env.submit(["--", "true"])
    hq_env.wait_job(done)
    opened = int(hq_env.command(["job", "open"], mode="quiet").strip())
    waiting = hq_env.submit(["--cpus", "8", "--", "true"])  # never fits
    hq_env.stop(server)
    hq_env.start_server("--journal", str(journal))
    ids = [j["id"] for j in hq_env.command(["job", "list", "--all"], as_json=True)]
    assert ids == [opened, waiting]  # the finished job is gone, even with --all
    assert hq_env.submit(["--", "true"]) == waiting + 1
    w = hq_env.start_worker(cpus=1)
    assert w.worker_id == 2 + 2  # highest worker id in the journal + 2


def test_an_existing_journal_without_workers_gives_worker_id_2(hq_env):
    journal = hq_env.root / "j.bin"
    server = hq_env.start_server("--journal", str(journal))
    hq_env.stop(server)
    hq_env.start_server("--journal", str(journal))
    assert hq_env.start_worker(cpus=1).worker_id == 2


def test_crash_counter_survives_a_restart(hq_env):
    journal = hq_env.root / "j.bin"
    server = hq_env.start_server("--journal", str(journal))
    w = hq_env.start_worker(cpus=1)
    job = hq_env.submit(["--crash-limit", "2", "--", "sleep", "30"])
    wait_until(lambda: hq_env.tasks(job)[0]["state"] == "running")
    hq_env.kill(w)  # crash 1 (ConnectionLost)
    wait_until(lambda: hq_env.tasks(job)[0]["state"] == "waiting")
    hq_env.stop(server)
    hq_env.start_server("--journal", str(journal))
    w = hq_env.start_worker(cpus=1)
    wait_until(lambda: hq_env.tasks(job)[0]["state"] == "running")
    hq_env.kill(w)  # crash 2: the limit is reached
    wait_until(lambda: hq_env.tasks(job)[0]["state"] == "failed")
