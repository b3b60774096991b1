"""Crash recovery with a journal: kill -9 the server mid-job and restart it, again and again.

With `--on-server-lost reconnect` workers, nothing is lost and nothing runs twice: every task
ends FINISHED and its side effect (a line appended to one shared file) appears exactly once, and
the workers are never restarted. With `stop` workers (upstream's behaviour) every task still
finishes; tasks that were running at a crash run again.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import time

import pytest

from conftest import wait_until

N_TASKS = 1000
N_KILLS = 10


def _task_command(side: str) -> list[str]:
    # One short write with O_APPEND is atomic: concurrent tasks never interleave lines.
    return ["sh", "-c", f'sleep 0.02; echo "$HQ_TASK_ID $HQ_INSTANCE_ID" >> {side}']


def _kill_and_restart(env, server, journal, rng, log):
    delay = rng.uniform(0.2, 1.0)
    time.sleep(delay)
    log.append(f"kill after {delay:.2f}s")
    server.signal(signal.SIGKILL)
    server.wait(10)
    return env.start_server("--journal", journal)


def _progress(env, job_id) -> dict:
    try:
        return env.job_state(job_id)
    except AssertionError:
        return {}


@pytest.mark.timeout(240)
def test_kill9_with_reconnecting_workers_loses_and_repeats_nothing(hq_env):
    seed = int(os.environ.get("HQ_TEST_SEED", time.time_ns() % 10**6))
    print(f"seed={seed}")
    rng = random.Random(seed)
    journal = str(hq_env.root / "journal.bin")
    side = str(hq_env.root / "side.txt")
    server = hq_env.start_server("--journal", journal)
    workers = [hq_env.start_worker("--on-server-lost", "reconnect", cpus=2) for _ in range(2)]
    pids = [w.pid for w in workers]
    job_id = hq_env.submit(["--array", f"1-{N_TASKS}", "--stdout", "none", "--stderr", "none",
                            "--", *_task_command(side)])
    log: list[str] = []
    for _ in range(N_KILLS):
        server = _kill_and_restart(hq_env, server, journal, rng, log)
    print("; ".join(log))
    hq_env.wait_job(job_id, timeout=120)
    stats = hq_env.job_state(job_id)
    assert stats["finished"] == N_TASKS, stats
    lines = open(side).read().split("\n")[:-1]
    runs = collections.Counter(int(line.split()[0]) for line in lines)
    recomputed = sum(n - 1 for n in runs.values() if n > 1)
    lost = N_TASKS - len(runs)
    print(f"runs={N_KILLS} tasks={N_TASKS} recomputed={recomputed} lost={lost}")
    assert lost == 0 and recomputed == 0, (
        f"seed {seed}: lost {lost}, recomputed {sorted(t for t, n in runs.items() if n > 1)}")
    # The same worker processes served the whole job.
    assert all(w.poll() is None for w in workers)
    assert [w.pid for w in workers] == pids
    states = hq_env.worker_states()
    assert all(states[w.worker_id] == "RUNNING" for w in workers), states


@pytest.mark.timeout(180)
def test_kill9_with_stop_workers_reruns_interrupted_tasks(hq_env):
    seed = int(os.environ.get("HQ_TEST_SEED", time.time_ns() % 10**6))
    print(f"seed={seed}")
    rng = random.Random(seed)
    journal = str(hq_env.root / "journal.bin")
    side = str(hq_env.root / "side.txt")
    server = hq_env.start_server("--journal", journal)
    worker = hq_env.start_worker(cpus=2)
    job_id = hq_env.submit(["--array", "1-300", "--stdout", "none", "--stderr", "none",
                            "--", *_task_command(side)])
    wait_until(lambda: _progress(hq_env, job_id).get("finished", 0) > 20, 30, 0.1)
    log: list[str] = []
    server = _kill_and_restart(hq_env, server, journal, rng, log)
    # A `stop` worker exits with 1 when its server goes away; start a new one.
    assert worker.wait(15) == 1
    hq_env.start_worker(cpus=2)
    hq_env.wait_job(job_id, timeout=120)
    assert hq_env.job_state(job_id)["finished"] == 300
    runs = collections.Counter(int(line.split()[0])
                               for line in open(side).read().split("\n")[:-1])
    assert set(runs) == set(range(1, 301))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP"])
def test_clean_stop_with_journal_restores_the_same_state(hq_env, how):
    journal = str(hq_env.root / "journal.bin")
    server = hq_env.start_server("--journal", journal)
    worker = hq_env.start_worker(cpus=1)
    done = hq_env.submit(["--array", "1-5", "--", "true"])
    failed = hq_env.submit(["--", "false"])
    hq_env.wait_job(done)
    hq_env.wait_job(failed)
    hq_env.kill(worker)
    waiting = hq_env.submit(["--array", "1-3", "--priority", "5", "--", "true"])
    canceled = hq_env.submit(["--array", "0-9", "--", "true"])
    hq_env.command(["job", "cancel", str(canceled), "--reason", "not needed"])
    opened = int(hq_env.command(["job", "open", "--name", "feed"], mode="quiet").strip())

    def snapshot():
        jobs = hq_env.command(["job", "list", "--all"], as_json=True)
        tasks = {j["id"]: [(t["id"], t["state"], t.get("error"))
                           for t in hq_env.tasks(j["id"])] for j in jobs}
        return jobs, tasks

    before = snapshot()
    server.signal(getattr(signal, how))
    assert server.wait(10) == 0
    hq_env.start_server("--journal", journal)
    after = snapshot()
    assert after == before
    info = hq_env.job_info(opened)
    assert info["info"]["is_open"]
    # the restored server keeps counting job ids
    assert hq_env.submit(["--", "true"]) == opened + 1
    assert waiting  # waiting tasks are still there and run once a worker comes
    hq_env.start_worker(cpus=1)
    hq_env.wait_job(waiting)
    assert hq_env.job_state(waiting)["finished"] == 3
