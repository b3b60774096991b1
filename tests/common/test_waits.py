"""Bounded waits (common.waits): slices never exceed MAX_WAIT_SLICE and loop to the deadline."""

import math

import pytest
import trio
import trio.testing

from hyperqueue.common.waits import sleep, wait_slice, wait_slice_ms
from hyperqueue.core.limits import MAX_DURATION, MAX_WAIT_SLICE
from hyperqueue.worker.fastspawn import reap, spawn, wait_exit


@pytest.mark.parametrize(
    "remaining, expected",
    [(None, MAX_WAIT_SLICE), (float("inf"), MAX_WAIT_SLICE), (MAX_DURATION, MAX_WAIT_SLICE),
     (MAX_WAIT_SLICE + 1, MAX_WAIT_SLICE), (MAX_WAIT_SLICE, MAX_WAIT_SLICE), (2.5, 2.5),
     (0.0, 0.0), (-1.0, 0.0), (float("-inf"), 0.0), (float("nan"), 0.0)],
)
def test_wait_slice(remaining, expected):
    assert wait_slice(remaining) == expected


def test_wait_slice_ms_fits_poll_and_rounds_up():
    # poll(2) takes a C int of milliseconds: every slice must fit in it
    for remaining in (None, float("inf"), 1e300, MAX_DURATION, 2**31 / 1000 + 1):
        assert wait_slice_ms(remaining) == int(MAX_WAIT_SLICE * 1000) < 2**31
    assert wait_slice_ms(0.0004) == 1  # never 0 (a busy loop) while time is left
    assert wait_slice_ms(1.5) == 1500
    assert wait_slice_ms(0) == 0 and wait_slice_ms(-3) == 0


@pytest.mark.parametrize("seconds", [MAX_DURATION, 2.5 * MAX_WAIT_SLICE, 0.25])
def test_sleep_reaches_the_deadline_in_bounded_slices(seconds, monkeypatch):
    slices = []
    real_sleep = trio.sleep

    async def recording_sleep(t):
        slices.append(t)
        await real_sleep(t)

    async def main():
        start = trio.current_time()
        await sleep(seconds)
        return trio.current_time() - start

    monkeypatch.setattr(trio, "sleep", recording_sleep)
    elapsed = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert elapsed == pytest.approx(seconds, abs=1e-3)
    assert all(0 < t <= MAX_WAIT_SLICE for t in slices)
    assert len(slices) == math.ceil(seconds / MAX_WAIT_SLICE)


def test_sleep_for_ever_is_cancellable():
    async def main():
        with trio.move_on_after(10 * MAX_WAIT_SLICE) as scope:
            await sleep(float("inf"))
        return scope.cancelled_caught

    assert trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.timeout(20)
def test_wait_exit_with_a_huge_timeout_waits_for_the_process():
    """A time limit of 10 years (far beyond poll's 2^31 ms) waits normally: it returns when the
    process ends, leaves it unreaped (still a zombie) until `reap`."""
    import os

    null = os.open(os.devnull, os.O_RDWR)
    try:
        pid = spawn(["sleep", "0.3"], "/", [], os.defpath, null, null, null)
    finally:
        os.close(null)
    try:
        assert wait_exit(pid, MAX_DURATION) is True
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] == "Z"  # exited, not reaped yet
    finally:
        assert reap(pid) == 0


@pytest.mark.timeout(20)
def test_wait_exit_times_out():
    import os
    import signal
    import time

    null = os.open(os.devnull, os.O_RDWR)
    try:
        pid = spawn(["sleep", "30"], "/", [], os.defpath, null, null, null)
    finally:
        os.close(null)
    try:
        start = time.monotonic()
        assert wait_exit(pid, 0.2) is False
        assert 0.2 <= time.monotonic() - start < 5
        assert wait_exit(pid, 0) is False
    finally:
        os.killpg(pid, signal.SIGKILL)
        assert reap(pid) == -signal.SIGKILL
