"""Job definition files (`hq job submit-file job.toml`): task options, arrays with entries,
dependencies, validation errors (nothing is submitted) and submits into open jobs."""

from __future__ import annotations

import json
import os

import pytest

from hqenv import parse_horizontal, parse_vertical, parse_vertical_keys

TASK_INFO_ROWS = ["Task ID", "State", "Command", "Environment", "Worker", "Start", "End",
                  "Makespan", "Workdir", "Stdout", "Stderr", "Time limit", "Resources",
                  "Priority", "Pin", "Task dir", "Crash limit", "Dependencies", "Error"]


@pytest.fixture(scope="module")
def env(shared_env):
    shared_env.start_worker(cpus=2)
    return shared_env


def submit_file(env, path, *args, **kw) -> int:
    out = env.command(["job", "submit-file", str(path), *args], **kw)
    assert out.startswith("Job submitted successfully, job ID: "), out
    return int(out.strip().rsplit(" ", 1)[1])


def job_ids(env) -> list[int]:
    return [j["id"] for j in env.command(["job", "list", "--all"], as_json=True)]


def states(env, job) -> dict[int, str]:
    return {t["id"]: t["state"] for t in env.tasks(job)}


@pytest.mark.timeout(60)
def test_task_options(env, tmp_path):
    (tmp_path / "job.toml").write_text('''
name = "options"

[[task]]
id = 5
command = ["sh", "-c", "echo \\"$FOO|$BAR|$(pwd)\\"; cat; echo e >&2; test -d \\"$HQ_TASK_DIR\\""]
env = { FOO = "foo value", BAR = "2" }
cwd = "wd"
stdout = "out/%{TASK_ID}.txt"
stderr = { path = "out/%{TASK_ID}.err", on_close = "rm-if-finished" }
priority = 7
time_limit = "30s"
crash_limit = 3
stdin = "data from the job file"
task_dir = true

[[task]]
id = 6
command = ["sleep", "10"]
time_limit = "1s"
crash_limit = "never-restart"
stdout = "none"
''')
    job = submit_file(env, tmp_path / "job.toml", cwd=tmp_path)
    env.wait_job(job, timeout=30)
    assert states(env, job) == {5: "finished", 6: "failed"}
    wd = tmp_path / "wd"
    # relative cwd: against the submit dir; relative stdout: against the task's cwd
    assert (wd / "out" / "5.txt").read_text() == f"foo value|2|{wd}\ndata from the job file"
    assert not (wd / "out" / "5.err").exists()  # removed: the task finished
    assert not (tmp_path / f"job-{job}" / "6.stdout").exists()

    out = env.command(["task", "info", str(job), "5"])
    assert parse_vertical_keys(out) == TASK_INFO_ROWS
    rows = parse_vertical(out)
    assert rows["Task ID"] == "5" and rows["State"] == "FINISHED"
    assert rows["Environment"].splitlines() == ["FOO=foo value", "BAR=2"]
    assert rows["Workdir"] == str(wd)
    assert rows["Stdout"] == str(wd / "out" / "5.txt")
    assert rows["Stderr"] == str(wd / "out" / "5.err")
    assert rows["Time limit"] == "30s"
    assert rows["Priority"] == "7"
    assert rows["Task dir"] == "yes"
    assert rows["Crash limit"] == "3"
    assert rows["Dependencies"] == ""
    assert rows["Error"] == ""

    rows = parse_vertical(env.command(["task", "info", str(job), "6"]))
    assert rows["State"] == "FAILED"
    assert rows["Error"] == "Time limit reached"
    assert rows["Time limit"] == "1s"
    assert rows["Crash limit"] == "never-restart"
    assert rows["Priority"] == "0" and rows["Task dir"] == "no"
    assert rows["Workdir"] == str(tmp_path)  # default cwd: where submit-file ran

    info = parse_vertical(env.command(["job", "info", str(job)]))
    assert info["Name"] == "options"
    assert info["Tasks"] == "2; Ids: 5-6"


@pytest.mark.timeout(60)
def test_array_with_ids_and_entries(env, tmp_path):
    (tmp_path / "arr.toml").write_text('''
name = "arr"
[array]
ids = "10-12"
entries = ["a", "b c", "{\\"k\\": 1}"]
command = ["sh", "-c", "echo \\"$HQ_TASK_ID=$HQ_ENTRY=$E\\""]
env = { E = "x" }
''')
    job = submit_file(env, tmp_path / "arr.toml", cwd=tmp_path)
    env.wait_job(job)
    assert states(env, job) == {10: "finished", 11: "finished", 12: "finished"}
    assert env.command(["job", "cat", str(job), "stdout"]) == \
        '10=a=x\n11=b c=x\n12={"k": 1}=x\n'
    assert parse_vertical(env.command(["job", "info", str(job)]))["Tasks"] == "3; Ids: 10-12"

    # entries alone: ids 0..n-1; ids alone: a plain array
    (tmp_path / "entries.toml").write_text('''
[array]
entries = ["first", "second"]
command = ["sh", "-c", "echo $HQ_TASK_ID:$HQ_ENTRY"]
''')
    (tmp_path / "ids.toml").write_text('''
[array]
ids = "1-7:3"
command = ["sh", "-c", "echo $HQ_TASK_ID"]
''')
    j1 = submit_file(env, tmp_path / "entries.toml", cwd=tmp_path)
    j2 = submit_file(env, tmp_path / "ids.toml", cwd=tmp_path)
    for j in (j1, j2):
        env.wait_job(j)
    assert env.command(["job", "cat", str(j1), "stdout"]) == "0:first\n1:second\n"
    assert env.command(["job", "cat", str(j2), "stdout"]) == "1\n4\n7\n"


@pytest.mark.timeout(60)
def test_diamond_dependencies(env, tmp_path):
    def task(tid, deps, sleep="0.3"):
        return (f'[[task]]\nid = {tid}\ndeps = {deps}\ncommand = ["sh", "-c", '
                f'"date +%s.%N > start-{tid}; sleep {sleep}; date +%s.%N > end-{tid}"]\n')

    (tmp_path / "diamond.toml").write_text(
        'name = "diamond"\n' + task(4, [2, 3], "0") + task(2, [1]) + task(3, [1]) + task(1, []))
    job = submit_file(env, tmp_path / "diamond.toml", cwd=tmp_path)
    env.wait_job(job)
    assert states(env, job) == {1: "finished", 2: "finished", 3: "finished", 4: "finished"}

    def t(kind, tid):
        return float((tmp_path / f"{kind}-{tid}").read_text())

    assert t("start", 2) >= t("end", 1) and t("start", 3) >= t("end", 1)
    assert t("start", 4) >= max(t("end", 2), t("end", 3))
    # 2 and 3 ran side by side on the 2-cpu worker
    assert t("start", 3) < t("end", 2) and t("start", 2) < t("end", 3)
    rows = parse_vertical(env.command(["task", "info", str(job), "4"]))
    assert rows["Dependencies"] == "2,3"
    assert parse_vertical(env.command(["task", "info", str(job), "1"]))["Dependencies"] == ""


@pytest.mark.timeout(60)
def test_failing_dependency_aborts_dependents(env, tmp_path):
    (tmp_path / "fail.toml").write_text('''
[[task]]
id = 0
command = ["sh", "-c", "exit 4"]
[[task]]
id = 1
command = ["sh", "-c", "touch ran-1"]
deps = [0]
[[task]]
id = 2
command = ["sh", "-c", "touch ran-2"]
deps = [1]
[[task]]
id = 3
command = ["sh", "-c", "touch ran-3"]
''')
    job = submit_file(env, tmp_path / "fail.toml", cwd=tmp_path)
    env.wait_job(job)
    st = states(env, job)
    assert st[0] == "failed" and st[3] == "finished"
    assert st[1] in ("aborted", "canceled") and st[2] == st[1], st
    assert not (tmp_path / "ran-1").exists() and not (tmp_path / "ran-2").exists()
    assert (tmp_path / "ran-3").exists()
    rows = parse_horizontal(env.command(["job", "list", "--all"]))
    assert next(r for r in rows if r["ID"] == str(job))["State"] == "FAILED"
    stats = env.job_state(job)
    assert stats["failed"] == 1 and stats["finished"] == 1
    assert stats["aborted"] + stats["canceled"] == 2


@pytest.mark.timeout(60)
def test_implicit_ids_and_priorities(env, tmp_path):
    # tasks without an id get max(explicit ids, 0) + 1, + 2, ...
    (tmp_path / "implicit.toml").write_text('''
[[task]]
command = ["true"]
[[task]]
command = ["true"]
[[task]]
command = ["true"]
deps = [1, 2]
''')
    job = submit_file(env, tmp_path / "implicit.toml", cwd=tmp_path)
    env.wait_job(job)
    assert states(env, job) == {1: "finished", 2: "finished", 3: "finished"}
    assert parse_vertical(env.command(["task", "info", str(job), "3"]))["Dependencies"] == "1,2"

    # each task takes both cpus, so they run one at a time, highest priority first
    def task(tid, prio, name):
        return (f'[[task]]\nid = {tid}\npriority = {prio}\n'
                f'command = ["sh", "-c", "echo {name} >> order"]\n'
                '[[task.request]]\nresources = { cpus = 2 }\n')

    (tmp_path / "prio.toml").write_text(task(1, 1, "low") + task(2, 10, "high") +
                                        task(3, 5, "mid"))
    job = submit_file(env, tmp_path / "prio.toml", cwd=tmp_path)
    env.wait_job(job)
    assert (tmp_path / "order").read_text().split() == ["high", "mid", "low"]
    assert parse_vertical(env.command(["task", "info", str(job), "2"]))["Resources"] == \
        "cpus: 2 compact"


INVALID = {
    "cycle": ('''
[[task]]
id = 1
command = ["true"]
deps = [3]
[[task]]
id = 2
command = ["true"]
deps = [1]
[[task]]
id = 3
command = ["true"]
deps = [2]
''', ["Error: Task ", " is part of dependency cycle or has an invalid dependencies"]),
    "self-dependency": ('''
[[task]]
id = 1
command = ["true"]
deps = [1]
''', ["Error: Task 1 is part of dependency cycle or has an invalid dependencies"]),
    "missing-dependency": ('''
[[task]]
id = 1
command = ["true"]
[[task]]
id = 2
command = ["true"]
deps = [1, 7]
''', ["Error: Task 2 is part of dependency cycle or has an invalid dependencies"]),
    "unknown-key": ('''
[[task]]
id = 0
commnd = ["true"]
''', ["task[0].commnd"]),
    "unknown-top-key": ('''
nmae = "x"
[[task]]
command = ["true"]
''', ["nmae"]),
    "unknown-array-key": ('''
[array]
ids = "1-2"
command = ["true"]
dep = [1]
''', ["array.dep"]),
    "tasks-and-array": ('''
[[task]]
command = ["true"]
[array]
ids = "1-3"
command = ["true"]
''', ["Deserialization error: Definition of array job and individual task cannot be mixed"]),
    "no-command": ('''
[[task]]
id = 1
''', ["task[0].command"]),
    "entries-mismatch": ('''
[array]
ids = "1-3"
entries = ["a"]
command = ["true"]
''', ["Deserialization error: Items 'ids' and 'entries' does not match"]),
    "bad-ids": ('''
[array]
ids = "3-1"
command = ["true"]
''', ["array.ids"]),
    "duplicate-ids": ('''
[[task]]
id = 1
command = ["true"]
[[task]]
id = 1
command = ["false"]
''', ["Error: Task 1 is defined multiple times"]),
    "zero-crash-limit": ('''
[[task]]
command = ["true"]
crash_limit = 0
''', ["task[0].crash_limit"]),
    "bad-time-limit": ('''
[[task]]
command = ["true"]
time_limit = "soon"
''', ["task[0].time_limit"]),
    # the toml crate's form (F42): position, the line with a caret, the reason
    "not-toml": ('''
[[task]
command = ["true"]
''', ["Deserialization error: TOML parse error at line 2, column 7\n  |\n2 | [[task]\n"]),
}


@pytest.mark.timeout(60)
def test_invalid_files_are_rejected(env, tmp_path):
    before = job_ids(env)
    for case, (text, words) in INVALID.items():
        (tmp_path / "bad.toml").write_text(text)
        res = env.run(["job", "submit-file", "bad.toml"], cwd=tmp_path)
        assert res.returncode == 1, (case, res.stdout, res.stderr)
        assert res.stdout == "", case
        message = res.stderr.strip()
        assert message and (len(message.splitlines()) == 1 or case == "not-toml"), (case,
                                                                                     message)
        for w in words:
            assert w in message, (case, message)
    res = env.run(["job", "submit-file", "missing.toml"], cwd=tmp_path)
    assert res.returncode == 1 and "missing.toml" in res.stderr
    res = env.run(["job", "submit-file", "bad.toml"], cwd=tmp_path, mode="json")
    assert res.returncode == 1 and "error" in json.loads(res.stdout)
    assert job_ids(env) == before


@pytest.mark.timeout(60)
def test_submit_file_into_open_job(env, tmp_path):
    job = int(env.command(["job", "open", "--name", "incremental"], mode="quiet",
                          cwd=tmp_path).strip())
    (tmp_path / "part1.toml").write_text('''
[[task]]
id = 0
command = ["sh", "-c", "echo first > first"]
[[task]]
id = 1
command = ["sh", "-c", "test -f first && echo second"]
deps = [0]
''')
    (tmp_path / "part2.toml").write_text('''
[array]
ids = "10-11"
command = ["sh", "-c", "echo $HQ_TASK_ID"]
''')
    assert submit_file(env, tmp_path / "part1.toml", "--job", str(job), cwd=tmp_path) == job
    assert submit_file(env, tmp_path / "part2.toml", "--job", str(job), cwd=tmp_path) == job
    env.command(["submit", "--job", str(job), "--", "true"], cwd=tmp_path)
    env.command(["job", "wait", str(job), "--without-close"])
    assert states(env, job) == {0: "finished", 1: "finished", 10: "finished",
                                11: "finished", 12: "finished"}
    assert (tmp_path / f"job-{job}" / "1.stdout").read_text() == "second\n"
    info = env.job_info(job)["info"]
    assert info["is_open"] is True and info["name"] == "incremental"

    before = env.job_info(job)["info"]["task_count"]
    res = env.run(["job", "submit-file", "part1.toml", "--job", str(job)], cwd=tmp_path)
    assert res.returncode == 1 and res.stderr.strip()  # ids 0 and 1 exist already
    (tmp_path / "named.toml").write_text('name = "x"\n[[task]]\ncommand = ["true"]\n')
    res = env.run(["job", "submit-file", "named.toml", "--job", str(job)], cwd=tmp_path)
    assert res.returncode == 1 and "name" in res.stderr
    assert env.job_info(job)["info"]["task_count"] == before

    env.command(["job", "close", str(job)])
    env.wait_job(job)
    # F7: colliding ids are reported before the closed state; new ids meet the closed job
    res = env.run(["job", "submit-file", "part2.toml", "--job", str(job)], cwd=tmp_path)
    assert (res.returncode, res.stderr) == (1, f"Task 10 already exists in job {job}.\n")
    (tmp_path / "part3.toml").write_text('[[task]]\nid = 50\ncommand = ["true"]\n')
    res = env.run(["job", "submit-file", "part3.toml", "--job", str(job)], cwd=tmp_path)
    assert (res.returncode, res.stderr) == (1, f"Job {job} is not opened.\n")
    res = env.run(["job", "submit-file", "part2.toml", "--job", "99999"], cwd=tmp_path)
    assert res.returncode == 1 and "99999" in res.stderr
    assert os.path.exists(tmp_path / "first")
