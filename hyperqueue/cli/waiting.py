"""`--wait` / `--progress` of `hq submit`, `hq job wait` and `hq job progress`: the client
library waits (`client.wait`); this module draws the bar and hands the outcome to the printer."""

from __future__ import annotations

import time

from ..client import wait as client_wait
from .context import printer


def wait_for_jobs(client, jobs, *, progress: bool = False,
                  without_close: bool = False) -> list[dict]:
    """Waits until the jobs (ids or a Selector) complete, with a live bar if `progress`;
    prints the summary line and returns the jobs' final infos."""
    start = time.monotonic()
    if progress:
        infos = _progress_bar(client_wait.poll_jobs(client, jobs, without_close=without_close))
    else:
        infos = client_wait.wait_for_jobs(client, jobs, without_close=without_close)
    printer().wait_finished(infos, time.monotonic() - start)
    return infos


def _progress_bar(snapshots) -> list[dict]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                  transient=False) as bar:
        handle = bar.add_task("tasks", total=None, detail="")
        for p in snapshots:
            detail = ", ".join(f"{v} {k}" for k, v in p.stats.items() if v)
            bar.update(handle, total=p.total, completed=p.done, detail=detail)
            if p.finished:
                return p.infos
    return []
