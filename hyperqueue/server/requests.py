"""Answers to client requests: each turns one typed request into one typed response.

`HANDLERS` is the request table: one entry per request message type, filled by `@handles(...)`
on the methods below (read it, or grep `@handles`, to see every request the server answers). A
type without an entry gets an ErrorResponse. `StreamEventsRequest` and `WaitNotifyRequest` are
not in the table: they are streams, served by the connection (`Server.subscribe`,
`Server._wait_with_notifications` in `server/app.py`).

Handlers see the server only through a `RequestContext` (the core, its outbox, and a few
callables), so they can be run and tested without a server.

Adding a request: the message in `protocol/messages.py`, a `@handles(m.NewRequest)` method
here, and the client call that sends it.
"""

from __future__ import annotations

import bisect
import logging
import time
from typing import Awaitable, Callable

import trio

from ..common.selectors import Selector, missing_to_wire
from ..core import reactor, views
from ..core.model import JobState
from ..core.ranges import IntRanges
from ..protocol import messages as m

log = logging.getLogger("hq.server")

_JOB_FILTERS = {
    "waiting": JobState.WAITING, "running": JobState.RUNNING, "finished": JobState.FINISHED,
    "failed": JobState.FAILED, "canceled": JobState.CANCELED, "aborted": JobState.ABORTED,
    "opened": JobState.OPENED,
}


JOB_PAGE = 10_000  # job views in one answer
JOB_SCAN = 100_000  # jobs examined for one answer (a state filter may skip most)


def job_done(job, without_close: bool) -> bool:
    """Whether a wait for `job` is over: done (all tasks ended) or, by default, terminated
    (done and closed)."""
    return job.is_done if without_close else job.is_terminated


class Waiter:
    __slots__ = ("job_ids", "without_close", "event")

    def __init__(self, job_ids, without_close):
        self.job_ids = set(job_ids)
        self.without_close = without_close
        self.event = trio.Event()


class Waits:
    """Waits for jobs to end: `wait` returns once every given job is done (or gone); the
    server's flush calls `jobs_changed` with the jobs its reactions touched. No polling."""

    def __init__(self, core):
        self.core = core
        self._waiters: list[Waiter] = []

    def __bool__(self) -> bool:
        return bool(self._waiters)

    async def wait(self, job_ids, without_close: bool = False) -> None:
        jobs = self.core.jobs
        pending = [j for j in job_ids if j in jobs and not job_done(jobs[j], without_close)]
        if not pending:
            return
        waiter = Waiter(pending, without_close)
        self._waiters.append(waiter)
        try:
            await waiter.event.wait()
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def jobs_changed(self, changed) -> None:
        """Wakes the waits whose jobs are all done now."""
        jobs = self.core.jobs
        for waiter in list(self._waiters):
            if not (waiter.job_ids & changed):
                continue
            for jid in list(waiter.job_ids):
                job = jobs.get(jid)
                if job is None or job_done(job, waiter.without_close):
                    waiter.job_ids.discard(jid)
            if not waiter.job_ids:
                waiter.event.set()
                self._waiters.remove(waiter)


async def _nothing_to_report() -> None:  # no journal: every answer is as durable as it gets
    return None


class RequestContext:
    """Everything a request handler may use of the server.

    core, outbox: the state and where reactions record their effects.
    changed(): something changed (the server schedules and flushes soon).
    reported(): returns once the state the core reflects now is on disk (the durability
        barrier every answer passes; a no-op without a journal).
    waits: job waits (`Waits`).
    info(): the server's info record.
    journal: None without a journal, else an object with `async flush()` and
        `async prune() -> (kept, dropped)` (raises ValueError when the prune fails).
    autoalloc: the automatic-allocation service (server/autoalloc.py), or None.
    overviews(interval, lease): asks the connected workers for temporary hardware overviews
        (a dashboard), or None.
    """

    __slots__ = ("core", "outbox", "changed", "reported", "waits", "info", "journal",
                 "autoalloc", "overviews")

    def __init__(self, core, outbox, *, changed: Callable[[], None] = lambda: None,
                 reported: Callable[[], Awaitable[None]] = _nothing_to_report,
                 waits: Waits | None = None, info: Callable[[], dict] = dict, journal=None,
                 autoalloc=None, overviews=None):
        self.overviews = overviews
        self.core = core
        self.outbox = outbox
        self.changed = changed
        self.reported = reported
        self.waits = waits if waits is not None else Waits(core)
        self.info = info
        self.journal = journal
        self.autoalloc = autoalloc


# request type -> handler(ClientRequests, request) -> response; filled by `@handles`
HANDLERS: dict[type, Callable] = {}


def handles(request_type: type):
    """Method decorator: registers the method as the handler of `request_type`."""

    def register(fn):
        assert request_type not in HANDLERS, request_type
        assert request_type.DIRECTION == m.FROM_CLIENT, request_type
        HANDLERS[request_type] = fn
        return fn

    return register


def _first_meets(tagged: list, key) -> tuple | None:
    """The smallest `key(tag_a, tag_b, first_shared_id)` over the pairs of `tagged` ranges
    (`(range, tag)`) that share an id (`key` returns None to skip a pair), or None.

    A sweep over the starts, as the reactor's collision check: O(r log r) unless stepped ranges
    interleave, bounded like it (more than MAX_SUBMIT_INTERLEAVE ranges over one point is an
    error)."""
    from heapq import heappop, heappush

    from ..core.ranges import _meet

    tagged = sorted(tagged, key=lambda t: t[0])
    active: list = []  # heap of (end, seq, range, tag)
    best = None
    for seq, (r, tag) in enumerate(tagged):
        while active and active[0][0] < r[0]:
            heappop(active)
        if len(active) >= reactor.MAX_SUBMIT_INTERLEAVE:
            raise ValueError("Invalid task ids: more than "
                             f"{reactor.MAX_SUBMIT_INTERLEAVE} ranges interleave")
        for _end, _seq, other, other_tag in active:
            shared = _meet(other, r)
            if shared is not None:
                k = key(other_tag, tag, shared[0])
                if k is not None and (best is None or k < best):
                    best = k
        heappush(active, (r[1], seq, r, tag))
    return best


def _check_submit(core, job_id: int | None, batches: list) -> None:
    """Upstream's answers to a submit (F7), in its order: (a) a task id that the `--job` job
    already has (if that job exists); for a graph (several batches or dependencies), then a task
    id defined twice and a dependency on the task itself or on no task of the submit or the job;
    (b) the job must exist; (c) it must be open. Each is the first in submit order (batches, then
    the order of their ranges, then ascending ids). The texts are the client's (it prints them
    bare: `client.calls.SUBMIT_ANSWER`). Raises ValueError; nothing is changed."""
    job = core.jobs.get(job_id) if job_id is not None else None
    existing = job.all_ids() if job is not None else None
    if existing:
        # tags: (0, batch, range index) for the new ranges, (1,) for the job's
        tagged = [(r, (0, i, j)) for i, b in enumerate(batches) for j, r in enumerate(b.ids.ranges)]
        tagged += [(r, (1,)) for r in existing.ranges]

        def collision(a, b, x):
            if a[0] == b[0]:
                return None
            new = a if a[0] == 0 else b
            return (new[1], new[2], x)

        hit = _first_meets(tagged, collision)
        if hit is not None:
            raise ValueError(f"Task {hit[2]} already exists in job {job_id}.")
    if len(batches) > 1 or any(b.deps for b in batches):
        tagged = [(r, (i, j)) for i, b in enumerate(batches) for j, r in enumerate(b.ids.ranges)]

        def duplicate(a, b, x):
            if a[0] == b[0]:
                return None  # (the ranges of one batch never share an id)
            return max(a, b) + (x,)

        hit = _first_meets(tagged, duplicate) if len(batches) > 1 else None
        if hit is not None:
            raise ValueError(f"Task {hit[2]} is defined more than once.")
        new = IntRanges.from_ranges(r for b in batches for r in b.ids.ranges)
        for b in batches:
            for d in b.deps:
                if d in b.ids or (d not in new and not (existing and d in existing)):
                    raise ValueError(f"Invalid dependency on {d}")
    if job_id is not None:
        if job is None:
            raise ValueError(f"Job {job_id} not found.")
        if not job.is_open:
            raise ValueError(f"Job {job_id} is not opened.")


class ClientRequests:
    def __init__(self, ctx: RequestContext):
        self.ctx = ctx
        self.core = ctx.core
        self.outbox = ctx.outbox

    async def handle(self, req: m.Message) -> m.Message:
        """The response to `req`; a request error becomes an ErrorResponse, never a crash."""
        handler = HANDLERS.get(type(req))
        if handler is None:
            return m.ErrorResponse(f"unsupported request {type(req).__name__}")
        try:
            response = await handler(self, req)
        except (ValueError, reactor.SubmitError) as e:
            response = m.ErrorResponse(str(e))
        # Every answer reflects the state at this moment (a change it made, a task it shows
        # FINISHED, a wait it ends): it leaves only once that state is on disk, so nothing a
        # client was told can be lost by a crash. Group commit: one fsync serves every request
        # waiting at the same time; none is needed when nothing changed since the last one.
        await self.ctx.reported()
        return response

    def _select_jobs(self, wire) -> tuple[list, IntRanges]:
        """The selected jobs (ascending ids) and the selected ids that are no job. Resolved
        against the jobs that exist: a selector `0-4294967295` is never expanded."""
        sel = Selector.from_wire(wire)
        found, missing = sel.select(self.core.jobs)
        return [self.core.jobs[i] for i in found], missing

    def _changed(self):
        self.ctx.changed()

    # -- server -------------------------------------------------------------------------------
    @handles(m.ServerInfoRequest)
    async def on_ServerInfoRequest(self, req):
        return m.ServerInfoResponse(self.ctx.info())

    @handles(m.StopServerRequest)
    async def on_StopServerRequest(self, req):
        return m.OkResponse("Stopping server")

    @handles(m.DebugDumpRequest)
    async def on_DebugDumpRequest(self, req: m.DebugDumpRequest):
        import json

        # Built on the server's thread (a consistent snapshot), written in a worker thread.
        data = json.dumps(views.debug_dump(self.core), separators=(",", ":"))

        def write():
            with open(req.path, "w") as f:
                f.write(data)

        try:
            await trio.to_thread.run_sync(write)
        except OSError as e:  # as Rust's io::Error shows itself
            reason = f"{e.strerror} (os error {e.errno})" if e.errno else str(e)
            raise ValueError(f"Could not write debug dump: {reason}") from None
        return m.OkResponse()

    # -- jobs ------------------------------------------------------------------------------------
    @handles(m.SubmitRequest)
    async def on_SubmitRequest(self, req: m.SubmitRequest):
        batches = []
        next_auto = None
        for template, ids_text, entries, deps in req.batches:
            if ids_text == "":
                # Automatic ids (a submit into an open job): after the largest id so far.
                if next_auto is None:
                    job = self.core.jobs.get(req.job_id) if req.job_id is not None else None
                    known = job.all_ids() if job is not None else None
                    next_auto = known.max() + 1 if known else 0
                count = len(entries) if entries is not None else 1
                ids = IntRanges.span(next_auto, count)
                next_auto += count
            else:
                ids = IntRanges.parse(ids_text)
            if entries is not None and len(entries) != len(ids):
                raise ValueError("the number of entries does not match the number of task ids")
            batches.append(reactor.BatchSpec(template, ids, entries, deps))
        _check_submit(self.core, req.job_id, batches)
        spec = reactor.SubmitSpec(req.name, req.submit_dir, batches, req.max_fails, req.job_id)
        job = reactor.submit(self.core, self.outbox, spec, time.time())
        self._changed()
        return m.SubmitResponse(job.id)

    @handles(m.OpenJobRequest)
    async def on_OpenJobRequest(self, req: m.OpenJobRequest):
        job = reactor.open_job(self.core, self.outbox, req.name, req.max_fails,
                               req.submit_dir, time.time())
        return m.SubmitResponse(job.id)

    def _job_states(self, names):
        if names is None:
            return None
        try:
            return {_JOB_FILTERS[s] for s in names}
        except KeyError as e:
            raise ValueError(f"unknown job state {e.args[0]!r}") from None

    def _jobs_page(self, states, after: int) -> tuple[list, int | None]:
        """Views of jobs with an id greater than `after`: at most JOB_PAGE views and JOB_SCAN
        examined jobs per answer, and where to continue (None: no more)."""
        keys = sorted(self.core.jobs)  # linear: jobs are added with increasing ids
        start = bisect.bisect_right(keys, after)
        out = []
        jobs = self.core.jobs
        for i in range(start, min(len(keys), start + JOB_SCAN)):
            job = jobs[keys[i]]
            if states is None or job.state() in states:
                out.append(views.job_info(job))
                if len(out) >= JOB_PAGE:
                    return out, (keys[i] if i + 1 < len(keys) else None)
        end = start + JOB_SCAN
        return out, (keys[end - 1] if end < len(keys) else None)

    @handles(m.JobListRequest)
    async def on_JobListRequest(self, req: m.JobListRequest):
        out, _nxt = self._jobs_page(self._job_states(req.states), -1)
        return m.JobsResponse(out, [])

    @handles(m.JobListPageRequest)
    async def on_JobListPageRequest(self, req: m.JobListPageRequest):
        out, nxt = self._jobs_page(self._job_states(req.states), req.after)
        return m.PageResponse(out, nxt)

    @staticmethod
    def _task_ids(wire) -> IntRanges | None:
        """The task ids of a task selector (None: every task). `all`/`last` are refused."""
        if wire is None:
            return None
        sel = Selector.from_wire(wire)
        if sel.ids is None:
            raise ValueError("a task selector must list task ids")
        return sel.ids

    @handles(m.JobInfoRequest)
    async def on_JobInfoRequest(self, req: m.JobInfoRequest):
        jobs, missing = self._select_jobs(req.selector)
        task_ids = self._task_ids(req.task_selector)
        out = []
        budget = views.TASK_PAGE  # task views in this answer, over all jobs
        for job in jobs:
            d = views.job_detail(self.core, job, req.with_tasks, task_ids, req.task_states,
                                 budget)
            budget -= len(d["tasks"])
            out.append(d)
        return m.JobsResponse(out, missing_to_wire(missing))

    @handles(m.TaskPageRequest)
    async def on_TaskPageRequest(self, req: m.TaskPageRequest):
        """The next page of a job's tasks (after `job info`/`task list` sent the first)."""
        job = self.core.jobs.get(req.job_id)
        if job is None:
            raise ValueError(f"Job {req.job_id} not found")
        task_ids = self._task_ids(req.task_selector)
        tasks, nxt = views.job_tasks_page(self.core, job, task_ids, req.task_states, req.after)
        return m.PageResponse(tasks, nxt)

    @handles(m.CancelJobsRequest)
    async def on_CancelJobsRequest(self, req: m.CancelJobsRequest):
        sel = Selector.from_wire(req.selector)
        jobs, missing = self._select_jobs(req.selector)
        results = []
        now = time.time()
        for job in jobs:
            if sel.kind == "all" and job.state() not in (JobState.WAITING, JobState.RUNNING):
                continue
            n = reactor.cancel_job(self.core, self.outbox, job, req.reason, now)
            if n:
                results.append([job.id, "canceled", n, job.task_stats()["finished"]])
            else:
                results.append([job.id, "finished", 0, job.task_stats()["finished"]])
        results.extend([r, "not-found", 0, 0] for r in missing_to_wire(missing))
        self._changed()
        return m.ItemResultsResponse(results)

    @handles(m.CloseJobsRequest)
    async def on_CloseJobsRequest(self, req: m.CloseJobsRequest):
        sel = Selector.from_wire(req.selector)
        jobs, missing = self._select_jobs(req.selector)
        results = []
        for job in jobs:
            if sel.kind == "all" and not job.is_open:
                continue
            ok = reactor.close_job(self.core, self.outbox, job, time.time())
            results.append([job.id, "closed" if ok else "not-open"])
        results.extend([r, "not-found"] for r in missing_to_wire(missing))
        self._changed()
        return m.ItemResultsResponse(results)

    @handles(m.ForgetJobsRequest)
    async def on_ForgetJobsRequest(self, req: m.ForgetJobsRequest):
        jobs, missing = self._select_jobs(req.selector)
        states = {_JOB_FILTERS[s] for s in req.states if s in _JOB_FILTERS}
        forgotten = ignored = 0
        for job in jobs:
            if job.state() in states and reactor.forget_job(self.core, self.outbox, job,
                                                                 time.time()):
                forgotten += 1
            else:
                ignored += 1
        return m.ItemResultsResponse([[forgotten, ignored + len(missing)]])

    @handles(m.WaitJobsRequest)
    async def on_WaitJobsRequest(self, req: m.WaitJobsRequest):
        jobs, missing = self._select_jobs(req.selector)
        await self.ctx.waits.wait([j.id for j in jobs], req.without_close)
        out = [views.job_info(self.core.jobs[j.id]) for j in jobs if j.id in self.core.jobs]
        return m.JobsResponse(out, missing_to_wire(missing))

    @handles(m.TaskExplainRequest)
    async def on_TaskExplainRequest(self, req: m.TaskExplainRequest):
        from ..core import scheduler
        from ..core.model import TaskState

        jobs, missing = self._select_jobs(req.job_id)
        if not jobs:
            raise ValueError("Job not found")  # upstream's texts (F64)
        job = jobs[0]
        task = job.tasks.get(req.task_id)
        state = self.core.task_state(job, req.task_id)
        if state is None:
            raise ValueError("Task not found")
        if state not in (TaskState.WAITING, TaskState.ASSIGNED, TaskState.RUNNING):
            raise ValueError("Explain command works only for tasks in WAITING or RUNNING state")
        if task is None:
            # still in array form: explain with a throw-away record of it
            from ..core.model import Task
            from ..core.state import position_of

            for batch in job.batches:
                pos = position_of(batch.ids, req.task_id)
                if pos is not None:
                    task = Task(job, req.task_id, batch, pos)
                    break
        out = scheduler.explain(self.core, task, time.time())
        out["task_id"] = req.task_id
        out["state"] = state.public_name
        deps = list(task.batch.deps)
        pending = [d for d in deps if self.core.task_state(job, d) != TaskState.FINISHED]
        if state == TaskState.RUNNING:
            pending = []
        out["job_id"] = job.id
        out["dependencies"] = {"total": len(deps), "pending": len(pending)}
        out["n_variants"] = len(task.batch.template.requests)
        aa = self.ctx.autoalloc
        queues = aa.explain_task(task.batch.template.requests) if aa is not None else None
        if queues:  # only when allocation queues exist (the answer is unchanged otherwise)
            out["queues"] = queues
        return m.ExplainResponse(out)

    # -- automatic allocation (the service: server/autoalloc.py) ---------------------------------
    def _autoalloc(self):
        if self.ctx.autoalloc is None:
            raise ValueError("Automatic allocation is not available in this server")
        return self.ctx.autoalloc

    @handles(m.AllocAddRequest)
    async def on_AllocAddRequest(self, req: m.AllocAddRequest):
        from ..autoalloc import QueueParams

        aa = self._autoalloc()
        return m.AllocResponse(await aa.add_queue(QueueParams.from_wire(req.params), req.dry_run))

    @handles(m.AllocDryRunRequest)
    async def on_AllocDryRunRequest(self, req: m.AllocDryRunRequest):
        from ..autoalloc import QueueParams

        return m.AllocResponse(await self._autoalloc().dry_run(
            QueueParams.from_wire(req.params)))

    @handles(m.AllocListRequest)
    async def on_AllocListRequest(self, req: m.AllocListRequest):
        return m.AllocResponse(self._autoalloc().list_view())

    @handles(m.AllocInfoRequest)
    async def on_AllocInfoRequest(self, req: m.AllocInfoRequest):
        return m.AllocResponse(self._autoalloc().info_view(req.queue_id, req.states))

    @handles(m.AllocQueueRequest)
    async def on_AllocQueueRequest(self, req: m.AllocQueueRequest):
        return m.AllocResponse(await self._autoalloc().queue_action(
            req.queue_id, req.action, req.force))

    @handles(m.AllocLogRequest)
    async def on_AllocLogRequest(self, req: m.AllocLogRequest):
        return m.AllocResponse(self._autoalloc().allocation_workdir(req.allocation_id))

    # -- journal ---------------------------------------------------------------------------------
    @handles(m.JournalRequest)
    async def on_JournalRequest(self, req: m.JournalRequest):
        journal = self.ctx.journal
        if journal is None:
            raise ValueError("The server was started without a journal (`--journal`)")
        if req.action == "flush":
            await journal.flush()
            return m.OkResponse("Journal flushed")
        if req.action == "prune":
            kept, dropped = await journal.prune()
            return m.OkResponse(f"Journal pruned: {dropped} events dropped, {kept} kept")
        raise ValueError(f"unknown journal action {req.action!r}")

    # -- workers ---------------------------------------------------------------------------------
    @handles(m.OverviewsRequest)
    async def on_OverviewsRequest(self, req: m.OverviewsRequest):
        if self.ctx.overviews is None:
            raise ValueError("this server cannot ask workers for overviews")
        n = self.ctx.overviews(req.interval, req.lease)
        return m.OkResponse(f"Overviews asked from {n} workers")

    @handles(m.WorkerListRequest)
    async def on_WorkerListRequest(self, req: m.WorkerListRequest):
        now = time.time()
        out = [views.worker_view(w, now) for w in self.core.workers.values()
               if req.include_offline or w.is_running]
        return m.WorkersResponse(out, [])

    def _select_workers(self, wire) -> tuple[list, IntRanges]:
        sel = Selector.from_wire(wire)
        ws = self.core.workers
        found, missing = sel.select(ws)
        if sel.kind == "all":
            found = [i for i in found if ws[i].is_running]
        return [ws[i] for i in found], missing

    @handles(m.WorkerInfoRequest)
    async def on_WorkerInfoRequest(self, req: m.WorkerInfoRequest):
        workers, missing = self._select_workers(req.selector)
        now = time.time()
        return m.WorkersResponse([views.worker_view(w, now) for w in workers],
                                 missing_to_wire(missing))

    @handles(m.StopWorkersRequest)
    async def on_StopWorkersRequest(self, req: m.StopWorkersRequest):
        workers, missing = self._select_workers(req.selector)
        results = []
        for w in workers:
            results.append([w.id, reactor.stop_worker(self.core, self.outbox, w)])
        results.extend([r, "worker not found"] for r in missing_to_wire(missing))
        self._changed()
        return m.ItemResultsResponse(results)

