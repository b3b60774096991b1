"""Crash recovery with a journal: kill -9 the server mid-job and restart it, again and again.

With `--on-server-lost reconnect` workers, nothing is lost and nothing runs twice: every task
ends FINISHED and its side effect (a line appended to one shared file) appears exactly once, and
the workers are never restarted. With `stop` workers (upstream's behaviour) every task still
finishes; tasks that were running at a crash run again.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import time

import pytest

from hqenv import HQ, wait_until

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


def _finished_tasks(env, journal, job_id) -> set[int]:
    """The job's finished task ids. A job whose completion was journaled before the last restart
    is dropped by restore (upstream-facts F67: not even `job list --all` shows it); then the
    journal is the record of what finished."""
    jobs = {j["id"]: j for j in env.command(["job", "list", "--all"], as_json=True)}
    if job_id in jobs:
        assert jobs[job_id]["task_stats"]["finished"] == N_TASKS, jobs[job_id]
        return set(range(1, N_TASKS + 1))
    events = [json.loads(line)["event"]
              for line in env.command(["journal", "export", journal]).splitlines()]
    assert {"type": "job-completed", "job": job_id} in events
    return {e["task"] for e in events if e["type"] == "task-finished" and e["job"] == job_id}


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
    assert _finished_tasks(hq_env, journal, job_id) == set(range(1, N_TASKS + 1))
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
    # As upstream: jobs whose completion was journaled are not restored (F67).
    completed = {done, failed, canceled}
    assert after == ([j for j in before[0] if j["id"] not in completed],
                     {k: v for k, v in before[1].items() if k not in completed})
    assert [j["id"] for j in after[0]] == [waiting, opened]
    info = hq_env.job_info(opened)
    assert info["info"]["is_open"]
    # the restored server keeps counting job ids
    assert hq_env.submit(["--", "true"]) == opened + 1
    assert waiting  # waiting tasks are still there and run once a worker comes
    hq_env.start_worker(cpus=1)
    hq_env.wait_job(waiting)
    assert hq_env.job_state(waiting)["finished"] == 3


# -- Nothing a client was told is lost -------------------------------------------------------
# The journal is flushed only every hour here: whatever a client sees FINISHED must have been
# made durable for (and before) that answer, not by the periodic flush.

LONG_FLUSH = ("--journal-flush-period", "1h")


def _side_runs(side: str) -> collections.Counter:
    try:
        text = open(side).read()
    except FileNotFoundError:
        return collections.Counter()
    return collections.Counter(int(line.split()[0]) for line in text.split("\n")[:-1])


def _crash_worker(env, policy: str):
    worker = env.start_worker("--on-server-lost", policy, cpus=2)
    return worker


def _after_crash(env, policy, worker, journal):
    """kill -9 has been sent to the server: restart it with the same journal. A reconnecting
    worker is frozen first so that it cannot resend its results before the test looks."""
    if policy == "reconnect":
        worker.signal(signal.SIGSTOP)
    return env.start_server("--journal", journal, *LONG_FLUSH)


def _resume_workers(env, policy, worker):
    """Lets the job's remaining work run: a `stop` worker has exited (start a new one), a
    reconnecting one is thawed and comes back with its unconfirmed results."""
    if policy == "stop":
        assert worker.wait(15) == 1
        return env.start_worker("--on-server-lost", "stop", cpus=2)
    worker.signal(signal.SIGCONT)
    wait_until(lambda: env.worker_states().get(worker.worker_id) == "RUNNING", 20, 0.2,
               "the worker to reconnect")
    return worker


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["stop", "reconnect"])
def test_kill9_after_submit_wait_keeps_every_task_finished(hq_env, policy):
    journal = str(hq_env.root / "journal.bin")
    side = str(hq_env.root / "side.txt")
    server = hq_env.start_server("--journal", journal, *LONG_FLUSH)
    worker = _crash_worker(hq_env, policy)
    res = hq_env.run(["submit", "--wait", "--array", "1-40", "--stdout", "none",
                      "--stderr", "none", "--", "sh", "-c", f'echo "$HQ_TASK_ID" >> {side}'])
    assert res.returncode == 0, res
    out = res.stderr  # `Wait finished in ...: 1 job finished` is a log record
    server.signal(signal.SIGKILL)  # the moment the client was told
    server.wait(10)
    assert "1 job finished" in out, out
    _after_crash(hq_env, policy, worker, journal)
    # The job's completion was on disk when the client was told: as upstream, a completed
    # job is not restored at all (F67), and nothing of it runs again.
    assert hq_env.command(["job", "list", "--all"], as_json=True) == []
    _resume_workers(hq_env, policy, worker)
    time.sleep(0.5)
    assert hq_env.submit(["--", "true"]) == 2  # the id counter continues after it
    runs = _side_runs(side)
    assert set(runs) == set(range(1, 41)) and set(runs.values()) == {1}, runs


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["stop", "reconnect"])
def test_kill9_the_moment_a_poll_shows_finished_tasks(hq_env, policy):
    journal = str(hq_env.root / "journal.bin")
    side = str(hq_env.root / "side.txt")
    server = hq_env.start_server("--journal", journal, *LONG_FLUSH)
    worker = _crash_worker(hq_env, policy)
    n = 200
    job_id = hq_env.submit(["--array", f"1-{n}", "--stdout", "none", "--stderr", "none", "--",
                            *_task_command(side)])

    def finished_now():
        return {t["id"] for t in hq_env.tasks(job_id) if t["state"] == "finished"}

    seen = wait_until(finished_now, 20, 0.05, "a task to be FINISHED in `task list`")
    server.signal(signal.SIGKILL)
    server.wait(10)
    assert len(seen) < n  # the crash came in the middle of the job
    _after_crash(hq_env, policy, worker, journal)
    after = {t["id"]: t["state"] for t in hq_env.tasks(job_id)}
    assert {after[t] for t in seen} == {"finished"}, {t: after[t] for t in seen}
    assert hq_env.job_info(job_id)["info"]["task_stats"]["finished"] >= len(seen)
    _resume_workers(hq_env, policy, worker)
    hq_env.wait_job(job_id, timeout=40)
    assert hq_env.job_state(job_id)["finished"] == n
    runs = _side_runs(side)
    assert set(runs) == set(range(1, n + 1))
    # What the client saw FINISHED never runs again; with reconnecting workers nothing does.
    again = {t for t, k in runs.items() if k > 1}
    assert not (again & seen), sorted(again & seen)
    if policy == "reconnect":
        assert not again, sorted(again)


def _stream_lines(path) -> list[dict]:
    import json

    try:
        text = open(path).read()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.split("\n")[:-1]]


@pytest.mark.timeout(60)
def test_kill9_the_moment_the_event_stream_shows_a_finished_task(hq_env):
    journal = str(hq_env.root / "journal.bin")
    side = str(hq_env.root / "side.txt")
    server = hq_env.start_server("--journal", journal, *LONG_FLUSH)
    worker = _crash_worker(hq_env, "stop")
    stream_out = hq_env.root / "stream.jsonl"
    with open(stream_out, "wb") as f:
        stream = subprocess.Popen(HQ + ["--server-dir", str(hq_env.server_dir), "journal",
                                        "stream"], stdout=f, stderr=subprocess.DEVNULL,
                                  env=hq_env.env)
    try:
        job_id = hq_env.submit(["--array", "1-200", "--stdout", "none", "--stderr", "none",
                                "--", *_task_command(side)])

        def finished_events():
            return {e["event"]["task"] for e in _stream_lines(stream_out)
                    if e["event"]["type"] == "task-finished"}

        seen = wait_until(finished_events, 20, 0.01, "a task-finished event in the stream")
        server.signal(signal.SIGKILL)
        server.wait(10)
    finally:
        stream.kill()
        stream.wait(10)
    _after_crash(hq_env, "stop", worker, journal)
    after = {t["id"]: t["state"] for t in hq_env.tasks(job_id)}
    assert {after[t] for t in seen} == {"finished"}, {t: after[t] for t in seen}


@pytest.mark.timeout(60)
def test_live_stream_has_every_journal_event_once(hq_env):
    """The live stream (history, then events as they become durable) is the journal: no event
    is missing or repeated, whatever the interleaving of the stream's start and new events."""
    journal = str(hq_env.root / "journal.bin")
    server = hq_env.start_server("--journal", journal)
    hq_env.start_worker(cpus=2)
    first = hq_env.submit(["--array", "1-300", "--stdout", "none", "--stderr", "none",
                           "--", "true"])
    stream_out = hq_env.root / "stream.jsonl"
    with open(stream_out, "wb") as f:
        stream = subprocess.Popen(HQ + ["--server-dir", str(hq_env.server_dir), "journal",
                                        "stream"], stdout=f, stderr=subprocess.DEVNULL,
                                  env=hq_env.env)
    try:
        second = hq_env.submit(["--array", "1-300", "--stdout", "none", "--stderr", "none",
                                "--", "true"])
        hq_env.wait_job(first)
        hq_env.wait_job(second)
        # the last event was reported (job wait answered), so it reaches the stream too
        wait_until(lambda: sum(e["event"]["type"] == "task-finished"
                               for e in _stream_lines(stream_out)) >= 600, 10, 0.1,
                   "every task-finished event in the stream")
        server.signal(signal.SIGTERM)
        assert server.wait(10) == 0
    finally:
        stream.kill()
        stream.wait(10)
    streamed = open(stream_out).read().split("\n")[:-1]
    exported = hq_env.command(["journal", "export", journal]).split("\n")[:-1]
    # The stream ends when the stopping server closes it (a worker-lost or the server-stop
    # record may follow in the journal): up to there, the same lines.
    last_finished = max(i for i, line in enumerate(exported) if '"task-finished"' in line)
    assert len(streamed) > last_finished
    assert streamed == exported[:len(streamed)]


@pytest.mark.timeout(60)
def test_live_stream_without_journal_has_every_event_once(hq_env):
    hq_env.start_server()
    hq_env.start_worker(cpus=2)
    first = hq_env.submit(["--array", "1-100", "--stdout", "none", "--stderr", "none",
                           "--", "true"])
    stream_out = hq_env.root / "stream.jsonl"
    with open(stream_out, "wb") as f:
        stream = subprocess.Popen(HQ + ["--server-dir", str(hq_env.server_dir), "journal",
                                        "stream"], stdout=f, stderr=subprocess.DEVNULL,
                                  env=hq_env.env)
    try:
        second = hq_env.submit(["--array", "1-100", "--stdout", "none", "--stderr", "none",
                                "--", "true"])
        hq_env.wait_job(first)
        hq_env.wait_job(second)
        finished = wait_until(
            lambda: [(e["event"]["job"], e["event"]["task"]) for e in _stream_lines(stream_out)
                     if e["event"]["type"] == "task-finished"] if sum(
                e["event"]["type"] == "task-finished" for e in _stream_lines(stream_out)
            ) >= 200 else None, 10, 0.1, "every task-finished event in the stream")
    finally:
        stream.kill()
        stream.wait(10)
    assert sorted(finished) == [(j, t) for j in (first, second) for t in range(1, 101)]
    replayed = hq_env.command(["journal", "replay"]).split("\n")[:-1]
    assert open(stream_out).read().split("\n")[:len(replayed)] == replayed
