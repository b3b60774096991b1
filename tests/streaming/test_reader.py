"""The stream directory reader: merging worker files, instances, torn tails, server filter."""

import pytest

from hyperqueue.streaming.format import STDERR, STDOUT, encode_header, encode_record
from hyperqueue.streaming.reader import StreamReadError, load


def write(path, uid, worker, records, tail=b""):
    data = encode_header(uid, worker) + b"".join(encode_record(*r) for r in records) + tail
    path.write_bytes(data)


def close(t, job, task, inst, ch):
    return (t, job, task, inst, ch, b"")


@pytest.fixture
def two_workers(tmp_path):
    write(tmp_path / "w1.hqs", "uid-a", 1, [
        (100, 1, 0, 0, STDOUT, b"out0\n"),
        (101, 1, 0, 0, STDERR, b"err0\n"),
        (102, 1, 0, 0, STDOUT, b"more0\n"),
        close(103, 1, 0, 0, STDOUT),
        close(103, 1, 0, 0, STDERR),
        (104, 1, 2, 0, STDOUT, b"first try\n"),  # superseded by instance 1 on worker 2
    ])
    write(tmp_path / "w2.hqs", "uid-a", 2, [
        (99, 1, 1, 0, STDOUT, b"out1\n"),
        close(105, 1, 1, 0, STDOUT),
        (110, 1, 2, 1, STDOUT, b"second try\n"),
        close(111, 1, 2, 1, STDOUT),
        (112, 2, 5, 0, STDOUT, b"running"),  # never closed
    ])
    return tmp_path


@pytest.mark.timeout(10)
def test_summary_multiple_files_and_superseded(two_workers):
    log = load(str(two_workers))
    assert log.server_uid == "uid-a"
    assert log.summary() == {
        "n_files": 2,
        "n_jobs": 2,
        "n_tasks": 4,
        "n_streams": 5,  # 1.0 out+err, 1.1 out, 1.2#1 out, 2.5 out
        "n_opened": 1,
        "stdout_size": len(b"out0\nmore0\nout1\nsecond try\nrunning"),
        "stderr_size": len(b"err0\n"),
        "n_superseded": 1,
        "superseded_stdout_size": len(b"first try\n"),
        "superseded_stderr_size": 0,
    }
    assert log.job_ids() == [1, 2]
    assert log.task_ids(1) == [0, 1, 2]


@pytest.mark.timeout(10)
def test_chunks_sorted_by_time_current_only(two_workers):
    log = load(str(two_workers))
    chunks = log.chunks()
    assert [(c.time_ms, c.job, c.task, c.data) for c in chunks] == [
        (99, 1, 1, b"out1\n"),
        (100, 1, 0, b"out0\n"),
        (101, 1, 0, b"err0\n"),
        (102, 1, 0, b"more0\n"),
        (110, 1, 2, b"second try\n"),
        (112, 2, 5, b"running"),
    ]
    assert [c.data for c in log.chunks(job=1, channel=STDERR)] == [b"err0\n"]
    assert [c.data for c in log.chunks(job=2)] == [b"running"]
    assert log.chunks(job=3) == []


@pytest.mark.timeout(10)
def test_task_data_and_finished(two_workers):
    log = load(str(two_workers))
    assert log.task_data(1, STDOUT) == [
        (0, b"out0\nmore0\n", True), (1, b"out1\n", True), (2, b"second try\n", True)]
    # in the order given; a selected task without a stream is an error (upstream F70)
    assert log.task_data(1, STDOUT, tasks=[2, 0]) == [
        (2, b"second try\n", True), (0, b"out0\nmore0\n", True)]
    with pytest.raises(StreamReadError, match="^Task 7 not found$"):
        log.task_data(1, STDOUT, tasks=[0, 7])
    # task 1 never wrote to stderr but its instance ended: finished and empty
    assert log.task_data(1, STDERR) == [(0, b"err0\n", True), (1, b"", True), (2, b"", True)]
    assert log.task_data(2, STDOUT) == [(5, b"running", False)]
    assert log.is_finished(1, 0, STDOUT)
    assert not log.is_finished(2, 5, STDOUT)
    assert not log.is_finished(2, 5, STDERR)  # nothing closed yet
    assert not log.is_finished(9, 9, STDOUT)
    assert log.current(1, 2).instance == 1


@pytest.mark.timeout(10)
def test_older_instance_read_after_newer(tmp_path):
    # the newer instance's file sorts first; the old one must still be superseded
    write(tmp_path / "a.hqs", "u", 2, [(200, 1, 0, 3, STDOUT, b"new"), close(201, 1, 0, 3, STDOUT)])
    write(tmp_path / "b.hqs", "u", 1, [(100, 1, 0, 2, STDOUT, b"old"), (101, 1, 0, 2, STDERR, b"e")])
    log = load(str(tmp_path))
    assert log.task_data(1, STDOUT) == [(0, b"new", True)]
    s = log.summary()
    assert (s["n_streams"], s["n_opened"], s["n_superseded"]) == (1, 0, 2)
    assert (s["superseded_stdout_size"], s["superseded_stderr_size"]) == (3, 1)
    assert [c.data for c in log.chunks()] == [b"new"]


@pytest.mark.timeout(10)
def test_torn_tail_is_ignored(tmp_path):
    full = encode_record(5, 1, 0, 0, STDOUT, b"lost chunk")
    write(tmp_path / "w.hqs", "u", 1, [(1, 1, 0, 0, STDOUT, b"kept")], tail=full[:-3])
    log = load(str(tmp_path))
    assert log.task_data(1, STDOUT) == [(0, b"kept", False)]
    # a tail shorter than a record header, too
    write(tmp_path / "w.hqs", "u", 1, [(1, 1, 0, 0, STDOUT, b"kept")], tail=full[:7])
    assert load(str(tmp_path)).task_data(1, STDOUT) == [(0, b"kept", False)]


@pytest.mark.timeout(10)
def test_torn_header_file_is_skipped(tmp_path):
    write(tmp_path / "w1.hqs", "u", 1, [(1, 1, 0, 0, STDOUT, b"x")])
    header = encode_header("u", 2)
    (tmp_path / "w2.hqs").write_bytes(header[:-2])
    (tmp_path / "w3.hqs").write_bytes(b"")
    log = load(str(tmp_path))
    assert log.summary()["n_files"] == 1
    # only torn files: nothing to read
    (tmp_path / "w1.hqs").unlink()
    with pytest.raises(StreamReadError, match="No log files found"):
        load(str(tmp_path))


@pytest.mark.timeout(10)
def test_not_a_stream_file(tmp_path):
    (tmp_path / "bad.hqs").write_bytes(b"this is not a stream file at all")
    with pytest.raises(StreamReadError, match="bad.hqs"):
        load(str(tmp_path))


@pytest.mark.timeout(10)
def test_no_files(tmp_path):
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(StreamReadError, match="No log files found"):
        load(str(tmp_path))
    with pytest.raises(StreamReadError, match="No log files found"):
        load(str(tmp_path / "missing"))


@pytest.mark.timeout(10)
def test_several_server_uids(tmp_path):
    write(tmp_path / "a.hqs", "uid-1", 1, [(1, 1, 0, 0, STDOUT, b"one")])
    write(tmp_path / "b.hqs", "uid-2", 1, [(1, 7, 0, 0, STDOUT, b"two")])
    write(tmp_path / "c.hqs", "uid-2", 2, [(2, 7, 1, 0, STDOUT, b"three")])
    with pytest.raises(StreamReadError) as e:
        load(str(tmp_path))
    msg = str(e.value)
    assert "uid-1" in msg and "uid-2" in msg and "--server-uid" in msg
    log = load(str(tmp_path), server_uid="uid-2")
    assert log.job_ids() == [7]
    assert log.summary()["n_files"] == 2
    assert load(str(tmp_path), server_uid="uid-1").job_ids() == [1]
    with pytest.raises(StreamReadError, match="No log files found"):
        load(str(tmp_path), server_uid="uid-3")


@pytest.mark.timeout(10)
def test_unfinished_streams_and_data_after_close(tmp_path):
    write(tmp_path / "w.hqs", "u", 1, [
        (1, 1, 0, 0, STDOUT, b"a"),
        (2, 1, 0, 0, STDERR, b"b"),
        close(3, 1, 0, 0, STDERR),
        (4, 1, 0, 0, STDERR, b"ignored"),
        (5, 1, 1, 0, STDERR, b"c"),
    ])
    log = load(str(tmp_path))
    s = log.summary()
    assert (s["n_streams"], s["n_opened"]) == (3, 2)
    assert s["stderr_size"] == 2
    assert log.task_data(1, STDOUT) == [(0, b"a", False), (1, b"", False)]
    assert log.task_data(1, STDERR) == [(0, b"b", True), (1, b"c", False)]
