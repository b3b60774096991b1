"""Event subscriptions: the history so far, a live-boundary marker, then live events.

    async with server.subscribe(live=True) as sub:
        async for item in sub:
            if item is LIVE:          # everything before was history, everything after is live
                ...
            else:                     # a list of journal records [time, kind, payload]
                ...

Policy for a slow subscriber: live events wait in the subscription's queue, which holds at
most `limit` records (`EVENT_BACKLOG` by default). The server pushes into it without ever
waiting; a push that would overflow it drops the queued events and marks the subscription
lagged instead: its next read raises `SubscriberLagged` (a client connection answers with an
ErrorResponse saying so and closes). The server and the other subscribers are never slowed.
"""

from __future__ import annotations

import trio

EVENT_BACKLOG = 100_000  # live records a subscriber may have waiting before it is dropped
HISTORY_CHUNK = 1000  # records per item of the history


class _Marker:
    __slots__ = ()

    def __repr__(self) -> str:
        return "LIVE"


LIVE = _Marker()  # the live-boundary marker


class SubscriberLagged(Exception):
    """The subscriber did not keep up: more than its limit of live events were waiting."""


class Subscription:
    """One subscriber's view of the event stream (made by `Server.subscribe`)."""

    __slots__ = ("live", "limit", "after", "lagged", "on_lag", "_history", "_sent",
                 "_pending", "_wakeup", "_boundary_sent")

    def __init__(self, live: bool, limit: int = EVENT_BACKLOG):
        self.live = live
        self.limit = limit
        # Journal position the history ends at (None: not read yet; pushes before are
        # ignored, the history holds them).
        self.after: int | None = None
        self.lagged = False
        self.on_lag = None  # callback() when the subscription becomes lagged
        self._history: list = []
        self._sent = 0  # how much of the history has been handed out
        self._pending: list = []
        self._wakeup = trio.Event()
        self._boundary_sent = False

    def set_history(self, records: list, after: int) -> None:
        self._history = records
        self._sent = 0
        self.after = after

    def push(self, records) -> None:
        """Queues live records (called by the server; never blocks)."""
        if self.lagged:
            return
        if len(self._pending) + len(records) > self.limit:
            self.lagged = True
            self._pending = []
            self._wakeup.set()
            if self.on_lag is not None:
                self.on_lag()
            return
        self._pending.extend(records)
        self._wakeup.set()

    def __aiter__(self):
        return self

    async def __anext__(self):
        """The next item: a chunk of the history, then `LIVE` (live subscriptions; a replay
        ends after its history), then lists of live records as they become available.

        Raises:
            SubscriberLagged: see the module's policy.
        """
        if self.lagged:
            raise SubscriberLagged(f"more than {self.limit} events were waiting")
        if self._sent < len(self._history):  # (an offset: deleting from the front is quadratic)
            chunk = self._history[self._sent:self._sent + HISTORY_CHUNK]
            self._sent += len(chunk)
            if self._sent >= len(self._history):
                self._history = []
                self._sent = 0
            return chunk
        if not self.live:
            raise StopAsyncIteration
        if not self._boundary_sent:
            self._boundary_sent = True
            return LIVE
        while not self._pending:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            if self.lagged:
                raise SubscriberLagged(f"more than {self.limit} events were waiting")
        batch, self._pending = self._pending, []
        return batch
