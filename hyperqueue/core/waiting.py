"""What waits: a summary of the ready tasks no worker has taken, for automatic allocation.

After a scheduling pass, the ready queues hold exactly the tasks that no connected worker took
(none can run them, or all that could are full, prefill included). `waiting_summary` groups
them by their resource variants, in the scheduler's order (priority first), with bounded work:
it looks at no more than `max_queues` ready queues per call (one queue per job batch), so a
server with 100k waiting jobs pays the same per call as one with 10k. Tasks that wait for
dependencies are not in a ready queue and are not counted (no worker could start them yet).
"""

from __future__ import annotations

from .state import Core

__all__ = ["MAX_QUEUES_SCANNED", "waiting_summary"]

MAX_QUEUES_SCANNED = 10_000


def waiting_summary(core: Core, max_queues: int = MAX_QUEUES_SCANNED) -> list[tuple[tuple, int]]:
    """[(resource variants, number of waiting tasks), ...]: one item per distinct tuple of
    `ResourceRequest`s, ordered by the first ready queue that has it."""
    out: dict[tuple, int] = {}
    queues = core.queues
    for key in core.queue_keys[:max_queues]:
        q = queues.get(key)
        if q is None:
            continue
        n = len(q)
        if n:
            requests = q.batch.template.requests
            out[requests] = out.get(requests, 0) + n
    return list(out.items())
