"""Waiting for jobs: at once (`WaitJobsRequest`, the server answers when they complete) or by
polling their task counts, for a caller that shows progress.

No rendering here: the CLI draws a progress bar from the `Progress` snapshots, the Python API
(next) its own; both get the same numbers and the same notion of "finished".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import NamedTuple

from . import calls

DONE_STATES = ("finished", "failed", "canceled", "aborted")
POLL_INTERVAL = 0.2


class Progress(NamedTuple):
    """One poll of the waited-for jobs."""

    infos: list[dict]         # job infos (task_count, task_stats, is_open, state, ...)
    total: int                # tasks of all the jobs
    done: int                 # of them finished, failed, canceled or aborted
    stats: dict[str, int]     # task counts per state, summed over the jobs (server's order)
    finished: bool            # every job complete (and closed, unless `without_close`)


def selector_of(jobs):
    """A job Selector from a Selector or an iterable of job ids."""
    from ..common.selectors import Selector
    from ..core.ranges import IntRanges

    if isinstance(jobs, Selector):
        return jobs
    return Selector.of_ids(IntRanges.from_ids(jobs))


def wait_for_jobs(client, jobs, *, without_close: bool = False) -> list[dict]:
    """Blocks until the jobs complete; returns their final infos (list items: id, state, ...)."""
    sel = selector_of(jobs)
    return client.call(calls.wait_jobs(sel.to_wire(), without_close), timeout=None)


def wait_for_jobs_counted(client, jobs, *, without_close: bool = False) -> tuple[list[dict], int]:
    """`wait_for_jobs`, and how many of the selected ids name no job."""
    sel = selector_of(jobs)
    return client.call(calls.wait_jobs_counted(sel.to_wire(), without_close), timeout=None)


def progress(infos: list[dict], without_close: bool = False) -> Progress:
    total = sum(i["task_count"] for i in infos)
    stats: dict[str, int] = {}
    for i in infos:
        for k, v in i["task_stats"].items():
            stats[k] = stats.get(k, 0) + v
    done = sum(stats.get(k, 0) for k in DONE_STATES)
    finished = all((not i["is_open"] or without_close)
                   and i["task_stats"]["waiting"] + i["task_stats"]["running"] == 0
                   for i in infos)
    return Progress(infos, total, done, stats, finished)


def poll_jobs(client, jobs, *, without_close: bool = False,
              interval: float = POLL_INTERVAL, sleep=time.sleep) -> Iterator[Progress]:
    """Polls the jobs' task counts every `interval` seconds, yielding each snapshot; the last
    one has `finished` set."""
    wire = selector_of(jobs).to_wire()
    while True:
        p = progress(client.call(calls.job_counts(wire)), without_close)
        yield p
        if p.finished:
            return
        sleep(interval)
