"""`--stream DIR`: task output goes into one file per worker in DIR (real workers and tasks)."""

from __future__ import annotations

import glob

import pytest

from hqenv import parse_vertical, wait_until
from hyperqueue.streaming.format import decode


@pytest.fixture(scope="module")
def env(shared_env):
    shared_env.start_worker(cpus=2)
    shared_env.start_worker(cpus=1)
    return shared_env


def read_streams(directory) -> tuple[list[dict], dict]:
    """(headers, {(job, task, instance, channel): (bytes, closed)}) of every file in DIR."""
    headers, streams = [], {}
    for path in sorted(glob.glob(f"{directory}/*.hqs")):
        with open(path, "rb") as f:
            header, records = decode(f.read())
        headers.append(header)
        for _t, job, task, instance, channel, chunk in records:
            data, closed = streams.get((job, task, instance, channel), (b"", False))
            assert not closed, "data after the end of a channel"
            streams[(job, task, instance, channel)] = (data + chunk, not chunk)
    return headers, streams


@pytest.mark.timeout(60)
def test_array_output_goes_to_one_file_per_worker(env, tmp_path):
    job = env.submit(["--array", "1-20", "--stream", "logs", "--", "sh", "-c",
                      "echo out $HQ_TASK_ID; echo err $HQ_TASK_ID >&2; echo again $HQ_TASK_ID"],
                     cwd=tmp_path)
    env.wait_job(job)
    assert all(t["state"] == "finished" for t in env.tasks(job))
    headers, streams = read_streams(tmp_path / "logs")
    assert 1 <= len(headers) <= 2  # two workers, not twenty files
    uid = env.command(["server", "info"], as_json=True)["server_uid"]
    assert {h["server_uid"] for h in headers} == {uid}
    for t in range(1, 21):
        assert streams[(job, t, 0, 0)] == (f"out {t}\nagain {t}\n".encode(), True)
        assert streams[(job, t, 0, 1)] == (f"err {t}\n".encode(), True)
    # no per-task files were written
    assert not (tmp_path / f"job-{job}").exists()
    # and `hq output-log` reads it back
    out = env.command(["output-log", str(tmp_path / "logs"), "cat", str(job), "stdout"])
    assert out == "".join(f"out {t}\nagain {t}\n" for t in range(1, 21))
    summary = env.command(["output-log", str(tmp_path / "logs"), "summary"], as_json=True)
    assert summary["summary"]["n_tasks"] == 20 and summary["summary"]["n_opened"] == 0
    # upstream: a streamed task has no stdout file to print (F35), exit 0
    cat = env.logged(["job", "cat", str(job), "stdout", "--tasks", "1-2"])
    assert cat == [f"WARN Task {t} has no `stdout` stream associated with it" for t in (1, 2)]
    info = env.job_info(job)
    program = info["submits"][0]["array"]["program"]
    assert program["stdout"] == "<pipe>" and program["stderr"] == "<pipe>"  # F62
    out = env.command(["job", "info", str(job)])
    assert parse_vertical(out)["Stdout"] == "<Stream>"  # upstream-facts F22


@pytest.mark.timeout(60)
def test_explicit_channel_is_not_streamed_and_placeholders(env, tmp_path):
    job = env.submit(["--stream", "%{SUBMIT_DIR}/s-%{JOB_ID}", "--stderr", "err.txt", "--",
                      "sh", "-c", "echo to-stream; echo to-file >&2"], cwd=tmp_path)
    env.wait_job(job)
    _h, streams = read_streams(tmp_path / f"s-{job}")
    assert streams == {(job, 0, 0, 0): (b"to-stream\n", True)}
    assert (tmp_path / "err.txt").read_text() == "to-file\n"


@pytest.mark.timeout(60)
def test_large_output_and_failure(env, tmp_path):
    # 1 MiB through the pipe (many chunks), then a failure: everything is kept, in order
    job = env.submit(["--stream", "logs", "--", "sh", "-c",
                      "head -c 1048576 /dev/zero | tr '\\0' x; echo; echo bad >&2; exit 3"],
                     cwd=tmp_path)
    env.wait_job(job)
    (task,) = env.tasks(job)
    assert task["state"] == "failed"
    _h, streams = read_streams(tmp_path / "logs")
    data, closed = streams[(job, 0, 0, 0)]
    assert closed and data == b"x" * 1048576 + b"\n"
    assert streams[(job, 0, 0, 1)] == (b"bad\n", True)


@pytest.mark.timeout(60)
def test_time_limit_and_stream_errors(env, tmp_path):
    job = env.submit(["--stream", "logs", "--time-limit", "1s", "--", "sh", "-c",
                      "echo started; sleep 30"], cwd=tmp_path)
    env.wait_job(job)
    (task,) = env.command(["task", "info", str(job), "0"], as_json=True)
    assert task["state"] == "failed" and task["error"] == "Time limit reached"
    _h, streams = read_streams(tmp_path / "logs")
    assert streams[(job, 0, 0, 0)][0] == b"started\n"

    (tmp_path / "blocker").write_text("a file where the stream directory should be")
    job = env.submit(["--stream", "blocker/sub", "--", "echo", "x"], cwd=tmp_path)
    env.wait_job(job)
    (task,) = env.command(["task", "info", str(job), "0"], as_json=True)
    assert task["state"] == "failed", task  # upstream's text (F27)
    assert task["error"] == "Creating stream file failed: Not a directory (os error 20)", task

    # upstream-facts F15: --stream takes any placeholder text (unknown ones are only warned
    # about; a known one that a stream cannot fill stays verbatim)
    odd = env.run(["submit", "--stream", "logs-%{TASK_ID}", "--", "true"], cwd=tmp_path)
    assert odd.returncode == 0 and odd.stderr == "", odd


@pytest.mark.timeout(60)
def test_job_file_stream(env, tmp_path):
    (tmp_path / "job.toml").write_text(
        'stream = "flog"\n'
        '[[task]]\nid = 1\ncommand = ["sh", "-c", "echo one"]\n'
        '[[task]]\nid = 2\ncommand = ["sh", "-c", "echo two"]\nstdout = "two.txt"\n')
    out = env.command(["job", "submit-file", "job.toml"], cwd=tmp_path)
    job = int(out.strip().rsplit(" ", 1)[1])
    env.wait_job(job)
    _h, streams = read_streams(tmp_path / "flog")
    assert streams[(job, 1, 0, 0)] == (b"one\n", True)
    assert (job, 2, 0, 0) not in streams
    assert (tmp_path / "two.txt").read_text() == "two\n"


@pytest.mark.timeout(60)
def test_output_of_a_running_task_becomes_readable(env, tmp_path):
    job = env.submit(["--stream", "live", "--", "sh", "-c",
                      "echo first; sleep 1.2; echo second; sleep 60"], cwd=tmp_path)
    show = ["output-log", str(tmp_path / "live"), "show"]
    wait_until(lambda: "second" in env.run(show).stdout, 20, 0.2, "streamed output")
    assert env.tasks(job)[0]["state"] == "running"
    assert env.run(show).stdout.splitlines() == [f"{job}.0:0> first", f"{job}.0:0> second"]
    env.command(["job", "cancel", str(job)])
    env.wait_job(job)
