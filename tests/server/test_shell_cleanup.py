"""Bounded cleanup (issue 11, item 7): the journal's final flush has its own deadline, a stop
with a hung disk still ends, and subscribers read the journal from memory."""

import os
import signal

import pytest
import trio

from hyperqueue.core.events import ServerStop
from hyperqueue.journal.format import read_all
from hyperqueue.journal.writer import JournalWriter
from server_testkit import running_server

pytestmark = [pytest.mark.trio, pytest.mark.timeout(20)]


async def test_journal_close_bounded_even_when_cancelled(tmp_path, autojump_clock,
                                                         inline_threads):
    path = str(tmp_path / "journal")
    j = JournalWriter(path)
    j.open()
    j.append([ServerStop(1.0).to_record()])
    inline_threads.held = trio.Event()  # the disk hangs
    with trio.CancelScope() as outer:
        outer.cancel()  # the caller is being cancelled: the close runs anyway (shielded) ...
        start = trio.current_time()
        done = await j.aclose(timeout=5)
    assert done is False and trio.current_time() - start == pytest.approx(5)  # ... bounded


async def test_journal_close_flushes_when_cancelled(tmp_path, autojump_clock):
    path = str(tmp_path / "journal")
    j = JournalWriter(path)
    j.open()
    j.append([ServerStop(1.0).to_record()])
    with trio.CancelScope() as outer:
        outer.cancel()
        assert await j.aclose(timeout=5) is True
    with open(path, "rb") as f:
        records, _ = read_all(f.read())
    assert [r[1] for r in records] == ["server-stop"]


async def test_stop_with_a_hung_disk_ends(tmp_path, autojump_clock, inline_threads):
    async with running_server(tmp_path, journal_path=str(tmp_path / "journal")) as h:
        inline_threads.held = trio.Event()
        start = trio.current_time()
        os.kill(os.getpid(), signal.SIGTERM)
    # the journal close has 5 s, then the server is gone
    assert 5 <= trio.current_time() - start < 6
    assert not os.path.lexists(os.path.join(h.root, "hq-current"))


async def test_subscribers_read_the_journal_from_memory(tmp_path, autojump_clock,
                                                        inline_threads):
    async with running_server(tmp_path, journal_path=str(tmp_path / "journal")) as h:
        for _ in range(3):
            async with h.server.subscribe(live=False) as sub:
                kinds = [r[1] for chunk in [c async for c in sub] for r in chunk]
            assert kinds == ["server-start"]
        assert "read" not in inline_threads.calls  # no file read: the in-memory copy
