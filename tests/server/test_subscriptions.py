"""A subscription hands out its history in chunks, in order, then the live boundary and live
records (the pure part of `server/subscriptions.py`, driven directly)."""

from __future__ import annotations

import pytest

from hyperqueue.server.subscriptions import HISTORY_CHUNK, LIVE, Subscription


@pytest.mark.trio
async def test_history_in_order_in_chunks_then_live_boundary_then_live_records():
    sub = Subscription(live=True)
    history = [(float(i), "x", {}) for i in range(2 * HISTORY_CHUNK + 500)]
    sub.set_history(list(history), after=0)
    got = []
    sizes = []
    while True:
        item = await sub.__anext__()
        if item is LIVE:
            break
        sizes.append(len(item))
        got += item
    assert got == history and sizes == [HISTORY_CHUNK, HISTORY_CHUNK, 500]
    sub.push([(1e9, "y", {})])
    assert await sub.__anext__() == [(1e9, "y", {})]


@pytest.mark.trio
async def test_a_replay_ends_after_its_history():
    sub = Subscription(live=False)
    sub.set_history([(1.0, "x", {})], after=0)
    assert await sub.__anext__() == [(1.0, "x", {})]
    with pytest.raises(StopAsyncIteration):
        await sub.__anext__()
