"""Automatic allocation end to end against a real Slurm (`.ci/run` starts one with
`/work/shared/tools/slurm/slurm-up.sh`: two virtual nodes on this host). Skipped with the reason
where Slurm is not installed or not running."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest

from hqenv import HqEnv, wait_until

pytestmark = pytest.mark.slurm


def _slurm_state() -> str | None:
    """None when a Slurm with idle nodes answers; else why the tests skip."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm is not installed (no sinfo/sbatch on PATH)"
    try:
        p = subprocess.run(["sinfo", "-h", "-o", "%D %t"], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"Slurm does not answer: {e}"
    if p.returncode != 0:
        return f"Slurm is not running (sinfo: {p.stderr.strip()[:200]})"
    nodes = sum(int(line.split()[0]) for line in p.stdout.splitlines()
                if line.split()[1:] and line.split()[1].rstrip("*") in ("idle", "mix", "alloc"))
    if nodes < 2:
        return f"Slurm needs 2 usable nodes for these tests (sinfo: {p.stdout.strip()!r})"
    return None


_REASON = _slurm_state()
if _REASON is not None:
    pytestmark = [pytest.mark.slurm, pytest.mark.skip(reason=_REASON)]


@pytest.fixture
def slurm_env(tmp_path):
    from hqenv import clean_env

    env = HqEnv(tmp_path, env=clean_env(
        HQ_AUTOALLOC_BACKOFF="0,0.3", HQ_AUTOALLOC_MAX_SUBMISSION_FAILURES="3",
        HQ_AUTOALLOC_MAX_ALLOCATION_FAILURES="2", HQ_AUTOALLOC_STATUS_INTERVAL="0.5"))
    env.slurm_jobs = set()
    try:
        yield env
    finally:
        env.close()
        # whatever allocation a failed test left behind (only this test's jobs)
        for job_id in env.slurm_jobs:
            subprocess.run(["scancel", job_id], capture_output=True)


def slurm_state(job_id: str) -> str:
    p = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True)
    for tok in p.stdout.split():
        if tok.startswith("JobState="):
            return tok.split("=", 1)[1]
    return "UNKNOWN"


def add_queue(env, *args):
    res = env.run(["alloc", "add", "slurm", *args])
    assert res.returncode == 0, res.stderr
    return res


def allocations(env, queue_id=1) -> list[dict]:
    allocs = env.command(["alloc", "info", str(queue_id), "--explain"],
                         as_json=True)["allocations"]
    env.slurm_jobs.update(a["id"] for a in allocs)
    return allocs


@pytest.mark.timeout(90)
def test_slurm_queue_runs_tasks_and_idle_timeout_ends_allocation(slurm_env):
    env = slurm_env
    env.start_server()
    add_queue(env, "--time-limit", "5m", "--idle-timeout", "2s", "--cpus", "1")
    t0 = time.time()
    job = env.submit(["--array", "1-3", "--", "hostname"])
    allocs = wait_until(lambda: allocations(env), 5, 0.05, "an allocation")
    from datetime import datetime

    assert datetime.fromisoformat(allocs[0]["queued_at"]).timestamp() - t0 < 1.0
    env.wait_job(job, timeout=60)
    workers = env.command(["worker", "list", "--all"], as_json=True)
    assert workers and all(w["allocation"]["manager"] == "Slurm" for w in workers)
    wait_until(lambda: all(a["status"] == "FINISHED" for a in allocations(env)), 30, 0.3,
               "allocations finished")
    wait_until(lambda: all(slurm_state(a["id"]) == "COMPLETED" for a in allocations(env)),
               30, 0.3, "slurm jobs completed")


@pytest.mark.timeout(90)
def test_slurm_two_node_allocation_starts_two_workers(slurm_env):
    env = slurm_env
    env.start_server()
    add_queue(env, "--time-limit", "5m", "--idle-timeout", "2s", "--cpus", "1",
              "--max-workers-per-alloc", "2")
    job = env.submit(["--nodes", "2", "--", "bash", "-c", "echo $HQ_NODE_FILE"])
    allocs = wait_until(lambda: allocations(env), 10, 0.1, "an allocation")
    assert allocs[0]["target_worker_count"] == 2
    script = open(f"{allocs[0]['workdir']}/hq-submit.sh").read()
    assert "#SBATCH --nodes=2" in script and "srun --overlap --ntasks=2 --nodes=2" in script
    env.wait_job(job, timeout=60)
    assert env.job_info(job)["info"]["task_stats"]["finished"] == 1
    workers = env.command(["worker", "list", "--all"], as_json=True)
    assert len(workers) == 2 and {w["allocation"]["id"] for w in workers} == {allocs[0]["id"]}
    # (both virtual nodes of slurm-up.sh run on this host: same hostname)
    wait_until(lambda: allocations(env)[0]["status"] == "FINISHED", 30, 0.3, "finished")
    assert len(allocations(env)) == 1  # the first worker's connect did not make another one


@pytest.mark.timeout(90)
def test_slurm_scancel_is_noticed(slurm_env):
    env = slurm_env
    env.start_server()
    add_queue(env, "--time-limit", "5m", "--cpus", "1", "--backlog", "1",
              "--max-worker-count", "1")
    env.submit(["--", "sleep", "60"])
    alloc = wait_until(lambda: [a for a in allocations(env) if a["status"] == "RUNNING"], 30,
                       0.2, "running allocation")[0]
    subprocess.run(["scancel", alloc["id"]], check=True)
    wait_until(lambda: allocations(env)[0]["status"] in ("FINISHED", "FAILED"), 30, 0.3,
               "scancel noticed")
    wait_until(lambda: not env.command(["worker", "list"], as_json=True), 20, 0.3,
               "worker gone")


@pytest.mark.timeout(90)
def test_slurm_bad_partition_backs_off_and_pauses(slurm_env):
    env = slurm_env
    env.start_server()
    out = env.command(["alloc", "add", "slurm", "--time-limit", "5m", "--", "--partition=nosuch"],
                      expect_fail=True)
    assert "invalid partition" in out.lower() and "hq-submit.sh" in out
    add_queue(env, "--no-dry-run", "--time-limit", "5m", "--cpus", "1", "--",
              "--partition=nosuch")
    env.submit(["--", "true"])
    wait_until(lambda: env.command(["alloc", "list"], as_json=True)[0]["state"] == "PAUSED",
               30, 0.2, "queue paused")
    info = env.command(["alloc", "info", "1", "--explain"], as_json=True)
    assert "3 consecutive submissions failed" in info["decision"]["paused"]
    assert "invalid partition" in info["decision"]["last_submission_error"].lower()


@pytest.mark.timeout(60)
def test_slurm_dry_run(slurm_env):
    env = slurm_env
    env.start_server()
    res = env.run(["alloc", "dry-run", "slurm", "--time-limit", "5m", "-m", "2"])
    assert res.returncode == 0, res.stderr
    job_id = res.stderr.split("(job ")[1].split(")")[0]
    env.slurm_jobs.add(job_id)
    wait_until(lambda: slurm_state(job_id) in ("CANCELLED", "UNKNOWN"), 10, 0.2,
               "dry-run job cancelled")
    assert env.command(["worker", "list", "--all"], as_json=True) == []  # held: never ran


@pytest.mark.timeout(120)
def test_slurm_kill9_restart_adopts_allocation(slurm_env, tmp_path):
    env = slurm_env
    journal = tmp_path / "journal.bin"
    server = env.start_server("--journal", str(journal))
    add_queue(env, "--no-dry-run", "--time-limit", "5m", "--cpus", "1", "--idle-timeout",
              "2s", "--on-server-lost", "reconnect")
    job = env.submit(["--", "sleep", "5"])
    alloc = wait_until(lambda: [a for a in allocations(env) if a["status"] == "RUNNING"], 30,
                       0.2, "running allocation")[0]
    # Slurm reports RUNNING before the allocation's worker has connected: wait for the worker
    # (the queue learns its resources then) so that `before` is the state the journal holds.
    before = wait_until(lambda: (q := env.command(["alloc", "list"], as_json=True))
                        and q[0]["known_worker_resources"] is not None and q, 30, 0.2,
                        "the allocation's worker connected")
    env.kill(server)
    env.start_server("--journal", str(journal))
    assert env.command(["alloc", "list"], as_json=True) == before
    assert [a["id"] for a in allocations(env)] == [alloc["id"]]
    env.wait_job(job, timeout=60)
    assert [a["id"] for a in allocations(env)] == [alloc["id"]]  # not submitted again
    workers = env.command(["worker", "list"], as_json=True)
    assert [w["allocation"]["id"] for w in workers] == [alloc["id"]]
    wait_until(lambda: allocations(env)[0]["status"] == "FINISHED", 30, 0.3, "finished")


@pytest.mark.timeout(90)
def test_slurm_graceful_stop_journals_cancelled_allocation(slurm_env, tmp_path):
    env = slurm_env
    journal = tmp_path / "journal.bin"
    server = env.start_server("--journal", str(journal))
    add_queue(env, "--no-dry-run", "--time-limit", "5m", "--cpus", "1")
    env.submit(["--", "sleep", "60"])
    alloc = wait_until(lambda: [a for a in allocations(env) if a["status"] == "RUNNING"], 30,
                       0.2, "running allocation")[0]
    server.signal(signal.SIGTERM)
    server.popen.wait(20)
    wait_until(lambda: slurm_state(alloc["id"]) in ("CANCELLED", "UNKNOWN"), 10, 0.2,
               "scancel")
    env.start_server("--journal", str(journal))
    info = env.command(["alloc", "info", "1", "--explain"], as_json=True)
    env.slurm_jobs.update(x["id"] for x in info["allocations"])  # scancel'ed at teardown
    a = next(a for a in info["allocations"] if a["id"] == alloc["id"])
    assert a["status"] == "FINISHED"  # journaled by the stop (Slurm says CANCELLED)
    assert info["decision"]["backoff"]["allocation_failures"] == 0
