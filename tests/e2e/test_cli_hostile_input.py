"""Hostile values at the user-facing input surface (issue 10, items 2 and 3), against one live
server: every option of `hq submit`, `hq job submit-file`, `hq worker`, `hq alloc`, the job/task
selectors and the Python API gets malformed, huge, negative, NaN/inf, unicode-digit, NUL and
overlong values.

What a user must see: a clear error (clap's usage error, exit 2, or `Error: ...`/a message,
exit 1), never a Python traceback or an `Error: ValueError: ...` leak, never a hang, never a
request the server has to refuse as malformed, and no state change on the server (no job, no id
consumed: the next good submit gets the next id).

Most commands run in-process (`main(argv)` with stdout/stderr captured: ~1 ms each instead of
~100 ms for a process); a few run as real `hq` processes. The hypothesis test runs
`HQ_FUZZ_EXAMPLES` examples (default 300).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hqenv import HQ

from hyperqueue.cli.main import main

EXAMPLES = int(os.environ.get("HQ_FUZZ_EXAMPLES", "300"))

#: An exception that escaped a command: `_fail` prints `Error: <Type>: <message>`.
LEAK = re.compile(r"Traceback \(most recent call last\)|^Error: [A-Z]\w*(Error|Exception): ",
                  re.M)

BIG = str(2**64)


def run_inproc(env, argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    """`hq --server-dir SD argv` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old_pipe = signal.getsignal(signal.SIGPIPE)
    old_env = {k: os.environ.pop(k, None) for k in ("HQ_SERVER_DIR", "HQ_OUTPUT_MODE",
                                                    "HQ_DEBUG")}
    code = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(["--server-dir", str(env.server_dir), *argv])
            except SystemExit as e:
                code = e.code
    finally:
        signal.signal(signal.SIGPIPE, old_pipe)
        for k, v in old_env.items():
            if v is not None:
                os.environ[k] = v
    return (0 if code is None else code), out.getvalue(), err.getvalue()


def jobs(env) -> list:
    code, out, err = run_inproc(env, ["--output-mode", "json", "job", "list", "--all"])
    assert code == 0, err
    return json.loads(out)


def assert_refused(env, argv, code, out, err, codes=(1, 2)):
    text = out + err
    assert code in codes, f"hq {argv!r}: exit {code}\n{text}"
    assert not LEAK.search(text), f"hq {argv!r} leaked an exception:\n{text}"
    assert "malformed" not in text, f"hq {argv!r} sent a request the server refused:\n{text}"
    assert text.strip(), f"hq {argv!r} failed silently"
    first = text.strip().splitlines()[0]
    assert len(first) < 2000, first


def _shape(job_list: list) -> list:
    """What a submit changes (tasks may run meanwhile: their counts by state are left out)."""
    return [(j["id"], j["name"], j["task_count"], j["is_open"]) for j in job_list]


def check_unchanged(env, before: list) -> None:
    assert _shape(jobs(env)) == _shape(before)


def drop_queues(env) -> None:
    """Removes the allocation queues a valid generated `alloc add` created (this machine may
    have an `sbatch`/`qsub`: a queue would start workers)."""
    code, out, err = run_inproc(env, ["--output-mode", "json", "alloc", "list"])
    assert code == 0, err
    for q in json.loads(out):
        assert run_inproc(env, ["alloc", "remove", str(q["id"]), "--force"])[0] == 0


@pytest.fixture(scope="module")
def env(shared_env, tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    (d / "lines.txt").write_text("a\nb\n")
    (d / "bad.json").write_text("{")
    (d / "obj.json").write_text('{"a": 1}')
    shared_env.files = d
    cwd = os.getcwd()
    os.chdir(d)  # the submit directory of the in-process submits (task outputs go there)
    try:
        yield shared_env
    finally:
        os.chdir(cwd)


# -- hand-made cases, by class ----------------------------------------------------------------

T = ["--", "true"]
SUBMIT_CASES = {
    # durations: non-finite, negative, overlong, empty, unicode digits
    "time-limit inf": ["--time-limit", "inf"],
    "time-limit nan": ["--time-limit", "nan"],
    "time-limit -1": ["--time-limit", "-1"],
    "time-limit 1e400": ["--time-limit", "1e400"],
    "time-limit 2**64": ["--time-limit", BIG],
    "time-limit 11y": ["--time-limit", "11y"],
    "time-limit huge days": ["--time-limit", "9" * 40 + "d"],
    "time-limit empty": ["--time-limit", ""],
    "time-limit superscript": ["--time-limit", "²"],
    "time-request inf": ["--time-request", "inf"],
    "time-request 100y": ["--time-request", "100y"],
    # integers: out of u32/i32, negative, unicode digits, floats
    "priority 2**64": ["--priority", BIG],
    "priority 2**31": ["--priority", str(2**31)],
    "priority -2**31-1": ["--priority", str(-2**31 - 1)],
    "priority superscript": ["--priority", "²"],
    "priority float": ["--priority", "1.5"],
    "max-fails -1": ["--max-fails", "-1"],
    "max-fails 2**32": ["--max-fails", str(2**32)],
    "max-fails 2**64": ["--max-fails", BIG],
    "crash-limit -1": ["--crash-limit", "-1"],
    "crash-limit 0": ["--crash-limit", "0"],
    "crash-limit 2**64": ["--crash-limit", BIG],
    "crash-limit empty": ["--crash-limit", ""],
    "nodes 2**32": ["--nodes", str(2**32)],
    "nodes -1": ["--nodes", "-1"],
    "job 2**64": ["--job", BIG],
    "job -1": ["--job", "-1"],
    "job missing": ["--job", "99999"],
    # resource requests
    "cpus 2**64": ["--cpus", BIG],
    "cpus nan": ["--cpus", "nan"],
    "cpus inf": ["--cpus", "inf"],
    "cpus -1": ["--cpus", "-1"],
    "cpus 0": ["--cpus", "0"],
    "cpus empty": ["--cpus", ""],
    "cpus 5 decimals": ["--cpus", "0.00001"],
    "cpus bad policy": ["--cpus", "1 compact!x"],
    "resource 2**64": ["--resource", f"gpus={BIG}"],
    "resource nan": ["--resource", "gpus=nan"],
    "resource no value": ["--resource", "gpus"],
    "resource empty name": ["--resource", "=1"],
    "resource newline name": ["--resource", "g\nx=1"],
    "resource twice": ["--resource", "gpus=1", "--resource", "gpus=2"],
    "cpus and resource cpus": ["--cpus", "1", "--resource", "cpus=2"],
    "weight nan": ["--weight", "nan"],
    "weight -1": ["--weight", "-1"],
    "weight 1e300": ["--weight", "1e300"],
    # arrays and entries
    "array 2**64": ["--array", f"0-{BIG}"],
    "array reversed": ["--array", "5-3"],
    "array empty": ["--array", ""],
    "array step 0": ["--array", "0-10:0"],
    "array superscript": ["--array", "²"],
    "each-line missing": ["--each-line", "/nonexistent/x"],
    "each-line dir": ["--each-line", "/"],
    "each-line empty path": ["--each-line", ""],
    "from-json empty path": ["--from-json", ""],
    "each-line and from-json": ["--each-line", "{lines}", "--from-json", "{lines}"],
    "from-json syntax": ["--from-json", "{bad}"],
    "from-json object": ["--from-json", "{obj}"],
    "from-json empty file": ["--from-json", "/dev/null"],
    "each-line empty file": ["--each-line", "/dev/null"],
    # paths, names, env
    "pin bogus": ["--pin", "bogus"],
    "stream empty": ["--stream", ""],
    "cwd with CWD": ["--cwd", "%{CWD}"],
    "env empty": ["--env", ""],
    "name newline": ["--name", "a\nb"],
    "name tab": ["--name", "a\tb"],
    "nodes with cpus": ["--nodes", "2", "--cpus", "1"],
    "no command": ["--"],
}
# NUL cannot come from a real command line, but reaches the same validators from job files and
# the Python API; in-process it tests them through the CLI front end.
NUL_CASES = {
    "cwd NUL": ["--cwd", "a\0b"],
    "stdout NUL": ["--stdout", "a\0b"],
    "stderr NUL": ["--stderr", "a\0b"],
    "stream NUL": ["--stream", "a\0b"],
    "env key NUL": ["--env", "A\0=x"],
    "env value NUL": ["--env", "A=x\0y"],
    "name NUL": ["--name", "a\0b"],
    "argument NUL": ["--", "a\0b"],
}

OTHER_CASES = {
    "job info empty": ["job", "info", ""],
    "job info superscript": ["job", "info", "²"],
    "job info 2**64": ["job", "info", BIG],
    "job info -1": ["job", "info", "-1"],
    "job info open range": ["job", "info", "1-"],
    "job cancel 2**64": ["job", "cancel", f"0-{BIG}"],
    "job forget superscript": ["job", "forget", "²"],
    "job close 2**64": ["job", "close", BIG],
    "job open max-fails 2**32": ["job", "open", "--max-fails", str(2**32)],
    "job open max-fails -1": ["job", "open", "--max-fails", "-1"],
    "job cat tasks 2**64": ["job", "cat", "1", "stdout", "--tasks", f"0-{BIG}"],
    "job cat bad status": ["job", "cat", "1", "stdout", "--task-status", "bogus"],
    "job list bad filter": ["job", "list", "--filter", "bogus"],
    "task list tasks superscript": ["task", "list", "1", "--tasks", "²"],
    "task info 2**64": ["task", "info", "1", BIG],
    "task explain 2**64": ["task", "explain", "1", BIG],
    "task explain -1": ["task", "explain", "1", "-1"],
    "worker info 2**64": ["worker", "info", BIG],
    "worker stop empty": ["worker", "stop", ""],
    "worker wait 2**64": ["worker", "wait", BIG],
    "worker wait -1": ["worker", "wait", "-1"],
    "worker address 2**64": ["worker", "address", BIG],
    "alloc info 2**64": ["alloc", "info", BIG],
    "alloc remove 2**64": ["alloc", "remove", BIG],
    "alloc resume superscript": ["alloc", "resume", "²"],
    "alloc add time-limit inf": ["alloc", "add", "slurm", "--time-limit", "inf"],
    "alloc add time-limit 100y": ["alloc", "add", "slurm", "--time-limit", "100y"],
    "alloc add backlog 2**64": ["alloc", "add", "slurm", "--time-limit", "1h", "--backlog", BIG],
    "alloc add backlog 0": ["alloc", "add", "slurm", "--time-limit", "1h", "--backlog", "0"],
    "alloc add workers 0": ["alloc", "add", "slurm", "--time-limit", "1h",
                            "--workers-per-alloc", "0"],
    "alloc add idle inf": ["alloc", "add", "slurm", "--time-limit", "1h", "--idle-timeout",
                           "inf"],
    "alloc add worker-time-limit > time-limit": ["alloc", "add", "slurm", "--time-limit", "1h",
                                                 "--worker-time-limit", "2h"],
    "alloc add name newline": ["alloc", "add", "slurm", "--time-limit", "1h", "--name", "a\nb"],
    "alloc add cpus 2**64": ["alloc", "add", "slurm", "--time-limit", "1h", "--cpus", BIG],
    "alloc add resource range reversed": ["alloc", "add", "slurm", "--time-limit", "1h",
                                          "--resource", "gpus=range(5-1)"],
    "alloc add min-utilization nan": ["alloc", "add", "slurm", "--time-limit", "1h",
                                      "--min-utilization", "nan"],
    "server wait timeout inf": ["server", "wait", "--timeout", "inf"],
    "submit-file missing": ["job", "submit-file", "/nonexistent/x.toml"],
    "submit-file not toml": ["job", "submit-file", "{obj}"],
    "submit-file job 2**64": ["job", "submit-file", "{obj}", "--job", BIG],
}

JOB_FILES = {
    "time_limit inf": '[[task]]\ncommand = ["true"]\ntime_limit = inf\n',
    "time_limit nan": '[[task]]\ncommand = ["true"]\ntime_limit = nan\n',
    "time_limit -1": '[[task]]\ncommand = ["true"]\ntime_limit = -1\n',
    "time_limit 2**63": '[[task]]\ncommand = ["true"]\ntime_limit = 9223372036854775807\n',
    "time_limit 100y": '[[task]]\ncommand = ["true"]\ntime_limit = "100y"\n',
    "time_limit bool": '[[task]]\ncommand = ["true"]\ntime_limit = true\n',
    "priority 2**63": '[[task]]\ncommand = ["true"]\npriority = 9223372036854775807\n',
    "priority float": '[[task]]\ncommand = ["true"]\npriority = 1.5\n',
    "crash_limit -1": '[[task]]\ncommand = ["true"]\ncrash_limit = -1\n',
    "max_fails 2**63": 'max_fails = 9223372036854775807\n[[task]]\ncommand = ["true"]\n',
    "max_fails -1": 'max_fails = -1\n[[task]]\ncommand = ["true"]\n',
    "id 2**63": '[[task]]\nid = 9223372036854775807\ncommand = ["true"]\n',
    "id 2**32": '[[task]]\nid = 4294967296\ncommand = ["true"]\n',
    "implicit id past MAX_ID": ('[[task]]\nid = 4294967295\ncommand = ["true"]\n'
                                '[[task]]\ncommand = ["true"]\n'),
    "id -1": '[[task]]\nid = -1\ncommand = ["true"]\n',
    "unknown dep": '[[task]]\nid = 1\ncommand = ["true"]\ndeps = [2]\n',
    "huge dep": '[[task]]\nid = 1\ncommand = ["true"]\ndeps = [9223372036854775807]\n',
    "cycle": ('[[task]]\nid = 1\ncommand = ["true"]\ndeps = [2]\n'
              '[[task]]\nid = 2\ncommand = ["true"]\ndeps = [1]\n'),
    "name NUL": 'name = "a\\u0000b"\n[[task]]\ncommand = ["true"]\n',
    "name newline": 'name = "a\\nb"\n[[task]]\ncommand = ["true"]\n',
    "name 5000": f'name = "{"x" * 5000}"\n[[task]]\ncommand = ["true"]\n',
    "command NUL": '[[task]]\ncommand = ["a\\u0000b"]\n',
    "command empty": '[[task]]\ncommand = []\n',
    "command string": '[[task]]\ncommand = "true"\n',
    "cwd NUL": '[[task]]\ncommand = ["true"]\ncwd = "a\\u0000b"\n',
    "stdout NUL": '[[task]]\ncommand = ["true"]\nstdout = "a\\u0000b"\n',
    "env key NUL": '[[task]]\ncommand = ["true"]\nenv = {"A\\u0000" = "x"}\n',
    "env value NUL": '[[task]]\ncommand = ["true"]\nenv = {"A" = "x\\u0000"}\n',
    "env value not a string": '[[task]]\ncommand = ["true"]\nenv = {"A" = 5}\n',
    "stream NUL": 'stream = "a\\u0000b"\n[[task]]\ncommand = ["true"]\n',
    "cpus nan": '[[task]]\ncommand = ["true"]\n[[task.request]]\nresources = { "cpus" = "nan" }\n',
    "cpus 1e400": '[[task]]\ncommand = ["true"]\n[[task.request]]\nresources = { "cpus" = 1e400 }\n',
    "cpus 2**63": ('[[task]]\ncommand = ["true"]\n[[task.request]]\n'
                   'resources = { "cpus" = 9223372036854775807 }\n'),
    "cpus -1": '[[task]]\ncommand = ["true"]\n[[task.request]]\nresources = { "cpus" = -1 }\n',
    "n_nodes 2**63": ('[[task]]\ncommand = ["true"]\n[[task.request]]\n'
                      'n_nodes = 9223372036854775807\n'),
    "time_request inf": '[[task]]\ncommand = ["true"]\n[[task.request]]\ntime_request = inf\n',
    "weight nan": '[[task]]\ncommand = ["true"]\n[[task.request]]\nweight = nan\n',
    "weight 1e300": '[[task]]\ncommand = ["true"]\n[[task.request]]\nweight = 1e300\n',
    "pin bogus": '[[task]]\ncommand = ["true"]\npin = "bogus"\n',
    "array ids 2**64": f'[array]\nids = "0-{BIG}"\ncommand = ["true"]\n',
    "array ids/entries mismatch": '[array]\nids = "0-3"\nentries = ["a"]\ncommand = ["true"]\n',
    "array entries not strings": '[array]\nentries = [1, 2]\ncommand = ["true"]\n',
    "no tasks": "",
}


def _expand(env, argv):
    return [a.format(lines=env.files / "lines.txt", bad=env.files / "bad.json",
                     obj=env.files / "obj.json") if "{" in a and "}" in a and "%{" not in a
            else a for a in argv]


@pytest.mark.timeout(60)
def test_hostile_cli_values_are_refused_and_change_nothing(env):
    before = jobs(env)
    cases = [("submit " + k, ["submit", *v, *T] if "--" not in v else ["submit", *v])
             for k, v in {**SUBMIT_CASES, **NUL_CASES}.items()]
    cases += [(k, v) for k, v in OTHER_CASES.items()]
    for name, argv in cases:
        argv = _expand(env, argv)
        t0 = time.monotonic()
        code, out, err = run_inproc(env, argv)
        assert time.monotonic() - t0 < 10, f"{name}: took too long"
        assert_refused(env, argv, code, out, err)
    check_unchanged(env, before)
    # no id was consumed by the refused submits
    last = max((j["id"] for j in before), default=0)
    code, out, _ = run_inproc(env, ["--output-mode", "quiet", "submit", "--", "true"])
    assert code == 0 and out.strip() == str(last + 1)


@pytest.mark.timeout(60)
def test_hostile_job_files_are_refused_and_change_nothing(env, tmp_path):
    before = jobs(env)
    for i, (name, text) in enumerate(JOB_FILES.items()):
        path = tmp_path / f"job{i}.toml"
        path.write_text(text)
        code, out, err = run_inproc(env, ["job", "submit-file", str(path)])
        assert_refused(env, ["job file: " + name], code, out, err, codes=(1,))
    check_unchanged(env, before)


def test_usage_errors_match_clap_for_u32_values(env):
    """Ids and counts are u32 upstream: out-of-range values are clap's value errors (exit 2)."""
    code, _, err = run_inproc(env, ["submit", "--max-fails", str(2**32), "--", "true"])
    assert code == 2 and err.startswith(
        f"error: invalid value '{2**32}' for '--max-fails <MAX_FAILS>': "
        "number too large to fit in target type\n")
    code, _, err = run_inproc(env, ["submit", "--job", "-1", "--", "true"])
    assert code == 2 and err.startswith(
        "error: invalid value '-1' for '--job <JOB>': invalid digit found in string\n")
    code, _, err = run_inproc(env, ["worker", "address", BIG])
    assert code == 2 and "is not in the range 0<=x<=4294967295" in err


def test_valid_values_still_work(env):
    """The limits are not stricter than upstream for ordinary values."""
    before = len(jobs(env))
    for argv in (["--time-limit", "10y"], ["--priority", str(-2**31)],
                 ["--max-fails", str(2**32 - 1)], ["--crash-limit", "unlimited"],
                 ["--cpus", "1.5"], ["--resource", "mem=0.0001"], ["--weight", "0.5"],
                 ["--array", "0-4294967295"], ["--name", "x" * 4096]):
        code, out, err = run_inproc(env, ["--output-mode", "quiet", "submit", *argv, *T])
        assert code == 0, (argv, out, err)
    assert len(jobs(env)) == before + 9


# -- generated cases --------------------------------------------------------------------------

HOSTILE_TEXT = st.one_of(
    st.sampled_from(["", " ", "-1", "0", "nan", "inf", "-inf", "1e400", "1e-400", BIG,
                     str(2**32), str(2**31), str(-2**63), "²", "١٢", "0x10", "1_0", "1.5",
                     "all", "10y", "11y", "1h 30m", "00:00:01", "99:99:99", "range(0-9)",
                     "[0,1]", "sum(1)", "%{TASK_ID}", "%{CWD}", "a-b", "5-3", "0-10:0",
                     "1,,2", "x" * 5000, "a\nb", "a\tb", "never-restart", "last"]),
    st.text(max_size=12),
    st.integers(min_value=-2**70, max_value=2**70).map(str),
    st.floats().map(repr),
).filter(lambda s: "\0" not in s)

SUBMIT_OPTIONS = ["--time-limit", "--time-request", "--priority", "--max-fails",
                  "--crash-limit", "--nodes", "--cpus", "--resource", "--weight", "--array",
                  "--pin", "--env", "--name", "--job", "--cwd", "--stdout", "--stderr",
                  "--stream"]
# (not `job wait`/`worker wait`: a valid id would wait for a job that never ends; their hostile
# values are hand-made cases above)
OTHER_COMMANDS = [["job", "info"], ["job", "cancel"], ["job", "forget"], ["job", "close"],
                  ["task", "list"], ["task", "info", "1"],
                  ["task", "explain", "1"], ["worker", "info"], ["worker", "stop"],
                  ["worker", "address"], ["alloc", "info"], ["alloc", "pause"],
                  ["job", "open", "--max-fails"], ["job", "open", "--name"],
                  ["alloc", "add", "slurm", "--time-limit"],
                  ["alloc", "add", "pbs", "--time-limit", "1h", "--backlog"],
                  ["alloc", "add", "pbs", "--time-limit", "1h", "--idle-timeout"],
                  ["alloc", "add", "pbs", "--time-limit", "1h", "--cpus"],
                  ["alloc", "add", "pbs", "--time-limit", "1h", "--resource"],
                  ["server", "wait", "--timeout"]]


@st.composite
def invocations(draw):
    if draw(st.booleans()):
        opts = draw(st.lists(st.sampled_from(SUBMIT_OPTIONS), min_size=1, max_size=3,
                             unique=True))
        argv = ["submit"]
        for o in opts:
            argv += [o, draw(HOSTILE_TEXT)]
        return argv + T
    return [*draw(st.sampled_from(OTHER_COMMANDS)), draw(HOSTILE_TEXT)]


@pytest.mark.timeout(max(60, EXAMPLES))
def test_generated_hostile_invocations(env):
    state = {"jobs": len(jobs(env))}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(invocations())
    def check(argv):
        is_submit = argv[0] == "submit" or argv[:2] == ["job", "open"]
        t0 = time.monotonic()
        code, out, err = run_inproc(env, argv)
        assert time.monotonic() - t0 < 10, f"hq {argv!r} took too long"
        text = out + err
        assert not LEAK.search(text), f"hq {argv!r} leaked an exception:\n{text}"
        assert "malformed" not in text, f"hq {argv!r}: request refused by the server:\n{text}"
        if code == 0 and argv[:2] == ["alloc", "add"]:
            drop_queues(env)
        n = len(jobs(env))
        if code == 0 and is_submit:
            state["jobs"] += 1
            # the new job got the next id: nothing refused before consumed one
            assert n == state["jobs"] and jobs(env)[-1]["id"] == n
        else:
            assert code in (0, 1, 2), f"hq {argv!r}: exit {code}\n{text}"
            if code != 0:
                assert text.strip(), f"hq {argv!r} failed silently"
            assert n == state["jobs"], f"hq {argv!r} changed the job list:\n{text}"

    check()


# -- real processes ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_real_processes_refuse_hostile_values_quickly(env):
    before = jobs(env)
    for argv, code in [
        (["worker", "wait", BIG], 2),  # waited forever for 2**64 workers
        (["submit", "--max-fails", str(2**32), "--", "true"], 2),
        (["submit", "--time-limit", "1e400", "--", "true"], 2),
        (["worker", "start", "--cpus", "range(0-4294967295)"], 2),  # held 4G indices
        (["worker", "start", "--resource", "gpus=100000"], 2),
        (["job", "info", f"0-{BIG}"], 2),
    ]:
        t0 = time.monotonic()
        res = env.run(argv, timeout=20)
        assert time.monotonic() - t0 < 15, argv
        assert res.returncode == code, (argv, res.stdout, res.stderr)
        assert res.stderr.startswith("error: invalid value"), (argv, res.stderr)
        assert not LEAK.search(res.stdout + res.stderr)
    check_unchanged(env, before)
    assert HQ  # (the subprocesses above ran this worktree's `hq`)


# -- the Python API ---------------------------------------------------------------------------


def _api_cases():
    import datetime

    from hyperqueue import Job
    from hyperqueue.ffi.protocol import ResourceRequest as R

    def program(job_kw=None, **kw):
        def build():
            job = Job(**(job_kw or {}))
            job.program(**({"args": ["true"]} | kw))
            return job
        return build

    def foreign_dep():
        other = Job()
        dep = other.program(["true"])
        job = Job()
        job.program(["true"], deps=[dep])
        return job

    def cycle():
        job = Job()
        a = job.program(["true"])
        b = job.program(["true"], deps=[a])
        a.dependencies.append(b)
        return job

    return {
        "priority 2**70": program(priority=2**70),
        "priority float": program(priority=1.5),
        "priority nan": program(priority=float("nan")),
        "cpus nan": program(resources=R(cpus=float("nan"))),
        "cpus inf": program(resources=R(cpus=float("inf"))),
        "cpus -1": program(resources=R(cpus=-1)),
        "cpus 2**70": program(resources=R(cpus=2**70)),
        "cpus empty": program(resources=R(cpus="")),
        "gpus 1e300": program(resources=R(resources={"gpus": 1e300})),
        "resource name NUL": program(resources=R(resources={"g\0": 1})),
        "n_nodes 2**70": program(resources=R(n_nodes=2**70)),
        "min_time max": program(resources=R(min_time=datetime.timedelta.max)),
        "min_time negative": program(resources=R(min_time=datetime.timedelta(seconds=-1))),
        "min_time nan": program(resources=R(min_time=float("nan"))),
        "variants with nodes": program(resources=[R(n_nodes=2), R(cpus=1)]),
        "cwd NUL": program(cwd="a\0b"),
        "stdout NUL": program(stdout="a\0b"),
        "env key NUL": program(env={"A\0": "x"}),
        "env value NUL": program(env={"A": "x\0"}),
        "env not strings": program(env={"A": 1}),
        "argument NUL": program(args=["a\0b"]),
        "no arguments": program(args=[]),
        "task name NUL": program(name="a\0b"),
        "task name newline": program(name="a\nb"),
        "job name 10**6": program({"name": "x" * 10**6}),
        "job name NUL": program({"name": "a\0b"}),
        "max_fails 2**70": program({"max_fails": 2**70}),
        "max_fails -1": program({"max_fails": -1}),
        "crash_limit 2**70": program(crash_limit=2**70),
        "crash_limit -1": program(crash_limit=-1),
        "foreign dependency": foreign_dep,
        "cycle": cycle,
        "empty job": lambda: Job(),
    }


@pytest.mark.timeout(60)
def test_python_api_refuses_hostile_arguments_at_submit(env, tmp_path, monkeypatch):
    from hyperqueue import Client, Job
    from hyperqueue.errors import HqError

    monkeypatch.chdir(tmp_path)
    before = jobs(env)
    client = Client(env.server_dir)
    try:
        for name, build in _api_cases().items():
            with pytest.raises((ValueError, TypeError, HqError)) as info:
                client.submit(build())
            # refused before sending: a server-side refusal would close this connection
            assert "malformed" not in str(info.value) and "Connection" not in str(info.value), \
                (name, info.value)
        check_unchanged(env, before)
        # the same connection still works, and the next id follows
        last = max((j["id"] for j in before), default=0)
        job = Job()
        job.program(["true"])
        assert client.submit(job).id == last + 1
    finally:
        client.connection.close()


# -- the shared validators ----------------------------------------------------------------------


def test_shared_validators_bound_amounts_and_refuse_nul():
    from hyperqueue.core.limits import check_text
    from hyperqueue.core.resources import MAX_AMOUNT, UNIT, parse_amount, parse_resource_def

    assert parse_amount(str(MAX_AMOUNT // UNIT)) == MAX_AMOUNT // UNIT * UNIT
    with pytest.raises(ValueError, match="too large"):
        parse_amount(str(MAX_AMOUNT // UNIT + 1))
    with pytest.raises(ValueError, match="too large"):
        parse_resource_def("mem", "sum(99999999999999999999999)")
    assert check_text("a b", "x") == "a b"
    with pytest.raises(ValueError, match="x must not contain a NUL character"):
        check_text("a\0b", "x")


@pytest.mark.timeout(30)
def test_server_start_refuses_an_empty_journal_path(tmp_path):
    """`--journal ""` was a server without a journal (the user believed it journaled)."""
    import subprocess

    from hqenv import clean_env

    r = subprocess.run([*HQ, "--server-dir", str(tmp_path / "sd"), "server", "start",
                        "--journal", ""], capture_output=True, text=True, timeout=20,
                       env=clean_env())
    assert r.returncode == 2
    assert "error: invalid value '' for '--journal <JOURNAL>': the path is empty" in r.stderr
    assert not (tmp_path / "sd").exists() or not any((tmp_path / "sd").iterdir())
