"""`hq journal report`: a self-contained HTML summary of a journal (stdlib only, no JavaScript).

`render_report(records)` folds the `[time, kind, payload]` records (decoded into
`core.events` classes) in one pass into:

* the server runs (start time, uid, stop time),
* time series of running workers (per resource shape) and running tasks, aggregated into at most
  `MAX_BUCKETS` equal time buckets (time-weighted average and peak per bucket),
* finished/failed counts and durations per task *type* (the resource request of the batch the
  task belongs to; `T1`, `T2`, ... with a legend),
* a table of the workers and of the jobs, and the last task failures.

Charts are inline SVG generated here; the page has no external resources. All text from the
journal is escaped. Unknown event types and malformed records (those `events.from_record`
refuses) are counted and otherwise ignored.

The optional window (`start_time`, `end_time`: seconds from the first server start) limits the
counted events and the charts; the events before the window are still folded so the state at the
window start (running workers and tasks) is right.
"""

from __future__ import annotations

import gc
import math
from collections import deque
from datetime import datetime, timezone
from html import escape

from hyperqueue.core import events as ev
from hyperqueue.core.events import from_record
from hyperqueue.core.ranges import IntRanges
from hyperqueue.core.resources import ALL, format_amount

__all__ = ["render_report", "MAX_BUCKETS"]

#: Maximal number of time buckets of the time-series charts.
MAX_BUCKETS = 500
#: Batches with at most this many ids are expanded into a per-job dict (task -> type).
_SMALL_BATCH = 256
_MAX_TABLE_ROWS = 1000
_MAX_FAILURES = 50
_MAX_CHART_TYPES = 40
_MAX_SHAPES = 10
_UNKNOWN = "unknown"

_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
            "#9c755f", "#bab0ac", "#e15759", "#86bcb6")
_COLOR_FINISHED = "#59a14f"
_COLOR_FAILED = "#e15759"
_GRID = 'class="grid" stroke="#e6e6e6"'
_FRAME = 'class="frame" fill="none" stroke="#999"'


# ------------------------------------------------------------------------------------- helpers
def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    try:
        return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return str(ts)


def _fmt_duration(sec: float) -> str:
    """`1h 2m 3s`, `4.25s`, `12ms`."""
    if sec != sec or sec in (math.inf, -math.inf):
        return str(sec)
    neg = sec < 0
    sec = abs(sec)
    if sec == 0:
        text = "0s"
    elif sec < 1:
        text = f"{sec * 1000:.0f}ms" if sec >= 0.001 or sec == 0 else f"{sec * 1e6:.0f}µs"
    elif sec < 60:
        text = f"{sec:.2f}".rstrip("0").rstrip(".") + "s"
    else:
        total = int(round(sec))
        d, rest = divmod(total, 86400)
        h, rest = divmod(rest, 3600)
        m, s = divmod(rest, 60)
        parts = []
        if d:
            parts.append(f"{d}d")
        if h:
            parts.append(f"{h}h")
        if m:
            parts.append(f"{m}m")
        if s and not d:
            parts.append(f"{s}s")
        text = " ".join(parts) or "0s"
    return "-" + text if neg else text


def _fmt_amount(units) -> str:
    if units == ALL:
        return "all"
    if type(units) is not int:
        return str(units)
    return format_amount(units)


def _fmt_num(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.3g}"


def _request_label(template) -> str:
    """`cpus 1 compact, gpus 2 tight` from a wire task template (`unknown` when malformed)."""
    try:
        request = template[1]
        entries = request["entries"]
        parts = []
        for name, amount, policy in entries:
            parts.append(f"{name} {_fmt_amount(amount)}" + (f" {policy}" if policy else ""))
        label = ", ".join(parts) if parts else "no resources"
        n_nodes = request.get("n_nodes") or 0
        if n_nodes:
            label = f"nodes {n_nodes}" + (", " + label if parts else "")
        return label
    except (TypeError, KeyError, IndexError, ValueError, AttributeError):
        return _UNKNOWN


def _resource_text(r) -> str:
    name = str(r.get("name", "?"))
    kind = r.get("kind")
    if kind == "range":
        n = int(r["end"]) - int(r["start"]) + 1
    elif kind == "list":
        n = len(r["labels"])
    elif kind == "groups":
        groups = r["groups"]
        n = sum(len(g) for g in groups)
        if len(groups) > 1:
            return f"{name} {n} ({len(groups)} groups)"
    elif kind == "sum":
        return f"{name} {_fmt_amount(int(r['size']))}"
    else:
        raise ValueError(kind)
    return f"{name} {n}"


def _worker_info(configuration) -> tuple[str, str]:
    """(hostname, resource shape) of a wire worker configuration, defensively."""
    hostname, resources = None, None
    if isinstance(configuration, (list, tuple)):
        if configuration and isinstance(configuration[0], str):
            hostname = configuration[0]
        if len(configuration) > 1 and isinstance(configuration[1], (list, tuple)):
            resources = configuration[1]
    elif isinstance(configuration, dict):
        h = configuration.get("hostname")
        hostname = h if isinstance(h, str) else None
        rs = configuration.get("resources")
        resources = rs if isinstance(rs, (list, tuple)) else None
    shape = _UNKNOWN
    if resources is not None:
        try:
            shape = ", ".join(_resource_text(r) for r in resources) or "no resources"
        except (TypeError, KeyError, ValueError, AttributeError):
            shape = _UNKNOWN
    return hostname or _UNKNOWN, shape


def _quantile(sorted_values: list, q: float) -> float:
    n = len(sorted_values)
    pos = (n - 1) * q
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return sorted_values[lo] * (1 - frac) + sorted_values[hi] * frac


# -------------------------------------------------------------------------------- time series
class _Series:
    """A step function (changed by `add(t, delta)`) sampled into `n` equal buckets of
    [ws, we]: time-weighted average and peak per bucket.

    O(1) per change: a change `d` at `t` in bucket `j` adds `d * (end of j - t)` to the area of
    `j` and `d * width` to every later bucket; the latter is summed once in `finish`.
    """

    __slots__ = ("ws", "we", "width", "inv", "n", "v", "v0", "local", "delta", "peak",
                 "area")

    def __init__(self, ws: float, we: float, n: int):
        self.ws = ws
        self.we = we
        self.n = n
        self.width = (we - ws) / n
        self.inv = n / (we - ws)
        self.v = 0      # current value
        self.v0 = 0     # value at ws
        self.local = [0.0] * n
        self.delta = [0] * n
        self.peak = [0] * n
        self.area: list[float] | None = None

    def add(self, t: float, d: int) -> None:
        v = self.v = self.v + d
        if t < self.ws:
            self.v0 += d
            return
        if t > self.we:
            return
        j = int((t - self.ws) * self.inv)
        if j >= self.n:
            j = self.n - 1
        self.local[j] += d * (self.ws + (j + 1) * self.width - t)
        self.delta[j] += d
        if v > self.peak[j]:
            self.peak[j] = v

    def finish(self) -> None:
        width = self.width
        v = self.v0
        area = []
        peak = self.peak
        for i, (loc, d) in enumerate(zip(self.local, self.delta)):
            area.append(loc + v * width)
            if v > peak[i]:
                peak[i] = v
            v += d
        self.area = area

    def averages(self) -> list[float]:
        w = self.width
        return [max(a / w, 0.0) for a in self.area]


class _Job:
    __slots__ = ("id", "name", "small", "big", "last", "n_tasks", "created", "state", "types")

    def __init__(self, job_id, name, created):
        self.id = job_id
        self.name = name
        self.small: dict[int, int] = {}
        self.big: list[tuple[IntRanges, int]] = []
        self.last: tuple[IntRanges, int] | None = None  # the batch of the last lookup
        self.n_tasks = 0
        self.created = created
        self.state = "open"
        self.types: list[int] = []


class _Worker:
    __slots__ = ("id", "hostname", "shape", "connected", "lost", "reason", "active")

    def __init__(self, wid, hostname, shape, connected):
        self.id = wid
        self.hostname = hostname
        self.shape = shape
        self.connected = connected
        self.lost = None
        self.reason = ""
        self.active = True


# ------------------------------------------------------------------------------------- folding
def _clean(records) -> tuple[list, float | None, float | None, float | None]:
    """Well-formed records (list as given when all are), min and max time, first server start."""
    tmin = tmax = first_start = None
    bad = False
    for rec in records:
        try:
            t, kind, p = rec
        except (TypeError, ValueError):
            bad = True
            continue
        tt = type(t)
        if (tt is not float and tt is not int) or type(kind) is not str or t != t \
                or not isinstance(p, dict):
            bad = True
            continue
        if tmin is None:
            tmin = tmax = t
        elif t < tmin:
            tmin = t
        elif t > tmax:
            tmax = t
        if first_start is None and kind == "server-start":
            first_start = t
    if bad:
        good = []
        for rec in records:
            try:
                t, kind, p = rec
            except (TypeError, ValueError):
                continue
            tt = type(t)
            if (tt is float or tt is int) and type(kind) is str and t == t \
                    and isinstance(p, dict):
                good.append(rec)
        records = good
        if good:
            tmin = min(r[0] for r in good)
            tmax = max(r[0] for r in good)
    return records, tmin, tmax, first_start


class _Fold:
    def __init__(self, ws: float, we: float, n_buckets: int, count: bool = True):
        self.ws, self.we = ws, we
        # Events are counted in [cs, ce]: nothing when the window is empty.
        self.cs, self.ce = (ws, we) if count else (math.inf, -math.inf)
        self.n = n_buckets
        self.tasks = _Series(ws, we, n_buckets)
        self.workers_total = _Series(ws, we, n_buckets)
        self.shape_series: dict[str, _Series] = {}
        self.jobs: dict[int, _Job] = {}
        self.workers: dict[int, _Worker] = {}
        self.type_ids: dict[str, int] = {}
        self.type_labels: list[str] = []
        self.running: dict[tuple, tuple] = {}  # (job, task) -> (start, worker, type)
        self.started: list[int] = []
        self.finished: list[int] = []
        self.failed: list[int] = []
        self.durations: list[list[float]] = []
        self.n_started = self.n_finished = self.n_failed = 0
        self.n_canceled = self.n_aborted = 0
        self.n_events = 0
        self.jobs_in_window: set = set()
        self.servers: list[list] = []  # [start, uid, stop]
        self.failures: deque = deque(maxlen=_MAX_FAILURES)
        self.unknown_kinds = 0
        self.malformed = 0

    def type_of_label(self, label: str) -> int:
        ty = self.type_ids.get(label)
        if ty is None:
            ty = len(self.type_labels)
            self.type_ids[label] = ty
            self.type_labels.append(label)
            self.started.append(0)
            self.finished.append(0)
            self.failed.append(0)
            self.durations.append([])
        return ty

    def task_type(self, job, task) -> int:
        ji = self.jobs.get(job)
        if ji is not None:
            ty = ji.small.get(task)
            if ty is not None:
                return ty
            last = ji.last
            if last is not None and task in last[0]:
                return last[1]
            for item in ji.big:
                if task in item[0]:
                    ji.last = item
                    return item[1]
        return self.type_of_label(_UNKNOWN)

    def shape_of(self, shape: str) -> _Series:
        s = self.shape_series.get(shape)
        if s is None:
            if len(self.shape_series) >= _MAX_SHAPES and shape != "other shapes":
                return self.shape_of("other shapes")
            s = self.shape_series[shape] = _Series(self.ws, self.we, self.n)
        return s

    # ------------------------------------------------------------------------------- the fold
    def run(self, records) -> None:
        ws, we = self.cs, self.ce
        running = self.running
        tasks_add = self.tasks.add
        task_type = self.task_type
        started, finished, failed = self.started, self.finished, self.failed
        durations = self.durations
        n_events = n_started = n_finished = n_failed = 0
        for rec in records:
            t = rec[0]
            inside = ws <= t <= we
            if inside:
                n_events += 1
            try:
                e = from_record(rec)
                match e:
                    case ev.TaskStarted(job=job, task=task):
                        key = (job, task)
                        ty = task_type(job, task)
                        if key not in running:
                            tasks_add(t, 1)
                        running[key] = (t, e.worker, ty)
                        if inside:
                            n_started += 1
                            started[ty] += 1
                    case ev.TaskFinished(job=job, task=task) | ev.TaskFailed(job=job, task=task):
                        r = running.pop((job, task), None)
                        if r is not None:
                            tasks_add(t, -1)
                            ty = r[2]
                        else:
                            ty = task_type(job, task)
                        if inside:
                            if type(e) is ev.TaskFinished:
                                n_finished += 1
                                finished[ty] += 1
                                if r is not None:
                                    durations[ty].append(t - r[0])
                            else:
                                n_failed += 1
                                failed[ty] += 1
                                self.failures.append((t, job, task, e.error))
                    case ev.TaskCanceled(job=job, tasks=ids):  # and TaskAborted
                        for tid in ids:
                            if running.pop((job, tid), None) is not None:
                                tasks_add(t, -1)
                        if inside:
                            if type(e) is ev.TaskCanceled:
                                self.n_canceled += len(ids)
                            else:
                                self.n_aborted += len(ids)
                    case ev.JobCreated():
                        self._job_created(t, e, inside)
                    case ev.JobOpen(job=jid):
                        if jid not in self.jobs:
                            self.jobs[jid] = _Job(jid, e.name, t)
                        if inside:
                            self.jobs_in_window.add(jid)
                    case ev.JobCompleted(job=jid):
                        ji = self.jobs.get(jid)
                        if ji is not None and ji.state != "canceled":
                            ji.state = "completed"
                    case ev.JobCancel(job=jid):
                        ji = self.jobs.get(jid)
                        if ji is not None:
                            ji.state = "canceled"
                    case ev.JobClose(job=jid):
                        ji = self.jobs.get(jid)
                        if ji is not None and ji.state == "open":
                            ji.state = "closed"
                    case ev.JobForget(job=jid):
                        ji = self.jobs.get(jid)
                        if ji is not None:
                            ji.state = "forgotten"
                    case ev.WorkerConnected():
                        self._worker_connected(t, e)
                    case ev.WorkerLost():
                        self._worker_lost(t, e)
                    case ev.WorkerReconnected():
                        self._worker_reconnected(t, e)
                    case ev.ServerStart(server_uid=uid):
                        self.servers.append([t, uid, None])
                    case ev.ServerStop():
                        if self.servers and self.servers[-1][2] is None:
                            self.servers[-1][2] = t
                    case ev.WorkerOverview() | ev.IdFloor():
                        pass  # hardware usage, a prune's id bookkeeping: not charted
                    case _:
                        self.unknown_kinds += 1
            except (TypeError, ValueError, KeyError, IndexError, AttributeError):
                self.malformed += 1  # (EventError is a ValueError)
        self.n_events += n_events
        self.n_started += n_started
        self.n_finished += n_finished
        self.n_failed += n_failed
        self.tasks.finish()
        self.workers_total.finish()
        for s in self.shape_series.values():
            s.finish()

    def _job_created(self, t, e: ev.JobCreated, inside) -> None:
        jid = e.job
        name = e.name
        ji = self.jobs.get(jid)
        if ji is None:
            ji = self.jobs[jid] = _Job(jid, name, t)
        elif ji.name is None:
            ji.name = name
        if inside:
            self.jobs_in_window.add(jid)
        batches = e.batches
        if not isinstance(batches, (list, tuple)):
            return
        for batch in batches:
            try:
                template, ids_text = batch[0], batch[1]
                rng = IntRanges.parse(ids_text)
            except (TypeError, IndexError, KeyError, ValueError):
                continue
            ty = self.type_of_label(_request_label(template))
            if ty not in ji.types:
                ji.types.append(ty)
            n = len(rng)
            ji.n_tasks += n
            if n <= _SMALL_BATCH:
                small = ji.small
                for i in rng:
                    small[i] = ty
            else:
                ji.big.append((rng, ty))

    def _worker_connected(self, t, e: ev.WorkerConnected) -> None:
        wid = e.worker
        hostname, shape = _worker_info(e.configuration)
        old = self.workers.get(wid)
        if old is not None and old.active:
            self._deactivate(old, t)
        w = self.workers[wid] = _Worker(wid, hostname, shape, t)
        self._activate(w, t)

    def _activate(self, w: _Worker, t) -> None:
        w.active = True
        self.workers_total.add(t, 1)
        self.shape_of(w.shape).add(t, 1)

    def _deactivate(self, w: _Worker, t) -> None:
        w.active = False
        self.workers_total.add(t, -1)
        self.shape_of(w.shape).add(t, -1)

    def _drop_tasks_of(self, wid, t, keep=()) -> None:
        running = self.running
        gone = [k for k, r in running.items() if r[1] == wid and k not in keep]
        for k in gone:
            del running[k]
            self.tasks.add(t, -1)

    def _worker_lost(self, t, e: ev.WorkerLost) -> None:
        wid = e.worker
        w = self.workers.get(wid)
        if w is not None:
            if w.active:
                self._deactivate(w, t)
            w.lost = t
            w.reason = str(e.reason)
        self._drop_tasks_of(wid, t)

    def _worker_reconnected(self, t, e: ev.WorkerReconnected) -> None:
        wid = e.worker
        w = self.workers.get(wid)
        config = e.configuration
        if w is None:
            hostname, shape = _worker_info(config)
            w = self.workers[wid] = _Worker(wid, hostname, shape, t)
            self._activate(w, t)
        elif not w.active:
            self._activate(w, t)
            w.lost = None
            w.reason = ""
        # Tasks the worker did not report are requeued without an event of their own.
        keep = set()
        for item in e.running or ():
            try:
                keep.add((item[0], item[1]))
            except (TypeError, IndexError, KeyError):
                pass
        for item in e.results or ():
            try:
                keep.add((item[1], item[2]))
            except (TypeError, IndexError, KeyError):
                pass
        self._drop_tasks_of(wid, t, keep)


# ------------------------------------------------------------------------------------- charts
_W, _H = 960, 280
_ML, _MR, _MT, _MB = 64, 16, 16, 40


def _nice_step(span: float, target: int = 6) -> float:
    if span <= 0:
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


_TIME_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60,
               120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800,
               604800)


def _time_step(span: float, target: int = 8) -> float:
    raw = span / target
    for s in _TIME_STEPS:
        if s >= raw:
            return s
    return _nice_step(span / 86400, target) * 86400


def _svg_open(title: str, height: int = _H) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height}" '
            f'width="{_W}" height="{height}" role="img" aria-label="{escape(title)}">',
            f'<title>{escape(title)}</title>']


def _y_axis(parts: list, vmax: float, height: int, label: str, integer: bool) -> float:
    """Draws the y grid and labels; returns the top value of the scale."""
    step = _nice_step(vmax or 1, 5)
    if integer:
        step = max(1, round(step)) if step >= 1 else 1
    top = step * math.ceil((vmax or 1) / step)
    ph = height - _MT - _MB
    v = 0.0
    while v <= top + step * 1e-9:
        y = _MT + ph - v / top * ph
        parts.append(f'<line {_GRID} x1="{_ML}" y1="{y:.1f}" x2="{_W - _MR}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{_ML - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{_fmt_num(round(v, 9))}</text>')
        v += step
    parts.append(f'<text class="axis" transform="translate(14,{_MT + ph / 2:.0f}) rotate(-90)" '
                 f'text-anchor="middle">{escape(label)}</text>')
    return top


def _time_axis(parts: list, t0: float, t1: float, base: float, height: int) -> None:
    """X ticks as offsets from `base` (the first server start)."""
    pw = _W - _ML - _MR
    span = t1 - t0
    step = _time_step(span)
    first = math.ceil((t0 - base) / step) * step
    k = 0
    off = first
    while base + off <= t1 + step * 1e-9 and k < 40:
        x = _ML + (base + off - t0) / span * pw
        parts.append(f'<line {_GRID} x1="{x:.1f}" y1="{_MT}" x2="{x:.1f}" '
                     f'y2="{height - _MB}"/>')
        parts.append(f'<text class="tick" x="{x:.1f}" y="{height - _MB + 16}" '
                     f'text-anchor="middle">{escape(_fmt_duration(off))}</text>')
        off = first + (k + 1) * step
        k += 1
    parts.append(f'<text class="axis" x="{_ML + pw / 2:.0f}" y="{height - 6}" '
                 f'text-anchor="middle">time since the first server start</text>')


def _step_points(values: list[float], scale_y, x_of) -> list[tuple[float, float]]:
    pts = []
    for i, v in enumerate(values):
        y = scale_y(v)
        pts.append((x_of(i), y))
        pts.append((x_of(i + 1), y))
    return pts


def _pts(points) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def _time_chart(title: str, stacked: list[tuple[str, list[float], str]],
                peak: list[float] | None, fold: _Fold, base: float, ylabel: str) -> str:
    """A stacked step-area chart of bucketed series (and an optional peak line)."""
    n = fold.n
    totals = [0.0] * n
    for _name, vals, _c in stacked:
        for i, v in enumerate(vals):
            totals[i] += v
    vmax = max(max(totals, default=0), max(peak, default=0) if peak else 0)
    parts = _svg_open(title)
    top = _y_axis(parts, vmax, _H, ylabel, True)
    _time_axis(parts, fold.ws, fold.we, base, _H)
    pw, ph = _W - _ML - _MR, _H - _MT - _MB

    def x_of(i):
        return _ML + i / n * pw

    def scale_y(v):
        return _MT + ph - v / top * ph

    lower = [0.0] * n
    for name, vals, color in stacked:
        upper = [lo + v for lo, v in zip(lower, vals)]
        top_pts = _step_points(upper, scale_y, x_of)
        bottom_pts = _step_points(lower, scale_y, x_of)[::-1]
        parts.append(f'<polygon points="{_pts(top_pts + bottom_pts)}" fill="{color}" '
                     f'fill-opacity="0.75" stroke="{color}" stroke-width="1">'
                     f'<title>{escape(name)}</title></polygon>')
        lower = upper
    if peak is not None:
        parts.append(f'<polyline points="{_pts(_step_points(peak, scale_y, x_of))}" '
                     f'fill="none" stroke="#333" stroke-width="1" stroke-dasharray="3,2">'
                     f'<title>peak per bucket</title></polyline>')
    parts.append(f'<rect {_FRAME} x="{_ML}" y="{_MT}" width="{pw}" height="{ph}"/>')
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{c}"></i>{escape(name)}</span>'
                     for name, _v, c in stacked)
    if peak is not None:
        legend += '<span class="key"><i class="dash"></i>peak in bucket</span>'
    return "\n".join(parts) + f'\n<div class="legend">{legend}</div>'


def _bar_chart(fold: _Fold, types: list[int]) -> str:
    title = "Finished and failed tasks per task type"
    k = len(types)
    vmax = max((max(fold.finished[t], fold.failed[t]) for t in types), default=0)
    parts = _svg_open(title)
    top = _y_axis(parts, vmax, _H, "tasks", True)
    pw, ph = _W - _ML - _MR, _H - _MT - _MB
    gw = pw / max(k, 1)
    bw = min(40.0, gw * 0.38)
    for j, ty in enumerate(types):
        gx = _ML + j * gw + gw / 2
        for off, value, color, what in ((-bw, fold.finished[ty], _COLOR_FINISHED, "finished"),
                                        (0, fold.failed[ty], _COLOR_FAILED, "failed")):
            h = value / top * ph
            x = gx + off
            parts.append(f'<rect x="{x:.1f}" y="{_MT + ph - h:.1f}" width="{bw:.1f}" '
                         f'height="{h:.1f}" fill="{color}"><title>T{ty + 1} {what}: {value}'
                         f'</title></rect>')
            if gw >= 28:
                parts.append(f'<text class="val" x="{x + bw / 2:.1f}" y="{_MT + ph - h - 3:.1f}" '
                             f'text-anchor="middle">{value}</text>')
        parts.append(f'<text class="tick" x="{gx:.1f}" y="{_H - _MB + 16}" '
                     f'text-anchor="middle">T{ty + 1}</text>')
    parts.append(f'<rect {_FRAME} x="{_ML}" y="{_MT}" width="{pw}" height="{ph}"/>')
    parts.append("</svg>")
    legend = (f'<span class="key"><i style="background:{_COLOR_FINISHED}"></i>finished</span>'
              f'<span class="key"><i style="background:{_COLOR_FAILED}"></i>failed</span>')
    return "\n".join(parts) + f'\n<div class="legend">{legend}</div>'


def _box_chart(stats: list[tuple[int, tuple]]) -> str:
    """Box plot (min, quartiles, max) of the durations per type; log scale for wide spreads."""
    title = "Durations of finished tasks per task type"
    lo = min(s[1][0] for s in stats)
    hi = max(s[1][4] for s in stats)
    log = lo > 0 and hi / lo > 100
    parts = _svg_open(title)
    pw, ph = _W - _ML - _MR, _H - _MT - _MB
    if log:
        e0 = math.floor(math.log10(lo))
        e1 = max(math.ceil(math.log10(hi)), e0 + 1)

        def scale_y(v):
            v = max(v, 10.0 ** e0)
            return _MT + ph - (math.log10(v) - e0) / (e1 - e0) * ph

        for e in range(e0, e1 + 1):
            y = scale_y(10.0 ** e)
            parts.append(f'<line {_GRID} x1="{_ML}" y1="{y:.1f}" x2="{_W - _MR}" '
                         f'y2="{y:.1f}"/>')
            parts.append(f'<text class="tick" x="{_ML - 6}" y="{y + 4:.1f}" text-anchor="end">'
                         f'{escape(_fmt_duration(10.0 ** e))}</text>')
        parts.append(f'<text class="axis" transform="translate(14,{_MT + ph / 2:.0f}) '
                     f'rotate(-90)" text-anchor="middle">duration (log scale)</text>')
    else:
        vmax = hi if hi > 0 else 1.0
        step = _nice_step(vmax, 5)
        top = step * math.ceil(vmax / step)

        def scale_y(v):
            return _MT + ph - v / top * ph

        v = 0.0
        while v <= top + step * 1e-9:
            y = scale_y(v)
            parts.append(f'<line {_GRID} x1="{_ML}" y1="{y:.1f}" x2="{_W - _MR}" '
                         f'y2="{y:.1f}"/>')
            parts.append(f'<text class="tick" x="{_ML - 6}" y="{y + 4:.1f}" text-anchor="end">'
                         f'{escape(_fmt_duration(v))}</text>')
            v += step
        parts.append(f'<text class="axis" transform="translate(14,{_MT + ph / 2:.0f}) '
                     f'rotate(-90)" text-anchor="middle">duration</text>')
    gw = pw / len(stats)
    bw = min(50.0, gw * 0.5)
    for j, (ty, (mn, q1, med, q3, mx, mean, count)) in enumerate(stats):
        cx = _ML + j * gw + gw / 2
        color = _PALETTE[ty % len(_PALETTE)]
        tip = (f"T{ty + 1}: {count} tasks; min {_fmt_duration(mn)}, q1 {_fmt_duration(q1)}, "
               f"median {_fmt_duration(med)}, q3 {_fmt_duration(q3)}, max {_fmt_duration(mx)}, "
               f"mean {_fmt_duration(mean)}")
        ymin, yq1, ymed, yq3, ymax = (scale_y(v) for v in (mn, q1, med, q3, mx))
        parts.append(f'<g><title>{escape(tip)}</title>')
        parts.append(f'<line x1="{cx:.1f}" y1="{ymax:.1f}" x2="{cx:.1f}" y2="{ymin:.1f}" '
                     f'stroke="#333"/>')
        for y in (ymin, ymax):
            parts.append(f'<line x1="{cx - bw / 4:.1f}" y1="{y:.1f}" x2="{cx + bw / 4:.1f}" '
                         f'y2="{y:.1f}" stroke="#333"/>')
        parts.append(f'<rect x="{cx - bw / 2:.1f}" y="{yq3:.1f}" width="{bw:.1f}" '
                     f'height="{max(yq1 - yq3, 1):.1f}" fill="{color}" fill-opacity="0.8" '
                     f'stroke="#333"/>')
        parts.append(f'<line x1="{cx - bw / 2:.1f}" y1="{ymed:.1f}" x2="{cx + bw / 2:.1f}" '
                     f'y2="{ymed:.1f}" stroke="#000" stroke-width="2"/>')
        parts.append("</g>")
        parts.append(f'<text class="tick" x="{cx:.1f}" y="{_H - _MB + 16}" '
                     f'text-anchor="middle">T{ty + 1}</text>')
    parts.append(f'<rect {_FRAME} x="{_ML}" y="{_MT}" width="{pw}" height="{ph}"/>')
    parts.append("</svg>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------- page
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:24px auto;max-width:1000px;color:#222;padding:0 12px}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;
border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#777}.notice{background:#fff7e0;border:1px solid #f0d890;padding:8px 12px}
svg{max-width:100%;height:auto;display:block}
svg .grid{stroke:#e6e6e6;stroke-width:1}svg .frame{fill:none;stroke:#999}
svg text{font-size:11px;fill:#444}svg .axis{font-size:12px;fill:#222}svg .val{font-size:10px}
.legend{font-size:.9em;margin:4px 0 0 64px}.key{margin-right:16px;white-space:nowrap}
.key i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px}
.key i.dash{border-top:2px dashed #333;height:0;vertical-align:3px}
code{font-size:.95em}
"""


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    """Rows of already-escaped cell HTML."""
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header)
           + "</tr></thead>", "<tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _first_rows(body: list[str], items: list, noun: str) -> list:
    """The first `_MAX_TABLE_ROWS` items; says so in `body` when there are more."""
    shown = items[:_MAX_TABLE_ROWS]
    if len(items) > len(shown):
        body.append(f'<p class="muted">Showing the first {len(shown)} of {len(items)} '
                    f"{noun}.</p>")
    return shown


def _offset(t: float | None, base: float) -> str:
    if t is None:
        return ""
    return f'{escape(_iso(t))} <span class="muted">(+{escape(_fmt_duration(t - base))})</span>'


def render_report(records, start_time: float | None = None,
                  end_time: float | None = None) -> str:
    """A self-contained HTML report of journal `records` (`[time, kind, payload]` items).

    `start_time` / `end_time` are offsets in seconds from the first server start (the first
    record when there is none) that limit the report to a window.
    """
    # The fold allocates many small long-lived objects (running tasks, durations): the cyclic
    # collector would rescan the (large) records list over and over, doubling the time.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _render(records, start_time, end_time)
    finally:
        if enabled:
            gc.enable()


def _render(records, start_time: float | None, end_time: float | None) -> str:
    records, tmin, tmax, first_start = _clean(records)
    title = "HyperQueue journal report"
    if tmin is None:
        return _page(title, [f"<h1>{escape(title)}</h1>",
                             '<p class="notice">The journal contains no events.</p>'])
    base = first_start if first_start is not None else tmin
    ws = base + float(start_time) if start_time is not None else tmin
    we = base + float(end_time) if end_time is not None else tmax
    if ws < tmin and start_time is None:
        ws = tmin
    empty_window = we < ws
    if empty_window:
        we = ws
    span = we - ws
    n_buckets = MAX_BUCKETS if span > 0 else 1
    fold = _Fold(ws, we if span > 0 else ws + 1.0, n_buckets, count=not empty_window)
    fold.run(records)

    body = [f"<h1>{escape(title)}</h1>"]
    body.append(f'<p>Time range: {escape(_iso(ws))} &ndash; {escape(_iso(we))} '
                f'({escape(_fmt_duration(we - ws))})'
                + (f' <span class="muted">(window +{escape(_fmt_duration(ws - base))} to '
                   f'+{escape(_fmt_duration(we - base))} from the first server start)</span>'
                   if start_time is not None or end_time is not None else "") + "</p>")
    if fold.n_events == 0:
        body.append('<p class="notice">There are no events in the selected time window.</p>')

    # Servers
    if fold.servers:
        starts = ", ".join(escape(_iso(s[0])) for s in fold.servers)
        body.append(f"<p>Server start time{'s' if len(fold.servers) > 1 else ''}: {starts}</p>")
    else:
        body.append('<p class="muted">The journal has no server start event.</p>')

    # Workers in the window
    workers = [] if empty_window else [
        w for w in fold.workers.values() if w.connected <= we and (w.lost is None or w.lost >= ws)]
    max_workers = 0 if empty_window else max(fold.workers_total.peak, default=0)
    max_tasks = 0 if empty_window else max(fold.tasks.peak, default=0)
    summary = [
        ("Time range", f"{escape(_iso(ws))} &ndash; {escape(_iso(we))}"),
        ("Total time", escape(_fmt_duration(we - ws))),
        ("Events in window", str(fold.n_events)),
        ("Server starts", str(sum(1 for s in fold.servers if ws <= s[0] <= we))),
        ("Jobs", str(len(fold.jobs_in_window))),
        ("Tasks started", str(fold.n_started)),
        ("Tasks finished", str(fold.n_finished)),
        ("Tasks failed", str(fold.n_failed)),
        ("Tasks canceled", str(fold.n_canceled)),
        ("Tasks aborted", str(fold.n_aborted)),
        ("Task types", str(sum(1 for i in range(len(fold.type_labels))
                               if fold.started[i] or fold.finished[i] or fold.failed[i]))),
        ("Workers seen", str(len(workers))),
        ("Max concurrent workers", str(max_workers)),
        ("Max concurrent running tasks", str(max_tasks)),
    ]
    body.append("<h2>Summary</h2>")
    body.append('<table class="summary"><tbody>' + "".join(
        f'<tr><th>{escape(k)}</th><td class="n">{v}</td></tr>' for k, v in summary)
        + "</tbody></table>")

    if fold.servers:
        body.append("<h2>Server runs</h2>")
        body.append(_table(["#", "Server UID", "Started", "Stopped"], [
            [str(i + 1), escape(str(uid if uid is not None else "")), _offset(start, base),
             _offset(stop, base)] for i, (start, uid, stop) in enumerate(fold.servers)],
            {0}))

    # Global worker statistics
    body.append("<h2>Global worker statistics</h2>")
    if fold.shape_series and max_workers:
        shapes = sorted(fold.shape_series.items(), key=lambda kv: kv[0] == "other shapes")
        stacked = [(name, s.averages(), _PALETTE[i % len(_PALETTE)])
                   for i, (name, s) in enumerate(shapes)]
        body.append('<p class="muted">Connected workers over time per resource shape '
                    f'(average per time bucket of {escape(_fmt_duration(fold.tasks.width))}).'
                    "</p>")
        body.append(_time_chart("Running workers over time", stacked,
                                [float(v) for v in fold.workers_total.peak], fold, base,
                                "workers"))
    else:
        body.append("<p>No workers in the window.</p>")

    body.append("<h2>Running tasks</h2>")
    if max_tasks:
        body.append('<p class="muted">Running tasks over time (average and peak per time '
                    f'bucket of {escape(_fmt_duration(fold.tasks.width))}).</p>')
        body.append(_time_chart("Running tasks over time",
                                [("running tasks", fold.tasks.averages(), _PALETTE[0])],
                                [float(v) for v in fold.tasks.peak], fold, base, "tasks"))
    else:
        body.append("<p>No running tasks in the window.</p>")

    # Task types
    types = [i for i in range(len(fold.type_labels))
             if fold.started[i] or fold.finished[i] or fold.failed[i]]
    body.append("<h2>Task counts</h2>")
    if types:
        rows = []
        stats = []
        for ty in types:
            durs = fold.durations[ty]
            if durs:
                durs.sort()
                st = (durs[0], _quantile(durs, 0.25), _quantile(durs, 0.5),
                      _quantile(durs, 0.75), durs[-1], math.fsum(durs) / len(durs), len(durs))
                stats.append((ty, st))
                dtext = [escape(_fmt_duration(v)) for v in (st[0], st[2], st[5], st[4])]
            else:
                dtext = ["", "", "", ""]
            rows.append([f"T{ty + 1}", f"<code>{escape(fold.type_labels[ty])}</code>",
                         str(fold.started[ty]), str(fold.finished[ty]), str(fold.failed[ty]),
                         *dtext])
        chart_types = types[:_MAX_CHART_TYPES]
        if len(types) > len(chart_types):
            body.append(f'<p class="muted">The charts show the first {len(chart_types)} of '
                        f"{len(types)} task types.</p>")
        body.append(_bar_chart(fold, chart_types))
        body.append("<h3>Task types</h3>")
        body.append('<p class="muted">A task type is the resource request of the tasks.</p>')
        body.append(_table(["Type", "Resource request", "Started", "Finished", "Failed",
                            "Min duration", "Median", "Mean", "Max duration"], rows,
                           {2, 3, 4, 5, 6, 7, 8}))
        body.append("<h2>Task durations</h2>")
        chart_stats = [s for s in stats if s[0] in set(chart_types)]
        if chart_stats:
            body.append('<p class="muted">Box: first quartile to third quartile, thick line: '
                        "median, whiskers: minimum and maximum.</p>")
            body.append(_box_chart(chart_stats))
        else:
            body.append("<p>No finished task with a known start in the window.</p>")
    else:
        body.append("<p>No task started or ended in the window.</p>")

    # Workers table
    body.append("<h2>Workers</h2>")
    if workers:
        workers.sort(key=lambda w: (w.connected, str(w.id)))
        shown = _first_rows(body, workers, "workers")
        body.append(_table(["ID", "Hostname", "Resources", "Connected", "Lost", "Reason"], [
            [escape(str(w.id)), escape(w.hostname), escape(w.shape), _offset(w.connected, base),
             _offset(w.lost, base), escape(w.reason)] for w in shown], {0}))
    else:
        body.append("<p>No workers in the window.</p>")

    # Jobs table
    jobs = [fold.jobs[j] for j in fold.jobs_in_window if j in fold.jobs]
    body.append("<h2>Jobs</h2>")
    if jobs:
        jobs.sort(key=lambda j: (j.created, str(j.id)))
        shown = _first_rows(body, jobs, "jobs")
        body.append(_table(["ID", "Name", "Tasks", "Task types", "Created", "State"], [
            [escape(str(j.id)), escape(str(j.name if j.name is not None else "")),
             str(j.n_tasks), escape(", ".join(f"T{t + 1}" for t in j.types)),
             _offset(j.created, base), escape(j.state)] for j in shown], {0, 2}))
    else:
        body.append("<p>No jobs in the window.</p>")

    if fold.failures:
        body.append("<h2>Task failures</h2>")
        note = "last " if fold.n_failed > len(fold.failures) else ""
        body.append(f'<p class="muted">The {note}{len(fold.failures)} task failures in the '
                    "window.</p>")
        rows = []
        for t, job, task, error in fold.failures:
            err = "" if error is None else str(error)
            if len(err) > 500:
                err = err[:500] + "…"
            rows.append([_offset(t, base), escape(str(job)), escape(str(task)),
                         f"<code>{escape(err)}</code>"])
        body.append(_table(["Time", "Job", "Task", "Error"], rows, {1, 2}))
    return _page(title, body)
