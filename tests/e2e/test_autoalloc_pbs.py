"""Automatic allocation end to end against the fake PBS (tests/fakepbs/bin on PATH): real `hq`
server, real `qsub`/`qstat`/`qdel` programs keeping state in a directory, and real workers
started by the submitted scripts."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from hqenv import HqEnv, wait_until

FAKEPBS = Path(__file__).resolve().parent.parent / "fakepbs" / "bin"


@pytest.fixture
def pbs_env(tmp_path):
    from hqenv import clean_env

    env = HqEnv(tmp_path, env=clean_env(
        PATH=f"{FAKEPBS}:{os.environ['PATH']}", HQ_FAKE_PBS_DIR=str(tmp_path / "pbs"),
        HQ_AUTOALLOC_BACKOFF="0,0.3", HQ_AUTOALLOC_MAX_SUBMISSION_FAILURES="3",
        HQ_AUTOALLOC_MAX_ALLOCATION_FAILURES="2", HQ_AUTOALLOC_STATUS_INTERVAL="0.5"))
    env.pbs_dir = tmp_path / "pbs"
    try:
        yield env
    finally:
        # allocations the test left running: their process groups (fake PBS runs each job
        # in its own session)
        for f in (env.pbs_dir / "jobs").glob("*.json") if (env.pbs_dir / "jobs").exists() \
                else ():
            job = json.loads(f.read_text())
            if job.get("pid"):
                try:
                    os.killpg(job["pid"], signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        env.close()


def pbs_jobs(env) -> dict:
    d = env.pbs_dir / "jobs"
    if not d.exists():
        return {}
    return {j["id"]: j for j in (json.loads(f.read_text()) for f in d.glob("*.json"))}


def add_queue(env, *args, dry_run=False):
    flags = [] if dry_run else ["--no-dry-run"]
    res = env.run(["alloc", "add", "pbs", *flags, *args])
    assert res.returncode == 0, res.stderr
    assert "Allocation queue" in res.stderr and "successfully created" in res.stderr
    return res


def alloc_info(env, queue_id=1) -> dict:
    """`alloc info --explain` in JSON: the allocations and the queue's decision."""
    return env.command(["alloc", "info", str(queue_id), "--explain"], as_json=True)


ALLOC_KEYS = {"id", "target_worker_count", "queued_at", "started_at", "ended_at", "status",
              "workdir"}


def allocations(env, queue_id=1) -> list[dict]:
    return alloc_info(env, queue_id)["allocations"]


@pytest.mark.timeout(60)
def test_pbs_queue_submits_fast_worker_runs_tasks_idle_timeout_ends(pbs_env):
    env = pbs_env
    env.start_server()
    add_queue(env, "--time-limit", "1m", "--idle-timeout", "1s", "--cpus", "1", "--backlog",
              "1", "--", "-q", "workq")
    queues = env.command(["alloc", "list"], as_json=True)
    assert [set(q) for q in queues] == [{
        "id", "name", "state", "manager", "additional_args", "backlog",
        "max_workers_per_alloc", "timelimit", "max_worker_count", "worker_args",
        "known_worker_resources"}]
    assert queues[0]["manager"] == "PBS" and queues[0]["state"] == "ACTIVE"
    assert queues[0]["additional_args"] == ["-q", "workq"]
    assert allocations(env) == []  # no work, no allocation

    t0 = time.time()
    job = env.submit(["--array", "1-4", "--", "echo", "hi"])
    allocs = wait_until(lambda: allocations(env), 5, 0.05, "an allocation")
    queued_at = allocs[0]["queued_at"]
    from datetime import datetime

    delay = datetime.fromisoformat(queued_at).timestamp() - t0
    assert delay < 1.0, f"first qsub {delay:.2f} s after the submit"
    assert len(allocs) == 1  # backlog 1: one queued allocation at a time
    # Without --explain, JSON is upstream's array of allocations with upstream's keys.
    plain = env.command(["alloc", "info", "1"], as_json=True)
    assert isinstance(plain, list) and plain and set(plain[0]) == ALLOC_KEYS
    workdir = Path(allocs[0]["workdir"])
    assert workdir.parent.parent.name == "autoalloc"
    script = (workdir / "hq-submit.sh").read_text()
    assert "#PBS -l select=1" in script and "#PBS -q workq" in script
    assert '--manager "pbs"' in script and '--idle-timeout "1s"' in script
    assert (workdir / "jobid").read_text() == allocs[0]["id"]

    env.wait_job(job, timeout=30)
    assert env.job_info(job)["info"]["task_stats"]["finished"] == 4
    workers = env.command(["worker", "list", "--all"], as_json=True)
    assert workers and all(w["allocation"]["manager"] == "PBS" for w in workers)
    ids = {a["id"] for a in allocations(env)}
    assert {w["allocation"]["id"] for w in workers} <= ids
    table = env.command(["worker", "info", str(workers[0]["id"])])
    assert "Manager Job ID" in table and workers[0]["allocation"]["id"] in table

    # idle timeout: the workers stop, the allocations end as FINISHED (the PBS job too)
    wait_until(lambda: all(a["status"] == "FINISHED" for a in allocations(env)), 15, 0.2,
               "allocations finished")
    wait_until(lambda: all(j["state"] == "F" for j in pbs_jobs(env).values()), 10, 0.2,
               "pbs jobs finished")
    assert all(j["exit_status"] == 0 for j in pbs_jobs(env).values())
    assert {a["id"] for a in allocations(env)} == set(pbs_jobs(env))
    # the output of an allocation
    out = env.run(["alloc", "log", allocs[0]["id"], "stderr"])
    assert out.returncode == 0 and out.stdout == (workdir / "stderr").read_text()
    assert "INFO" in out.stdout
    info = alloc_info(env)
    assert info["decision"]["servable"] == 0 and info["decision"]["submit"] == []


@pytest.mark.timeout(60)
def test_pbs_remove_refuses_running_then_force_cancels(pbs_env):
    env = pbs_env
    env.start_server()
    add_queue(env, "--time-limit", "1m", "--cpus", "1")
    env.submit(["--", "sleep", "30"])
    wait_until(lambda: [a for a in allocations(env) if a["status"] == "RUNNING"], 15, 0.1,
               "a running allocation")
    out = env.command(["alloc", "remove", "1"], expect_fail=True)
    assert "running allocations" in out and "--force" in out
    assert env.command(["alloc", "list"], as_json=True)[0]["id"] == 1
    res = env.run(["alloc", "remove", "1", "--force"])
    assert res.returncode == 0 and "successfully removed" in res.stderr
    assert env.command(["alloc", "list"], as_json=True) == []
    # qdel'ed: the PBS job ends with SIGTERM's status and the worker is gone
    wait_until(lambda: all(j["state"] == "F" for j in pbs_jobs(env).values()), 10, 0.1,
               "qdel")
    assert [j["exit_status"] for j in pbs_jobs(env).values()] == [271]
    wait_until(lambda: not env.command(["worker", "list"], as_json=True), 10, 0.2,
               "worker gone")
    out = env.command(["alloc", "info", "1"], expect_fail=True)
    assert "Allocation queue 1 not found" in out


@pytest.mark.timeout(60)
def test_pbs_failing_allocations_back_off_and_pause(pbs_env):
    env = pbs_env
    env.start_server()
    # the worker never starts: every allocation ends (Exit_status 1) without a worker
    add_queue(env, "--time-limit", "1m", "--cpus", "1", "--worker-start-cmd", "exit 1")
    env.submit(["--", "true"])
    wait_until(lambda: env.command(["alloc", "list"], as_json=True)[0]["state"] == "PAUSED",
               20, 0.2, "queue paused")
    info = alloc_info(env)
    assert [a["status"] for a in info["allocations"]] == ["FAILED", "FAILED"]
    assert "2 consecutive allocations failed" in info["decision"]["paused"]
    assert info["decision"]["backoff"]["allocation_failures"] == 2
    text = env.command(["alloc", "info", "1"])
    assert "paused" in text and "consecutive allocations failed" in text
    time.sleep(1.5)
    assert len(pbs_jobs(env)) == 2  # paused: no more qsub
    # resume: the queue submits again
    res = env.run(["alloc", "resume", "1"])
    assert res.returncode == 0 and "resumed" in res.stderr
    wait_until(lambda: len(pbs_jobs(env)) == 3, 5, 0.1, "a submission after resume")


@pytest.mark.timeout(60)
def test_pbs_failing_submission_pauses_and_dry_run_reports(pbs_env):
    env = pbs_env
    env.start_server()
    # dry run (default on add) reports qsub's error and creates no queue
    out = env.command(["alloc", "add", "pbs", "--time-limit", "1m", "--", "-q", "nosuch"],
                      expect_fail=True)
    assert "Unknown queue" in out and "hq-submit.sh" in out
    assert env.command(["alloc", "list"], as_json=True) == []
    res = env.run(["alloc", "dry-run", "pbs", "--time-limit", "1m", "-m", "2"])
    assert res.returncode == 0, res.stderr
    assert "submitted successfully" in res.stderr
    held = list(pbs_jobs(env).values())
    assert len(held) == 1 and held[0]["state"] == "F" and held[0]["deleted"]  # held, qdel'ed
    assert held[0]["nodes"] == 2
    add_queue(env, "--time-limit", "1m", "--cpus", "1", "--", "-q", "nosuch")
    env.submit(["--", "true"])
    wait_until(lambda: env.command(["alloc", "list"], as_json=True)[0]["state"] == "PAUSED",
               20, 0.1, "queue paused")
    info = alloc_info(env)
    assert info["allocations"] == []
    assert "3 consecutive submissions failed" in info["decision"]["paused"]
    assert "Unknown queue" in info["decision"]["last_submission_error"]


@pytest.mark.timeout(60)
def test_pbs_unservable_task_never_submits_and_explain_says_so(pbs_env):
    env = pbs_env
    env.start_server()
    add_queue(env, "--time-limit", "10m", "--cpus", "2", "--detect-resources", "none")
    job = env.submit(["--time-request", "1h", "--", "true"])
    job2 = env.submit(["--cpus", "4", "--", "true"])
    time.sleep(1.5)
    assert pbs_jobs(env) == {}
    d = alloc_info(env)["decision"]
    kinds = sorted(u["reason"] for u in d["unservable"])
    assert kinds == ["resources", "time-limit"] and d["submit"] == []
    text = env.command(["task", "explain", str(job), "0"])
    assert "No allocation queue could run the task." in text
    assert "time request 1h" in text
    ex = env.command(["task", "explain", str(job2), "0"], as_json=True)
    assert ex["explanation"]["queues"][0]["ok"] is False
    job3 = env.submit(["--cpus", "2", "--", "true"])
    text = env.command(["task", "explain", str(job3), "0"])
    assert "Allocation queues that could run the task: 1" in text


@pytest.mark.timeout(90)
def test_pbs_kill9_restart_adopts_allocation(pbs_env, tmp_path):
    env = pbs_env
    journal = tmp_path / "journal.bin"
    server = env.start_server("--journal", str(journal))
    add_queue(env, "--time-limit", "1m", "--cpus", "1", "--idle-timeout", "2s",
              "--on-server-lost", "reconnect", "--name", "adopt")
    job = env.submit(["--", "bash", "-c", "sleep 4"])
    wait_until(lambda: [a for a in allocations(env) if a["status"] == "RUNNING"], 15, 0.1,
               "running allocation")
    # The manager may report the allocation RUNNING before its worker has connected.
    before = wait_until(
        lambda: (lambda q: q if q[0]["known_worker_resources"] is not None else None)(
            env.command(["alloc", "list"], as_json=True)), 15, 0.1, "the worker to connect")
    assert "wire" not in json.dumps(before)  # the public resource descriptor, as in worker list
    env.kill(server)
    env.start_server("--journal", str(journal))
    after = env.command(["alloc", "list"], as_json=True)
    assert after == before  # same id, parameters, learnt resources
    allocs = allocations(env)
    assert len(allocs) == 1 and allocs[0]["status"] == "RUNNING"
    env.wait_job(job, timeout=30)
    assert len(pbs_jobs(env)) == 1  # adopted, not submitted again
    workers = env.command(["worker", "list"], as_json=True)
    assert [w["allocation"]["id"] for w in workers] == [allocs[0]["id"]]
    wait_until(lambda: allocations(env)[0]["status"] == "FINISHED", 20, 0.2,
               "allocation finished")
    # a new queue gets the next id
    add_queue(env, "--time-limit", "1m")
    assert [q["id"] for q in env.command(["alloc", "list"], as_json=True)] == [1, 2]
