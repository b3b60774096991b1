"""Garbage-collector settings for the long-lived processes (server, worker).

Under a stream of tasks the server allocates many small containers that live for one
dispatch cycle (updates, events, records). With CPython's default thresholds (700, 10, 10)
most of them survive a young collection, reach the oldest generation and trigger full
collections, each of which walks every live object, the whole task store included: a
third of the server's CPU at 30,000 tasks/s. Larger young thresholds let those objects die
by reference counting first; `gc.freeze()` moves what exists at start-up (modules, the
restored state) out of every later collection. Cycles are still collected, only later.
"""

from __future__ import annotations

import gc
import os

THRESHOLDS = (50_000, 20, 100)


def tune() -> None:
    """Collects once, freezes what is alive and raises the thresholds (idempotent)."""
    spec = os.environ.get("HQ_GC_THRESHOLDS")  # experiments only, e.g. "700,10,10"
    thresholds = THRESHOLDS
    if spec:
        thresholds = tuple(int(x) for x in spec.split(","))
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
