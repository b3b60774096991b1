"""The interactive dashboard (textual): Jobs, Workers and Allocations screens over a `Timeline`.

Keys (as upstream's dashboard): `q` quit; `j`/`w`/`a` screens; arrows select; `1`/`2` focus the
first/second table; `i` inspect (worker detail); Backspace back; Esc clear; timeline `o` earlier,
`p` later, `k` zoom in, `l` zoom out, `r` back to live; `c` cycles the CPU view. Beyond
upstream: `x` cancels the selected job (asks first), `s`/`e` open the selected task's
stdout/stderr in `$PAGER` (default `less`).

Records arrive in a deque (from `source.LiveSource` or a journal file); a periodic tick folds at
most `MAX_RECORDS_PER_TICK` of them into the model and redraws the visible screen at most every
`REDRAW` seconds, so a long history or a burst of events never freezes the keys.
"""

from __future__ import annotations

import collections
import os
import shlex
import subprocess
import time

from rich.text import Text
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import ContentSwitcher, DataTable, Footer, Static

from . import render as R
from .model import FAILED, Timeline

TICK = 0.1
REDRAW = 0.5
MAX_RECORDS_PER_TICK = 50_000
MIN_SPAN = 1.0
REASONS_EVERY = 5.0  # seconds between asking a live server about its allocation queues


class Plain(Static):
    """A Static whose strings are plain text, never markup (`[###...]` bars, commands with
    brackets)."""

    def __init__(self, content: str = "", **kw):
        super().__init__(Text(content), **kw)
        self.text = content  # what it shows (for tests and --once-like reads)

    def update(self, content="", **kw) -> None:
        self.text = str(content)
        super().update(Text(content) if isinstance(content, str) else content, **kw)


class ConfirmCancel(ModalScreen[bool]):
    """`Cancel job N? (y/n)`"""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "No")]
    DEFAULT_CSS = """
    ConfirmCancel { align: center middle; }
    ConfirmCancel > Static { width: 60; height: 5; border: thick $error; padding: 1 2;
                             background: $surface; }
    """

    def __init__(self, job_id: int, name: str):
        super().__init__()
        self.text = f"Cancel job {job_id} ({name})? y = cancel, n = keep"

    def compose(self) -> ComposeResult:
        yield Static(self.text, id="confirm-text")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class DashboardApp(App):
    TITLE = "HyperQueue dashboard"
    CSS = """
    Screen { overflow: hidden hidden; }
    #screens { height: 1fr; }
    #jobs, #workers, #worker-detail, #allocations { height: 1fr; }
    #status { height: 1; background: $primary-darken-2; }
    #timeline { height: 1; background: $boost; }
    #notice { height: auto; max-height: 2; color: $warning; }
    DataTable { height: 1fr; }
    .pane { width: 1fr; }
    .detail { width: 1fr; border-left: solid $primary; padding: 0 1; }
    #jobs-top, #jobs-bottom { height: 1fr; }
    #workers-chart { height: 1; }
    #alloc-empty { padding: 1 2; }
    #alloc-timeline { height: auto; max-height: 12; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("j", "show('jobs')", "Jobs"),
        Binding("w", "show('workers')", "Workers"),
        Binding("a", "show('allocations')", "Allocations"),
        Binding("1", "focus_pane(0)", "Pane 1", show=False),
        Binding("2", "focus_pane(1)", "Pane 2", show=False),
        Binding("i", "inspect", "Inspect"),
        Binding("backspace", "back", "Back", show=False),
        Binding("escape", "clear", "Clear", show=False),
        Binding("o", "earlier", "Earlier"),
        Binding("p", "later", "Later"),
        Binding("k", "zoom_in", "Zoom in"),
        Binding("l", "zoom_out", "Zoom out"),
        Binding("r", "live", "Live"),
        Binding("c", "cpu_mode", "CPU view", show=False),
        Binding("x", "cancel_job", "Cancel job"),
        Binding("s", "pager('stdout')", "Stdout", show=False),
        Binding("e", "pager('stderr')", "Stderr", show=False),
    ]

    def __init__(self, *, source=None, records=None, server_dir: str | None = None,
                 replay_path: str | None = None, notice: str | None = None,
                 clock=time.monotonic):
        super().__init__()
        self.timeline = Timeline()
        self.items: collections.deque = source.items if source is not None else \
            collections.deque()
        if records is not None:
            self.items.append(("records", list(records)))
            self.items.append(("live",))
        self.source = source
        self.server_dir = server_dir
        self.replay_path = replay_path
        self.live_reached = records is not None and source is None
        self.view_end: float | None = None
        self.span: float | None = None  # None: the whole history
        self.cpu_mode = 0
        self.inspected_worker: int | None = None
        self.screen_name = "jobs"
        self.notice = notice or ""
        self._dirty = True
        self._last_draw = -1e9
        self._clock = clock
        self._pending: list = []  # records of the current item not applied yet
        self.first_frame_at: float | None = None  # clock time the full history was first drawn
        self.first_draw_at: float | None = None  # clock time of the first frame (maybe loading)
        self.pager_runs: list = []  # [argv] (for tests and the status line)
        self.alloc_reasons: dict = {}  # queue id -> the live server's decision lines
        self._reasons_due = 0.0

    # -- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Plain("", id="status")
        yield Plain("", id="timeline")
        yield Plain("", id="notice")
        with ContentSwitcher(initial="jobs", id="screens"):
            with Vertical(id="jobs"):
                with Horizontal(id="jobs-top"):
                    yield DataTable(id="jobs-table", classes="pane", cursor_type="row")
                    with VerticalScroll(classes="detail"):
                        yield Plain("", id="job-detail")
                with Horizontal(id="jobs-bottom"):
                    yield DataTable(id="tasks-table", classes="pane", cursor_type="row")
                    with VerticalScroll(classes="detail"):
                        yield Plain("", id="counts-chart")
                        yield Plain("", id="task-detail")
            with Vertical(id="workers"):
                yield DataTable(id="workers-table", cursor_type="row")
                yield Plain("", id="workers-chart")
            with VerticalScroll(id="worker-detail"):
                yield Plain("", id="worker-detail-text")
            with Vertical(id="allocations"):
                yield Plain(R.ALLOC_EMPTY, id="alloc-empty")
                yield DataTable(id="queues-table", cursor_type="row")
                yield DataTable(id="allocs-table", cursor_type="row")
                yield Plain("", id="alloc-timeline")
        yield Footer()

    def w(self, wid: str):
        """A widget of the main screen by id (also while a dialog is on top)."""
        return self._widgets[wid]

    def on_mount(self) -> None:
        self._widgets = {w.id: w for w in self.query("*") if w.id}
        self.w("jobs-table").add_columns(*R.JOB_HEADERS)
        self.w("tasks-table").add_columns(*R.TASK_HEADERS)
        self.w("workers-table").add_columns(*R.WORKER_HEADERS)
        self.w("queues-table").add_columns(*R.QUEUE_HEADERS)
        self.w("allocs-table").add_columns(*R.ALLOC_HEADERS)
        self.w("jobs-table").focus()
        if self.source is not None:
            self.source.start()
        self.set_interval(TICK, self.tick)
        self.tick()

    async def on_unmount(self) -> None:
        if self.source is not None:
            self.source.stop()

    # -- feeding --------------------------------------------------------------------------------
    def ingest(self) -> bool:
        """Folds queued records into the timeline (at most MAX_RECORDS_PER_TICK); True if
        anything changed."""
        budget = MAX_RECORDS_PER_TICK
        changed = False
        while budget > 0:
            if self._pending:
                chunk, self._pending = self._pending[:budget], self._pending[budget:]
                self.timeline.extend(chunk)
                budget -= len(chunk)
                changed = True
                continue
            if not self.items:
                break
            item = self.items.popleft()
            kind = item[0]
            if kind == "records":
                self._pending = list(item[1])
            elif kind == "live":
                self.live_reached = True
                changed = True
            elif kind == "reset":
                self.timeline = Timeline()
                self.live_reached = False
                self._pending = []
                if item[1]:
                    self.notice = item[1]
                changed = True
            elif kind == "notice":
                self.notice = item[1]
                changed = True
        return changed

    def tick(self) -> None:
        if self.ingest():
            self._dirty = True
        now = self._clock()
        complete = self.live_reached and not self._pending and not self.items
        if self._dirty and (now - self._last_draw >= REDRAW or self.first_draw_at is None
                            or (complete and self.first_frame_at is None)):
            self.redraw()
            self._last_draw = now
            if self.first_draw_at is None:
                self.first_draw_at = now
            self._dirty = False
            if complete and self.first_frame_at is None:
                self.first_frame_at = now

    # -- the view -------------------------------------------------------------------------------
    def view_model(self):
        return self.timeline.model_at(self.view_end)

    def view_time(self) -> float | None:
        return self.view_end if self.view_end is not None else self.timeline.end

    def window(self) -> tuple[float, float]:
        tl = self.timeline
        end = self.view_time() or 0.0
        start = tl.start if tl.start is not None else end
        span = self.span if self.span is not None else max(end - start, MIN_SPAN)
        return end - span, end

    def redraw(self) -> None:
        tl = self.timeline
        model = self.view_model()
        lo, hi = self.window()
        mode = f"replay {self.replay_path}" if self.replay_path else "live"
        loading = "" if self.live_reached and not self._pending else \
            f"  loading history... {len(tl.events)} events"
        self.w("status").update(
            f"HyperQueue dashboard ({mode})  [{self.screen_name}]  jobs {len(model.jobs)}  "
            f"workers {sum(1 for w in model.workers.values() if w.lost is None)}  "
            f"events {model.n_events}{loading}")
        line = R.timeline_line(tl, self.view_end, hi - lo, 50)
        if self.replay_path and self.view_end is None:
            line = line.replace("LIVE", "END ", 1)
        self.w("timeline").update(line)
        self.w("notice").update(self.notice)
        name = self.screen_name
        if name == "jobs":
            self._draw_jobs(model, lo, hi)
        elif name == "workers":
            self._draw_workers(model, lo, hi)
        elif name == "worker-detail":
            self._draw_worker_detail(model)
        else:
            self._draw_allocations(model, lo, hi)

    def _fill(self, table: DataTable, rows: list) -> None:
        """Replaces the rows (keyed by their first column), keeping the selected key."""
        selected = self._selected_key(table)
        table.clear()
        for r in rows:
            table.add_row(*[Text(str(c)) for c in r], key=str(r[0]))
        if selected is not None:
            try:
                table.move_cursor(row=table.get_row_index(selected))
            except Exception:  # the row is gone (time travel, forgotten job)
                pass

    @staticmethod
    def _selected_key(table: DataTable) -> str | None:
        if table.row_count == 0:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None

    def selected_job(self, model=None):
        model = model or self.view_model()
        key = self._selected_key(self.w("jobs-table"))
        return model.jobs.get(int(key)) if key is not None else None

    def selected_task(self) -> int | None:
        key = self._selected_key(self.w("tasks-table"))
        return int(key) if key is not None else None

    def _draw_jobs(self, model, lo, hi) -> None:
        self._fill(self.w("jobs-table"), R.job_rows(model))
        job = self.selected_job(model)
        tasks = self.w("tasks-table")
        if job is None:
            self.w("job-detail").update("No job selected." if model.jobs
                                                         else "No jobs.")
            tasks.clear()
            self.w("counts-chart").update("")
            self.w("task-detail").update("")
            return
        now = self.view_time()
        self.w("job-detail").update("\n".join(R.job_detail_lines(job, now)))
        rows, more = R.task_rows(job, now)
        self._fill(tasks, rows)
        series = R.cut(self.timeline.live.counts_series(job.id), self.view_end)
        chart = ["Task-state counts over time:"] + R.counts_chart(series, lo, hi, 40)
        extra = job.n_tasks - len(rows)
        if extra:
            chart.append(f"({extra} tasks not listed: waiting, or past the first "
                         f"{R.MAX_TASK_ROWS})")
        self.w("counts-chart").update("\n".join(chart))
        tid = self.selected_task()
        if tid is None:
            failed = [t for t, r in job.tasks.items() if r.state == FAILED]
            text = (f"{len(failed)} failed task(s); select one for its error and output paths"
                    if failed else "Select a task for its details.")
        else:
            text = "\n".join(R.task_detail_lines(job, tid, model.server_uid))
        self.w("task-detail").update(text)

    def _draw_workers(self, model, lo, hi) -> None:
        self._fill(self.w("workers-table"), R.worker_rows(model))
        series = R.cut(self.timeline.live.worker_series, self.view_end)
        self.w("workers-chart").update(R.workers_chart(series, lo, hi, 60))

    def _draw_worker_detail(self, model) -> None:
        w = model.workers.get(self.inspected_worker) if self.inspected_worker is not None \
            else None
        if w is None:
            text = (f"Worker {self.inspected_worker} does not exist at this time."
                    if self.inspected_worker is not None else "No worker selected.")
        else:
            text = "\n".join(R.worker_detail_lines(
                model, w, self.timeline.live.usage.get(w.id, []), R.CPU_MODES[self.cpu_mode],
                self.view_end, 60))
        self.w("worker-detail-text").update(
            text + "\n\n(Backspace: back to the worker list, c: CPU view)")

    def _draw_allocations(self, model, lo, hi) -> None:
        live = self.server_dir is not None and self.view_end is None
        now = self._clock()
        if live and model.alloc_records and now >= self._reasons_due:
            self._reasons_due = now + REASONS_EVERY
            ids = sorted({p.get("queue_id") for _t, _k, p in model.alloc_records
                          if isinstance(p, dict) and type(p.get("queue_id")) is int})
            self.run_worker(lambda: self._fetch_reasons(ids), thread=True, exclusive=False)
        queues, allocs = R.alloc_tables(model, self.alloc_reasons if live else None)
        self.w("alloc-empty").display = not queues
        for wid in ("#queues-table", "#allocs-table", "#alloc-timeline"):
            self.w(wid.lstrip("#")).display = bool(queues)
        self._fill(self.w("queues-table"), queues)
        self._fill(self.w("allocs-table"), allocs)
        self.w("alloc-timeline").update(
            "\n".join(["Allocation timeline (. queued, # running):"]
                      + R.alloc_timeline(model, lo, hi, 50)))

    def _fetch_reasons(self, queue_ids: list) -> None:
        """What the server says about each queue now (decision lines of `hq alloc info`)."""
        from ..client import calls
        from ..client.blocking import BlockingClient
        from ..errors import HqError

        reasons = {}
        try:
            with BlockingClient(self.server_dir) as client:
                for qid in queue_ids:
                    try:
                        info = client.call(calls.alloc_info(qid, []))
                    except HqError:
                        continue  # removed meanwhile
                    lines = info.get("decision", {}).get("lines") or []
                    reasons[qid] = "; ".join(str(x) for x in lines)[:300]
        except HqError:
            return
        self.call_from_thread(self._set_reasons, reasons)

    def _set_reasons(self, reasons: dict) -> None:
        self.alloc_reasons = reasons
        self._dirty = True

    # -- events and actions ---------------------------------------------------------------------
    def on_data_table_row_highlighted(self, event) -> None:
        if event.data_table.id in ("jobs-table", "tasks-table"):
            self._dirty = True
            self._last_draw = -1e9  # redraw the details at once

    def _switch(self, name: str) -> None:
        self.screen_name = name
        self.w("screens").current = name
        first = {"jobs": "#jobs-table", "workers": "#workers-table",
                 "allocations": "#queues-table"}.get(name)
        if first:
            self.set_focus(self.w(first.lstrip("#")))
        self._dirty = True
        self._last_draw = -1e9
        self.tick()

    def action_show(self, name: str) -> None:
        self._switch(name)

    def action_focus_pane(self, n: int) -> None:
        panes = {"jobs": ("#jobs-table", "#tasks-table"), "workers": ("#workers-table",),
                 "allocations": ("#queues-table", "#allocs-table")}.get(self.screen_name, ())
        if n < len(panes):
            self.set_focus(self.w(panes[n].lstrip("#")))  # now: keys already queued follow

    def action_inspect(self) -> None:
        if self.screen_name == "workers":
            key = self._selected_key(self.w("workers-table"))
            if key is not None:
                self.inspected_worker = int(key)
                self._switch("worker-detail")
        elif self.screen_name == "jobs":
            self.set_focus(self.w("tasks-table"))

    def action_back(self) -> None:
        if self.screen_name == "worker-detail":
            self._switch("workers")

    def action_clear(self) -> None:
        self.notice = ""
        if self.screen_name == "worker-detail":
            self.inspected_worker = None
            self._switch("workers")
        self._moved()

    def action_cpu_mode(self) -> None:
        self.cpu_mode = (self.cpu_mode + 1) % len(R.CPU_MODES)
        self._moved()

    def _moved(self) -> None:
        self._dirty = True
        self._last_draw = -1e9
        self.tick()

    def action_earlier(self) -> None:
        tl = self.timeline
        if tl.start is None:
            return
        lo, hi = self.window()
        step = max((hi - lo) / 2, MIN_SPAN / 2)
        self.view_end = max(tl.start, hi - step)
        self._moved()

    def action_later(self) -> None:
        tl = self.timeline
        if self.view_end is None or tl.end is None:
            return
        lo, hi = self.window()
        end = hi + max((hi - lo) / 2, MIN_SPAN / 2)
        self.view_end = None if end >= tl.end else end
        self._moved()

    def action_zoom_in(self) -> None:
        lo, hi = self.window()
        self.span = max(MIN_SPAN, (hi - lo) / 2)
        self._moved()

    def action_zoom_out(self) -> None:
        if self.span is None:
            return  # already the whole history
        lo, hi = self.window()
        tl = self.timeline
        total = (tl.end - tl.start) if tl.start is not None else MIN_SPAN
        span = (hi - lo) * 2
        self.span = None if span >= total else span
        self._moved()

    def action_live(self) -> None:
        self.view_end = None
        self._moved()

    def action_cancel_job(self) -> None:
        if self.screen_name != "jobs":
            return
        job = self.selected_job()
        if job is None:
            self.notice = "Select a job to cancel."
            self._moved()
            return
        if self.server_dir is None:
            self.notice = "Read-only: a replayed journal cannot cancel jobs."
            self._moved()
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.run_worker(lambda: self._cancel(job.id), thread=True, exclusive=False)
            else:
                self.notice = f"Job {job.id} not canceled."
                self._moved()

        self.push_screen(ConfirmCancel(job.id, job.name), done)

    def _cancel(self, job_id: int) -> None:
        from ..client import calls
        from ..client.blocking import BlockingClient
        from ..errors import HqError
        from ..client.wait import selector_of

        try:
            with BlockingClient(self.server_dir) as client:
                ((_job, status, n, _fin),) = client.call(calls.cancel_jobs(
                    selector_of([job_id]).to_wire(), "canceled from hq dashboard"))
            text = (f"Job {job_id} canceled ({n} tasks)." if status != "not-found"
                    else f"Job {job_id} not found.")
        except (HqError, ValueError) as e:
            text = f"Cancel of job {job_id} failed: {e}"
        self.call_from_thread(self._set_notice, text)

    def _set_notice(self, text: str) -> None:
        self.notice = text
        self._moved()

    def action_pager(self, which: str) -> None:
        if self.screen_name != "jobs":
            return
        job, tid = self.selected_job(), self.selected_task()
        if job is None or tid is None:
            self._set_notice("Select a task (2, then arrows) to open its output.")
            return
        out, err = R.task_paths(job, tid, self.view_model().server_uid)
        path = out if which == "stdout" else err
        if not path:
            self._set_notice(f"Task {tid} has no {which} file.")
            return
        if not os.path.isfile(path):
            self._set_notice(f"{path} does not exist (on this machine).")
            return
        try:
            argv = shlex.split(os.environ.get("PAGER") or "less") + [path]
        except ValueError as e:
            self._set_notice(f"Cannot read $PAGER: {e}")
            return
        self.pager_runs.append(argv)
        try:
            try:
                with self.suspend():
                    subprocess.run(argv)
            except SuspendNotSupported:  # no terminal to hand over (headless): run it as it is
                subprocess.run(argv, stdin=subprocess.DEVNULL)
        except OSError as e:
            self._set_notice(f"Cannot run the pager {argv[0]}: {e.strerror or e}")
            return
        self._set_notice(f"Viewed {path}")


def run(app: DashboardApp) -> None:
    app.run()
