"""Bounded waits: any blocking wait is cut into slices of at most `MAX_WAIT_SLICE` seconds and
loops until its real deadline, so no OS call (poll's 32-bit milliseconds, a Condition wait,
select, a trio sleep) ever sees a timeout it cannot represent, however long the duration.

    deadline = time.monotonic() + timeout
    while not ready():
        left = deadline - time.monotonic()
        if left <= 0:
            break  # timed out
        wait_for_something(wait_slice(left))
"""

from __future__ import annotations

import math

from ..core.limits import MAX_WAIT_SLICE

__all__ = ["wait_slice", "wait_slice_ms", "sleep"]


def wait_slice(remaining: float | None) -> float:
    """The timeout (seconds) of the next blocking call of a wait with `remaining` seconds left:
    in [0, MAX_WAIT_SLICE]. `None` or infinity (no deadline) gives a full slice; zero, a
    negative number or NaN gives 0 (do not block)."""
    if remaining is None:
        return MAX_WAIT_SLICE
    if not remaining > 0:  # also NaN
        return 0.0
    return remaining if remaining < MAX_WAIT_SLICE else MAX_WAIT_SLICE


def wait_slice_ms(remaining: float | None) -> int:
    """`wait_slice` in whole milliseconds for poll(2)/epoll, rounded up (a slice never ends
    before the deadline, so the caller does not spin through its last millisecond)."""
    return math.ceil(wait_slice(remaining) * 1000)


async def sleep(seconds: float) -> None:
    """`trio.sleep(seconds)` in bounded slices (trio's own clock arithmetic stays in range for
    any duration up to and beyond MAX_DURATION); `inf` sleeps until cancelled."""
    import trio

    deadline = trio.current_time() + seconds
    while True:
        left = deadline - trio.current_time()
        if not left > 0:
            return
        await trio.sleep(wait_slice(left))
