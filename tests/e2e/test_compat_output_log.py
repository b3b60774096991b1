"""Facts F68-F71 (upstream-facts.md §13): `hq output-log` texts, padding, ordering, errors and
summary rows, on synthetic stream directories (no server needed)."""

from __future__ import annotations

import json

import pytest

from hqenv import parse_vertical

from hyperqueue.streaming.format import STDERR, STDOUT, encode_header, encode_record

pytestmark = pytest.mark.timeout(60)


def write(path, uid, worker, records):
    path.write_bytes(encode_header(uid, worker) + b"".join(encode_record(*r) for r in records))


def closed(t, job, task, ch=STDOUT):
    return (t, job, task, 0, ch, b"")


@pytest.fixture
def twenty(hq_env):
    """Job 1 with tasks 1..20, each printing `Hello from <id>`; task 7 also writes two lines
    in one chunk and task 20 writes a chunk without a trailing newline."""
    d = hq_env.work_dir / "twenty"
    d.mkdir()
    recs = []
    for t in range(1, 21):
        text = b"Hello from %d\n" % t
        if t == 7:
            text = b"line a\nline b\n"
        if t == 20:
            text = b"no newline"
        recs += [(1000 + t, 1, t, 0, STDOUT, text), closed(1000 + t, 1, t)]
    write(d / "w1.hqs", "srvA", 1, recs)
    return d


def test_show_pads_ids_to_the_largest_in_the_log_and_prints_one_header_per_chunk(hq_env, twenty):
    out = hq_env.command(["output-log", "twenty", "show"]).splitlines()
    assert out[0] == "1.01:0> Hello from 1"
    assert out[6:8] == ["1.07:0> line a", "line b"]  # one header per chunk
    assert out[-1] == "1.20:0> no newline"  # a newline appended
    assert "1.10:0> Hello from 10" in out


def test_show_orders_chunks_of_all_tasks_by_time(hq_env):
    d = hq_env.work_dir / "inter"
    d.mkdir()
    write(d / "a.hqs", "u", 1, [(10, 1, 1, 0, STDOUT, b"a1\n"), (30, 1, 1, 0, STDOUT, b"a2\n")])
    write(d / "b.hqs", "u", 2, [(20, 1, 2, 0, STDERR, b"b1\n"), (40, 1, 2, 0, STDOUT, b"b2\n")])
    assert hq_env.command(["output-log", "inter", "show"]).splitlines() == [
        "1.1:0> a1", "1.2:1> b1", "1.1:0> a2", "1.2:0> b2"]


def test_cat_follows_the_task_order_given_and_reports_missing_tasks(hq_env, twenty):
    out = hq_env.command(["output-log", "twenty", "cat", "1", "stdout", "--task", "3-4,2"])
    assert out == "Hello from 3\nHello from 4\nHello from 2\n"
    exp = json.loads(hq_env.command(["output-log", "twenty", "export", "1", "--task", "5,1"]))
    assert [e["id"] for e in exp] == [5, 1]
    res = hq_env.run(["output-log", "twenty", "cat", "1", "stdout", "--task", "2,99"])
    assert res.returncode == 1 and res.stderr.strip() == "Error: Task 99 not found"
    assert res.stdout == ""
    res = hq_env.run(["output-log", "twenty", "cat", "3", "stdout"])
    assert res.returncode == 1 and res.stderr.strip() == "Error: Job 3 not found"


def test_unfinished_stream_error_text(hq_env):
    d = hq_env.work_dir / "open"
    d.mkdir()
    write(d / "a.hqs", "u", 1, [(1, 4, 0, 0, STDOUT, b"partial")])
    res = hq_env.run(["output-log", "open", "cat", "4", "stdout"])
    assert res.returncode == 1
    assert res.stderr.strip() == "Error: Stream for task 0 is not finished"


def test_summary_rows_and_human_sizes(hq_env):
    d = hq_env.work_dir / "sizes"
    d.mkdir()
    write(d / "a.hqs", "u", 1, [(1, 1, 0, 0, STDOUT, b"x" * 3000), closed(2, 1, 0),
                                (3, 1, 1, 0, STDERR, b"y" * 271), closed(4, 1, 1, STDERR),
                                (5, 1, 2, 0, STDOUT, b"old\n"), closed(6, 1, 2),
                                (7, 1, 2, 1, STDOUT, b"new\n")])
    out = hq_env.command(["output-log", "sizes", "summary"])
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("|")]
    assert rows == ["Path", "Files", "Jobs", "Tasks", "Opened streams", "Stdout/stderr size",
                    "Superseded streams", "Superseded stdout/stderr size"]
    table = parse_vertical(out)
    assert table["Path"] == "sizes" and table["Files"] == "1" and table["Tasks"] == "3"
    assert table["Opened streams"] == "1"
    assert table["Stdout/stderr size"] == "2.93 KiB / 271 B"
    assert table["Superseded streams"] == "1"
    assert table["Superseded stdout/stderr size"] == "4 B / 0 B"


def test_open_errors(hq_env, twenty):
    (hq_env.work_dir / "empty").mkdir()
    (hq_env.work_dir / "empty" / "notes.txt").write_text("not a stream")
    for where in ("empty", "does-not-exist"):
        res = hq_env.run(["output-log", where, "summary"])
        assert res.returncode == 1 and res.stderr.strip() == "Error: No log files found"
    write(twenty / "w2.hqs", "srvB", 1, [(1, 2, 0, 0, STDOUT, b"x\n")])
    res = hq_env.run(["output-log", "twenty", "jobs"])
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "Error: Found streams from multiple server instances:", "srvA", "srvB",
        "Use --server-uid=... to specify server uid"]
    assert hq_env.command(["output-log", "twenty", "--server-uid", "srvB", "jobs"]) == "2\n"
