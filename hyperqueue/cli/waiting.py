"""`--wait` / `--progress` of `hq submit`, `hq job wait` and `hq job progress`: the client
library waits (`client.wait`); this module draws upstream's progress line and hands the outcome
to the printer."""

from __future__ import annotations

import math
import sys
import time

from ..client import wait as client_wait
from .context import printer

#: Characters of the progress bar (upstream's `job_progress_bar(..., 40)`).
BAR_WIDTH = 40
_COLORS = {"RUNNING": "33", "FINISHED": "32", "FAILED": "31", "CANCELED": "35"}


def wait_for_jobs(client, jobs, *, progress: bool = False,
                  without_close: bool = False, on_notify: str | None = None) -> list[dict]:
    """Waits until the jobs (ids or a Selector) complete. With `progress`, upstream's live
    line (`[###...] 1/1 jobs, 2/2 tasks 2 FINISHED`); otherwise the printer reports the
    outcome (`Wait finished in ...`). `on_notify`: a command run for each task notification,
    one at a time (`hq submit --wait --on-notify`; `--progress` ignores notifications).
    Returns the jobs' final infos."""
    start = time.monotonic()
    p = printer()
    if progress:
        if p.mode == "json":
            infos = client_wait.wait_for_jobs(client, jobs, without_close=without_close)
            p.ok()
            return infos
        return _progress(p, client_wait.poll_jobs(client, jobs, without_close=without_close),
                         without_close)
    if on_notify is not None:
        from ..client import notify
        from .context import setup_logging

        setup_logging()  # the callbacks' failures are WARN records
        argv = notify.on_notify_command(on_notify)
        infos = notify.wait_with_notifications(
            client, client_wait.selector_of(jobs).to_wire(),
            lambda job, task, worker, msg: notify.run_callback(argv, job, task, worker, msg),
            without_close)
        p.wait_finished(infos, time.monotonic() - start, 0)
        return infos
    infos, n_invalid = client_wait.wait_for_jobs_counted(client, jobs,
                                                         without_close=without_close)
    p.wait_finished(infos, time.monotonic() - start, n_invalid)
    return infos


def progress_bar(counts: dict[str, int], total: int, width: int = BAR_WIDTH,
                 color: bool = False) -> str:
    """`[###....]`: canceled, failed, finished and running tasks (in this order), each
    `ceil(share * width)` characters, the rest dots."""
    out = ["["]
    used = 0
    for name in ("CANCELED", "FAILED", "FINISHED", "RUNNING"):
        n = counts.get(name, 0)
        chars = min(width - used, math.ceil(n / total * width)) if total else 0
        if chars > 0:
            bar = "#" * chars
            out.append(f"\x1b[{_COLORS[name]}m{bar}\x1b[0m" if color else bar)
            used += chars
    out.append("." * max(0, width - used))
    out.append("]")
    return "".join(out)


def _task_counts(infos) -> dict[str, int]:
    c = {"RUNNING": 0, "FINISHED": 0, "FAILED": 0, "CANCELED": 0}
    for i in infos:
        s = i["task_stats"]
        c["RUNNING"] += s["running"]
        c["FINISHED"] += s["finished"]
        c["FAILED"] += s["failed"]
        c["CANCELED"] += s["canceled"] + s["aborted"]
    return c


def _progress(p, snapshots, without_close: bool) -> list[dict]:
    out = sys.stdout
    color = p.colors == "always" or (p.colors == "auto" and out.isatty())
    first = True
    total_jobs = 0
    watched: set[int] = set()
    infos: list[dict] = []
    for snap in snapshots:
        infos = snap.infos
        if first:
            first = False
            total_jobs = len(infos)
            # Jobs already complete when the command starts are not waited for.
            watched = {i["id"] for i in infos if not _done(i, without_close)}
            if not watched:
                p.log("WARN", "There are no jobs to wait for")
                return infos
        current = [i for i in infos if i["id"] in watched]
        total = sum(i["task_count"] for i in current)
        counts = _task_counts(current)
        done_tasks = counts["FINISHED"] + counts["FAILED"] + counts["CANCELED"]
        remaining = sum(1 for i in current if not _done(i, without_close))
        status = ", ".join(
            (f"\x1b[{_COLORS[k]}m{n} {k}\x1b[0m" if color else f"{n} {k}")
            for k, n in counts.items() if n)
        out.write(f"\r\x1b[2K{progress_bar(counts, total, color=color)} "
                  f"{total_jobs - remaining}/{total_jobs} jobs, {done_tasks}/{total} tasks"
                  f"{' ' + status if status else ''}")
        out.flush()
        if snap.finished:
            break
    out.write("\n")
    out.flush()
    return infos


def _done(info: dict, without_close: bool) -> bool:
    s = info["task_stats"]
    return s["waiting"] + s["running"] == 0 and (without_close or not info["is_open"])
