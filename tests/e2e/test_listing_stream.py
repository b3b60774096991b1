"""Long listings are printed as their pages of tasks arrive, in bounded client memory, and
print byte for byte what the whole-document printers printed (issue 10, item 2).

The reference (`_whole_*`) is how the printers worked before: every task of every page
fetched into the job details (`calls.job_info` without `on_page`), then one `json.dumps(...,
indent=2)` / one `horizontal_table` of the whole."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from hqenv import HQ, log_records, wait_until

from hyperqueue.core.views import TASK_PAGE

BIG = 25_000  # tasks of the waiting array: three pages (TASK_PAGE each), a partial last one


def _fetch(env, job_sel: str, task_sel: str | None = None, states=None):
    from hyperqueue.client import calls
    from hyperqueue.client.blocking import BlockingClient
    from hyperqueue.common.selectors import Selector, parse_selector
    from hyperqueue.core.ranges import IntRanges

    ts = None if task_sel is None else Selector.of_ids(IntRanges.parse(task_sel)).to_wire()
    with BlockingClient(str(env.server_dir)) as client:
        return client.call(calls.job_info(parse_selector(job_sel).to_wire(), task_selector=ts,
                                          task_states=states)).jobs


def _dumps(doc) -> str:
    return json.dumps(doc, indent=2, default=str) + "\n"


def _whole_job_info_json(jobs) -> str:
    from hyperqueue.cli.output import public_job_head, public_task

    return _dumps([{**public_job_head(d), "tasks": [public_task(t) for t in d["tasks"]]}
                   for d in jobs])


def _whole_task_list_cli(jobs) -> str:
    from hyperqueue.cli.output import task_error, task_makespan, task_worker_text
    from hyperqueue.cli.table import horizontal_table

    multi = len(jobs) > 1
    rows = [([d["info"]["id"]] if multi else []) + [
        t["id"], t["state"].upper(), task_worker_text(t), task_makespan(t),
        task_error(t, False, 16)] for d in jobs for t in d["tasks"]]
    header = (["Job ID"] if multi else []) + ["Task ID", "State", "Worker", "Makespan", "Error"]
    return horizontal_table(header, [[str(c) for c in r] for r in rows]) + "\n"


def _whole_job_info_cli(jobs) -> str:
    from hyperqueue.cli.output import job_detail_rows, task_worker_text
    from hyperqueue.cli.table import horizontal_table, vertical_table

    out = []
    for d in jobs:
        out.append(vertical_table([(k, "" if v is None else str(v))
                                   for k, v in job_detail_rows(d)]) + "\n")
        failed = d["tasks"]
        if failed:
            shown = failed[:5]
            out.append(horizontal_table(["Task ID", "Worker", "Error"], [
                [str(t["id"]), task_worker_text(t), t.get("error", "")] for t in shown]) + "\n")
            n = d["info"]["task_stats"]["failed"]
            out.append(f"{n} tasks failed." + (f" ({len(shown)} shown)" if len(shown) < n
                                                else "") + "\n")
    return "".join(out)


@pytest.fixture(scope="module")
def listing_env(tmp_path_factory):
    """Job 1: 6 tasks, 3 failed with an error text; job 2: closed with no task; job 3: BIG
    tasks waiting (no worker left); job 4: 3 tasks waiting (with job 3 in one listing its first
    page is empty: the server's first answer holds TASK_PAGE tasks over all jobs)."""
    from hqenv import HqEnv

    env = HqEnv(tmp_path_factory.mktemp("listing"))
    try:
        env.start_server()
        w = env.start_worker(cpus=2)
        j1 = env.submit(["--array", "1-6", "--", "bash", "-c",
                         'if [ $((HQ_TASK_ID % 2)) = 0 ]; then exit 3; fi'])
        env.run(["job", "wait", str(j1)], timeout=60)
        env.command(["job", "open"])
        env.logged(["job", "close", "2"])
        env.stop(w)
        wait_until(lambda: all(s != "RUNNING" for s in env.worker_states().values()))
        env.submit(["--array", f"0-{BIG - 1}", "--", "true"], allow_stderr=True)  # WARN (F14)
        env.submit(["--array", "1-3", "--", "true"])
        assert env.job_state(1) == {"aborted": 0, "canceled": 0, "failed": 3, "finished": 3,
                                    "running": 0, "waiting": 0}
        yield env
    finally:
        env.close()


@pytest.mark.timeout(120)
def test_json_listings_are_the_whole_documents_byte_for_byte(listing_env):
    env = listing_env
    assert TASK_PAGE < BIG  # the listings below cross page borders
    for sel in ("1", "2", "3", "1-4", "all", "2,4"):
        got = env.run(["job", "info", sel], mode="json")
        assert got.returncode == 0 and got.stdout == _whole_job_info_json(_fetch(env, sel)), sel
    doc = json.loads(env.command(["job", "info", "3"], as_json=False, mode="json"))
    assert [t["id"] for t in doc[0]["tasks"]] == list(range(BIG))

    # job ids not found: the ERROR records on stderr, the jobs found on stdout
    got = env.run(["job", "info", "1,7-9"], mode="json")
    assert log_records(got.stderr) == ["ERROR Job 7 not found", "ERROR Job 8 not found",
                                       "ERROR Job 9 not found"]
    assert got.stdout == _whole_job_info_json(_fetch(env, "1"))

    cases = [("1-4", None, None), ("1", None, ["failed"]), ("3", "9990-10010,24990-30000", None),
             ("1-4", "2-4", ["waiting", "failed"]), ("2", None, None), ("3", "30000-40000", None)]
    from hyperqueue.cli.output import public_task

    for sel, tasks, states in cases:
        args = ["task", "list", sel] + (["--tasks", tasks] if tasks else []) + (
            ["--task-status", ",".join(states)] if states else [])
        jobs = _fetch(env, sel, tasks, states)
        want = _dumps({str(d["info"]["id"]): [public_task(t) for t in d["tasks"]] for d in jobs})
        assert env.command(args, mode="json") == want, args
        want_ids = {str(d["info"]["id"]): [t["id"] for t in d["tasks"]] for d in jobs}
        if tasks is None:
            filt = ["--filter", ",".join(states)] if states else []
            assert env.command(["job", "task-ids", sel, *filt], mode="json") == _dumps(want_ids)

    # task info: the tasks found (ascending), then a WARN per id not found
    got = env.run(["task", "info", "3", "5,9999-10001,24999-25001"], mode="json")
    want = [public_task(t) for t in _fetch(env, "3", "5,9999-10001,24999-25001")[0]["tasks"]]
    assert got.stdout == _dumps(want) and [t["id"] for t in want] == [5, 9999, 10000, 10001,
                                                                      24999]
    assert log_records(got.stderr) == ["WARN Task 25000 not found", "WARN Task 25001 not found"]
    got = env.run(["task", "info", "1", "1-6"], mode="json")
    assert got.stdout == _dumps([public_task(t) for t in _fetch(env, "1")[0]["tasks"]])
    assert [t["id"] for t in json.loads(got.stdout) if t.get("error")] == [2, 4, 6]
    got = env.run(["task", "info", "9", "1"], mode="json")  # no such job: `{}` (F40)
    assert got.stdout == "{}\n" and log_records(got.stderr) == ["ERROR Cannot find job 9"]


@pytest.mark.timeout(120)
def test_cli_and_quiet_listings_are_the_whole_outputs_byte_for_byte(listing_env):
    env = listing_env
    for sel, tasks, states in [("1-4", None, None), ("3", None, None), ("1", None, ["failed"]),
                               ("3", "9998-10002", None), ("2", None, None)]:
        args = ["task", "list", sel] + (["--tasks", tasks] if tasks else []) + (
            ["--task-status", ",".join(states)] if states else [])
        jobs = _fetch(env, sel, tasks, states)
        assert env.command(args) == _whole_task_list_cli(jobs), args
        assert env.command(args, mode="quiet") == "".join(
            f"{t['id']} {t['state'].upper()}\n" for d in jobs for t in d["tasks"])

    # job info shows the failed tasks of finished jobs (Makespan of a waiting job moves on)
    assert env.command(["job", "info", "1-2"]) == _whole_job_info_cli(
        _fetch(env, "1-2", states=["failed"]))

    # task ids: one job bare, several with the job id; compressed ranges
    assert env.command(["job", "task-ids", "3"]) == f"0-{BIG - 1}\n"
    assert env.command(["job", "task-ids", "1-4"]) == f"1: 1-6\n2: \n3: 0-{BIG - 1}\n4: 1-3\n"
    assert env.command(["job", "task-ids", "1", "--filter", "failed"]) == "2,4,6\n"

    # task info tables, one per task in id order; the not-found ids as WARN records
    got = env.run(["task", "info", "3", "9999-10001,30000"])
    assert got.stdout.count("| Task ID      | ") == 3
    assert [ln.split("|")[2].strip() for ln in got.stdout.splitlines()
            if ln.startswith("| Task ID ")] == ["9999", "10000", "10001"]
    assert log_records(got.stderr) == ["WARN Task 30000 not found"]


def _peak_rss_kb(env, args, mode) -> tuple[int, float, bytes]:
    """Runs `hq args` in a fresh interpreter that reports the peak RSS of its one child."""
    code = ("import resource, subprocess, sys, time\n"
            "t = time.monotonic()\n"
            "r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)\n"
            "sys.stderr.write(f'{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} '\n"
            "                 f'{time.monotonic() - t} {r.returncode}')\n"
            "sys.stdout.buffer.write(r.stdout[:200])\n")
    full = [*HQ, "--server-dir", str(env.server_dir), "--output-mode", mode, *args]
    res = subprocess.run([sys.executable, "-c", code, *full], capture_output=True, env=env.env,
                         timeout=100)
    rss, elapsed, rc = res.stderr.decode().split()[-3:]
    assert rc == "0", res.stderr
    return int(rss), float(elapsed), res.stdout


@pytest.mark.timeout(120)
def test_listing_a_huge_array_keeps_client_memory_bounded_and_starts_at_once(hq_env):
    env = hq_env
    env.start_server()
    n = 200_000  # the whole-document printers held ~1.2 KB per task (> 250 MB here)
    job = env.submit(["--array", f"1-{n}", "--", "true"], allow_stderr=True)  # no worker
    for args, mode in [(["job", "info", str(job)], "json"), (["task", "list", str(job)], "json"),
                       (["task", "list", str(job)], "cli")]:
        rss, elapsed, head = _peak_rss_kb(env, args, mode)
        assert rss < 150_000, (args, mode, rss)
        assert head.startswith(b"[\n  {\n    \"info\"" if args[0] == "job" else
                               b"{\n  \"1\": [\n    {\n      \"id\": 1," if mode == "json"
                               else b"+---------+")
    # The first tasks are on stdout while the client still lists (it blocks on the full pipe).
    proc = subprocess.Popen([*HQ, "--server-dir", str(env.server_dir), "--output-mode", "json",
                             "task", "list", str(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env.env)
    try:
        t0 = time.monotonic()
        first = b"".join(proc.stdout.readline() for _ in range(12))
        assert first.startswith(b'{\n  "1": [\n    {\n      "id": 1,\n      "state": "waiting"')
        assert time.monotonic() - t0 < 10 and proc.poll() is None
    finally:
        proc.kill()
        proc.wait(10)
