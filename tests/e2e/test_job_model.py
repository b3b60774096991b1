"""The job/task model seen from the command line: arrays and their sources, stdin, task dirs and
error files, output cleanup, failure handling (max-fails, crash limit, time requests), directives,
job commands (list/cancel/wait/progress/cat/forget/summary/task-ids) and open jobs."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time

import pytest

from hqenv import (HQ, parse_horizontal, parse_vertical, pid_alive, read_file,
                      wait_until)

TRUNCATED = "\n[The message was truncated]"


@pytest.fixture(scope="module")
def env(shared_env):
    shared_env.start_worker(cpus=2)
    return shared_env


def job_ids(env) -> list[int]:
    return [j["id"] for j in env.command(["job", "list", "--all"], as_json=True)]


def job_row(env, job, *args) -> dict:
    rows = parse_horizontal(env.command(["job", "list", "--all", *args]))
    return next(r for r in rows if r["ID"].lstrip("*") == str(job))


def stdout_of(tmp_path, job, task) -> str:
    return (tmp_path / f"job-{job}" / f"{task}.stdout").read_text(encoding="utf-8")


def hq_shell(env, script: str, cwd) -> subprocess.CompletedProcess:
    """Runs a shell snippet in which `hq` is the client bound to the test's server."""
    hq = " ".join(shlex.quote(a) for a in HQ + ["--server-dir", str(env.server_dir)])
    return subprocess.run(["sh", "-c", f"hq() {{ {hq} \"$@\"; }}\n{script}"],
                          capture_output=True, text=True, cwd=str(cwd), env=env.env, timeout=30)


# -- arrays -------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_array_ranges_steps_and_lists(env, tmp_path):
    script = "echo id=$HQ_TASK_ID"
    stepped = env.submit(["--array", "1-10:3", "--", "sh", "-c", script], cwd=tmp_path)
    listed = env.submit(["--array", "0,5,8-9,20", "--", "sh", "-c", script], cwd=tmp_path)
    for job in (stepped, listed):
        env.wait_job(job)
    assert [t["id"] for t in env.tasks(stepped)] == [1, 4, 7, 10]
    assert [t["id"] for t in env.tasks(listed)] == [0, 5, 8, 9, 20]
    for job, ids in ((stepped, [1, 4, 7, 10]), (listed, [0, 5, 8, 9, 20])):
        assert all(t["state"] == "finished" for t in env.tasks(job))
        for tid in ids:
            assert stdout_of(tmp_path, job, tid) == f"id={tid}\n"
    assert env.command(["job", "task-ids", str(stepped)]).strip() == "1,4,7,10"
    assert env.command(["job", "task-ids", str(listed)]).strip() == "0,5,8-9,20"
    assert parse_vertical(env.command(["job", "info", str(listed)]))["Tasks"] == \
        "5; Ids: 0,5,8-9,20"
    assert job_row(env, stepped)["Tasks"] == "4"


@pytest.mark.timeout(60)
def test_each_line(env, tmp_path):
    (tmp_path / "lines.txt").write_text("alpha\nbeta gamma\n\n  spaced  \nlast")
    job = env.submit(["--each-line", "lines.txt", "--", "sh", "-c",
                      'printf "%s|%s" "$HQ_TASK_ID" "$HQ_ENTRY"'], cwd=tmp_path,
                     allow_stderr=True)  # INFO Reading file: (upstream-facts F11)
    env.wait_job(job)
    tasks = env.tasks(job)
    assert [t["id"] for t in tasks] == [0, 1, 2, 3, 4]
    assert all(t["state"] == "finished" for t in tasks)
    assert [stdout_of(tmp_path, job, i) for i in range(5)] == [
        "0|alpha", "1|beta gamma", "2|", "3|  spaced  ", "4|last"]

    # --array picks lines by index; indices past the end are dropped
    subset = env.submit(["--each-line", "lines.txt", "--array", "1,3,9", "--", "sh", "-c",
                         'echo "$HQ_ENTRY"'], cwd=tmp_path, allow_stderr=True)
    env.wait_job(subset)
    assert [t["id"] for t in env.tasks(subset)] == [1, 3]
    out = env.command(["job", "cat", str(subset), "stdout", "--print-task-header"])
    assert out.splitlines() == [f"# Job {subset}, task 1", "beta gamma",
                                f"# Job {subset}, task 3", "  spaced  "]


@pytest.mark.timeout(60)
def test_from_json(env, tmp_path):
    (tmp_path / "entries.json").write_text(
        json.dumps([1, "two", {"a": [1, 2], "b": None}, None, [True, 1.5], "čaj ☕"],
                   indent=4), encoding="utf-8")
    job = env.submit(["--from-json", "entries.json", "--", "sh", "-c",
                      'printf "%s" "$HQ_ENTRY"'], cwd=tmp_path,
                     allow_stderr=True)  # INFO Reading json file: (upstream-facts F11)
    env.wait_job(job)
    assert [t["id"] for t in env.tasks(job)] == [0, 1, 2, 3, 4, 5]
    got = [stdout_of(tmp_path, job, i) for i in range(6)]
    # each element re-serialized as compact JSON (as serde_json does: UTF-8, no \u escapes)
    assert got == ['1', '"two"', '{"a":[1,2],"b":null}', 'null', '[true,1.5]', '"čaj ☕"']

    subset = env.submit(["--from-json", "entries.json", "--array", "0,2", "--", "sh", "-c",
                         'printf "%s" "$HQ_ENTRY"'], cwd=tmp_path, allow_stderr=True)
    env.wait_job(subset)
    assert [t["id"] for t in env.tasks(subset)] == [0, 2]
    assert stdout_of(tmp_path, subset, 2) == '{"a":[1,2],"b":null}'


@pytest.mark.timeout(60)
def test_array_source_errors_create_no_job(env, tmp_path):
    (tmp_path / "obj.json").write_text('{"a": [1, 2]}')
    (tmp_path / "broken.json").write_text('[1, 2')
    (tmp_path / "lines.txt").write_text("a\nb\n")
    (tmp_path / "list.json").write_text("[1]")
    before = job_ids(env)

    # malformed ranges are rejected while parsing the arguments (upstream: clap, exit 2)
    for bad in ("1-x", "5-1", "1-10:0", "a", "3-"):
        res = env.run(["submit", "--array", bad, "--", "true"], cwd=tmp_path)
        assert res.returncode != 0, bad
        assert "--array" in res.stderr and bad in res.stderr, res.stderr
        assert res.stdout == ""

    cases = [
        (["--from-json", "obj.json"], ["obj.json", "array"]),
        # serde_json's message and std's io error, bare (F11)
        (["--from-json", "broken.json"], ["EOF while parsing a list at line 1 column 5"]),
        (["--from-json", "missing.json"], ["No such file or directory (os error 2)"]),
        (["--each-line", "missing.txt"], ["No such file or directory (os error 2)"]),
    ]
    for args, words in cases:
        res = env.run(["submit", *args, "--", "true"], cwd=tmp_path)
        assert res.returncode == 1, (args, res.returncode, res.stderr)
        assert res.stdout == ""
        # the INFO record of F11 comes first; then the error
        text = "\n".join(line for line in res.stderr.strip().splitlines()
                         if " INFO Reading " not in line)
        assert len(text.splitlines()) == 1, text
        for w in words:
            assert w in text, (args, text)
        # json mode: {"error": ...} on stdout
        res = env.run(["submit", *args, "--", "true"], cwd=tmp_path, mode="json")
        assert res.returncode == 1
        assert words[0] in json.loads(res.stdout)["error"]

    res = env.run(["submit", "--each-line", "lines.txt", "--from-json", "list.json", "--",
                   "true"], cwd=tmp_path)
    assert res.returncode != 0
    assert "--each-line" in res.stderr and "--from-json" in res.stderr
    for bad in ("0", "-1", "sometimes"):
        res = env.run(["submit", "--crash-limit", bad, "--", "true"], cwd=tmp_path)
        assert res.returncode != 0 and "--crash-limit" in res.stderr, (bad, res.stderr)
    assert job_ids(env) == before


# -- stdin, task dir, error file, outputs ------------------------------------------------------

@pytest.mark.timeout(60)
def test_stdin_is_given_to_every_task(env, tmp_path):
    data = "first line\nsecond line\x00binary\n" * 100
    res = subprocess.run(HQ + ["--server-dir", str(env.server_dir), "--output-mode", "quiet",
                               "submit", "--stdin", "--array", "1-3", "--", "cat"],
                         input=data.encode(), capture_output=True, cwd=str(tmp_path),
                         env=env.env, timeout=30)
    assert res.returncode == 0, res.stderr
    job = int(res.stdout.decode().strip().splitlines()[-1])
    env.wait_job(job)
    for tid in (1, 2, 3):
        assert (tmp_path / f"job-{job}" / f"{tid}.stdout").read_bytes() == data.encode()
    # without --stdin, a task reading stdin gets EOF at once
    job = env.submit(["--", "sh", "-c", "cat; echo done"], cwd=tmp_path)
    env.wait_job(job)
    assert stdout_of(tmp_path, job, 0) == "done\n"


@pytest.mark.timeout(60)
def test_task_dir(env, tmp_path):
    script = ('test -d "$HQ_TASK_DIR" && echo created > "$HQ_TASK_DIR/f" && '
              'echo "$HQ_TASK_DIR" && echo "$HQ_ERROR_FILENAME" && ls "$HQ_TASK_DIR"')
    job = env.submit(["--task-dir", "--array", "1-2", "--", "sh", "-c", script], cwd=tmp_path)
    env.wait_job(job)
    assert [t["state"] for t in env.tasks(job)] == ["finished", "finished"]
    dirs = []
    for tid in (1, 2):
        task_dir, error_file, listing = stdout_of(tmp_path, job, tid).splitlines()
        assert os.path.isabs(task_dir)
        assert error_file == os.path.join(task_dir, "hq-error")
        assert listing == "f"
        dirs.append(task_dir)
    assert dirs[0] != dirs[1]
    for d in dirs:  # removed once the task ended
        wait_until(lambda: not os.path.exists(d), 5, 0.05, f"{d} to be removed")
    assert parse_vertical(env.command(["task", "info", str(job), "1"]))["Task dir"] == "yes"

    job = env.submit(["--", "sh", "-c", 'echo "[${HQ_TASK_DIR-unset}]"'], cwd=tmp_path)
    env.wait_job(job)
    assert stdout_of(tmp_path, job, 0) == "[unset]\n"


@pytest.mark.timeout(60)
def test_error_file(env, tmp_path):
    script = """case $HQ_TASK_ID in
      1) printf 'disk quota exceeded on /scratch' > "$HQ_ERROR_FILENAME"; exit 1;;
      2) : > "$HQ_ERROR_FILENAME"; exit 3;;
      3) head -c 3000 /dev/zero | tr '\\0' x > "$HQ_ERROR_FILENAME"; exit 1;;
      4) echo 'ignored' > "$HQ_ERROR_FILENAME"; exit 0;;
      5) exit 7;;
    esac"""
    job = env.submit(["--task-dir", "--array", "1-5", "--", "sh", "-c", script], cwd=tmp_path)
    env.wait_job(job)
    info = {t["id"]: t for t in env.command(["task", "info", str(job), "1-5"], as_json=True)}
    assert {i: t["state"] for i, t in info.items()} == {
        1: "failed", 2: "failed", 3: "failed", 4: "finished", 5: "failed"}
    assert info[1]["error"] == "disk quota exceeded on /scratch"
    assert info[2]["error"] == "Task created an error file, but it is empty"
    assert info[3]["error"] == "x" * 2048 + TRUNCATED
    assert info[5]["error"] == "Program terminated with exit code 7."

    rows = {r["Task ID"]: r for r in parse_horizontal(
        env.command(["task", "list", str(job), "-v"]))}
    assert rows["1"]["Error"] == "disk quota exceeded on /scratch"
    assert rows["3"]["Error"].endswith("[The message was truncated]")
    assert rows["4"]["Error"] == ""
    rows = {r["Task ID"]: r for r in parse_horizontal(env.command(["task", "list", str(job)]))}
    assert rows["1"]["Error"] == "disk quota excee…"  # 16 characters without -v
    out = env.command(["job", "info", str(job)])
    assert out.rstrip().endswith("4 tasks failed.")


@pytest.mark.timeout(60)
def test_rm_if_finished_and_none(env, tmp_path):
    job = env.submit(["--array", "1-2", "--stdout", "out/%{TASK_ID}.out:rm-if-finished",
                      "--stderr", ":rm-if-finished", "--", "sh", "-c",
                      'echo "out $HQ_TASK_ID"; echo "err $HQ_TASK_ID" >&2; '
                      '[ $HQ_TASK_ID = 1 ]'], cwd=tmp_path)
    env.wait_job(job)
    assert [t["state"] for t in env.tasks(job)] == ["finished", "failed"]
    assert not (tmp_path / "out" / "1.out").exists()
    assert not (tmp_path / f"job-{job}" / "1.stderr").exists()
    assert (tmp_path / "out" / "2.out").read_text() == "out 2\n"
    assert (tmp_path / f"job-{job}" / "2.stderr").read_text() == "err 2\n"
    rows = parse_vertical(env.command(["job", "info", str(job)]))
    assert "rm-if-finished" in rows["Stdout"] and "rm-if-finished" in rows["Stderr"]

    job = env.submit(["--stdout", "none", "--", "sh", "-c", "echo lost; echo kept >&2"],
                     cwd=tmp_path)
    env.wait_job(job)
    assert env.tasks(job)[0]["state"] == "finished"
    assert not (tmp_path / f"job-{job}" / "0.stdout").exists()
    assert (tmp_path / f"job-{job}" / "0.stderr").read_text() == "kept\n"
    t = env.command(["task", "info", str(job), "0"], as_json=True)[0]
    assert t["stdout"] is None
    assert parse_vertical(env.command(["job", "info", str(job)]))["Stdout"] == "<None>"  # F21


# -- failure handling --------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_max_fails_aborts_the_rest(env, tmp_path):
    # every task runs until the test tells it to fail; two run at once on the 2-cpu worker
    script = ('echo $$ > pid-$HQ_TASK_ID; '
              'while [ ! -f fail-$HQ_TASK_ID ]; do sleep 0.05; done; exit 1')
    job = env.submit(["--array", "1-5", "--max-fails", "0", "--", "sh", "-c", script],
                     cwd=tmp_path)
    running = wait_until(lambda: [t["id"] for t in env.tasks(job) if t["state"] == "running"]
                         if sum(t["state"] == "running" for t in env.tasks(job)) == 2 else None,
                         message="two running tasks")
    pids = {tid: int(read_file(tmp_path / f"pid-{tid}")) for tid in running}
    for pid in pids.values():
        env.track_pid(pid)
    first, other = running
    (tmp_path / f"fail-{first}").write_text("")
    env.wait_job(job)
    states = {t["id"]: t["state"] for t in env.tasks(job)}
    assert states[first] == "failed"
    assert all(s == "aborted" for tid, s in states.items() if tid != first), states
    wait_until(lambda: not pid_alive(pids[other]), 5, 0.05, "the aborted running task to die")
    stats = env.job_state(job)
    assert (stats["failed"], stats["aborted"], stats["running"], stats["waiting"]) == (1, 4, 0, 0)
    assert job_row(env, job)["State"] == "FAILED"
    assert sorted(parse_vertical(env.command(["job", "info", str(job)]))["State"]
                  .splitlines()) == ["ABORTED (4)", "FAILED (1)"]
    assert env.job_info(job)["max_fails"] == 0


@pytest.mark.timeout(60)
def test_max_fails_counts_more_than_n(env, tmp_path):
    job = env.submit(["--array", "1-4", "--max-fails", "3", "--", "sh", "-c", "exit 1"],
                     cwd=tmp_path)
    env.wait_job(job)
    assert env.job_state(job)["failed"] == 4  # 4 failures > 3, but nothing was left to abort
    job = env.submit(["--array", "1-12", "--max-fails", "2", "--", "sh", "-c", "exit 1"],
                     cwd=tmp_path)
    env.wait_job(job)
    stats = env.job_state(job)
    assert stats["failed"] >= 3 and stats["aborted"] >= 1, stats
    assert stats["failed"] + stats["aborted"] == 12, stats
    assert job_row(env, job)["State"] == "FAILED"


def _pid_job(env, tmp_path, tag, *args) -> int:
    return env.submit([*args, "--", "sh", "-c",
                       f'echo $HQ_INSTANCE_ID >> inst-{tag}; echo $$ >> pid-{tag}; '
                       'exec sleep 100'], cwd=tmp_path)


def _track(env, path):
    if path.exists():
        for line in path.read_text().split():
            env.track_pid(int(line))


def _error(env, job) -> str:
    return env.command(["task", "info", str(job), "0"], as_json=True)[0]["error"]


@pytest.mark.timeout(60)
def test_crash_limit_with_killed_workers(hq_env, tmp_path):
    env = hq_env
    env.start_server()
    w1 = env.start_worker(cpus=2)
    limited = _pid_job(env, tmp_path, "limited", "--crash-limit", "2")
    never = _pid_job(env, tmp_path, "never", "--crash-limit", "never-restart")
    for job in (limited, never):
        env.wait_task_state(job, 0, "running")
    read_file(tmp_path / "pid-limited")
    read_file(tmp_path / "pid-never")

    env.kill(w1)  # SIGKILL: a crash
    _track(env, tmp_path / "pid-limited")
    _track(env, tmp_path / "pid-never")
    env.wait_task_state(never, 0, "failed")
    assert "lost" in _error(env, never)
    env.wait_task_state(limited, 0, "waiting")
    assert job_row(env, limited)["State"] == "WAITING"

    w2 = env.start_worker(cpus=2)
    env.wait_task_state(limited, 0, "running")
    wait_until(lambda: (tmp_path / "inst-limited").read_text().split() == ["0", "1"],
               message="second instance")
    env.kill(w2)
    _track(env, tmp_path / "pid-limited")
    env.wait_task_state(limited, 0, "failed")
    err = _error(env, limited)
    assert "limit was reached" in err and "lost" in err, err  # F29
    assert job_row(env, limited)["State"] == "FAILED"
    assert job_row(env, never)["State"] == "FAILED"


@pytest.mark.timeout(60)
def test_tasks_of_a_killed_worker_die(hq_env, tmp_path):
    env = hq_env
    env.start_server()
    worker = env.start_worker()
    job = _pid_job(env, tmp_path, "t")
    env.wait_task_state(job, 0, "running")
    pid = int(read_file(tmp_path / "pid-t"))
    env.track_pid(pid)
    env.kill(worker)
    wait_until(lambda: not pid_alive(pid), 3, 0.05, "the task of the killed worker to end")


@pytest.mark.timeout(60)
def test_stopped_worker_is_not_a_crash(hq_env, tmp_path):
    env = hq_env
    env.start_server()
    w1 = env.start_worker(cpus=2)
    limited = _pid_job(env, tmp_path, "limited", "--crash-limit", "1")
    never = _pid_job(env, tmp_path, "never", "--crash-limit", "never-restart")
    for job in (limited, never):
        env.wait_task_state(job, 0, "running")
    read_file(tmp_path / "pid-limited")
    env.command(["worker", "stop", str(w1.worker_id)], allow_stderr=True)
    w1.wait(15)
    _track(env, tmp_path / "pid-limited")
    _track(env, tmp_path / "pid-never")
    # never-restart fails on any loss of its worker
    env.wait_task_state(never, 0, "failed")
    # a stop is not a crash: even with crash limit 1 the task runs again, as a new instance
    env.wait_task_state(limited, 0, "waiting")
    env.start_worker(cpus=2)
    env.wait_task_state(limited, 0, "running")
    wait_until(lambda: (tmp_path / "inst-limited").read_text().split() == ["0", "1"],
               message="second instance")
    _track(env, tmp_path / "pid-limited")
    env.command(["job", "cancel", str(limited)])
    assert job_row(env, limited)["State"] == "CANCELED"


@pytest.mark.timeout(60)
def test_time_request(hq_env, tmp_path):
    env = hq_env
    env.start_server()
    short = env.start_worker("--time-limit", "20s", cpus=1)
    long_job = env.submit(["--time-request", "1h", "--", "true"], cwd=tmp_path)
    fits = env.submit(["--time-request", "2s", "--", "true"], cwd=tmp_path)
    plain = env.submit(["--", "true"], cwd=tmp_path)
    env.wait_job(fits)
    env.wait_job(plain)
    # the worker had free capacity and ran later jobs, but not the 1h one
    assert env.tasks(long_job)[0]["state"] == "waiting"
    assert job_row(env, long_job)["State"] == "WAITING"
    assert env.tasks(fits)[0]["worker"] == short.worker_id

    unlimited = env.start_worker(cpus=1)
    env.wait_job(long_job)
    t = env.tasks(long_job)[0]
    assert t["state"] == "finished" and t["worker"] == unlimited.worker_id


# -- directives --------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_directives(env, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text('#!/bin/sh\n'
                      '# a comment before the directives\n'
                      '#HQ --name x --array 1-3\n'
                      '#HQ --env "GREETING=hello there"\n'
                      'echo "$GREETING $HQ_TASK_ID"\n'
                      '#HQ --name not-a-directive\n')
    script.chmod(0o755)
    job = env.submit(["job.sh"], cwd=tmp_path)
    env.wait_job(job)
    assert job_row(env, job)["Name"] == "x"
    assert [(t["id"], t["state"]) for t in env.tasks(job)] == [
        (1, "finished"), (2, "finished"), (3, "finished")]
    assert stdout_of(tmp_path, job, 2) == "hello there 2\n"

    # command-line flags override directives (repeatable ones are merged)
    job = env.submit(["--name", "y", "--array", "5", "--env", "OTHER=1", "job.sh"],
                     cwd=tmp_path)
    env.wait_job(job)
    assert job_row(env, job)["Name"] == "y"
    assert [t["id"] for t in env.tasks(job)] == [5]
    assert stdout_of(tmp_path, job, 5) == "hello there 5\n"
    env_rows = parse_vertical(env.command(["job", "info", str(job)]))["Environment"]
    assert sorted(env_rows.splitlines()) == ["GREETING=hello there", "OTHER=1"]

    # --directives off: a plain single-task job
    job = env.submit(["--directives", "off", "./job.sh"], cwd=tmp_path)
    env.wait_job(job)
    assert job_row(env, job)["Name"] == "job.sh"
    assert [(t["id"], t["state"]) for t in env.tasks(job)] == [(0, "finished")]
    assert stdout_of(tmp_path, job, 0) == " 0\n"


@pytest.mark.timeout(60)
def test_directives_file_and_stdin_modes(env, tmp_path):
    script = tmp_path / "run.py"
    script.write_text("#!/usr/bin/env python3\n#HQ --name pyjob --array 3\n"
                      "import os\nprint(os.environ['HQ_TASK_ID'])\n")
    script.chmod(0o755)
    auto = env.submit(["./run.py"], cwd=tmp_path)  # auto: only *.sh scripts are parsed
    forced = env.submit(["--directives", "file", "./run.py"], cwd=tmp_path)
    for job in (auto, forced):
        env.wait_job(job)
    assert (job_row(env, auto)["Name"], [t["id"] for t in env.tasks(auto)]) == ("run.py", [0])
    assert (job_row(env, forced)["Name"], [t["id"] for t in env.tasks(forced)]) == ("pyjob", [3])
    assert stdout_of(tmp_path, forced, 3) == "3\n"

    # --directives stdin: the directives come from the script given with --stdin
    res = subprocess.run(HQ + ["--server-dir", str(env.server_dir), "--output-mode", "quiet",
                               "submit", "--stdin", "--directives", "stdin", "--", "sh"],
                         input=b'#HQ --name from-stdin --array 1-2\necho "task $HQ_TASK_ID"\n',
                         capture_output=True, cwd=str(tmp_path), env=env.env, timeout=30)
    assert res.returncode == 0, res.stderr
    # after upstream's "Reading data from stdin..." line (F6)
    job = int(res.stdout.decode().strip().splitlines()[-1])
    env.wait_job(job)
    assert job_row(env, job)["Name"] == "from-stdin"
    assert env.command(["job", "cat", str(job), "stdout"]) == "task 1\ntask 2\n"
    res = env.run(["submit", "--directives", "stdin", "--", "sh"], cwd=tmp_path)
    assert res.returncode == 1 and "--stdin" in res.stderr


# -- job commands ------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_job_list_cancel_reason(env, tmp_path):
    job = env.submit(["--name", "to-cancel", "--", "sleep", "100"], cwd=tmp_path)
    env.wait_task_state(job, 0, "running")
    assert job_row(env, job, "--verbose")["Cancel Reason"] == ""
    rows = parse_horizontal(env.command(["job", "list", "--filter", "running"]))
    assert str(job) in [r["ID"] for r in rows]
    out = env.logged(["job", "cancel", str(job), "--reason", "superseded by a newer run"])
    assert len(out) == 1 and out[0].startswith(f"INFO Job {job} canceled")

    out = env.command(["job", "list", "--all", "--verbose"])
    rows = parse_horizontal(out)
    assert list(rows[0]) == ["ID", "Name", "State", "Tasks", "Cancel Reason"]
    row = next(r for r in rows if r["ID"] == str(job))
    assert row == {"ID": str(job), "Name": "to-cancel", "State": "CANCELED", "Tasks": "1",
                   "Cancel Reason": "superseded by a newer run"}
    assert list(parse_horizontal(env.command(["job", "list", "--all"]))[0]) == [
        "ID", "Name", "State", "Tasks"]
    rows = parse_horizontal(env.command(["job", "list", "--filter", "canceled", "--verbose"]))
    assert row in rows and all(r["State"] == "CANCELED" for r in rows)
    out = env.command(["job", "list"])
    assert str(job) not in [r["ID"] for r in parse_horizontal(out)]
    assert "jobs in total" in out or "job in total" in out
    assert env.job_info(job)["info"]["cancel_reason"] == "superseded by a newer run"
    assert parse_vertical(env.command(["job", "info", str(job)]))["Cancel Reason"] == \
        "superseded by a newer run"

    res = env.run(["job", "cancel", str(job), "--reason", "r" * 201])
    assert res.returncode != 0
    assert env.run(["job", "list", "--all", "--filter", "running"]).returncode != 0
    assert env.run(["job", "list", "--filter", "bogus"]).returncode != 0


@pytest.mark.timeout(60)
def test_task_and_job_states(env, tmp_path):
    gate = tmp_path / "gate"
    script = f'[ $HQ_TASK_ID = 1 ] && exit 1; [ $HQ_TASK_ID = 2 ] && exit 0; ' \
             f'while [ ! -f {gate} ]; do sleep 0.05; done'
    mixed = env.submit(["--array", "1-3", "--", "sh", "-c", script], cwd=tmp_path)
    blocked = env.submit(["--cpus", "3", "--", "true"], cwd=tmp_path)  # never fits
    env.wait_task_state(mixed, 3, "running")
    env.wait_task_state(mixed, 1, "failed")
    env.wait_task_state(mixed, 2, "finished")
    # RUNNING as long as anything runs, even with a failed task
    assert job_row(env, mixed)["State"] == "RUNNING"
    assert job_row(env, blocked)["State"] == "WAITING"
    assert env.tasks(blocked)[0]["state"] == "waiting"
    rows = {r["Task ID"]: r for r in parse_horizontal(env.command(["task", "list", str(mixed)]))}
    assert {k: r["State"] for k, r in rows.items()} == {
        "1": "FAILED", "2": "FINISHED", "3": "RUNNING"}
    assert rows["3"]["Worker"] != "" and rows["3"]["Makespan"] != ""
    gate.write_text("")
    env.wait_job(mixed)
    assert job_row(env, mixed)["State"] == "FAILED"  # failed wins over finished

    env.command(["job", "cancel", str(blocked)])
    assert job_row(env, blocked)["State"] == "CANCELED"
    assert env.tasks(blocked)[0]["state"] == "canceled"

    # finished + canceled -> CANCELED; failed + canceled -> FAILED
    part = env.submit(["--array", "1-2", "--", "sh", "-c",
                       f'[ $HQ_TASK_ID = 1 ] || exec sleep 100'], cwd=tmp_path)
    env.wait_task_state(part, 1, "finished")
    env.wait_task_state(part, 2, "running")
    env.command(["job", "cancel", str(part)])
    assert job_row(env, part)["State"] == "CANCELED"
    assert [t["state"] for t in env.tasks(part)] == ["finished", "canceled"]
    part = env.submit(["--array", "1-2", "--", "sh", "-c",
                       f'[ $HQ_TASK_ID = 1 ] && exit 2; exec sleep 100'], cwd=tmp_path)
    env.wait_task_state(part, 1, "failed")
    env.wait_task_state(part, 2, "running")
    env.command(["job", "cancel", str(part)])
    assert job_row(env, part)["State"] == "FAILED"
    tl = parse_horizontal(env.command(["task", "list", str(part), "-v"]))
    assert [(r["State"], r["Error"]) for r in tl] == [
        ("FAILED", "Program terminated with exit code 2."), ("CANCELED", "")]


@pytest.mark.timeout(60)
def test_progress(env, tmp_path):
    gate = tmp_path / "gate"
    job = env.submit(["--array", "1-4", "--", "sh", "-c",
                      f"while [ ! -f {gate} ]; do sleep 0.05; done"], cwd=tmp_path)
    out_path = tmp_path / "progress.out"
    with open(out_path, "wb") as out:  # a file, not a TTY
        proc = subprocess.Popen(HQ + ["--server-dir", str(env.server_dir), "job", "progress",
                                      str(job)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env.env, cwd=str(tmp_path))
    try:
        env.wait_task_state(job, 1, "running")
        time.sleep(0.5)
        assert proc.poll() is None, out_path.read_text()
        gate.write_text("")
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "4/4" in out_path.read_text()
    assert job_row(env, job)["State"] == "FINISHED"

    # progress of a completed job returns at once
    res = env.run(["job", "progress", str(job)], timeout=10)
    assert res.returncode == 0

    res = env.run(["submit", "--progress", "--array", "1-3", "--", "sleep", "0.2"],
                  cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("Job submitted successfully, job ID: ")
    assert "3/3" in res.stdout + res.stderr
    job = int(res.stdout.splitlines()[0].rsplit(" ", 1)[1])
    assert env.job_state(job)["finished"] == 3
    assert env.run(["submit", "--progress", "--wait", "--", "true"]).returncode != 0


@pytest.mark.timeout(60)
def test_job_cat_filters(env, tmp_path):
    job = env.submit(["--array", "1-6", "--", "sh", "-c",
                      'echo "out $HQ_TASK_ID"; echo "err $HQ_TASK_ID" >&2; '
                      '[ $((HQ_TASK_ID % 3)) != 0 ]'], cwd=tmp_path)
    env.wait_job(job)
    assert env.command(["job", "cat", str(job), "stdout"]) == \
        "".join(f"out {i}\n" for i in range(1, 7))
    assert env.command(["job", "cat", str(job), "stderr", "--task-status", "failed"]) == \
        "err 3\nerr 6\n"
    out = env.command(["job", "cat", str(job), "stdout", "--tasks", "2-4",
                       "--task-status", "finished", "--print-task-header"])
    assert out.splitlines() == [f"# Job {job}, task 2", "out 2", f"# Job {job}, task 4",
                                "out 4"]
    assert env.logged(["job", "cat", str(job), "stdout", "--tasks", "100"]) == [
        f"WARN Task 100 of job {job} not found",
        f"WARN No tasks were selected for job {job}, there is nothing to print"]  # F35
    res = env.run(["job", "cat", str(job), "stdout"], mode="json")
    assert res.returncode == 1 and "error" in json.loads(res.stdout)


@pytest.mark.timeout(60)
def test_task_ids_resubmit_failed(env, tmp_path):
    (tmp_path / "inputs.txt").write_text("".join(f"in{i}\n" for i in range(8)))
    script = '[ -f "done-$HQ_ENTRY" ] || { touch "done-$HQ_ENTRY"; [ $((HQ_TASK_ID % 3)) != 1 ]; }'
    job = env.submit(["--each-line", "inputs.txt", "--", "sh", "-c", script], cwd=tmp_path,
                     allow_stderr=True)
    env.wait_job(job)
    assert env.command(["job", "task-ids", str(job), "--filter", "failed"]).strip() == "1,4,7"
    assert env.command(["job", "task-ids", str(job), "--filter", "finished"]).strip() == \
        "0,2-3,5-6"
    assert env.command(["job", "task-ids", str(job)]).strip() == "0-7"
    assert env.command(["job", "task-ids", str(job), "--filter", "failed"], as_json=True) == {
        str(job): [1, 4, 7]}

    res = hq_shell(env, f'hq --output-mode quiet submit --array '
                        f'$(hq job task-ids {job} --filter failed) '
                        f'--each-line inputs.txt -- sh -c \'echo "$HQ_ENTRY"\'', tmp_path)
    assert res.returncode == 0, res.stderr
    again = int(res.stdout.strip())
    env.wait_job(again)
    assert [(t["id"], t["state"]) for t in env.tasks(again)] == [
        (1, "finished"), (4, "finished"), (7, "finished")]
    assert env.command(["job", "cat", str(again), "stdout"]) == "in1\nin4\nin7\n"
    out = env.command(["job", "task-ids", f"{job},{again}", "--filter", "failed"])
    assert out.splitlines() == [f"{job}: 1,4,7", f"{again}: "] or \
        [line.rstrip() for line in out.splitlines()] == [f"{job}: 1,4,7", f"{again}:"]


@pytest.mark.timeout(60)
def test_forget(env, tmp_path):
    ok = env.submit(["--", "true"], cwd=tmp_path)
    bad = env.submit(["--", "false"], cwd=tmp_path)
    ok2 = env.submit(["--", "true"], cwd=tmp_path)
    running = env.submit(["--", "sleep", "100"], cwd=tmp_path)
    for j in (ok, bad, ok2):
        env.wait_job(j)
    env.wait_task_state(running, 0, "running")

    out = env.logged(["job", "forget", f"{ok},{bad}", "--filter", "failed"])
    assert out == ["INFO 1 job were forgotten, 1 were ignored due to wrong state or invalid ID"]
    assert bad not in job_ids(env) and ok in job_ids(env)
    out = env.logged(["job", "forget", f"{ok},{ok2},{running}"])
    assert out == ["INFO 2 jobs were forgotten, 1 were ignored due to wrong state or invalid ID"]
    ids = job_ids(env)
    assert ok not in ids and ok2 not in ids and running in ids
    assert env.run(["job", "info", str(ok)]).returncode == 0
    assert env.command(["job", "info", str(ok)], as_json=True, allow_stderr=True) == []
    env.command(["job", "cancel", str(running)])
    out = env.logged(["job", "forget", str(running), "--filter", "finished,failed"])
    assert out[0].startswith("INFO 0 jobs were forgotten")
    out = env.logged(["job", "forget", str(running), "--filter", "canceled"])
    assert out == ["INFO 1 job were forgotten"]
    assert env.run(["job", "forget", str(running), "--filter", "running"]).returncode != 0


@pytest.mark.timeout(60)
def test_job_summary(env, tmp_path):
    job = env.submit(["--", "sleep", "100"], cwd=tmp_path)
    env.wait_task_state(job, 0, "running")
    quiet = env.command(["job", "list", "--all"], mode="quiet")
    counts: dict[str, int] = {}
    for line in quiet.splitlines():
        _, state = line.split()
        counts[state] = counts.get(state, 0) + 1
    order = ["RUNNING", "WAITING", "FINISHED", "FAILED", "ABORTED", "CANCELED"]
    rows = parse_horizontal(env.command(["job", "summary"]))
    assert [r["Status"] for r in rows] == order
    assert {r["Status"]: int(r["Count"]) for r in rows} == {s: counts.get(s, 0) for s in order}
    assert counts["RUNNING"] >= 1 and counts["FINISHED"] >= 1
    data = env.command(["job", "summary"], as_json=True)
    assert data == {s.capitalize(): counts.get(s, 0) for s in order}
    assert set(data) == {"Aborted", "Canceled", "Failed", "Finished", "Running", "Waiting"}
    env.command(["job", "cancel", str(job)])
    after = env.command(["job", "summary"], as_json=True)
    assert after["Running"] == data["Running"] - 1
    assert after["Canceled"] == data["Canceled"] + 1


# -- open jobs ---------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_open_job_lifecycle(env, tmp_path):
    out = env.command(["job", "open", "--name", "stream-of-work"], cwd=tmp_path)
    assert out.startswith("Job ") and out.strip().endswith(" is open.")
    job = int(out.split()[1])
    assert out == f"Job {job} is open.\n"
    rows = parse_horizontal(env.command(["job", "list"]))
    row = next(r for r in rows if r["ID"] == f"*{job}")
    assert row["State"] == "OPENED" and row["Tasks"] == "0" and row["Name"] == "stream-of-work"
    assert "* = Open jobs" in env.command(["job", "list"])

    out = env.command(["submit", "--job", str(job), "--", "sh", "-c", "echo $HQ_TASK_ID"],
                      cwd=tmp_path)
    assert out.strip() == f"Job submitted successfully, job ID: {job}"
    env.submit(["--job", str(job), "--", "sh", "-c", "echo $HQ_TASK_ID"], cwd=tmp_path)
    env.command(["job", "wait", str(job), "--without-close"])
    assert [(t["id"], t["state"]) for t in env.tasks(job)] == [(0, "finished"), (1, "finished")]
    assert stdout_of(tmp_path, job, 1) == "1\n"
    # other array sources continue the ids too
    (tmp_path / "more.txt").write_text("x\ny\n")
    env.submit(["--job", str(job), "--each-line", "more.txt", "--", "sh", "-c",
                'echo "$HQ_ENTRY"'], cwd=tmp_path, allow_stderr=True)
    env.command(["job", "wait", str(job), "--without-close"])
    assert env.command(["job", "task-ids", str(job)]).strip() == "0-3"
    assert env.command(["job", "cat", str(job), "stdout", "--tasks", "2-3"]) == "x\ny\n"
    # all tasks finished but still open
    row = job_row(env, job)
    assert row["ID"] == f"*{job}" and row["State"] == "OPENED" and row["Tasks"] == "4"
    assert f"*{job}" in [r["ID"] for r in parse_horizontal(
        env.command(["job", "list", "--filter", "opened"]))]
    info = parse_vertical(env.command(["job", "info", str(job)]))
    assert info["Session"] == "open"
    assert env.job_info(job)["info"]["is_open"] is True
    res = env.run(["submit", "--job", str(job), "--name", "n", "--", "true"])
    assert res.returncode != 0
    res = env.run(["submit", "--job", str(job), "--array", "1", "--", "true"])
    assert res.returncode == 1 and res.stderr.strip()  # id 1 is taken

    # an open job is not forgotten even when all its tasks are done
    assert env.logged(["job", "forget", str(job)])[0].startswith("INFO 0 jobs were forgotten, 1 ")

    # `job wait` without --without-close waits for the close
    with open(tmp_path / "wait.out", "wb") as out:
        waiter = subprocess.Popen(HQ + ["--server-dir", str(env.server_dir), "job", "wait",
                                        str(job)], stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env.env)
    try:
        time.sleep(1.0)
        assert waiter.poll() is None, (tmp_path / "wait.out").read_text()
        assert env.logged(["job", "close", str(job)]) == [f"INFO Job {job} closed"]
        assert waiter.wait(15) == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    row = job_row(env, job)
    assert row["ID"] == str(job) and row["State"] == "FINISHED"
    assert "already closed" in env.logged(["job", "close", str(job)])[0]
    res = env.run(["submit", "--job", str(job), "--", "true"])
    assert res.returncode == 1 and "open" in res.stderr


@pytest.mark.timeout(60)
def test_open_job_submits_use_their_own_submit_dir(env, tmp_path):
    job = int(env.command(["job", "open"], mode="quiet", cwd=tmp_path).strip())
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        env.submit(["--job", str(job), "--", "sh", "-c", 'echo "$HQ_SUBMIT_DIR"; pwd'],
                   cwd=tmp_path / sub)
    env.command(["job", "close", str(job)])
    env.wait_job(job)
    for tid, sub in ((0, "a"), (1, "b")):
        where = tmp_path / sub
        assert (where / f"job-{job}" / f"{tid}.stdout").read_text() == f"{where}\n{where}\n"
