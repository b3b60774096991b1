"""Journal writer group commit: every caller waiting for durability at the same time is served by
one fsync (of a real file), callers arriving during an fsync by the next one, and nothing is
reported durable before the fsync that covers it has returned."""

from __future__ import annotations

import os
import threading

import pytest
import trio

from hyperqueue.journal import writer as writer_mod
from hyperqueue.journal.format import read_all
from hyperqueue.journal.writer import JournalWriter


class FsyncCounter:
    """Wraps the writer's real write+fsync: counts the calls and can hold one in progress."""

    def __init__(self, monkeypatch):
        self.calls = 0
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        real = writer_mod._write_all_fsync

        def counted(fd, data):
            self.calls += 1
            self.entered.set()
            if self.gate is not None:
                self.gate.wait(10)
            real(fd, data)

        monkeypatch.setattr(writer_mod, "_write_all_fsync", counted)


def _records(path) -> list:
    with open(path, "rb") as f:
        records, tail = read_all(f.read())
    assert tail.clean
    return records


@pytest.mark.timeout(20)
def test_concurrent_durable_callers_share_one_fsync(tmp_path, monkeypatch):
    fsyncs = FsyncCounter(monkeypatch)
    path = str(tmp_path / "j.bin")

    async def main():
        w = JournalWriter(path, flush_period=3600)
        w.open()
        done = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(w.run)
            positions = [w.append([(1.0, "e", {"i": i})]) for i in range(50)]

            async def caller(pos):
                await w.durable(pos)
                assert w.durable_pos >= pos
                done.append(pos)

            for pos in positions:
                nursery.start_soon(caller, pos)
            with trio.fail_after(10):
                while len(done) < len(positions):
                    await trio.sleep(0.01)
            assert fsyncs.calls == 1
            assert len(_records(path)) == 50
            # nothing new: no fsync at all
            await w.durable()
            assert fsyncs.calls == 1
            nursery.cancel_scope.cancel()
        await w.aclose()

    trio.run(main)


@pytest.mark.timeout(20)
def test_callers_arriving_during_an_fsync_are_served_by_the_next_one(tmp_path, monkeypatch):
    fsyncs = FsyncCounter(monkeypatch)
    fsyncs.gate = threading.Event()
    path = str(tmp_path / "j.bin")

    async def main():
        w = JournalWriter(path, flush_period=3600)
        w.open()
        served = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(w.run)

            async def caller(name):
                await w.durable(w.append([(1.0, "e", {"n": name})]))
                served.append(name)

            nursery.start_soon(caller, "first")
            # the first fsync is in progress (held): 20 more callers arrive meanwhile
            await trio.to_thread.run_sync(fsyncs.entered.wait, 10)
            for i in range(20):
                nursery.start_soon(caller, i)
            await trio.sleep(0.2)
            assert served == [] and w.durable_pos == 0  # nothing reported before the fsync
            # what is on disk is exactly what is durable
            data, pos = await _read_durable_while_held(w, fsyncs)
            assert pos == w.durable_pos
            fsyncs.gate.set()
            with trio.fail_after(10):
                while len(served) < 21:
                    await trio.sleep(0.01)
            assert fsyncs.calls == 2  # the held one, then one for all 20 later callers
            assert len(_records(path)) == 21
            nursery.cancel_scope.cancel()
        await w.aclose()

    trio.run(main)


async def _read_durable_while_held(w, fsyncs):
    """`read_durable` waits for the write in progress and returns content and position
    together; run it concurrently and release the held fsync so it can finish."""
    result = []

    async def read():
        result.append(await w.read_durable())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.sleep(0.1)
        assert not result  # blocked behind the write in progress
        fsyncs.gate.set()
    data, pos = result[0]
    records, tail = read_all(data)
    assert tail.clean
    # header + records == durable position's worth of records, nothing buffered
    assert len(records) == 21 and pos == w.appended
    fsyncs.gate.clear()
    return data, pos


@pytest.mark.timeout(20)
def test_request_flush_makes_appended_records_durable_without_a_waiter(tmp_path, monkeypatch):
    fsyncs = FsyncCounter(monkeypatch)
    path = str(tmp_path / "j.bin")
    seen = []

    async def main():
        w = JournalWriter(path, flush_period=3600)
        w.open()
        w.on_durable = seen.append
        async with trio.open_nursery() as nursery:
            nursery.start_soon(w.run)
            w.request_flush()  # nothing pending: no fsync
            await trio.sleep(0.1)
            assert fsyncs.calls == 0
            pos = w.append([(1.0, "e", {})])
            w.request_flush()
            with trio.fail_after(10):
                while w.durable_pos < pos:
                    await trio.sleep(0.01)
            assert fsyncs.calls == 1 and seen == [pos]
            assert os.path.getsize(path) > 0 and len(_records(path)) == 1
            nursery.cancel_scope.cancel()
        await w.aclose()

    trio.run(main)
