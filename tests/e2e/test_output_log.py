"""`hq output-log` on synthetic stream directories (no server needed)."""

from __future__ import annotations

import json
import subprocess

import pytest

from hqenv import HQ, parse_vertical

from hyperqueue.streaming.format import STDERR, STDOUT, encode_header, encode_record


def write(path, uid, worker, records, tail=b""):
    path.write_bytes(encode_header(uid, worker)
                     + b"".join(encode_record(*r) for r in records) + tail)


def close(t, job, task, inst, ch):
    return (t, job, task, inst, ch, b"")


@pytest.fixture
def streams(hq_env):
    d = hq_env.work_dir / "mylog"
    d.mkdir()
    write(d / "w1.hqs", "uid-a", 1, [
        (100, 1, 0, 0, STDOUT, b"Hello from 0\n"),
        (101, 1, 0, 0, STDERR, b"warning 0\n"),
        close(102, 1, 0, 0, STDOUT),
        close(102, 1, 0, 0, STDERR),
        (103, 1, 2, 0, STDOUT, b"first try\n"),  # superseded
    ])
    write(d / "w2.hqs", "uid-a", 2, [
        (99, 1, 1, 0, STDOUT, b"Hello from 1\nsecond line\n"),
        close(104, 1, 1, 0, STDOUT),
        (110, 1, 2, 1, STDOUT, b"Hello from 2\n"),
        close(111, 1, 2, 1, STDOUT),
        (112, 2, 3, 0, STDOUT, b"partial"),  # never closed
        (113, 2, 4, 0, STDOUT, b"done\n"),
        close(114, 2, 4, 0, STDOUT),
    ], tail=encode_record(120, 2, 3, 0, STDOUT, b"torn away")[:-4])
    return d


@pytest.mark.timeout(60)
def test_summary_cli(hq_env, streams):
    out = hq_env.command(["output-log", "mylog", "summary"])
    assert parse_vertical(out) == {
        "Path": "mylog",
        "Files": "2",
        "Jobs": "2",
        "Tasks": "5",
        "Opened streams": "1",
        "Stdout/stderr size": "{} B / {} B".format(
            len(b"Hello from 0\nHello from 1\nsecond line\nHello from 2\npartialdone\n"),
            len(b"warning 0\n")),
        "Superseded streams": "1",
        "Superseded stdout/stderr size": "{} B / 0 B".format(len(b"first try\n")),
    }


@pytest.mark.timeout(60)
def test_summary_json(hq_env, streams):
    out = hq_env.command(["output-log", str(streams), "summary"], as_json=True)
    assert out == {
        "filename": str(streams),
        "summary": {
            "n_files": 2,
            "n_jobs": 2,
            "n_tasks": 5,
            "n_streams": 6,
            "n_opened": 1,
            "stdout_size": 63,
            "stderr_size": 10,
            "n_superseded": 1,
            "superseded_stdout_size": 10,
            "superseded_stderr_size": 0,
        },
    }


@pytest.mark.timeout(60)
def test_jobs(hq_env, streams):
    assert hq_env.command(["output-log", "mylog", "jobs"]) == "1\n2\n"
    assert hq_env.command(["output-log", "mylog", "jobs"], as_json=True) == [1, 2]


@pytest.mark.timeout(60)
def test_show(hq_env, streams):
    out = hq_env.command(["output-log", "mylog", "show"])
    assert out.splitlines() == [
        "1.1:0> Hello from 1",
        "second line",
        "1.0:0> Hello from 0",
        "1.0:1> warning 0",
        "1.2:0> Hello from 2",
        "2.3:0> partial",
        "2.4:0> done",
    ]
    out = hq_env.command(["output-log", "mylog", "show", "--job", "1", "--channel", "stderr"])
    assert out == "1.0:1> warning 0\n"
    out = hq_env.command(["output-log", "mylog", "show", "--job", "2"])
    assert out == "2.3:0> partial\n2.4:0> done\n"


@pytest.mark.timeout(60)
def test_cat(hq_env, streams):
    out = hq_env.command(["output-log", "mylog", "cat", "1", "stdout"])
    assert out == "Hello from 0\nHello from 1\nsecond line\nHello from 2\n"
    out = hq_env.command(["output-log", "mylog", "cat", "1", "stdout", "--task", "0,2"])
    assert out == "Hello from 0\nHello from 2\n"
    assert hq_env.command(["output-log", "mylog", "cat", "1", "stderr"]) == "warning 0\n"


@pytest.mark.timeout(60)
def test_cat_unfinished(hq_env, streams):
    res = hq_env.run(["output-log", "mylog", "cat", "2", "stdout"])
    assert res.returncode == 1
    assert "Stream for task 3 is not finished" in res.stderr
    assert res.stdout == ""
    out = hq_env.command(["output-log", "mylog", "cat", "2", "stdout", "--allow-unfinished"])
    assert out == "partialdone\n"
    # the unfinished task is not selected
    assert hq_env.command(["output-log", "mylog", "cat", "2", "stdout", "--task", "4"]) == "done\n"


@pytest.mark.timeout(60)
def test_cat_binary(hq_env):
    d = hq_env.work_dir / "bin"
    d.mkdir()
    blob = bytes(range(256)) * 3
    write(d / "w.hqs", "u", 1, [(1, 1, 0, 0, STDOUT, blob[:300]), (2, 1, 0, 0, STDOUT, blob[300:]),
                                close(3, 1, 0, 0, STDOUT)])
    res = subprocess.run(HQ + ["output-log", str(d), "cat", "1", "stdout"], capture_output=True,
                         timeout=30, env=hq_env.env, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert res.stdout == blob


@pytest.mark.timeout(60)
def test_export(hq_env, streams):
    out = hq_env.command(["output-log", "mylog", "export", "2"])
    assert json.loads(out) == [
        {"id": 3, "finished": False, "stdout": "partial"},
        {"id": 4, "finished": True, "stdout": "done\n"},
    ]
    out = hq_env.command(["output-log", "mylog", "export", "1", "--task", "1-2"], as_json=True)
    assert out == [
        {"id": 1, "finished": True, "stdout": "Hello from 1\nsecond line\n"},
        {"id": 2, "finished": True, "stdout": "Hello from 2\n"},
    ]


@pytest.mark.timeout(60)
def test_errors(hq_env, streams):
    out = hq_env.command(["output-log", "mylog", "cat", "7", "stdout"], expect_fail=True)
    assert "Job 7 not found" in out
    (hq_env.work_dir / "empty").mkdir()
    out = hq_env.command(["output-log", "empty", "summary"], expect_fail=True)
    assert "No log files found" in out
    out = hq_env.command(["output-log", "missing", "jobs"], expect_fail=True)
    assert "No log files found" in out


@pytest.mark.timeout(60)
def test_server_uid(hq_env, streams):
    write(streams / "w3.hqs", "uid-b", 1, [(5, 9, 0, 0, STDOUT, b"other server\n"),
                                           close(6, 9, 0, 0, STDOUT)])
    out = hq_env.command(["output-log", "mylog", "jobs"], expect_fail=True)
    assert "uid-a" in out and "uid-b" in out and "--server-uid" in out
    assert hq_env.command(["output-log", "mylog", "--server-uid", "uid-b", "jobs"]) == "9\n"
    assert hq_env.command(["output-log", "mylog", "--server-uid=uid-a", "jobs"]) == "1\n2\n"
    out = hq_env.command(["output-log", "mylog", "--server-uid", "uid-b", "show"])
    assert out == "9.0:0> other server\n"
