"""Automatic allocation: the gaps closed by the audit against upstream's inventory
(hq-features.md §1.6, §7) and issue 13, end to end with the fake PBS on PATH (real `hq` server,
real `qsub`/`qstat`/`qdel` programs, real workers started by the submitted scripts)."""

from __future__ import annotations

import json
import re
import shutil
import time
import signal

import pytest

from hqenv import wait_until
from test_autoalloc_pbs import add_queue, allocations, pbs_env, pbs_jobs  # noqa: F401


def journal_records(env, journal) -> list[list]:
    out = env.run(["journal", "export", str(journal)])
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def _stop(env, server, how: str) -> None:
    if how == "server stop":
        env.command(["server", "stop"])
    else:
        server.signal(getattr(signal, how))
    server.popen.wait(20)
    assert server.popen.returncode is not None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGHUP", "server stop"])
def test_graceful_stop_journals_cancelled_allocations(pbs_env, tmp_path, how):
    """A graceful stop cancels the queued and running allocations and journals their end: a
    restart shows them FINISHED at once (no status poll needed), and the cancellation is not
    counted as a failed allocation (no backoff, no pause after a few restarts)."""
    env = pbs_env
    journal = tmp_path / "journal.bin"
    server = env.start_server("--journal", str(journal))
    # queue 1 runs its allocation; queue 2's allocations are held by PBS (-h): stay queued
    add_queue(env, "--time-limit", "1m", "--cpus", "1", "--on-server-lost", "reconnect")
    add_queue(env, "--time-limit", "1m", "--cpus", "1", "--", "-h")
    env.submit(["--array", "1-2", "--", "sleep", "30"])
    running = wait_until(lambda: [a for a in allocations(env, 1) if a["status"] == "RUNNING"],
                         15, 0.1, "a running allocation")
    wait_until(lambda: env.command(["worker", "list"], as_json=True), 15, 0.1, "its worker")
    queued = wait_until(lambda: allocations(env, 2), 5, 0.1, "a queued allocation")
    assert queued[0]["status"] == "QUEUED"
    ids = {running[0]["id"], queued[0]["id"]}

    _stop(env, server, how)
    # both qdel'ed by the stop
    jobs = pbs_jobs(env)
    assert {j["id"] for j in jobs.values() if j["deleted"]} == ids
    # ... and their end is in the journal, before the server's stop record
    events = [r["event"] for r in journal_records(env, journal)]
    kinds = [e["type"] for e in events]
    ended = [(i, e["allocation_id"]) for i, e in enumerate(events)
             if e["type"] == "allocation-finished"]
    assert sorted(aid for _, aid in ended) == sorted(ids), events[-6:]
    assert not [e for e in events if e["type"] == "allocation-failed"]
    assert all(i < kinds.index("server-stop") for i, _ in ended)

    # restart: FINISHED at once, no failure counted, both queues ACTIVE
    env.start_server("--journal", str(journal))
    for qid, aid in ((1, running[0]["id"]), (2, queued[0]["id"])):
        info = env.command(["alloc", "info", str(qid), "--explain"], as_json=True)
        a = next(a for a in info["allocations"] if a["id"] == aid)
        assert a["status"] == "FINISHED" and a["ended_at"] is not None
        assert info["state"] == "ACTIVE"
        assert info["decision"]["backoff"]["allocation_failures"] == 0



@pytest.mark.timeout(60)
def test_list_worker_resources_as_worker_list(pbs_env):
    """`alloc list` Worker resources: `<unknown>` without resources, the declared ones, then
    those of the first connected worker, in the Resources format of `worker list` (F49)."""
    env = pbs_env
    env.start_server()
    add_queue(env, "--time-limit", "1m")
    add_queue(env, "--time-limit", "1m", "--cpus", "2", "--resource", "gpus=[0,1]",
              "--idle-timeout", "1s", "--detect-resources", "none")
    table = env.command(["alloc", "list"])
    rows = [line for line in table.splitlines() if line.startswith("| 1 ") or
            line.startswith("| 2 ")]
    assert "| <unknown>" in rows[0] and "| cpus 2; gpus 2 " in rows[1], table
    env.command(["alloc", "pause", "1"])
    job = env.submit(["--cpus", "2", "--", "true"])
    env.wait_job(job, timeout=30)
    workers = env.command(["worker", "list", "--all"])
    assert "| cpus 2; gpus 2 " in workers
    assert env.command(["alloc", "list"], as_json=True)[1]["known_worker_resources"]
    assert "| cpus 2; gpus 2 " in env.command(["alloc", "list"])


@pytest.mark.timeout(60)
def test_info_shows_backoff_time_and_whole_submission_error(pbs_env, tmp_path):
    """A submission error of several lines is shown whole and indented under `alloc info`,
    and the end of the backoff delay as a time."""
    env = pbs_env
    bad = tmp_path / "badbin"
    bad.mkdir()
    (bad / "qsub").write_text("#!/bin/sh\necho 'qsub: first problem' >&2\n"
                              "echo 'qsub: second problem' >&2\nexit 3\n")
    (bad / "qsub").chmod(0o755)
    env.env = dict(env.env, PATH=f"{bad}:{env.env['PATH']}",
                   HQ_AUTOALLOC_BACKOFF="0,300")
    env.start_server()
    add_queue(env, "--time-limit", "1m", "--cpus", "1")
    env.submit(["--", "true"])
    wait_until(lambda: env.command(["alloc", "info", "1", "--explain"], as_json=True)[
        "decision"]["last_submission_error"], 5, 0.1, "a failed submission")
    lines = env.command(["alloc", "info", "1"]).splitlines()
    i = next(i for i, line in enumerate(lines) if "Last submission error" in line)
    assert lines[i] == "  Last submission error: qsub: first problem"
    assert lines[i + 1] == "    qsub: second problem"
    backoff = next(line for line in lines if "backing off" in line)
    assert re.fullmatch(r"  Not submitting: backing off after 1 failure\(s\) until "
                        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in (5m|4m \d+s)\)", backoff), backoff


@pytest.mark.timeout(60)
def test_two_node_task_makes_one_allocation(pbs_env):
    """The first worker of a 2-node allocation connects before the second: the allocation is
    RUNNING but still covers the waiting 2-node task (before: a second allocation)."""
    env = pbs_env
    env.start_server()
    add_queue(env, "--time-limit", "1m", "-m", "2", "--backlog", "2", "--cpus", "1",
              "--idle-timeout", "1s")
    job = env.submit(["--nodes", "2", "--", "hostname"])
    env.wait_job(job, timeout=30)
    assert env.job_info(job)["info"]["task_stats"]["finished"] == 1
    time.sleep(1.0)  # decisions after the task ended
    jobs = pbs_jobs(env)
    assert len(jobs) == 1 and list(jobs.values())[0]["nodes"] == 2
    script = open(next(iter(allocations(env)))["workdir"] + "/hq-submit.sh").read()
    assert "#PBS -l select=2" in script and "pbsdsh -- bash -l -c '" in script


@pytest.mark.timeout(60)
def test_pbs_status_is_one_qstat_for_all_allocations(pbs_env, tmp_path):
    """Status polling asks PBS once for every active allocation of every queue
    (`qstat -f <id>... -F json -x`, as upstream); Slurm is asked per job (`scontrol show job
    <id>`, as upstream)."""
    env = pbs_env
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    calls = tmp_path / "qstat.calls"
    fake = shutil.which("qstat", path=env.env["PATH"])
    assert fake and "fakepbs" in fake
    (wrap / "qstat").write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {fake} "$@"\n')
    (wrap / "qstat").chmod(0o755)
    env.env = dict(env.env, PATH=f"{wrap}:{env.env['PATH']}")
    env.start_server()
    # held by PBS (-h): the allocations stay queued, so every poll asks about all of them
    add_queue(env, "--time-limit", "1m", "--cpus", "1", "--backlog", "2", "--", "-h")
    add_queue(env, "--time-limit", "1m", "--cpus", "1", "--", "-h")
    env.submit(["--array", "1-3", "--", "true"])
    ids = wait_until(lambda: (lambda a: a if len(a) == 3 else None)(
        [a["id"] for q in (1, 2) for a in allocations(env, q)]), 5, 0.1, "3 allocations")
    wait_until(lambda: calls.exists() and len(calls.read_text().splitlines()) >= 3, 10, 0.1,
               "status polls")
    polls = calls.read_text().splitlines()
    last = polls[-1].split()
    assert last[:1] == ["-f"] and last[-3:] == ["-F", "json", "-x"]
    assert sorted(last[1:-3]) == sorted(ids)
    assert all(a["status"] == "QUEUED" for q in (1, 2) for a in allocations(env, q))


@pytest.mark.timeout(60)
def test_burst_of_submits_never_exceeds_backlog(pbs_env):
    """20 submits at once (parallel clients): never more queued allocations than the backlog
    (held by PBS: they stay queued)."""
    from concurrent.futures import ThreadPoolExecutor

    env = pbs_env
    env.start_server()
    add_queue(env, "--time-limit", "1m", "--cpus", "1", "--backlog", "3", "--", "-h")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: env.run(["submit", "--", "true"]), range(20)))
    assert all(r.returncode == 0 for r in results)
    wait_until(lambda: allocations(env), 5, 0.05, "an allocation")
    time.sleep(2.0)
    assert len(pbs_jobs(env)) == 3
    allocs = allocations(env)
    assert len(allocs) == 3 and all(a["status"] == "QUEUED" for a in allocs)
    d = env.command(["alloc", "info", "1", "--explain"], as_json=True)["decision"]
    assert d["servable"] == 20 and d["covered_by_queued"] == 3 and d["submit"] == []
    assert any("backlog is full" in b for b in d["blocked"])
