"""Text rendering of the dashboard's screens (pure: strings from a model).

Used as it is by `hq dashboard --once` and for the detail panes, charts and timeline of the
interactive app (`app.py` puts the row lists into its tables). Times are shown in local time;
nothing here reads the clock: "now" is the view's time.
"""

from __future__ import annotations

import time as _time_mod  # only `localtime`/`strftime` of given timestamps, never `time()`

from .model import (
    FAILED, RUNNING, STATE_NAMES, WAITING, DashboardModel, JobView, Timeline, WorkerView, cut,
    _finite, overview_numbers, resource_lines,
)

SPARK = " ▁▂▃▄▅▆▇█"
MAX_TASK_ROWS = 1000
CPU_MODES = ("node", "worker", "assigned")


def _local_time(ts: float | None, fmt: str) -> str:
    """`ts` in local time, "-" for none, "?" for a time no calendar holds."""
    if ts is None:
        return "-"
    try:
        return _time_mod.strftime(fmt, _time_mod.localtime(ts))
    except (OverflowError, OSError, ValueError):
        return "?"


def fmt_time(ts: float | None) -> str:
    return _local_time(ts, "%Y-%m-%d %H:%M:%S")


def fmt_clock(ts: float | None) -> str:
    return _local_time(ts, "%H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if 0 < seconds < 10 and seconds != int(seconds):
        return f"{seconds:.3g}s"
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h {m:02d}m {s:02d}s"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"


def bar(pct: float | None, width: int = 10) -> str:
    """`[#####.....]  50%` (no data: `[   n/a    ]`)."""
    if pct is None:
        return "[" + "n/a".center(width) + "]     "
    pct = max(0.0, min(100.0, pct))
    full = int(round(pct / 100 * width))
    return "[" + "#" * full + "." * (width - full) + f"] {pct:3.0f}%"


def sparkline(values: list, width: int, top: float | None = None) -> str:
    """The last `width` values as block characters scaled to `top` (default: their max)."""
    vals = [v for v in values[-width:]]
    if not vals:
        return ""
    hi = top if top else max((v for v in vals if v is not None), default=0) or 1
    out = []
    for v in vals:
        if _finite(v) is None or _finite(v / hi) is None:  # (no data, or not a number)
            out.append(" ")
        else:
            out.append(SPARK[max(0, min(8, int(round(v / hi * 8))))])
    return "".join(out)


def resample(series: list, start: float, end: float, width: int, value) -> list:
    """`width` samples of a step series `[(time, ...)]` over [start, end] (last value at or
    before each sample time; None before the first point)."""
    if width <= 0:
        return []
    out = []
    j = 0
    last = None
    step = (end - start) / width if end > start else 0
    for i in range(width):
        ts = start + step * (i + 1)
        while j < len(series) and series[j][0] <= ts:
            last = value(series[j])
            j += 1
        out.append(last)
    return out


def table(headers: list[str], rows: list[list], max_width: int | None = None) -> list[str]:
    widths = [len(h) for h in headers]
    srows = [[str(c) for c in r] for r in rows]
    for r in srows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for r in srows:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    if max_width:
        lines = [ln[:max_width] for ln in lines]
    return lines


# -- jobs -----------------------------------------------------------------------------------------
JOB_HEADERS = ["ID", "Name", "State", "Tasks", "Waiting", "Running", "Finished", "Failed",
               "Canceled"]


def job_rows(model: DashboardModel) -> list[list]:
    rows = []
    for job in sorted(model.jobs.values(), key=lambda j: j.id):
        c = job.counts
        rows.append([job.id, job.name[:40], job.state, job.n_tasks, c[WAITING], c[RUNNING],
                     c[2], c[FAILED], c[4] + c[5]])
    return rows


def job_detail_lines(job: JobView, now: float | None) -> list[str]:
    b = job.batches[0] if job.batches else None
    kind = "Graph" if len(job.batches) > 1 else "Array"
    lines = [f"Job {job.id}: {job.name}", f"State: {job.state}",
             f"Type: {kind}", f"Tasks: {job.n_tasks}",
             f"Max fails: {job.max_fails if job.max_fails is not None else 'unlimited'}",
             f"Created: {fmt_time(job.created)}",
             f"Completed: {fmt_time(job.completed)}",
             f"Duration: {fmt_duration(((job.completed or now) or job.created) - job.created)}"]
    if job.is_open:
        lines.append("Open: yes (tasks may still be added)")
    if job.cancel_reason:
        lines.append(f"Cancel reason: {job.cancel_reason}")
    if b is not None:
        lines += [f"Command: {' '.join(b.args) if b.args else '?'}",
                  f"Workdir: {_job_cwd(job, b)}", f"Submit dir: {b.submit_dir}",
                  f"Pin: {b.pin or 'none'}",
                  f"Resources: {' | '.join(b.resources) or '?'}",
                  f"Time limit: {fmt_duration(b.time_limit) if b.time_limit else 'none'}",
                  f"Priority: {b.priority}", f"Crash limit: {b.crash_limit}"]
        if len(job.batches) > 1:
            lines.append(f"Batches: {len(job.batches)}")
    c = job.counts
    lines.append("Counts: " + ", ".join(f"{STATE_NAMES[i]} {c[i]}" for i in range(6) if c[i]))
    return lines


def _job_cwd(job: JobView, b) -> str:
    from ..core.placeholders import fill

    if not isinstance(b.cwd, str):
        return "?"
    return fill(b.cwd, {"SUBMIT_DIR": b.submit_dir or job.submit_dir, "JOB_ID": str(job.id)})


TASK_HEADERS = ["Task", "State", "Worker", "Start", "End", "Runtime"]


def task_rows(job: JobView, now: float | None, limit: int = MAX_TASK_ROWS) -> tuple[list, int]:
    """Rows of the tasks that left WAITING (sorted by id, at most `limit`), and how many more
    (the waiting ones are counted, not listed)."""
    ids = sorted(job.tasks)
    rows = []
    for tid in ids[:limit]:
        r = job.tasks[tid]
        end = r.end if r.end is not None else (now if r.state == RUNNING else None)
        runtime = fmt_duration(end - r.start) if r.start is not None and end is not None else "-"
        rows.append([tid, STATE_NAMES[r.state], r.worker if r.worker is not None else "-",
                     fmt_clock(r.start), fmt_clock(r.end), runtime])
    return rows, max(0, len(ids) - limit)


def task_paths(job: JobView, task_id: int, server_uid: str) -> tuple[str | None, str | None]:
    """The resolved stdout and stderr paths of a task's current instance (None: not a file)."""
    from ..core.placeholders import resolve_task_paths

    b = job.batch_of(task_id)
    if b is None or not isinstance(b.cwd, str):
        return None, None
    rec = job.task(task_id)
    try:
        _cwd, out, err = resolve_task_paths(
            b.cwd, b.stdout if isinstance(b.stdout, str) else None,
            b.stderr if isinstance(b.stderr, str) else None, job_id=job.id, task_id=task_id,
            instance=rec.instance or 0, submit_dir=b.submit_dir or job.submit_dir,
            server_uid=server_uid)
    except (TypeError, ValueError):
        return None, None
    return out, err


def task_detail_lines(job: JobView, task_id: int, server_uid: str) -> list[str]:
    rec = job.task(task_id)
    out, err = task_paths(job, task_id, server_uid)
    lines = [f"Task {task_id} of job {job.id}: {STATE_NAMES[rec.state]}",
             f"Worker: {rec.worker if rec.worker is not None else '-'}  "
             f"Instance: {rec.instance}",
             f"Stdout: {out or 'none'}", f"Stderr: {err or 'none'}"]
    if rec.state == FAILED:
        lines.append("Error:")
        lines += ["  " + ln for ln in (rec.error or "(no message)").splitlines()[:20]]
    return lines


def counts_chart(series: list, start: float, end: float, width: int) -> list[str]:
    """Running / finished / failed counts over [start, end] as three sparklines."""
    out = []
    for idx, name in ((RUNNING, "running "), (2, "finished"), (FAILED, "failed  ")):
        vals = resample(series, start, end, width, lambda p, i=idx: p[1][i])
        top = max((v for v in vals if v is not None), default=0)
        out.append(f"{name} {sparkline(vals, width, top or 1)} {vals[-1] if vals else 0}")
    return out


# -- workers --------------------------------------------------------------------------------------
WORKER_HEADERS = ["ID", "Hostname", "State", "Running", "CPU", "Memory"]


def worker_rows(model: DashboardModel) -> list[list]:
    rows = []
    for w in sorted(model.workers.values(), key=lambda w: w.id):
        cpu = mem = None
        if w.overview is not None and w.lost is None:
            cpu, mem, _c, _g = overview_numbers(w.overview)
        rows.append([w.id, w.hostname[:30], w.state, len(w.running), bar(cpu), bar(mem)])
    return rows


def worker_detail_lines(model: DashboardModel, w: WorkerView, usage: list, cpu_mode: str,
                        now: float | None, width: int = 60) -> list[str]:
    cfg = w.config
    lines = [f"Worker {w.id} ({w.hostname}): {w.state}",
             f"Connected: {fmt_time(w.connected)}" + (f"  Lost: {fmt_time(w.lost)}"
                                                       if w.lost else "")]
    # per-core utilisation
    cpu, mem, cores, gpus = overview_numbers(w.overview) if w.overview else (None, None, [], [])
    managed = _managed_cores(cfg.get("resources"), len(cores))
    if cpu_mode == "node":
        shown = list(range(len(cores)))
        title = "node-global CPUs"
    else:
        shown = managed
        title = ("worker-managed CPUs" if cpu_mode == "worker" else
                 "worker-assigned CPUs (tasks' core assignments are not in the event stream; "
                 "showing the managed ones)")
    lines.append(f"CPU utilisation ({title}, 'c' cycles):")
    if not cores:
        lines.append("  no hardware overview (start workers with --overview-interval)")
    else:
        cells = [f"{i:>3}:{cores[i]:5.1f}%" for i in shown if i < len(cores)]
        for k in range(0, len(cells), 6):
            lines.append("  " + "  ".join(cells[k:k + 6]))
        lines.append(f"  average {bar(cpu)}   memory {bar(mem)}")
    for g in gpus:
        lines.append(f"  GPU {g.get('vendor', '')} {g.get('id')}: util "
                     f"{bar(_num(g.get('processor_usage')))} mem {bar(_num(g.get('mem_usage')))}")
    hist = cut(usage, now)
    if hist:
        lines.append("Utilisation history (CPU, memory):")
        lines.append("  cpu " + sparkline([p[1] for p in hist], width, 100))
        lines.append("  mem " + sparkline([p[2] for p in hist], width, 100))
    lines.append("Configuration:")
    for label, key in (("Hostname", "hostname"), ("Listen address", "listen_address"),
                       ("Workdir", "work_dir"), ("Group", "group")):
        lines.append(f"  {label}: {cfg.get(key, '-')}")
    for label, key in (("Heartbeat", "heartbeat"), ("Idle timeout", "idle_timeout"),
                       ("Time limit", "time_limit"), ("Overview interval", "overview_interval")):
        v = cfg.get(key)
        lines.append(f"  {label}: {fmt_duration(v) if isinstance(v, (int, float)) else 'none'}")
    if cfg.get("manager"):
        lines.append(f"  Manager: {cfg.get('manager')} {cfg.get('manager_job_id') or ''}")
    lines.append("Resources:")
    lines += ["  " + r for r in resource_lines(cfg.get("resources"))]
    lines.append(f"Tasks on the worker ({len(w.running)}):")
    for job_id, task_id in sorted(w.running)[:50]:
        lines.append(f"  job {job_id} task {task_id}")
    if len(w.running) > 50:
        lines.append(f"  ... {len(w.running) - 50} more")
    return lines


def _num(v):
    return _finite(v)


def _managed_cores(resources, n: int) -> list[int]:
    from ..core.resources import ResourceDef

    for r in resources if isinstance(resources, list) else []:
        try:
            d = ResourceDef.from_wire(r)
        except (ValueError, TypeError, KeyError, IndexError):
            continue
        if d.name == "cpus":
            ids = []
            for g in d.groups:
                for label in g:
                    if label.isdigit():
                        ids.append(int(label))
            return [i for i in ids if i < n] if n else ids
    return list(range(n))


def workers_chart(series: list, start: float, end: float, width: int) -> str:
    vals = resample(series, start, end, width, lambda p: p[1])
    top = max((v for v in vals if v is not None), default=0)
    return f"workers {sparkline(vals, width, top or 1)} {vals[-1] if vals and vals[-1] else 0}"


# -- allocations ----------------------------------------------------------------------------------
ALLOC_EMPTY = ("No allocation queues. Automatic allocation submits Slurm/PBS jobs that start "
               "workers when tasks wait; add a queue with `hq alloc add slurm --time-limit 1h` "
               "(or `pbs`) and it shows here with its allocations.")

QUEUE_HEADERS = ["ID", "Name", "Manager", "State", "Backlog", "Workers/alloc", "Time limit",
                 "Reason"]
ALLOC_HEADERS = ["Allocation", "Queue", "Workers", "State", "Queued", "Started", "Finished"]


def alloc_tables(model: DashboardModel, live_reasons: dict | None = None) -> tuple[list, list]:
    """Queue and allocation rows; `live_reasons` (queue id -> text): what a live server says
    about each queue now (`hq alloc info`'s decision lines), else the recorded pause reason."""
    reg, reasons = model.allocation_registry()
    queues, allocs = [], []
    for q in sorted(reg.queues.values(), key=lambda q: q.id):
        p = q.params
        reason = reasons.get(q.id) if q.state != "ACTIVE" else ""
        if live_reasons and live_reasons.get(q.id):
            reason = live_reasons[q.id]
        queues.append([q.id, p.name or "", p.manager, q.state, p.backlog,
                       p.max_workers_per_alloc, fmt_duration(p.time_limit), reason or "-"])
        for a in sorted(q.allocations.values(), key=lambda a: a.queued_at):
            allocs.append([a.id, q.id, a.worker_count, a.state, fmt_clock(a.queued_at),
                           fmt_clock(a.started_at), fmt_clock(a.ended_at)])
    return queues, allocs


def alloc_timeline(model: DashboardModel, start: float, end: float, width: int) -> list[str]:
    """One line per allocation: `.` queued, `#` running, over [start, end]."""
    reg, _ = model.allocation_registry()
    lines = []
    span = (end - start) or 1.0
    for q in sorted(reg.queues.values(), key=lambda q: q.id):
        for a in sorted(q.allocations.values(), key=lambda a: a.queued_at)[-20:]:
            cells = []
            for i in range(width):
                ts = start + span * (i + 0.5) / width
                if ts < a.queued_at or (a.ended_at is not None and ts > a.ended_at):
                    cells.append(" ")
                elif a.started_at is not None and ts >= a.started_at:
                    cells.append("#")
                else:
                    cells.append(".")
            lines.append(f"{a.id[:12]:>12} |{''.join(cells)}|")
    return lines


# -- the timeline ---------------------------------------------------------------------------------
def timeline_line(tl: Timeline, view_end: float | None, span: float, width: int = 60) -> str:
    """`LIVE` or `PAST`, the window [end - span, end] and a bar of the whole history with the
    window's position."""
    if tl.start is None:
        return "no events yet"
    start, last = tl.start, tl.end
    end = last if view_end is None else view_end
    total = (last - start) or 1.0
    lo = max(start, end - span)
    cells = []
    for i in range(width):
        ts = start + total * (i + 0.5) / width
        cells.append("=" if lo <= ts <= end else "-")
    pos = min(width - 1, int((end - start) / total * width)) if total else width - 1
    cells[pos] = "|"
    mode = "LIVE" if view_end is None else "PAST"
    return (f"{mode} {fmt_clock(lo)}..{fmt_clock(end)} (window {fmt_duration(span)}) "
            f"[{''.join(cells)}] {fmt_clock(start)}..{fmt_clock(last)}")


# -- --once ---------------------------------------------------------------------------------------
def snapshot_text(tl: Timeline, at: float | None = None, width: int = 100,
                  replay: bool = False) -> str:
    """Every main screen as plain text (`hq dashboard --once`; `replay`: the end of a journal
    is labelled END, not LIVE)."""
    model = tl.model_at(at)
    now = at if at is not None else tl.end
    start = tl.start or 0.0
    end = now or start
    span = max(end - start, 1.0)
    chart_w = max(10, min(60, width - 20))
    line = timeline_line(tl, at, span, 40)
    if replay and at is None:
        line = line.replace("LIVE", "END ", 1)
    out = [f"HyperQueue dashboard  {line}",
           f"events: {model.n_events}  jobs: {len(model.jobs)}  workers: "
           f"{sum(1 for w in model.workers.values() if w.lost is None)} connected",
           "", "== Jobs =="]
    rows = job_rows(model)
    out += table(JOB_HEADERS, rows, width) if rows else ["No jobs."]
    for job in sorted(model.jobs.values(), key=lambda j: j.id)[-3:]:
        out += ["", f"-- job {job.id} --"]
        out += job_detail_lines(job, now)
        series = tl.live.counts_series(job.id) if at is None else \
            cut(tl.live.counts_series(job.id), at)
        out += ["Task-state counts over time:"]
        out += ["  " + ln for ln in counts_chart(series, start, end, chart_w)]
        trows, more = task_rows(job, now, 20)
        if trows:
            out += ["Tasks:"] + ["  " + ln for ln in table(TASK_HEADERS, trows)]
            extra = job.n_tasks - len(trows)
            if extra:
                out.append(f"  ... {extra} more (waiting tasks are not listed)")
        failed = [t for t, r in sorted(job.tasks.items()) if r.state == FAILED][:1]
        for tid in failed:
            out += ["Failed task:"] + ["  " + ln for ln in
                                       task_detail_lines(job, tid, model.server_uid)]
    out += ["", "== Workers =="]
    rows = worker_rows(model)
    out += table(WORKER_HEADERS, rows, width) if rows else ["No workers."]
    out.append(workers_chart(cut(tl.live.worker_series, at), start, end, chart_w))
    for w in sorted(model.workers.values(), key=lambda w: w.id)[:2]:
        out += ["", f"-- worker {w.id} --"]
        out += worker_detail_lines(model, w, tl.live.usage.get(w.id, []), "node", at, chart_w)
    out += ["", "== Allocations =="]
    queues, allocs = alloc_tables(model)
    if not queues:
        out.append(ALLOC_EMPTY)
    else:
        out += table(QUEUE_HEADERS, queues, width)
        out += [""] + (table(ALLOC_HEADERS, allocs, width) if allocs else ["No allocations."])
        out += ["Timeline:"] + alloc_timeline(model, start, end, chart_w)
    if model.bad_records:
        out += ["", f"({model.bad_records} malformed records skipped)"]
    return "\n".join(out) + "\n"
