"""What the core wants the shells to do, collected during one reaction and taken afterwards."""

from __future__ import annotations


class Outbox:
    """Filled by reactor/scheduler functions; the shell drains it after each reaction.

    * `compute[worker_id]`: tasks newly assigned to that worker (in assignment order).
    * `cancel[worker_id]`: `(job, task, instance)` of tasks the worker must kill or drop.
    * `stop_workers`: workers the server tells to stop.
    * `reserve[worker_id]`: a secondary node of a multi-node task was reserved (True) or
      released (False); the last change in a reaction wins.
    * `changed_jobs`: jobs whose state counters changed (waiters re-check them).
    * `events`: journal/stream events `(time, type, payload)` when the core records events.
    """

    __slots__ = ("compute", "cancel", "retract", "stop_workers", "reserve", "changed_jobs",
                 "events")

    def __init__(self):
        self.compute: dict[int, list] = {}
        self.cancel: dict[int, list[tuple[int, int, int]]] = {}
        self.retract: dict[int, list[tuple[int, int, int]]] = {}
        self.stop_workers: list[int] = []
        self.reserve: dict[int, bool] = {}
        self.changed_jobs: set[int] = set()
        self.events: list = []  # `core.events.Event`s, in the order they happened

    def is_empty(self) -> bool:
        return not (self.compute or self.cancel or self.retract or self.stop_workers
                    or self.reserve or self.changed_jobs or self.events)

    def clear(self) -> None:
        self.compute.clear()
        self.cancel.clear()
        self.retract.clear()
        self.stop_workers.clear()
        self.reserve.clear()
        self.changed_jobs.clear()
        self.events.clear()
