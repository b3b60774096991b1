"""Rate-limited logging: what peers can trigger must not flood the log (stdlib only)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """Logs at most `burst` lines per `period` seconds; the rest are counted and summarised as
    "(k similar messages suppressed)" once the period is over (at the next line, or when
    `flush` is called, e.g. from a periodic task).

    Args:
        logger: where the lines go.
        what: names the source in the summary line, e.g. "client port".
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, logger: logging.Logger, what: str, *, burst: int = 10,
                 period: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.what = what
        self.burst = burst
        self.period = period
        self.clock = clock
        self._window_start = float("-inf")
        self._count = 0
        self.suppressed = 0  # lines suppressed in the current window

    def log(self, level: int, msg: str, *args) -> bool:
        """Logs `msg % args` unless over the limit; returns whether it was logged."""
        now = self.clock()
        if now - self._window_start >= self.period:
            self.flush(now)
            self._window_start = now
            self._count = 0
        if self._count >= self.burst:
            self.suppressed += 1
            return False
        self._count += 1
        self.logger.log(level, msg, *args)
        return True

    def warning(self, msg: str, *args) -> bool:
        return self.log(logging.WARNING, msg, *args)

    def flush(self, now: float | None = None) -> None:
        """Emits the summary of the lines suppressed in a window that is over."""
        if not self.suppressed:
            return
        now = self.clock() if now is None else now
        if now - self._window_start < self.period:
            return
        self.logger.warning("(%d similar messages suppressed on the %s)", self.suppressed,
                            self.what)
        self.suppressed = 0
