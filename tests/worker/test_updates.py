"""What the worker sends in one batch of task updates."""

from __future__ import annotations

from hyperqueue.worker.app import (UPDATE_FAILED, UPDATE_FINISHED, UPDATE_RUNNING,
                                   _without_redundant_starts)


def test_drops_only_starts_whose_result_is_in_the_batch():
    batch = [[UPDATE_RUNNING, 1, 0, 0, None], [UPDATE_RUNNING, 1, 1, 0, None],
             [UPDATE_RUNNING, 1, 2, 1, None], [UPDATE_FINISHED, 1, 0, 0, None],
             [UPDATE_FAILED, 1, 2, 0, "old instance"]]
    assert _without_redundant_starts(batch) == [
        [UPDATE_RUNNING, 1, 1, 0, None], [UPDATE_RUNNING, 1, 2, 1, None],
        [UPDATE_FINISHED, 1, 0, 0, None], [UPDATE_FAILED, 1, 2, 0, "old instance"]]
    only_starts = batch[:3]
    assert _without_redundant_starts(only_starts) is only_starts
