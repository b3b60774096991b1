"""Upstream's texts in the client and on task errors (upstream-facts.md): the server's answers to
a submit and their order (F7), bare command errors (F2), serde_json's wording of JSON input
errors (F11), task-start and lost-worker errors (F27, F29), empty stdin (F30) and OpenMP pinning
(F31), checked against real `hq` processes."""

from __future__ import annotations

import json
import re
import signal

import pytest

from hqenv import log_records

LOG = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (ERROR|WARN|INFO|DEBUG|TRACE) (.*)$")


@pytest.fixture(scope="module")
def env(shared_env):
    shared_env.start_worker(cpus=2)
    return shared_env


def job_ids(env) -> list[int]:
    return [j["id"] for j in env.command(["job", "list", "--all"], as_json=True)]


def fails_with(env, args, text: str, **kw) -> None:
    """`hq args` exits 1, prints exactly `text` (bare) on stderr and nothing on stdout, and
    in json mode prints `{"error": text}`."""
    res = env.run(args, **kw)
    assert (res.returncode, res.stdout, res.stderr) == (1, "", text + "\n"), res
    res = env.run(args, mode="json", **kw)
    assert res.returncode == 1 and json.loads(res.stdout) == {"error": text}, res


# -- F7: the server's answers to a submit --------------------------------------------------------

@pytest.mark.timeout(60)
def test_submit_answers_texts_and_order(env, tmp_path):
    job = int(env.command(["job", "open"], mode="quiet").strip())
    env.submit(["--job", str(job), "--array", "1-3", "--", "true"], cwd=tmp_path)
    # the first colliding id in the order given
    fails_with(env, ["submit", "--job", str(job), "--array", "9,5,3,2", "--", "true"],
               f"Task 3 already exists in job {job}.", cwd=tmp_path)
    fails_with(env, ["submit", "--job", "987654", "--", "true"], "Job 987654 not found.",
               cwd=tmp_path)
    env.command(["job", "close", str(job)], allow_stderr=True)
    # a collision is reported before the closed state ...
    fails_with(env, ["submit", "--job", str(job), "--array", "2", "--", "true"],
               f"Task 2 already exists in job {job}.", cwd=tmp_path)
    # ... which is reported for new ids
    fails_with(env, ["submit", "--job", str(job), "--array", "10", "--", "true"],
               f"Job {job} is not opened.", cwd=tmp_path)
    fails_with(env, ["submit", "--job", str(job), "--", "true"], f"Job {job} is not opened.",
               cwd=tmp_path)
    # job files into an open job: the same answers
    job2 = int(env.command(["job", "open"], mode="quiet").strip())
    f = tmp_path / "graph.toml"
    f.write_text('[[task]]\nid = 4\ncommand = ["true"]\n')
    assert env.command(["job", "submit-file", "--job", str(job2), str(f)], mode="quiet",
                       cwd=tmp_path).strip() == str(job2)
    fails_with(env, ["job", "submit-file", "--job", str(job2), str(f)],
               f"Task 4 already exists in job {job2}.", cwd=tmp_path)
    fails_with(env, ["job", "submit-file", "--job", "987655", str(f)], "Job 987655 not found.",
               cwd=tmp_path)
    assert env.job_info(job)["info"]["task_count"] == 3
    assert env.job_info(job2)["info"]["task_count"] == 1


@pytest.mark.timeout(60)
def test_submit_answers_of_the_server_for_graphs(env, tmp_path):
    """Checks no client makes first (a raw request): duplicates and invalid dependencies come
    before the job's existence and state; the client library raises them as they are."""
    from hyperqueue.client import spec
    from hyperqueue.client.blocking import BlockingClient
    from hyperqueue.client.calls import send_submit
    from hyperqueue.core.ranges import IntRanges
    from hyperqueue.errors import CommandError

    def request(job_id, *tasks):
        return spec.JobSpec([spec.Batch(spec.TaskSpec(["true"]), IntRanges.parse(ids),
                                        None, deps) for ids, deps in tasks],
                            submit_dir=str(tmp_path), job_id=job_id).request()

    def answer(req) -> str:
        with BlockingClient(str(env.server_dir)) as client:
            with pytest.raises(CommandError) as e:
                send_submit(client, req)
        return e.value.message

    open_job = int(env.command(["job", "open"], mode="quiet").strip())
    env.submit(["--job", str(open_job), "--array", "0-1", "--", "true"], cwd=tmp_path)
    assert answer(request(None, ("1", []), ("2", []), ("5-7", []), ("6", []))) == \
        "Task 6 is defined more than once."
    assert answer(request(None, ("1", [1]))) == "Invalid dependency on 1"
    assert answer(request(None, ("1", []), ("2", [1, 8]))) == "Invalid dependency on 8"
    # before "not found"
    assert answer(request(987656, ("1", [3]))) == "Invalid dependency on 3"
    assert answer(request(987656, ("1", []))) == "Job 987656 not found."
    # collision first, then duplicates; a dependency on an existing task is valid
    assert answer(request(open_job, ("3", []), ("3", []), ("1", []))) == \
        f"Task 1 already exists in job {open_job}."
    assert answer(request(open_job, ("3", []), ("3", [0]))) == \
        "Task 3 is defined more than once."
    with BlockingClient(str(env.server_dir)) as client:
        assert send_submit(client, request(open_job, ("3", [0]))) == open_job
    assert env.job_info(open_job)["info"]["task_count"] == 3


# -- F2: errors of client commands are bare ------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, text", [
    (["--cpus", "2", "--resource", "cpus=[0,1]"],
     "Parameters --cpus and --resource cpus=... cannot be combined"),
    (["--detect-resources", "none"],
     "You have to specify --cpus explicitly when opting out of CPU automatic detection"),
    (["--cpus", "2", "--manager", "pbs"],
     "PBS_ENVIRONMENT not found. The process is not running under PBS"),
    (["--cpus", "2", "--resource", "a=[1]", "--resource", "a=[2]"], "Resource a defined twice"),
])
def test_worker_start_checks_print_the_bare_message(hq_env, args, text):
    res = hq_env.run(["worker", "start", *args], timeout=20)
    assert (res.returncode, res.stderr) == (1, text + "\n"), res


@pytest.mark.timeout(60)
def test_worker_address_of_a_missing_worker(env):
    fails_with(env, ["worker", "address", "4242"], "Worker 4242 not found")


# -- F11: JSON input errors worded as serde_json -------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("content, text", [
    (b"", "EOF while parsing a value at line 1 column 0"),
    (b"\n", "EOF while parsing a value at line 2 column 0"),
    (b"[1, 2,]", "trailing comma at line 1 column 7"),
    (b'[\n  "abc', "EOF while parsing a string at line 2 column 6"),
    (b"abc", "expected value at line 1 column 1"),
    (b"[1 2]", "expected `,` or `]` at line 1 column 4"),
    (b'{"a" 1}', "expected `:` at line 1 column 6"),
    (b"[1] x", "trailing characters at line 1 column 5"),
    (b"[NaN]", "expected value at line 1 column 2"),
    (b"[1e999]", "number out of range at line 1 column 7"),
    (b'{"a": [1]}', "{path}: The top element of the provided JSON file has to be an array"),
    (b"5", "{path}: The top element of the provided JSON file has to be an array"),
])
def test_from_json_syntax_errors_as_serde_json(env, tmp_path, content, text):
    (tmp_path / "in.json").write_bytes(content)
    before = job_ids(env)
    res = env.run(["submit", "--from-json", "in.json", "--", "true"], cwd=tmp_path)
    assert res.returncode == 1 and res.stdout == "", res
    lines = res.stderr.splitlines()
    assert LOG.match(lines[0]).groups() == ("INFO", "Reading json file: in.json")
    assert lines[1:] == [text.format(path="in.json")]
    assert job_ids(env) == before


@pytest.mark.timeout(60)
def test_entry_files_that_cannot_be_read(env, tmp_path):
    for opt, log in (("--from-json", "Reading json file"), ("--each-line", "Reading file")):
        res = env.run(["submit", opt, "missing.txt", "--", "true"], cwd=tmp_path)
        assert res.returncode == 1, res
        lines = res.stderr.splitlines()
        assert LOG.match(lines[0]).groups() == ("INFO", f"{log}: missing.txt")
        assert lines[1:] == ["No such file or directory (os error 2)"]
        res = env.run(["submit", opt, str(tmp_path), "--", "true"], cwd=tmp_path)
        assert res.returncode == 1 and res.stderr.splitlines()[1:] == [
            "Is a directory (os error 21)"], res
    # what serde_json reads, entries as compact JSON
    (tmp_path / "ok.json").write_text('[ {"a" : [1, 2.5, "\\u00e9"]}, null, '
                                      '[1E16, 1.5e-7, 0.00001, 100, 1e2] ]')
    job = env.submit(["--from-json", "ok.json", "--", "bash", "-c", 'echo "$HQ_ENTRY"'],
                     cwd=tmp_path, allow_stderr=True)
    env.wait_job(job)
    assert (tmp_path / f"job-{job}" / "0.stdout").read_text() == '{"a":[1,2.5,"é"]}\n'
    assert (tmp_path / f"job-{job}" / "1.stdout").read_text() == "null\n"
    # floats as ryu writes them
    assert (tmp_path / f"job-{job}" / "2.stdout").read_text() == \
        "[1e16,1.5e-7,0.00001,100,100.0]\n"


# -- F27, F30, F31: task start -------------------------------------------------------------------

def task_error(env, job: int, task: int = 0) -> str:
    env.wait_job(job)
    (info,) = env.command(["task", "info", str(job), str(task)], as_json=True)
    assert info["state"] == "failed", info
    return info["error"]


NOT_FOUND = 'Os { code: 2, kind: NotFound, message: "No such file or directory" }'


@pytest.mark.timeout(60)
def test_task_start_errors(env, tmp_path):
    job = env.submit(["--cwd", "/proc/no/such", "--", "true"], cwd=tmp_path)
    assert task_error(env, job) == f"Could not create working directory: {NOT_FOUND}"
    job = env.submit(["--stdout", "/proc/no/out.txt", "--", "true"], cwd=tmp_path)
    assert task_error(env, job) == ('Cannot create stdout directory at File { path: '
                                    f'"/proc/no/out.txt", on_close: Nothing }}: {NOT_FOUND}')
    # the stderr variant shows the stdout definition (upstream's quirk)
    job = env.submit(["--stdout", "o.txt:rm-if-finished", "--stderr", "/proc/no/err.txt", "--",
                      "true"], cwd=tmp_path)
    assert task_error(env, job) == (
        f'Cannot create stderr directory at File {{ path: "{tmp_path}/o.txt", '
        f'on_close: RmIfFinished }}: {NOT_FOUND}')
    # pinning a task without CPUs (a job file request without cpus)
    f = tmp_path / "pin.toml"
    f.write_text('[[task]]\nid = 0\ncommand = ["true"]\npin = "omp"\n'
                 '[[task.request]]\nresources = { "mem" = 1 }\n')
    env.start_worker("--resource", "mem=sum(10)", cpus="1")
    job = int(env.command(["job", "submit-file", str(f)], mode="quiet", cwd=tmp_path))
    assert task_error(env, job) == "Pinning failed, no CPU ids allocated for task"


@pytest.mark.timeout(60)
def test_openmp_pinning_and_empty_stdin(env, tmp_path):
    script = 'echo "$OMP_PLACES|$OMP_PROC_BIND|$HQ_PIN|$OMP_NUM_THREADS"; readlink /proc/self/fd/0'
    job = env.submit(["--pin", "omp", "--cpus", "2", "--", "bash", "-c", script], cwd=tmp_path)
    env.wait_job(job)
    places, fd0 = (tmp_path / f"job-{job}" / "0.stdout").read_text().splitlines()
    assert re.fullmatch(r"\{\d+,\d+\}\|close\|omp\|2", places), places
    assert fd0 == "/dev/null"
    # the user's values win
    job = env.submit(["--pin", "omp", "--env", "OMP_PLACES=cores", "--env", "OMP_PROC_BIND=spread",
                      "--", "bash", "-c", script], cwd=tmp_path)
    env.wait_job(job)
    assert (tmp_path / f"job-{job}" / "0.stdout").read_text().splitlines()[0] == \
        "cores|spread|omp|1"
    # --stdin with empty input: /dev/null; with data: a pipe that ends
    for data, expect in ((b"", "/dev/null"), (b"abc", "pipe:")):
        res = env.procs.run([*env.hq, "--server-dir", str(env.server_dir), "submit", "--stdin",
                             "--", "bash", "-c", "readlink /proc/self/fd/0; cat"],
                            cwd=tmp_path, env=env.env, input=data.decode())
        job = int(res.stdout.split()[-1])
        env.wait_job(job)
        out = (tmp_path / f"job-{job}" / "0.stdout").read_text()
        assert out.startswith(expect) and out.endswith("\n" + data.decode() if data else "\n")


# -- F29: a task on a lost worker ----------------------------------------------------------------

@pytest.mark.timeout(60)
def test_lost_worker_texts(hq_env, tmp_path):
    hq_env.start_server()
    for limit, text in (
            ("never-restart", "Task was running on a lost worker while never restart flag was "
                              "set."),
            ("1", "Task was running on a worker that was lost; the task has occurred 1 times "
                  "in this situation and limit was reached.")):
        w = hq_env.start_worker(cpus="1")
        job = hq_env.submit(["--crash-limit", limit, "--", "sleep", "100"], cwd=tmp_path)
        hq_env.wait_task_state(job, 0, "running")
        hq_env.kill(w, signal.SIGKILL)
        t = hq_env.wait_task_state(job, 0, "failed")
        assert t["error"] == text


# -- F1, F5, F50: ids not found are log records; JSON datetimes ----------------------------------

@pytest.mark.timeout(60)
def test_missing_ids_are_error_records(env):
    for args, text in ((["job", "info", "987001"], "ERROR Job 987001 not found"),
                       (["task", "list", "987001"], "ERROR Job 987001 not found"),
                       (["worker", "info", "987001"], "ERROR Worker 987001 not found")):
        for mode in ("cli", "json"):
            res = env.run(args, mode=mode)
            assert res.returncode == 0 and log_records(res.stderr) == [text], res
            assert "not found" not in res.stdout
    res = env.run(["worker", "info", "987001"], mode="json")
    assert json.loads(res.stdout) == {}  # upstream prints nothing (F5)
    res = env.run(["job", "info", "987001"], mode="json")
    assert json.loads(res.stdout) == []


@pytest.mark.timeout(60)
def test_server_info_json_start_date_is_utc_with_z(env):
    info = env.command(["server", "info"], as_json=True)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z",
                        info["start_date"]), info


# -- F3: clap's wording of value errors ----------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, head", [
    (["submit", "--pin", "xx", "--", "true"],
     "error: invalid value 'xx' for '--pin <PIN>'\n  [possible values: taskset, omp]"),
    (["worker", "list", "--filter", "x"],
     "error: invalid value 'x' for '--filter <FILTER>'\n  [possible values: running, offline]"),
    (["job", "cat", "1", "foo"],
     "error: invalid value 'foo' for '<STREAM>'\n  [possible values: stdout, stderr]"),
    (["submit", "--priority", "x", "--", "true"],
     "error: invalid value 'x' for '--priority <PRIORITY>': invalid digit found in string"),
    (["submit", "--priority", "3000000000", "--", "true"],
     "error: invalid value '3000000000' for '--priority <PRIORITY>': number too large to fit "
     "in target type"),
    (["submit", "--max-fails", "-1", "--", "true"],
     "error: invalid value '-1' for '--max-fails <MAX_FAILS>': invalid digit found in string"),
])
def test_value_errors_in_clap_words(env, args, head):
    res = env.run(args)
    assert (res.returncode, res.stdout) == (2, ""), res
    assert res.stderr == head + "\n\nFor more information, try '--help'.\n"


# -- F47: coupling errors are checks after parsing (exit 1) --------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("coupling, text", [
    ("cpus[0]gpus[0]", "Missing ':'"),
    ("cpus0]:gpus[0]", "Missing '['"),
    ("cpus[0:gpus[0]", "Missing ']'"),
    ("foo[0]:gpus[0]", "Resource not found: foo"),
    ("cpus[x]:gpus[0]", "Invalid group index: x"),
    ("cpus[0]:gpus[0]=abc", "Invalid weight: abc"),
    ("cpus[0]:mem[0]", "Resource 'mem' has only a single group"),
    ("cpus[5]:gpus[0]", "Invalid group id 5 for resource 'cpus'"),
    ("cpus[0]:gpus[1],gpus[1]:cpus[0]", "Repeated coupling definition"),
])
def test_coupling_errors(hq_env, coupling, text):
    res = hq_env.run(["worker", "start", "--cpus", "2x3", "--resource", "gpus=[[0,1],[2,3]]",
                      "--resource", "mem=sum(100)", "--coupling", coupling], timeout=20)
    assert (res.returncode, res.stdout, res.stderr) == (1, "", text + "\n"), res


# -- F42: job-file syntax errors and unknown keys ------------------------------------------------

@pytest.mark.timeout(60)
def test_job_file_syntax_error_and_unknown_field(env, tmp_path):
    (tmp_path / "bad.toml").write_text('[[task]]\ncommand = ["a"\nid = 1\n')
    res = env.run(["job", "submit-file", "bad.toml"], cwd=tmp_path)
    assert res.returncode == 1 and res.stdout == "", res
    lines = res.stderr.splitlines()
    assert lines[:4] == ["Deserialization error: TOML parse error at line 3, column 1", "  |",
                         "3 | id = 1", "  | ^"], res.stderr
    (tmp_path / "unknown.toml").write_text('[[task]]\ncommand = ["a"]\nfoo = 1\n')
    res = env.run(["job", "submit-file", "unknown.toml"], cwd=tmp_path)
    assert res.returncode == 1 and res.stderr.startswith("Deserialization error: "), res
    assert "unknown field `foo`, expected one of `command`, " in res.stderr
