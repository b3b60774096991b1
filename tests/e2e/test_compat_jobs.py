"""Upstream's job commands as facts of the interface (upstream-facts.md §5, §6, §10, §11 and the
`job progress` / `job wait` items of issue 14): the texts, rows and JSON key sets a script written
against upstream `hq` reads.

One server per module with one worker (`env`); tests that need several workers start their own.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from hqenv import HqEnv, log_records, parse_horizontal, parse_vertical, wait_until

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$")
BAR = re.compile(r"^\[[#.]{40}\]$")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = HqEnv(tmp_path_factory.mktemp("compat-jobs"))
    try:
        e.start_server()
        e.start_worker("--hostname", "compat-host", cpus="2")
        yield e
    finally:
        e.close()


def info_rows(env, job) -> dict[str, str]:
    return parse_vertical(env.command(["job", "info", str(job)]))


def write(env, name: str, text: str) -> str:
    (env.work_dir / name).write_text(text)
    return name


# -- §5 job commands ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_job_info_ids_as_given_for_one_array_and_compressed_otherwise(env):  # F34
    a = env.submit(["--array", "5,1,3", "--", "true"])
    b = env.submit(["--array", "0-10:2", "--", "true"])
    c = env.submit(["--", "true"])
    assert info_rows(env, a)["Tasks"] == "3; Ids: 5,1,3"
    assert info_rows(env, b)["Tasks"] == "6; Ids: 0-10:2"
    assert info_rows(env, c)["Tasks"] == "1; Ids: 0"
    # several submits to an open job: every id, sorted, in consecutive runs
    job = int(env.command(["job", "open"], mode="quiet"))
    env.submit(["--job", str(job), "--array", "10-20", "--", "true"])
    env.submit(["--job", str(job), "--array", "1-6", "--", "true"])
    env.command(["job", "close", str(job)], allow_stderr=True)
    assert info_rows(env, job)["Tasks"] == "17; Ids: 1-6,10-20"
    # a job file's task graph too
    write(env, "graph.toml", "".join(f'[[task]]\nid = {i}\ncommand = ["true"]\n'
                                     for i in (20, 1, 3, 2, 5, 10)))
    g = int(env.command(["job", "submit-file", "graph.toml"], mode="quiet"))
    rows = info_rows(env, g)
    assert rows["Tasks"] == "6; Ids: 1-3,5,10,20"
    # job-file jobs show where they were submitted from (issue 14)
    assert rows["Submission directory"] == str(env.work_dir)
    for j in (a, b, c, job, g):
        env.wait_job(j)


@pytest.mark.timeout(30)
def test_job_list_shortens_long_names_to_24_and_23_bytes(env):  # F33
    name = "n" * 10 + "é" * 20 + "x" * 20  # 70 bytes, 50 characters
    job = env.submit(["--name", name, "--", "true"])
    rows = parse_horizontal(env.command(["job", "list", "--all"]))
    shown = next(r["Name"] for r in rows if r["ID"] == str(job))
    assert shown == "n" * 10 + "é" * 7 + "..." + "é" + "x" * 20, shown
    fits = "y" * 50
    job2 = env.submit(["--name", fits, "--", "true"])
    rows = parse_horizontal(env.command(["job", "list", "--all"]))
    assert next(r["Name"] for r in rows if r["ID"] == str(job2)) == fits


@pytest.mark.timeout(60)
def test_job_cat_messages(env):  # F35
    job = env.submit(["--array", "1-2", "--", "sh", "-c", "echo out $HQ_TASK_ID"])
    env.wait_job(job)
    res = env.run(["job", "cat", str(job), "stdout", "--tasks", "1-3", "--print-task-header"])
    assert res.returncode == 0
    assert res.stdout == f"# Job {job}, task 1\nout 1\n# Job {job}, task 2\nout 2\n"
    assert log_records(res.stderr) == [f"WARN Task 3 of job {job} not found"]
    assert env.logged(["job", "cat", str(job), "stdout", "--task-status", "failed"]) == [
        f"WARN No tasks were selected for job {job}, there is nothing to print"]
    assert env.logged(["job", "cat", "999", "stdout"]) == ["ERROR Job 999 was not found"]
    none = env.submit(["--stdout", "none", "--", "true"])
    env.wait_job(none)
    res = env.run(["job", "cat", str(none), "stdout", "--print-task-header"])
    assert res.returncode == 0 and res.stdout == f"# Job {none}, task 0\n"
    assert log_records(res.stderr) == ["WARN Task 0 has no `stdout` stream associated with it"]
    gone = env.submit(["--", "true"])
    env.wait_job(gone)
    path = env.tasks(gone)[0]["stdout"]
    (env.work_dir / path).unlink()
    assert env.logged(["job", "cat", str(gone), "stdout"]) == [
        f"WARN File at `{path}` cannot be opened: "
        'Os { code: 2, kind: NotFound, message: "No such file or directory" }']
    res = env.run(["job", "cat", str(job), "stdout"], mode="json")
    assert res.returncode == 1
    assert json.loads(res.stdout) == {"error": "JSON output mode doesn't support job output"}


@pytest.mark.timeout(30)
def test_job_cat_of_last_without_jobs(tmp_path):  # F35
    e = HqEnv(tmp_path)
    try:
        e.start_server()
        assert e.logged(["job", "cat", "last", "stdout"]) == ["ERROR No jobs were found"]
        assert e.logged(["job", "cancel", "all"]) == ["INFO There is nothing to cancel"]
        assert e.logged(["job", "close", "all"]) == ["INFO There is nothing to close"]
        assert e.logged(["job", "progress", "all"]) == ["WARN There are no jobs to wait for"]
    finally:
        e.close()


@pytest.mark.timeout(60)
def test_job_forget_cancel_close_texts(env):  # F36, F37
    done = [env.submit(["--", "true"]) for _ in range(2)]
    for j in done:
        env.wait_job(j)
    running = env.submit(["--", "sleep", "100"])
    env.wait_task_state(running, 0, "running")
    assert env.logged(["job", "forget", str(done[0])]) == ["INFO 1 job were forgotten"]
    assert env.logged(["job", "forget", f"{done[0]},{done[1]},{running}"]) == [
        "INFO 1 job were forgotten, 2 were ignored due to wrong state or invalid ID"]
    assert env.logged(["job", "forget", str(running)]) == [
        "INFO 0 jobs were forgotten, 1 were ignored due to wrong state or invalid ID"]
    assert env.logged(["job", "cancel", str(running)]) == [
        f"INFO Job {running} canceled (1 tasks canceled, 0 tasks already finished)"]
    assert env.logged(["job", "cancel", f"{running},99999"]) == [
        f"ERROR Canceling job {running} failed; all tasks are already finished",
        "ERROR Canceling job 99999 failed; job not found"]
    opened = int(env.command(["job", "open"], mode="quiet"))
    assert env.logged(["job", "close", str(opened)]) == [f"INFO Job {opened} closed"]
    assert env.logged(["job", "close", f"{opened},99999"]) == [
        f"ERROR Closing job {opened} failed; job is already closed",
        "ERROR Closing job 99999 failed; job not found"]
    res = env.run(["job", "cancel", str(running)], mode="json")
    assert res.returncode == 0 and json.loads(res.stdout) == {}


@pytest.mark.timeout(30)
def test_resources_rows(env):  # F39
    job = env.submit(["--weight", "2.5", "--resource", "mem=1.5", "--resource", "gpus=all",
                      "--cpus", "2", "--resource", "nothing=1", "--", "true"])
    assert info_rows(env, job)["Resources"].split("\n") == [
        "cpus: 2 compact", "gpus: all", "mem: 1.5 compact", "nothing: 1 compact",
        "[weight: 2.5]"]
    mn = env.submit(["--nodes", "5", "--", "true"])
    assert parse_vertical(env.command(["task", "info", str(mn), "0"]))["Resources"] == "nodes: 5"
    write(env, "variants.toml", '[[task]]\ncommand = ["true"]\n'
                                '[[task.request]]\nresources = { nothing = "2" }\n'
                                '[[task.request]]\nresources = { cpus = 1, nothing = 1 }\n')
    v = int(env.command(["job", "submit-file", "variants.toml"], mode="quiet"))
    assert parse_vertical(env.command(["task", "info", str(v), "1"]))["Resources"].split(
        "\n") == ["# Variant 1", "nothing: 2 compact", "", "# Variant 2", "cpus: 1 compact",
                  "nothing: 1 compact"]
    for j in (job, mn, v):
        env.command(["job", "cancel", str(j)], allow_stderr=True)


@pytest.mark.timeout(30)
def test_task_info_missing_tasks_and_jobs(env):  # F40
    job = env.submit(["--array", "1-2", "--", "true"])
    env.wait_job(job)
    res = env.run(["task", "info", str(job), "2,7"])
    assert res.returncode == 0
    assert parse_vertical(res.stdout)["Task ID"] == "2"
    assert log_records(res.stderr) == ["WARN Task 7 not found"]
    res = env.run(["task", "info", "99999", "1"])
    assert res.returncode == 0 and res.stdout == ""
    assert log_records(res.stderr) == ["ERROR Cannot find job 99999"]


@pytest.mark.timeout(60)
def test_workers_row_and_multi_node_worker_cell(tmp_path):  # F38, F41
    e = HqEnv(tmp_path)
    try:
        e.start_server()
        ws = [e.start_worker("--hostname", h, "--group", "g") for h in ("h-a", "h-b", "h-c")]
        hosts = {w.worker_id: h for w, h in zip(ws, ("h-a", "h-b", "h-c"))}
        job = e.submit(["--array", "1-3", "--", "sleep", "1"])
        e.wait_job(job)
        ordered = [hosts[i] for i in sorted(hosts)]
        assert parse_vertical(e.command(["job", "info", str(job)]))["Workers"] == \
            f"{ordered[0]},{ordered[1]}, \u2026 (3 total)"
        mn = e.submit(["--nodes", "2", "--", "sleep", "1"])
        t = e.wait_task_state(mn, 0, "running")
        nodes = [hosts[i] for i in t["workers"]]
        assert len(set(nodes)) == 2 and "worker" not in t
        for state in ("running", "finished"):
            if state == "finished":
                e.wait_job(mn)
            (row,) = parse_horizontal(e.command(["task", "list", str(mn)]))
            assert row["Worker"].split("\n") == nodes, (state, row)
            assert parse_vertical(e.command(["task", "info", str(mn), "0"]))["Worker"] \
                .split("\n") == nodes
    finally:
        e.close()


# -- §6 job definition files -------------------------------------------------------------------

JOB_FILE_ERRORS = [
    ('name = "x"\n', "Deserialization error: No tasks defined"),
    ('[[task]]\ncommand = ["true"]\n[array]\nids = "1"\ncommand = ["true"]\n',
     "Deserialization error: Definition of array job and individual task cannot be mixed"),
    ('[array]\ncommand = ["true"]\n',
     "Deserialization error: One of attributes of array must be defined: 'ids', 'entries'"),
    ('[array]\nids = "1-3"\nentries = ["a"]\ncommand = ["true"]\n',
     "Deserialization error: Items 'ids' and 'entries' does not match"),
    ('[[task]]\nid = 4\ncommand = ["true"]\n[[task]]\nid = 4\ncommand = ["true"]\n',
     "Error: Task 4 is defined multiple times"),
    ('[[task]]\nid = 1\ncommand = ["true"]\ndeps = [9]\n',
     "Error: Task 1 is part of dependency cycle or has an invalid dependencies"),
    ('[[task]]\nid = 1\ncommand = ["true"]\ndeps = [2]\n[[task]]\nid = 2\ncommand = ["true"]\n'
     'deps = [1]\n', " is part of dependency cycle or has an invalid dependencies"),
    ('[[task]]\ncommand = ["true"]\ncolour = 1\n', "Deserialization error: "),
]


@pytest.mark.timeout(60)
def test_job_file_validation_errors(env):  # F42
    before = env.command(["job", "list", "--all"], as_json=True)
    for text, message in JOB_FILE_ERRORS:
        write(env, "bad.toml", text)
        res = env.run(["job", "submit-file", "bad.toml"])
        assert res.returncode == 1 and res.stdout == "", (text, res)
        assert message in res.stderr, (text, res.stderr)
    res = env.run(["job", "submit-file", "missing.toml"])
    assert res.returncode == 1
    assert "Cannot read missing.toml: No such file or directory (os error 2)" in res.stderr
    assert env.command(["job", "list", "--all"], as_json=True) == before


# -- §10 JSON shapes ---------------------------------------------------------------------------

JOB_KEYS = {"info", "max_fails", "started_at", "finished_at", "submits", "tasks"}
INFO_KEYS = {"id", "name", "task_count", "is_open", "task_stats", "cancel_reason"}
TD_KEYS = {"program", "resources", "pin_mode", "priority", "time_limit", "task_dir",
           "crash_limit"}


@pytest.mark.timeout(60)
def test_job_info_json_keys_array_and_graph(env):  # F62, F5
    job = env.submit(["--array", "1-2", "--resource", "mem=1.5", "--", "sh", "-c", "exit 0"])
    env.wait_job(job)
    (d,) = env.command(["job", "info", str(job)], as_json=True)
    assert set(d) == JOB_KEYS and set(d["info"]) == INFO_KEYS
    (sub,) = d["submits"]
    td = sub["array"]
    assert set(td) == TD_KEYS and set(td["program"]) == {"args", "env", "cwd", "stdout",
                                                          "stderr"}
    (req,) = td["resources"]
    assert set(req) == {"n_nodes", "resources", "min_time", "weight"}
    assert req["weight"] == 10000 and isinstance(req["min_time"], float)
    assert {"resource": "mem", "request": {"Compact": 15000}} in req["resources"]
    assert all(set(r) == {"resource", "request"} for r in req["resources"])
    for t in d["tasks"]:
        assert set(t) == {"id", "state", "cwd", "stdout", "stderr", "started_at", "worker",
                          "finished_at"}, t
        assert RFC3339_Z.match(t["started_at"]) and RFC3339_Z.match(t["finished_at"])
    # started_at is the submission date: not after the first task started
    assert d["started_at"] <= min(t["started_at"] for t in d["tasks"])
    assert RFC3339_Z.match(d["started_at"]) and RFC3339_Z.match(d["finished_at"])

    write(env, "g2.toml", '[[task]]\nid = 1\ncommand = ["true"]\n'
                          '[[task]]\nid = 2\ncommand = ["true"]\ndeps = [1]\n')
    g = int(env.command(["job", "submit-file", "g2.toml"], mode="quiet"))
    env.wait_job(g)
    (d,) = env.command(["job", "info", str(g)], as_json=True)
    (sub,) = d["submits"]
    assert list(sub) == ["graph"] and len(sub["graph"]) == 2
    assert all(set(td) == TD_KEYS for td in sub["graph"])
    assert [td["program"]["args"] for td in sub["graph"]] == [["true"], ["true"]]

    waiting = env.submit(["--resource", "nothing=1", "--", "true"])
    (d,) = env.command(["job", "info", str(waiting)], as_json=True)
    assert d["finished_at"] is None and d["tasks"] == [{"id": 0, "state": "waiting"}]
    env.command(["job", "cancel", str(waiting)], allow_stderr=True)


@pytest.mark.timeout(30)
def test_worker_json_keys(env):  # F60, F61
    (w,) = [x for x in env.command(["worker", "list"], as_json=True)]
    assert set(w) == {"id", "configuration", "allocation", "runtime_info", "last_task_started",
                      "started", "ended"}
    assert w["runtime_info"] is None  # only `worker info` fills it
    cfg = w["configuration"]
    assert set(cfg) == {"heartbeat_interval", "idle_timeout", "time_limit", "work_dir",
                        "hostname", "group", "listen_address", "resources", "on_server_lost",
                        "min_utilization"}
    mem = next(r for r in cfg["resources"]["resources"] if r["name"] == "mem")
    # an integer in 1/10000 units; detected memory keeps its fraction (F53)
    assert mem["kind"] == "sum" and isinstance(mem["size"], int)
    assert cfg["resources"]["coupling"] == {"weights": []}
    (info,) = env.command(["worker", "info", str(w["id"])], as_json=True)
    rt = info["runtime_info"]
    assert list(rt) == ["SingleNodeTasks"]
    assert set(rt["SingleNodeTasks"]) == {"assigned_tasks", "running_tasks", "is_reserved"}
    last = info["last_task_started"]
    if last is not None:
        assert set(last) == {"task_id", "time"} and set(last["task_id"]) == {"job_id",
                                                                              "job_task_id"}
    assert RFC3339_Z.match(info["started"])


# -- §11 task explain --------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_task_explain_text_and_json(env):  # F63, F64
    (wid,) = [w["id"] for w in env.command(["worker", "list"], as_json=True)]
    job = env.submit(["--cpus", "4", "--time-request", "1h", "--", "true"])
    out = env.command(["task", "explain", str(job), "0"])
    lines = out.splitlines()
    assert lines[0] == f"Task {job}@0 is ready to run because it has no dependencies."
    assert lines[1] == "There is no worker where the task can run."
    (row,) = parse_horizontal(out)
    assert row == {"Worker Id": str(wid), "Runnable": "No", "Variant": "0",
                   "Type": "time\ncpus", "Provides": "unknown\n2", "Request": "1h\n4"}
    ex = env.command(["task", "explain", str(job), "0"], as_json=True)
    assert ex == {"task_id": {"job_id": job, "job_task_id": 0}, "explanation": {
        "n_task_deps": 0, "n_waiting_deps": 0, "workers": [{"worker_id": wid, "variants": [[
            {"Time": {"min_time": {"secs": 3600, "nanos": 0}, "remaining_time": None}},
            {"Resources": {"resource": "cpus", "request_amount": 40000,
                           "worker_amount": 20000}}]]}]}}
    env.command(["job", "cancel", str(job)], allow_stderr=True)
    res = env.run(["task", "explain", str(job), "0"])
    assert res.returncode == 1
    assert "Explain command works only for tasks in WAITING or RUNNING state" in res.stderr
    res = env.run(["task", "explain", "99999", "0"])
    assert res.returncode == 1 and "Job not found" in res.stderr
    res = env.run(["task", "explain", str(job), "7"])
    assert res.returncode == 1 and "Task not found" in res.stderr


@pytest.mark.timeout(30)
def test_task_explain_dependencies_and_runnable_workers(env):  # F64
    write(env, "dep.toml", '[[task]]\nid = 1\ncommand = ["sleep", "2"]\n'
                           '[[task]]\nid = 2\ncommand = ["true"]\ndeps = [1]\n')
    job = int(env.command(["job", "submit-file", "dep.toml"], mode="quiet"))
    out = env.command(["task", "explain", str(job), "2"])
    # upstream's wording and condition: every dependency still waiting reads "ready"
    assert out.splitlines()[:2] == [
        f"Task {job}@2 is ready to run because its all 1 dependencies are finished.",
        "The task can run on 1 worker: " + str(env.command(["worker", "list"],
                                                            as_json=True)[0]["id"])]
    ex = env.command(["task", "explain", str(job), "2"], as_json=True)["explanation"]
    assert ex["n_task_deps"] == 1 and ex["n_waiting_deps"] == 1
    env.wait_job(job)


# -- issue 14 item 4: job wait / progress --------------------------------------------------------


@pytest.mark.timeout(60)
def test_job_wait_json_and_log(env):
    job = env.submit(["--array", "1-2", "--", "true"])
    failing = env.submit(["--", "false"])
    out = env.command(["job", "wait", f"{job},{failing},99998"], as_json=True)
    assert set(out) == {"duration", "finished", "failed", "canceled", "invalid"}
    assert (out["finished"], out["failed"], out["canceled"], out["invalid"]) == (1, 1, 0, 1)
    assert isinstance(out["duration"], float)
    (rec,) = env.logged(["job", "wait", str(job)])
    assert re.fullmatch(r"INFO Wait finished in \S+: 1 job finished", rec), rec


@pytest.mark.timeout(60)
def test_progress_line(env):
    res = env.run(["submit", "--progress", "--array", "1-2", "--", "sleep", "0.5"])
    assert res.returncode == 0, res
    # (text mode reads each `\r` that starts an update as a line break)
    first, *updates = [u for u in re.split(r"[\r\n]", res.stdout) if u]
    assert re.fullmatch(r"Job submitted successfully, job ID: \d+", first)
    job = int(first.rsplit(" ", 1)[1])
    assert all(u.startswith("\x1b[2K") for u in updates), updates  # each clears the line
    bar, text = updates[-1][len("\x1b[2K"):].split(" ", 1)
    assert bar == "[" + "#" * 40 + "]" and text == "1/1 jobs, 2/2 tasks 2 FINISHED", updates
    assert env.logged(["job", "progress", str(job)]) == ["WARN There are no jobs to wait for"]

    slow = env.submit(["--array", "1-4", "--", "sleep", "1"])
    res = env.run(["job", "progress", str(slow)])
    assert res.returncode == 0
    updates = [u.removeprefix("\x1b[2K") for u in re.split(r"[\r\n]", res.stdout) if u]
    assert len(updates) >= 2
    assert updates[-1] == "[" + "#" * 40 + "] 1/1 jobs, 4/4 tasks 4 FINISHED"
    for u in updates:
        bar, text = u.split(" ", 1)
        assert BAR.match(bar) and re.fullmatch(
            r"[01]/1 jobs, \d/4 tasks( \d (RUNNING|FINISHED)(, \d FINISHED)?)?", text), u
