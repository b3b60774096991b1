"""`--wait` / `--progress` of `hq submit`, `hq job wait` and `hq job progress`: the client
library waits (`client.wait`); this module draws the bar and hands the outcome to the printer."""

from __future__ import annotations

import time

from ..client import wait as client_wait
from .context import printer


def wait_for_jobs(client, jobs, *, progress: bool = False,
                  without_close: bool = False, on_notify: str | None = None) -> list[dict]:
    """Waits until the jobs (ids or a Selector) complete, with a live bar if `progress`;
    prints the summary line and returns the jobs' final infos. `on_notify`: a command run
    for each task notification, one at a time (`hq submit --wait --on-notify`)."""
    start = time.monotonic()
    if on_notify is not None and not progress:
        from ..client import notify
        from .context import setup_logging

        setup_logging()  # the callbacks' failures are WARN records
        argv = notify.on_notify_command(on_notify)
        infos = notify.wait_with_notifications(
            client, client_wait.selector_of(jobs).to_wire(),
            lambda job, task, worker, msg: notify.run_callback(argv, job, task, worker, msg),
            without_close)
    elif progress:
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
