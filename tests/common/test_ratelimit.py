"""RateLimitedLog: a burst per period, then one summary of what was suppressed."""

import logging

from hyperqueue.common.ratelimit import RateLimitedLog


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_burst_then_suppressed_then_summary(caplog):
    clock = Clock()
    rl = RateLimitedLog(logging.getLogger("t.rl"), "client port", burst=3, period=1.0,
                        clock=clock)
    with caplog.at_level(logging.WARNING, "t.rl"):
        logged = [rl.warning("line %d", i) for i in range(10)]
        assert logged == [True] * 3 + [False] * 7
        rl.flush()  # the window is not over: nothing yet
        assert len(caplog.records) == 3
        clock.now += 1.0
        rl.flush()
        assert caplog.records[-1].getMessage() == (
            "(7 similar messages suppressed on the client port)")
        rl.flush()
        assert len(caplog.records) == 4
        assert rl.warning("next window") is True  # a new window: the burst is back


def test_summary_is_emitted_by_the_next_line_of_a_new_window(caplog):
    clock = Clock()
    rl = RateLimitedLog(logging.getLogger("t.rl2"), "worker port", burst=1, period=1.0,
                        clock=clock)
    with caplog.at_level(logging.WARNING, "t.rl2"):
        rl.warning("a")
        rl.warning("b")
        clock.now += 2
        rl.warning("c")
    assert [r.getMessage() for r in caplog.records] == [
        "a", "(1 similar messages suppressed on the worker port)", "c"]
