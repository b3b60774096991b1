"""A hostile journal (batched `task-progress` records tampered with) against the real server
start and the offline readers: `hq server start --journal` refuses it with "Cannot restore from
journal PATH: record N: ..." (as for any journal that does not describe a possible history),
without a traceback and without touching the file; `hq journal export` / `hq journal report`
and the dashboard's journal source either show it or stop with "Cannot read journal PATH:
record N: ...", in bounded time and memory (a range of 2^32 ids is never expanded)."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path

import pytest

from hyperqueue.errors import HqError
from hyperqueue.journal.format import encode_header, encode_records, read_all

from hqenv import HqEnv

pytestmark = pytest.mark.timeout(120)
MEMORY_LIMIT = 1 << 30  # bytes of address space for each offline reader (a 2^32-id range: ~15 GB)


@pytest.fixture(scope="module")
def journal_records(tmp_path_factory):
    """The records of a real server's journal: a 30-task array run to the end, batched."""
    env = HqEnv(tmp_path_factory.mktemp("journal"))
    try:
        path = env.root / "journal.bin"
        env.start_server("--journal", str(path))
        env.start_worker(cpus="2")
        job = env.submit(["--array", "0-29", "--", "true"])
        env.wait_job(job)
        env.command(["server", "stop"])
        env.close()
        records, tail = read_all(path.read_bytes())
    finally:
        env.close()
    assert tail.clean
    assert any(r[1] == "task-progress" for r in records)
    return records


def _both(records) -> int:
    """The first record that starts and finishes the same tasks."""
    return next(i for i, r in enumerate(records) if r[1] == "task-progress"
                and r[2].get("started") and r[2].get("started") == r[2].get("finished"))


CASES = {
    "2^32 ids": ({"started": "0-4294967295", "finished": "0-4294967295"}, "cannot start"),
    "ids not in the job": ({"started": "100-105", "finished": "100-105"}, "cannot start"),
    "reversed range": ({"started": "9-2", "finished": "9-2"}, "start is greater than the end"),
    "huge instance": ({"instance": 2**70}, "instance"),
    "huge worker": ({"worker": 2**70}, "worker"),
    "unknown job": ({"job": 77}, "unknown job 77"),
    "wrong type": ({"started": [1, 2]}, "not a range text"),
}


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_journal_is_refused_at_start_and_bounded_offline(journal_records, tmp_path,
                                                                 case):
    change, reason = CASES[case]
    records = [list(r) for r in journal_records]
    i = _both(records)
    records[i][2] = {**records[i][2], **change}
    path = tmp_path / "journal.bin"
    data = encode_header() + encode_records(records)
    path.write_bytes(data)
    env = HqEnv(tmp_path / "env")
    try:
        started = time.monotonic()
        server = env.start_server("--journal", str(path), wait=False)
        code = server.wait(30)
        err = server.stderr()
        assert code == 1, err
        assert f"Cannot restore from journal {path}: record {i + 1}: " in err, err
        assert reason in err and "Traceback" not in err, err
        assert path.read_bytes() == data  # nothing written to it
        assert not (env.server_dir / "hq-current").exists()
        for args in (["journal", "export", str(path)],
                     ["journal", "report", str(path), str(tmp_path / "r.html")]):
            res = subprocess.run([*env.hq, *args], capture_output=True, text=True, timeout=30,
                                 env=env.env, preexec_fn=_limit_memory)
            assert "Traceback" not in res.stderr and "MemoryError" not in res.stderr, res.stderr
            if res.returncode != 0:
                assert res.returncode == 1, res.stderr
                assert res.stderr.startswith(
                    f"Error: Cannot read journal {path}: record {i + 1}: task-progress"), res.stderr
        assert time.monotonic() - started < 60
    finally:
        env.close()
    if case in ("2^32 ids", "ids not in the job", "unknown job"):  # (the others are shown)
        from hyperqueue.dashboard.source import read_journal

        with pytest.raises(HqError, match=f"record {i + 1}: task-progress"):
            read_journal(str(path))


def test_the_real_journal_restores_and_exports(journal_records, tmp_path):
    """The unmodified records (the control): the server starts and export prints every task."""
    path = tmp_path / "journal.bin"
    path.write_bytes(encode_header() + encode_records(journal_records))
    env = HqEnv(tmp_path / "env")
    try:
        res = subprocess.run([*env.hq, "journal", "export", str(path)], capture_output=True,
                             text=True, timeout=30, env=env.env)
        assert res.returncode == 0, res.stderr
        assert res.stdout.count('"type":"task-finished"') == 30
        env.start_server("--journal", str(path))
        assert os.path.exists(env.server_dir / "hq-current")
    finally:
        env.close()


def test_hostile_autoalloc_record_is_refused_at_start(tmp_path):
    """A queue whose time limit is a bignum (it crashed the start: 'The server crashed:
    OverflowError', with a traceback)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dashboard"))
    import dash_fixture

    created = next(r for r in dash_fixture.records() if r[1] == "alloc-queue-created")
    created[2]["params"]["time_limit"] = 10**400
    path = tmp_path / "journal.bin"
    path.write_bytes(encode_header() + encode_records(
        [[dash_fixture.T0, "server-start", {"server_uid": "abc"}], created]))
    env = HqEnv(tmp_path / "env")
    try:
        server = env.start_server("--journal", str(path), wait=False)
        assert server.wait(30) == 1
        err = server.stderr()
        assert (f"Cannot restore from journal {path}: record 2: Invalid queue parameters: "
                f"time_limit is out of range") in err, err
        assert "Traceback" not in err, err
    finally:
        env.close()
