"""Facts of upstream's interface for logging, errors, `hq submit`, placeholders and directives
(upstream-facts.md §0-§3), checked against real `hq` processes."""

from __future__ import annotations

import json
import re

import pytest

from hqenv import parse_vertical

LOG = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (ERROR|WARN|INFO|DEBUG|TRACE) (.*)$")


@pytest.fixture(scope="module")
def env(shared_env):
    shared_env.start_worker(cpus=2)
    return shared_env


def records(stderr: str) -> list[tuple[str, str]]:
    """The log records of a client's stderr (a record may continue on following lines)."""
    out: list[tuple[str, str]] = []
    for line in stderr.splitlines():
        m = LOG.match(line)
        if m:
            out.append((m.group(1), m.group(2)))
        else:
            assert out, f"not a log record: {line!r}"
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
    return out


def job_ids(env) -> list[int]:
    return [j["id"] for j in env.command(["job", "list", "--all"], as_json=True)]


# -- §0: log records, errors, exit codes -------------------------------------------------------

@pytest.mark.timeout(60)
def test_warnings_are_log_records_on_stderr_in_every_mode(env, tmp_path):
    for mode in ("cli", "json", "quiet"):
        res = env.run(["submit", "--stdout", "x-%{FOO}", "--", "true"], cwd=tmp_path, mode=mode)
        assert res.returncode == 0, res
        assert records(res.stderr) == [("WARN", "Found unknown placeholder `FOO` in stdout path")]
        if mode == "json":
            assert set(json.loads(res.stdout)) == {"id"}
    # --debug: env_logger's default form
    res = env.run(["--debug", "submit", "--stdout", "x-%{FOO}", "--", "true"], cwd=tmp_path)
    assert re.match(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN  \S+\] Found unknown "
                    r"placeholder `FOO` in stdout path$", res.stderr.strip()), res.stderr


@pytest.mark.timeout(60)
def test_error_prefix_only_for_server_errors(env, tmp_path):
    # a check of the command itself: the bare message, exit 1
    res = env.run(["submit", "--cwd", "a-%{CWD}", "--", "true"], cwd=tmp_path)
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == ("Working directory path cannot contain the working directory "
                          "placeholder `%{CWD}`.\n")
    res = env.run(["submit", "--cwd", "a-%{CWD}", "--", "true"], cwd=tmp_path, mode="json")
    assert json.loads(res.stdout) == {"error": "Working directory path cannot contain the "
                                               "working directory placeholder `%{CWD}`."}
    # an error the server returns: `Error: ` in front, also in JSON
    res = env.run(["task", "explain", "987654", "0"], cwd=tmp_path)
    assert (res.returncode, res.stderr) == (1, "Error: Job not found\n"), res
    res = env.run(["task", "explain", "987654", "0"], cwd=tmp_path, mode="json")
    assert res.returncode == 1 and json.loads(res.stdout) == {"error": "Error: Job not found"}
    # but a submit's answers are worded by upstream's client: bare (F7)
    res = env.run(["submit", "--job", "987654", "--", "true"], cwd=tmp_path)
    assert (res.returncode, res.stderr) == (1, "Job 987654 not found.\n"), res


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, code, text", [
    (["--cpus", "0"], 2, "Zero resources cannot be requested"),
    (["--resource", "gpus=0"], 2, "Zero resources cannot be requested"),
    (["--array", "3-x"], 2, "'--array <ARRAY>'"),
    (["--weight", "0"], 2, "Resource weight has to be positive number"),
    (["--weight", "abc"], 2, "Resource weight has to be positive number"),
    (["--crash-limit", "0"], 2,
     "Crash limit cannot be 0. Use `never-restart` or `unlimited` instead."),
    (["--crash-limit", "x"], 2, "Invalid crash limit: ParseIntError { kind: InvalidDigit }"),
    (["--crash-limit", "70000"], 2, "Invalid crash limit: ParseIntError { kind: PosOverflow }"),
    (["--name", "a\tb"], 2, "name cannot have a newline or a tab"),
    (["--env", ""], 2, "Environment variable cannot be empty"),
    (["--resource", "a=1", "--resource", "a=2"], 1, "Resource 'a' defined more than once"),
    (["--cpus", "1", "--resource", "cpus=2"], 1,
     "--cpus and --resource cpus=... cannot be combined"),
    (["--job", "1", "--name", "x"], 1,
     "Parameter --name is not allowed when submitting to an open job."),
    (["--job", "1", "--max-fails", "2"], 1,
     "Parameter --max-fails is not allowed when submitting to an open job."),
    (["--directives", "stdin"], 1,
     "You have to use `--stdin` when you specify `--directives=stdin`."),
])
def test_value_errors_exit_2_later_checks_exit_1(env, tmp_path, args, code, text):
    before = job_ids(env)
    res = env.run(["submit", *args, "--", "true"], cwd=tmp_path)
    assert res.returncode == code, res
    assert text in res.stderr and res.stdout == "", res
    if code == 2:  # clap's wording
        assert res.stderr.startswith("error: invalid value '"), res.stderr
        assert res.stderr.endswith("\n\nFor more information, try '--help'.\n"), res.stderr
    else:
        assert res.stderr == text + "\n"
    assert job_ids(env) == before


# -- §1: submit ----------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_array_warnings_and_file_count(env, tmp_path):
    res = env.run(["submit", "--array", "1-3", "--stdout", "out.txt", "--stderr", "none",
                   "--", "true"], cwd=tmp_path)
    assert res.returncode == 0
    assert records(res.stderr) == [("WARN", (
        "You have submitted an array job, but the `stdout` path does not contain the task ID "
        "placeholder.\nIndividual tasks might thus overwrite the file. Consider adding "
        "`%{TASK_ID}` to the `--stdout` value."))]
    # a relative path under a --cwd that has the task id passes; one task never warns
    for args in (["--array", "1-3", "--cwd", "d-%{TASK_ID}", "--stdout", "o"],
                 ["--array", "7", "--stdout", "o"]):
        res = env.run(["submit", *args, "--", "true"], cwd=tmp_path)
        assert res.returncode == 0 and res.stderr == "", res
    res = env.run(["submit", "--array", "1-500", "--stdout", "none", "--", "true"],
                  cwd=tmp_path)
    assert res.stderr == ""
    res = env.run(["submit", "--array", "1-500", "--", "true"], cwd=tmp_path)
    assert records(res.stderr) == [("WARN", (
        "The job will create 1000 files for stdout and stderr. Consider using the `--stream` "
        "option to stream all outputs into a single file"))]
    res = env.run(["submit", "--array", "1-1000", "--stream", "logs", "--", "true"],
                  cwd=tmp_path)
    assert res.returncode == 0 and res.stderr == "", res


@pytest.mark.timeout(60)
def test_unknown_placeholders_warn_in_order_and_stay(env, tmp_path):
    res = env.run(["submit", "--cwd", "w-%{QQ}", "--stream", "s-%{FOO}", "--stderr",
                   "%{BAR}-%{BAZ}", "--stdout", "o-%{FOO}", "--", "true"], cwd=tmp_path)
    assert res.returncode == 0, res
    assert records(res.stderr) == [
        ("WARN", "Found unknown placeholder `FOO` in stdout path"),
        ("WARN", "Found unknown placeholders `BAR, BAZ` in stderr path"),
        ("WARN", "Found unknown placeholder `FOO` in log path"),
        ("WARN", "Found unknown placeholder `QQ` in working directory path"),
    ]
    job = int(res.stdout.split()[-1])
    rows = parse_vertical(env.command(["job", "info", str(job)]))
    assert rows["Working directory"] == "w-%{QQ}"
    # the cwd check comes after the warnings
    res = env.run(["submit", "--stdout", "%{X}", "--cwd", "%{CWD}", "--", "true"], cwd=tmp_path)
    assert res.returncode == 1
    assert [r[0] for r in records(res.stderr.split("\n", 1)[0])] == ["WARN"]
    assert res.stderr.endswith("placeholder `%{CWD}`.\n")


@pytest.mark.timeout(60)
def test_entry_files_log_and_env_duplicates(env, tmp_path):
    (tmp_path / "lines.txt").write_text("a\nb\n")
    (tmp_path / "obj.json").write_text('{"a": 1}')
    res = env.run(["submit", "--each-line", "lines.txt", "--env", "A=1", "--env", "A=2",
                   "--env", "B", "--", "sh", "-c", "echo $A/$B/"], cwd=tmp_path)
    assert res.returncode == 0
    assert records(res.stderr) == [
        ("INFO", "Reading file: lines.txt"),
        ("WARN", "Some environment variables were ignored. Check if you haven't used "
                 "duplicate keys.")]
    job = int(res.stdout.split()[-1])
    env.wait_job(job)
    assert (tmp_path / f"job-{job}" / "1.stdout").read_text() == "2//\n"
    res = env.run(["submit", "--from-json", "obj.json", "--", "true"], cwd=tmp_path)
    assert res.returncode == 1
    assert records(res.stderr.splitlines()[0]) == [("INFO", "Reading json file: obj.json")]
    assert res.stderr.splitlines()[1:] == [
        "obj.json: The top element of the provided JSON file has to be an array"]


@pytest.mark.timeout(60)
def test_stdin_notice_on_stdout_and_zero_time_limit(env, tmp_path):
    res = env.procs.run([*env.hq, "--server-dir", str(env.server_dir), "--output-mode", "quiet",
                         "submit", "--stdin", "--", "cat"], cwd=tmp_path, env=env.env,
                        input="data\n", timeout=30)
    lines = res.stdout.splitlines()
    assert lines[0] == ("Reading data from stdin. In the interactive mode press Ctrl-D to "
                        "submit.")
    assert len(lines) == 2 and lines[1].isdigit()
    # a zero time limit is a valid duration (humantime), as upstream: accepted, the server
    # keeps the connection, and the task ends
    job = env.submit(["--time-limit", "0", "--", "sleep", "5"], cwd=tmp_path)
    env.wait_job(job, timeout=20)
    (task,) = env.tasks(job)
    assert task["state"] == "failed" and task["error"] == "Time limit reached"
    assert parse_vertical(env.command(["job", "info", str(job)]))["Task time limit"] == "0s"


@pytest.mark.timeout(60)
def test_job_name_from_the_program(env, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "run.sh").write_text("true\n")
    (tmp_path / "x" / "run.sh").chmod(0o755)
    job = env.submit(["--", "./x/run.sh"], cwd=tmp_path)
    assert env.command(["job", "list", "--all"], as_json=True)[-1]["name"] == "run.sh"
    assert job


# -- §2: placeholders ------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_submit_time_prefill_and_worker_resolution(env, tmp_path):
    job = env.submit(["--", "true"], cwd=tmp_path)
    rows = parse_vertical(env.command(["job", "info", str(job)]))
    assert rows["Stdout"] == f"{tmp_path}/job-{job}/%{{TASK_ID}}.stdout"
    assert rows["Working directory"] == str(tmp_path)
    job = env.submit(["--cwd", str(tmp_path / "c-%{TASK_ID}"), "--", "true"], cwd=tmp_path)
    rows = parse_vertical(env.command(["job", "info", str(job)]))
    assert rows["Stdout"] == f"{tmp_path}/c-%{{TASK_ID}}/job-{job}/%{{TASK_ID}}.stdout"
    res = env.run(["submit", "--stdout", "o-%{JOB_ID}-%{SERVER_UID}", "--", "true"],
                  cwd=tmp_path, mode="quiet")
    job = int(res.stdout)
    uid = env.command(["server", "info"], as_json=True)["server_uid"]
    rows = parse_vertical(env.command(["job", "info", str(job)]))
    assert rows["Stdout"] == f"{tmp_path}/o-{job}-{uid}"
    # the worker resolves the rest: cwd first (against the submit dir), then stdout in it
    job = env.submit(["--cwd", "%{INSTANCE_ID}-dir", "--stdout", "%{INSTANCE_ID}.out", "--",
                      "pwd"], cwd=tmp_path)
    env.wait_job(job)
    assert (tmp_path / "0-dir" / "0.out").read_text() == f"{tmp_path}/0-dir\n"
    rows = parse_vertical(env.command(["task", "info", str(job), "0"]))
    assert (rows["Workdir"], rows["Stdout"]) == (f"{tmp_path}/0-dir", f"{tmp_path}/0-dir/0.out")


@pytest.mark.timeout(60)
def test_paths_before_start_and_channel_kinds(env, tmp_path):
    # no worker has a resource `nope`: the task never starts
    job = env.submit(["--resource", "nope=1", "--", "true"], cwd=tmp_path)
    rows = parse_vertical(env.command(["task", "info", str(job), "0"]))
    assert (rows["Workdir"], rows["Stdout"], rows["Stderr"]) == ("", "", "")
    (task,) = env.command(["task", "info", str(job), "0"], as_json=True)
    assert not {"cwd", "stdout", "stderr"} & set(task)
    env.command(["job", "cancel", str(job)], allow_stderr=True)

    job = env.submit(["--stream", "logs", "--stdout", "none", "--", "true"], cwd=tmp_path)
    env.wait_job(job)
    rows = parse_vertical(env.command(["job", "info", str(job)]))
    assert (rows["Stdout"], rows["Stderr"]) == ("<None>", "<Stream>")
    rows = parse_vertical(env.command(["task", "info", str(job), "0"]))
    assert (rows["Stdout"], rows["Stderr"]) == ("<None>", "<Stream>")
    (task,) = env.command(["task", "info", str(job), "0"], as_json=True)
    assert (task["stdout"], task["stderr"]) == (None, "<pipe>")


# -- §3: directives ------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_directives_merge_rules(env, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\n\n# a comment\n  #HQ --name dname --array=1-10 --env A=dir\n"
                      "#HQ --priority 3 --weight 5 --cpus 2\n#HQx --name no\n"
                      'echo "$A/$B"\n#HQ --name late\n')
    script.chmod(0o755)
    (tmp_path / "in.txt").write_text("".join(f"{i}\n" for i in range(5)))
    job = env.submit(["--env", "B=cli", "--cpus", "1", "--each-line", "in.txt", "--",
                      "./job.sh"], cwd=tmp_path, allow_stderr=True)
    d = env.job_info(job)
    assert d["info"]["name"] == "dname"
    assert [t["id"] for t in env.tasks(job)] == [0, 1, 2, 3, 4]
    arr = d["submits"][0]["array"]
    assert arr["priority"] == 3
    assert list(arr["program"]["env"]) == ["B", "A"]  # command line first
    assert arr["program"]["args"] == ["/bin/sh", "./job.sh"]  # the shebang in front
    res = arr["resources"][0]
    assert res["weight"] in (1, 1.0, 10000)  # the directive weight is ignored
    assert [r["resource"] for r in res["resources"]] == ["cpus"]
    assert res["resources"][0]["request"] in ({"Compact": 10000}, {"Compact": 1})


@pytest.mark.timeout(60)
def test_invalid_directive_is_a_clap_error_exit_1(env, tmp_path):
    before = job_ids(env)
    for line, bad in (("#HQ --foo=bar", "--foo"), ("#HQ --job 1", "--job")):
        (tmp_path / "bad.sh").write_text(f"{line}\ntrue\n")
        res = env.run(["submit", "--", "bad.sh"], cwd=tmp_path)
        assert res.returncode == 1, res
        assert res.stderr.startswith(
            "Could not parse directives from bad.sh: You have used invalid parameter(s) after "
            "a #HQ directive.\n"), res.stderr
        assert f"error: unexpected argument '{bad}' found" in res.stderr
        assert "Usage: #HQ <hq submit parameters>" in res.stderr
    (tmp_path / "bad.sh").write_text("#HQ --cpus 0\ntrue\n")
    res = env.run(["submit", "--", "bad.sh"], cwd=tmp_path)
    assert res.returncode == 1 and "Zero resources cannot be requested" in res.stderr
    assert res.stderr.startswith("Could not parse directives from bad.sh: ")
    # off: not parsed at all
    res = env.run(["submit", "--directives", "off", "--", "sh", "bad.sh"], cwd=tmp_path)
    assert res.returncode == 0, res
    assert len(job_ids(env)) == len(before) + 1


@pytest.mark.timeout(60)
def test_json_datetimes_are_utc_with_z(env, tmp_path):
    job = env.submit(["--", "true"], cwd=tmp_path)
    env.wait_job(job)
    (task,) = env.tasks(job)
    for key in ("started_at", "finished_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z",
                            task[key]), task
