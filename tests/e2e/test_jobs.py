"""Submitting jobs and inspecting them: arrays, outputs, environment, failures, cancel, json."""

from __future__ import annotations

import os

import pytest

from hqenv import (parse_horizontal, parse_vertical, parse_vertical_keys, pid_alive,
                      read_file, wait_until)

JOB_INFO_ROWS = ["ID", "Name", "State", "Cancel Reason", "Session", "Tasks", "Workers",
                 "Resources", "Pin", "Priority", "Command", "Stdout", "Stderr", "Environment",
                 "Working directory", "Task time limit", "Crash limit", "Submission date",
                 "Submission directory", "Makespan"]
TASK_INFO_ROWS = ["Task ID", "State", "Command", "Environment", "Worker", "Start", "End",
                  "Makespan", "Workdir", "Stdout", "Stderr", "Time limit", "Resources",
                  "Priority", "Pin", "Task dir", "Crash limit", "Dependencies", "Error"]
STATS_KEYS = {"aborted", "canceled", "failed", "finished", "running", "waiting"}


@pytest.fixture(scope="module")
def env(shared_env):
    shared_env.start_worker(cpus=2)
    return shared_env


@pytest.mark.timeout(60)
def test_array_default_outputs_and_cat(env, tmp_path):
    job = env.submit(["--array", "1-5,10", "--", "sh", "-c", "echo task $HQ_TASK_ID"],
                     cwd=tmp_path)
    env.wait_job(job)
    tasks = env.tasks(job)
    assert [t["id"] for t in tasks] == [1, 2, 3, 4, 5, 10]
    assert all(t["state"] == "finished" for t in tasks)
    for tid in (1, 2, 3, 4, 5, 10):
        assert (tmp_path / f"job-{job}" / f"{tid}.stdout").read_text() == f"task {tid}\n"
        assert (tmp_path / f"job-{job}" / f"{tid}.stderr").read_text() == ""
    assert env.command(["job", "task-ids", str(job)]).strip() == "1-5,10"

    rows = parse_vertical(env.command(["job", "info", str(job)]))
    assert rows["Tasks"] == "6; Ids: 1-5,10"
    # prefilled at submit (upstream-facts F19/F22)
    assert rows["Stdout"] == f"{tmp_path}/job-{job}/%{{TASK_ID}}.stdout"
    assert rows["State"] == "FINISHED (6)"
    t = env.command(["task", "info", str(job), "10"], as_json=True)[0]
    assert t["stdout"] == str(tmp_path / f"job-{job}" / "10.stdout")

    cat = env.command(["job", "cat", str(job), "stdout"])
    assert cat == "".join(f"task {i}\n" for i in (1, 2, 3, 4, 5, 10))
    cat = env.command(["job", "cat", str(job), "stdout", "--tasks", "2-3",
                       "--print-task-header"])
    assert cat.splitlines() == [f"# Job {job}, task 2", "task 2", f"# Job {job}, task 3",
                                "task 3"]


@pytest.mark.timeout(60)
def test_placeholders(env, tmp_path):
    out_dir = tmp_path / "outs"
    job = env.submit(["--array", "1-2", "--stdout", f"{out_dir}/%{{JOB_ID}}-%{{TASK_ID}}.out",
                      "--stderr", "none", "--cwd", "%{SUBMIT_DIR}/wd-%{TASK_ID}", "--",
                      "sh", "-c", "pwd; echo err >&2"], cwd=tmp_path)
    env.wait_job(job)
    for tid in (1, 2):
        assert (out_dir / f"{job}-{tid}.out").read_text().strip() == str(tmp_path / f"wd-{tid}")
        assert (tmp_path / f"wd-{tid}").is_dir()
    assert not (tmp_path / f"job-{job}").exists()
    tasks = env.tasks(job)
    assert [t["stdout"] for t in tasks] == [str(out_dir / f"{job}-{i}.out") for i in (1, 2)]
    assert [t["cwd"] for t in tasks] == [str(tmp_path / f"wd-{i}") for i in (1, 2)]


@pytest.mark.timeout(60)
def test_task_environment(env, tmp_path):
    script = ('echo "job=$HQ_JOB_ID task=$HQ_TASK_ID inst=$HQ_INSTANCE_ID '
              'dir=$HQ_SUBMIT_DIR cpus=$HQ_CPUS k=$K empty=[$EMPTY] set=${EMPTY+yes}"; '
              'echo "$HQ"')
    job = env.submit(["--array", "7", "--cpus", "2", "--env", "K=hello world", "--env",
                      "EMPTY=", "--", "sh", "-c", script], cwd=tmp_path)
    env.wait_job(job)
    line, hq_path = (tmp_path / f"job-{job}" / "7.stdout").read_text().splitlines()
    assert line == (f"job={job} task=7 inst=0 dir={tmp_path} cpus=0,1 k=hello world "
                    f"empty=[] set=yes")
    assert os.path.basename(hq_path) == "hq" and os.access(hq_path, os.X_OK), hq_path
    rows = parse_vertical(env.command(["job", "info", str(job)]))
    assert rows["Environment"].splitlines() == ["K=hello world", "EMPTY="]
    assert rows["Resources"] == "cpus: 2 compact"


def _cancel_and_check(env, tmp_path, script):
    job = env.submit(["--", "sh", "-c", script], cwd=tmp_path)
    child = int(read_file(tmp_path / "child"))
    env.track_pid(child)
    assert pid_alive(child)
    env.wait_task_state(job, 0, "running")
    out = env.logged(["job", "cancel", str(job)])  # a log record on stderr (F37)
    assert out == [f"INFO Job {job} canceled (1 tasks canceled, 0 tasks already finished)"]
    stats = env.job_state(job)
    assert stats["canceled"] == 1 and stats["running"] == 0
    rows = parse_horizontal(env.command(["job", "list", "--all"]))
    assert next(r for r in rows if r["ID"] == str(job))["State"] == "CANCELED"
    assert env.tasks(job)[0]["state"] == "canceled"
    # canceling again is a per-item failure, still exit code 0
    out = env.logged(["job", "cancel", str(job)])
    assert out == [f"ERROR Canceling job {job} failed; all tasks are already finished"], out
    wait_until(lambda: not pid_alive(child), 5, 0.05, "the task's child process to die")


@pytest.mark.timeout(60)
def test_cancel_running_job(env, tmp_path):
    # a grandchild in the task's process group, in the foreground of the task's shell
    _cancel_and_check(env, tmp_path, 'sh -c "echo \\$\\$ > child; exec sleep 100"; true')
    res = env.run(["job", "cancel", "9999"])
    assert res.returncode == 0


@pytest.mark.timeout(60)
def test_cancel_kills_whole_process_group(env, tmp_path):
    # a background child of a non-interactive shell ignores SIGINT
    _cancel_and_check(env, tmp_path, "sleep 100 & echo $! > child; wait")


@pytest.mark.timeout(60)
def test_time_limit(env, tmp_path):
    job = env.submit(["--time-limit", "1s", "--", "sleep", "10"], cwd=tmp_path)
    env.wait_job(job, timeout=20)
    t = env.tasks(job)[0]
    assert t["state"] == "failed"
    info = env.command(["task", "info", str(job), "0"], as_json=True)[0]
    assert info["error"] == "Time limit reached"
    rows = parse_vertical(env.command(["job", "info", str(job)]))
    assert rows["State"] == "FAILED"
    assert rows["Task time limit"] == "1s"


@pytest.mark.timeout(60)
def test_failing_and_missing_programs(env, tmp_path):
    failing = env.submit(["--", "sh", "-c", "exit 3"], cwd=tmp_path)
    missing = env.submit(["--", "/nonexistent/e2e-program", "x"], cwd=tmp_path)
    array = env.submit(["--array", "1-3", "--", "sh", "-c", "[ $HQ_TASK_ID = 2 ] || exit 3"],
                       cwd=tmp_path)
    for j in (failing, missing, array):
        env.wait_job(j)

    info = env.command(["task", "info", str(failing), "0"], as_json=True)[0]
    assert info["state"] == "failed"
    assert info["error"] == "Program terminated with exit code 3."
    out = env.command(["job", "info", str(failing)])
    assert parse_vertical(out)["State"] == "FAILED"
    failed_rows = parse_horizontal(out.split("+\n+", 1)[1] if "+\n+" in out else "")
    assert failed_rows == [{"Task ID": "0", "Worker": failed_rows[0]["Worker"],
                            "Error": "Program terminated with exit code 3."}]
    assert out.rstrip().endswith("1 tasks failed.")  # upstream's (cli-contract) wording

    info = env.command(["task", "info", str(missing), "0"], as_json=True)[0]
    assert info["state"] == "failed"
    assert "/nonexistent/e2e-program" in info["error"]
    assert "No such file" in info["error"] or "not found" in info["error"].lower()

    out = env.command(["job", "info", str(array)])
    rows = parse_vertical(out)
    assert rows["State"].splitlines() == ["FINISHED (1)", "FAILED (2)"] or \
        sorted(rows["State"].splitlines()) == ["FAILED (2)", "FINISHED (1)"]
    assert out.rstrip().endswith("2 tasks failed.")
    tl = parse_horizontal(env.command(["task", "list", str(array)]))
    assert [r["Task ID"] for r in tl] == ["1", "2", "3"]
    assert [r["State"] for r in tl] == ["FAILED", "FINISHED", "FAILED"]
    assert list(tl[0].keys()) == ["Task ID", "State", "Worker", "Makespan", "Error"]
    tl = parse_horizontal(env.command(["task", "list", str(array), "-v"]))
    assert tl[0]["Error"] == "Program terminated with exit code 3."

    # submit --wait exits 0 even when the task fails
    res = env.run(["submit", "--wait", "--", "sh", "-c", "exit 1"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr


@pytest.mark.timeout(60)
def test_job_info_and_task_info_tables(env, tmp_path):
    job = env.submit(["--name", "e2e-info", "--priority", "3", "--env", "A=1", "--",
                      "sh", "-c", "echo hi"], cwd=tmp_path)
    env.wait_job(job)
    out = env.command(["job", "info", str(job)])
    assert parse_vertical_keys(out) == JOB_INFO_ROWS
    rows = parse_vertical(out)
    assert rows["ID"] == str(job)
    assert rows["Name"] == "e2e-info"
    assert rows["State"] == "FINISHED"
    assert rows["Session"] == "closed"
    assert rows["Tasks"] == "1; Ids: 0"
    assert rows["Resources"] == "cpus: 1 compact"
    assert rows["Priority"] == "3"
    assert rows["Command"] == "sh -c echo hi"
    assert rows["Stdout"] == f"{tmp_path}/job-{job}/%{{TASK_ID}}.stdout"  # F19/F22
    assert rows["Working directory"] == str(tmp_path)
    assert rows["Submission directory"] == str(tmp_path)
    assert rows["Task time limit"] == "None"
    assert rows["Crash limit"] == "5"
    for line in out.strip().splitlines():
        assert line.startswith("+-") or line.startswith("| "), line

    out = env.command(["task", "info", str(job), "0"])
    assert parse_vertical_keys(out) == TASK_INFO_ROWS
    rows = parse_vertical(out)
    assert rows["State"] == "FINISHED"
    assert rows["Stdout"] == str(tmp_path / f"job-{job}" / "0.stdout")
    assert rows["Task dir"] == "no"
    import re

    assert re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d", rows["Start"]), rows["Start"]
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d", rows["End"]), rows["End"]


@pytest.mark.timeout(60)
def test_json_outputs(env, tmp_path):
    job = env.submit(["--array", "1-2", "--name", "jsonjob", "--", "sh", "-c",
                      "[ $HQ_TASK_ID = 1 ] || exit 5"], cwd=tmp_path)
    env.wait_job(job)

    jobs = env.command(["job", "list", "--all"], as_json=True)
    j = next(x for x in jobs if x["id"] == job)
    assert set(j) >= {"id", "name", "task_count", "task_stats"}
    assert j["name"] == "jsonjob" and j["task_count"] == 2
    assert set(j["task_stats"]) == STATS_KEYS
    assert j["task_stats"]["finished"] == 1 and j["task_stats"]["failed"] == 1

    detail = env.command(["job", "info", str(job)], as_json=True)
    assert isinstance(detail, list) and len(detail) == 1
    d = detail[0]
    assert set(d) >= {"info", "submits", "finished_at", "max_fails", "started_at", "tasks"}
    assert set(d["info"]) >= {"id", "name", "task_count", "task_stats", "is_open",
                              "cancel_reason"}
    assert d["info"]["is_open"] is False and d["info"]["cancel_reason"] is None
    arr = d["submits"][0]["array"]
    assert set(arr) >= {"resources", "priority", "program", "pin_mode", "crash_limit",
                        "task_dir", "time_limit"}
    assert set(arr["program"]) >= {"args", "env", "cwd", "stdout", "stderr"}
    assert arr["program"]["args"] == ["sh", "-c", "[ $HQ_TASK_ID = 1 ] || exit 5"]
    assert isinstance(d["started_at"], str) and isinstance(d["finished_at"], str)

    tl = env.command(["task", "list", str(job)], as_json=True)
    assert list(tl) == [str(job)]
    assert [(t["id"], t["state"]) for t in tl[str(job)]] == [(1, "finished"), (2, "failed")]
    ti = env.command(["task", "info", str(job), "2"], as_json=True)
    assert isinstance(ti, list) and len(ti) == 1
    assert set(ti[0]) >= {"id", "state", "error"}
    assert ti[0]["error"] == "Program terminated with exit code 5."
    assert env.command(["job", "summary"], as_json=True).keys() == {
        "Aborted", "Canceled", "Failed", "Finished", "Running", "Waiting"}


@pytest.mark.timeout(60)
def test_json_job_info_lists_all_tasks(env, tmp_path):
    job = env.submit(["--array", "1-2", "--", "true"], cwd=tmp_path)
    env.wait_job(job)
    d = env.command(["job", "info", str(job)], as_json=True)[0]
    assert [(t["id"], t["state"]) for t in d["tasks"]] == [(1, "finished"), (2, "finished")]
    assert set(d["tasks"][0]) >= {"id", "state", "cwd", "stdout", "stderr"}


@pytest.mark.timeout(60)
def test_quiet_submit_and_durations(env, tmp_path):
    res = env.run(["submit", "--", "true"], cwd=tmp_path, mode="quiet")
    assert res.returncode == 0
    assert res.stdout.strip().isdigit() and res.stdout == res.stdout.strip() + "\n"
    res = env.run(["submit", "--", "true"], cwd=tmp_path)
    job = int(res.stdout.strip().rsplit(" ", 1)[1])
    assert res.stdout.strip() == f"Job submitted successfully, job ID: {job}"

    for text, seconds in [("1h 30m", 5400.0), ("00:10:00", 600.0), ("90", 90.0),
                          ("2m", 120.0)]:
        j = env.submit(["--time-limit", text, "--", "true"], cwd=tmp_path)
        d = env.job_info(j)
        assert d["submits"][0]["array"]["time_limit"] == seconds, text
    rows = parse_vertical(env.command(["job", "info", "last"]))
    assert rows["Task time limit"] == "2m"
    assert env.run(["submit", "--time-limit", "soon", "--", "true"]).returncode != 0


@pytest.mark.timeout(60)
def test_long_job_name_and_version(env, tmp_path):
    name = "a" * 30 + "b" * 30
    job = env.submit(["--name", name, "--", "true"], cwd=tmp_path)
    env.wait_job(job)
    row = next(r for r in parse_horizontal(env.command(["job", "list", "--all"]))
               if r["ID"] == str(job))
    shown = row["Name"]
    assert len(shown) == 50 and "..." in shown, shown
    assert shown.startswith("aaaa") and shown.endswith("bbbb"), shown
    assert env.job_info(job)["info"]["name"] == name
    from hyperqueue.version import __version__

    assert __version__ in env.command(["--version"])
