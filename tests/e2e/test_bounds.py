"""Requests are bounded (issue 10, item 2), against a real server: huge selectors are resolved
against what exists, long task listings are paged (the server keeps serving others), and
out-of-range submits change nothing."""

from __future__ import annotations

import math
import subprocess
import time

import pytest

from hqenv import HQ, log_records, wait_until

BIG = "0-4294967295"


def _timed(env, args, **kw):
    t0 = time.monotonic()
    out = env.command(args, **kw)
    return out, time.monotonic() - t0


@pytest.mark.timeout(90)
def test_huge_selectors_answer_quickly_with_per_id_output(hq_env):
    env = hq_env
    env.start_server()
    w = env.start_worker(cpus=1)
    done = env.submit(["--", "true"])  # job 1
    env.wait_job(done)
    env.submit(["--array", "0-3", "--", "sleep", "100"])  # job 2, stays running/waiting

    # ids not found: ERROR log records on stderr (F1, F50), exit 0
    t0 = time.monotonic()
    res = env.run(["job", "info", BIG])
    assert time.monotonic() - t0 < 10 and res.returncode == 0
    assert log_records(res.stderr) == ["ERROR Job 0 not found",
                                       "ERROR Jobs 3-4294967295 not found"]
    assert res.stdout.count("| ID ") == 2  # the two existing jobs

    # small sets of missing ids give one record per id, as always
    assert env.logged(["job", "info", "5-7"]) == [
        "ERROR Job 5 not found", "ERROR Job 6 not found", "ERROR Job 7 not found"]

    t0 = time.monotonic()
    res = env.run(["worker", "info", BIG])
    assert time.monotonic() - t0 < 10 and res.returncode == 0
    assert log_records(res.stderr) == ["ERROR Worker 0 not found",
                                       "ERROR Workers 2-4294967295 not found"]

    t0 = time.monotonic()
    out = env.logged(["job", "cancel", BIG])  # log records on stderr (F37)
    assert time.monotonic() - t0 < 10
    assert out == [
        "ERROR Canceling job 1 failed; all tasks are already finished",
        "INFO Job 2 canceled (4 tasks canceled, 0 tasks already finished)",
        "ERROR Canceling job 0 failed; job not found",
        "ERROR Canceling job 3-4294967295 failed; job not found",
    ]
    assert env.logged(["job", "cancel", "8-9"]) == [
        "ERROR Canceling job 8 failed; job not found", "ERROR Canceling job 9 failed; job not found"]

    t0 = time.monotonic()
    (out,) = env.logged(["job", "wait", BIG])
    assert time.monotonic() - t0 < 10
    assert "2 jobs" in out or ("1 job canceled" in out and "1 job finished" in out), out

    t0 = time.monotonic()
    out = env.logged(["job", "forget", BIG])
    assert time.monotonic() - t0 < 10
    assert out == ["INFO 2 jobs were forgotten, 4294967294 were ignored due to wrong state or "
                   "invalid ID"]

    t0 = time.monotonic()
    res = env.run(["worker", "stop", BIG])
    dt = time.monotonic() - t0
    assert dt < 10
    # F51: log records on stderr, by id (a huge range of missing ids as one record)
    assert res.returncode == 0 and res.stdout == ""
    assert [ln.split(" ", 1)[1] for ln in res.stderr.splitlines()] == [
        "ERROR Stopping worker 0 failed; worker not found", f"INFO Worker {w.worker_id} stopped",
        "ERROR Stopping worker 2-4294967295 failed; worker not found"]
    # and the server is fine
    assert env.command(["job", "list", "--all"], as_json=True) == []


@pytest.mark.timeout(90)
def test_task_list_of_a_4g_array_is_paged_and_others_are_served(hq_env):
    from hyperqueue.client.blocking import BlockingClient
    from hyperqueue.protocol import messages as m

    env = hq_env
    env.start_server()
    job = env.submit(["--array", "0-4000000000", "--", "true"],  # no worker: all waiting
                     allow_stderr=True)  # WARN about the number of files (F14)
    cmd = HQ + ["--server-dir", str(env.server_dir), "--output-mode", "quiet", "task", "list",
                str(job)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=env.env, text=True)
    try:
        first = [proc.stdout.readline() for _ in range(3)]
        assert first == ["0 WAITING\n", "1 WAITING\n", "2 WAITING\n"]
        assert time.monotonic() - t0 < 15
        # The listing goes on page after page; meanwhile other clients are answered at once.
        for _ in range(50):
            proc.stdout.readline()
        with BlockingClient(str(env.server_dir)) as client:
            worst = 0.0
            for _ in range(5):
                t1 = time.monotonic()
                jobs = client.request(m.JobListRequest(None), timeout=10).jobs
                worst = max(worst, time.monotonic() - t1)
                assert [j["id"] for j in jobs] == [job]
                time.sleep(0.1)
        assert proc.poll() is None  # still listing
        assert worst < 1.0, worst
    finally:
        proc.kill()
        proc.wait(10)
    # a listing with a selector over the whole id space is bounded by the job's ids
    out = env.command(["task", "list", str(job), "--tasks", "3999999998-4294967295"],
                      mode="quiet")
    assert out == "3999999998 WAITING\n3999999999 WAITING\n4000000000 WAITING\n"


@pytest.mark.timeout(60)
def test_out_of_range_submits_change_nothing(hq_env):
    from hyperqueue.client.blocking import BlockingClient
    from hyperqueue.core.model import ProgramDef, TaskTemplate
    from hyperqueue.errors import HqError, RequestFailed
    from hyperqueue.protocol import messages as m

    env = hq_env
    journal = env.root / "journal.bin"
    env.start_server("--journal", str(journal))

    def submit(template, ids="0-3", entries=None, deps=(), job_id=None):
        req = m.SubmitRequest("bad", None, "/tmp", job_id, [[template, ids, entries, list(deps)]])
        with BlockingClient(str(env.server_dir)) as client:
            return client.request(req)

    ok = TaskTemplate(ProgramDef(["true"]))
    # refused by the request handler: a clear error to this client
    for kw, message in [
        ({"ids": "0-4294967296"}, "too large"),
        ({"ids": "5-3"}, "start is greater"),
        ({"ids": "0-3", "entries": [b"a"]}, "number of entries"),
        ({"deps": [99]}, "Invalid dependency"),
        ({"job_id": 77}, "Job 77 not found"),
    ]:
        with pytest.raises(RequestFailed, match=message):
            submit(ok, **kw)
    # refused when decoded (out-of-range fields): the connection is closed
    for bad in [TaskTemplate(ProgramDef(["true"]), time_limit=math.inf),
                TaskTemplate(ProgramDef(["true"]), time_limit=30 * 24 * 3600 * 1000.0),
                TaskTemplate(ProgramDef(["true"]), priority=2**31),
                TaskTemplate(ProgramDef(["true"]), crash_limit=2**40)]:
        with pytest.raises(HqError):
            submit(bad)
    # nothing changed: no job, no job id consumed, no journal record
    assert env.command(["job", "list", "--all"], as_json=True) == []
    env.command(["journal", "flush"])
    events = env.command(["journal", "export", str(journal)])
    assert "job-created" not in events
    assert env.submit(["--", "true"]) == 1
