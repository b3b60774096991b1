"""Reactions of the core to what happens: submits, cancels, workers coming and going, task updates.

Every function takes `(core, outbox, ..., now)`, changes the registries, and records in the outbox
what the shells must send. None of them schedules: the shell runs `scheduler.schedule` once per
wake-up, after all pending reactions (batching on the hot path).
"""

from __future__ import annotations

import posixpath

from itertools import islice

from . import events as ev
from .model import (
    CRASH_LIMIT_NEVER_RESTART,
    CRASH_LIMIT_UNLIMITED,
    TASK_TRANSITIONS,
    WORKER_TRANSITIONS,
    IllegalTransition,
    Job,
    Task,
    TaskBatch,
    TaskState,
    TaskTemplate,
    Worker,
    WorkerConfig,
    WorkerState,
)
from .graph import cycles
from .outbox import Outbox
from .updates import UPDATE_FAILED, UPDATE_FINISHED, UPDATE_RUNNING
from .limits import MAX_LIST_LEN
from .ranges import IntRanges, _find_conflict
from .state import Core, cursor_remaining, queue_key, task_amounts


#: Tasks of a submit with dependencies get records at once: at most this many.
MAX_GRAPH_TASKS = MAX_LIST_LEN
#: Task -> dependency edges of one submit (each task of a batch has the batch's deps).
MAX_GRAPH_EDGES = 4 * MAX_LIST_LEN
#: Ranges of one submit (with the job's existing ones) covering one point: bounds the overlap
#: sweep (stepped arrays interleave; ordinary submits have one range over any point).
MAX_SUBMIT_INTERLEAVE = 1024


class SubmitError(ValueError):
    """A submit that the core refuses; nothing was changed."""


class BatchSpec:
    """One batch of a submit request as the core receives it."""

    __slots__ = ("template", "ids", "entries", "deps")

    def __init__(self, template: TaskTemplate, ids: IntRanges, entries=None, deps=()):
        self.template = template
        self.ids = ids
        self.entries = entries
        self.deps = tuple(deps)


class SubmitSpec:
    __slots__ = ("job_id", "name", "max_fails", "submit_dir", "batches")

    def __init__(self, name: str, submit_dir: str, batches: list[BatchSpec],
                 max_fails: int | None = None, job_id: int | None = None):
        self.job_id = job_id
        self.name = name
        self.max_fails = max_fails
        self.submit_dir = submit_dir
        self.batches = batches




def _resolve_job_placeholders(template: TaskTemplate, job: Job, submit_dir: str,
                              server_uid: str) -> None:
    """Upstream's submit-time prefill: the cwd gets %{JOB_ID}, %{SUBMIT_DIR}, %{SERVER_UID}
    and, with no placeholder left, is made absolute against the submit dir; stdout/stderr get
    those and %{CWD} (= that cwd) and, with no placeholder left, are made absolute against the
    cwd. %{TASK_ID}, %{INSTANCE_ID} and unknown ones stay for the worker."""
    prog = template.program
    values = (("%{JOB_ID}", str(job.id)), ("%{SUBMIT_DIR}", submit_dir),
              ("%{SERVER_UID}", server_uid))

    def fill(s: str) -> str:
        if "%{" in s:
            for k, v in values:
                s = s.replace(k, v)
        return s

    cwd = fill(prog.cwd)
    if "%{" not in cwd:
        cwd = posixpath.join(submit_dir, cwd)
    prog.cwd = cwd
    for stdio in (prog.stdout, prog.stderr):
        if stdio.path is not None:
            path = fill(stdio.path).replace("%{CWD}", cwd) if "%{" in stdio.path else stdio.path
            if "%{" not in path:
                path = posixpath.join(cwd, path)
            stdio.path = path


# -- jobs ---------------------------------------------------------------------------------------
def open_job(core: Core, outbox: Outbox, name: str, max_fails: int | None, submit_dir: str,
             now: float) -> Job:
    job = Job(core.next_job_id, name, max_fails, True, submit_dir, now)
    core.next_job_id += 1
    core.jobs[job.id] = job
    if core.record_events:
        outbox.events.append(ev.JobOpen(now, job.id, name, max_fails, submit_dir))
    return job


def submit(core: Core, outbox: Outbox, spec: SubmitSpec, now: float) -> Job:
    """Creates a job (or extends an open one) from `spec`.

    Raises:
        SubmitError: the job is unknown or closed, task ids collide, or a dependency is invalid.
            Nothing is changed in that case.
    """
    if not spec.batches:
        raise SubmitError("the submit contains no tasks")
    if spec.job_id is not None:
        job = core.jobs.get(spec.job_id)
        if job is None:
            raise SubmitError(f"Job {spec.job_id} not found")
        if not job.is_open:
            raise SubmitError(f"Job {spec.job_id} is not open")
        existing = job.all_ids()
    else:
        job = None
        existing = IntRanges.from_ids(())
    # Validate ids and dependencies before touching anything. Everything here works on the
    # ranges and on the explicit dependency lists, never on the expanded ids.
    new_ranges = [r for b in spec.batches for r in b.ids.ranges]
    for b in spec.batches:
        if len(b.ids) == 0:
            raise SubmitError("a task array with no task ids")
    if len(spec.batches) > 1 or existing:
        # One sweep over all ranges (existing and new): linear for ordinary submits.
        new = tuple(new_ranges)
        if len(spec.batches) > 1 and _find_conflict(new, None, MAX_SUBMIT_INTERLEAVE):
            raise SubmitError("Task ids collide: some ids already exist in the job")
        if existing and _find_conflict(existing.ranges, new, MAX_SUBMIT_INTERLEAVE):
            raise SubmitError("Task ids collide: some ids already exist in the job")
    graph = any(b.deps for b in spec.batches)
    if graph:
        n_new = sum(len(b.ids) for b in spec.batches)
        if n_new > MAX_GRAPH_TASKS:
            raise SubmitError(f"A submit with dependencies can have at most {MAX_GRAPH_TASKS} "
                              "tasks")
        n_edges = sum(len(b.ids) * len(b.deps) for b in spec.batches)
        if n_edges > MAX_GRAPH_EDGES:
            raise SubmitError(f"A submit with dependencies can have at most {MAX_GRAPH_EDGES} "
                              "task dependencies in total")
        owner = _RangeOwner(spec.batches)
        for b in spec.batches:
            for d in b.deps:
                if d in b.ids:
                    raise SubmitError(f"Invalid dependency: task {d} depends on itself")
                if owner.batch_of(d) is None and d not in existing:
                    raise SubmitError(f"Invalid dependency: task {d} does not exist in the job")
        _check_acyclic(spec.batches, owner)
        if job is not None:
            # A task still in compact array form has no record to hang consumers on; refuse
            # here, before anything changes, rather than half-way through creating the tasks.
            for b in spec.batches:
                for d in b.deps:
                    if d in existing and d not in job.tasks:
                        dep_state = core.task_state(job, d)
                        if dep_state is None or not dep_state.is_terminal:
                            raise SubmitError(
                                f"Invalid dependency: task {d} cannot be depended on")

    if job is None:
        job = Job(core.next_job_id, spec.name, spec.max_fails, False, spec.submit_dir, now)
        core.next_job_id += 1
        core.jobs[job.id] = job
    was_done = job.is_done
    first_index = len(job.batches)
    new_batches = []
    array_submit = len(spec.batches) == 1 and not spec.batches[0].deps
    prev_template = None
    for i, b in enumerate(spec.batches):
        if array_submit:  # upstream prefills array submits only, not task graphs
            _resolve_job_placeholders(b.template, job, spec.submit_dir, core.server_uid)
        batch = TaskBatch(first_index + i, b.template, b.ids, b.entries, b.deps, spec.submit_dir)
        core.priorities.add(b.template.priority)
        if b.template is prev_template:
            # the same template object as the previous batch of this submit (the wire decoder
            # shares equal ones): one template id, sent to and kept by a worker once
            batch.template_id = new_batches[-1].template_id
        else:
            batch.template_id = core.next_template_id
            core.next_template_id += 1
            core.batches_by_template[batch.template_id] = batch
        prev_template = b.template
        job.add_batch(batch)
        job.counts[TaskState.WAITING] += len(b.ids)
        new_batches.append(batch)
    # A job file's `[[task]]` list (several batches, or dependencies) is a task graph.
    job.submits.append((len(new_batches), graph or len(new_batches) > 1))
    if was_done:
        job.finished_at = None
    if core.record_events:
        wires: dict[int, list] = {}  # template id -> wire form (batches sharing a template)

        def wire(b: TaskBatch) -> list:
            w = wires.get(b.template_id)
            if w is None:
                w = wires[b.template_id] = b.template.to_wire()
            return w

        outbox.events.append(ev.JobCreated(
            now, job.id, spec.job_id is None, job.name, job.max_fails, spec.submit_dir,
            [[wire(b), b.ids.to_text(), b.entries, list(b.deps)] for b in new_batches]))

    if not graph:
        for batch in new_batches:
            core.add_array_queue(job, batch)
    else:
        # Graph submits are small (job files); their tasks get records at once.
        created: dict[int, Task] = {}
        # Tasks with a dependency that already ended without finishing: aborted below. (Not
        # marked through deps_pending: a later pending dep would count the marker back to 0.)
        doomed: set[int] = set()
        for batch in new_batches:
            for pos, tid in enumerate(batch.ids):
                task = Task(job, tid, batch, pos)
                job.tasks[tid] = task
                created[tid] = task
        for batch in new_batches:
            for tid in batch.ids:
                task = created[tid]
                for d in batch.deps:
                    dep = job.tasks.get(d)
                    dep_state = dep.state if dep is not None else core.task_state(job, d)
                    if dep_state == TaskState.FINISHED:
                        continue
                    if dep_state is not None and dep_state.is_terminal:
                        doomed.add(tid)
                        continue
                    if dep is None:
                        raise SubmitError(f"Invalid dependency: task {d} cannot be depended on")
                    task.deps_pending += 1
                    if dep.consumers is None:
                        dep.consumers = []
                    dep.consumers.append(task)
        for batch in new_batches:
            for tid in batch.ids:
                task = created[tid]
                if task.state.is_terminal:
                    continue  # already aborted with a doomed task it depends on
                if tid in doomed:
                    task.deps_pending = 0
                    _complete(core, outbox, task, TaskState.ABORTED, now,
                              "A dependency of the task did not finish")
                elif task.deps_pending == 0:
                    core.make_ready(task)
    outbox.changed_jobs.add(job.id)
    core.needs_schedule = True
    return job


class _RangeOwner:
    """Which batch of a submit holds a task id: a lookup over the ranges (never expanded)."""

    __slots__ = ("ids", "owner")

    def __init__(self, batches: list[BatchSpec]):
        ranges = []
        owner = []
        for i, b in enumerate(batches):
            for r in b.ids.ranges:
                ranges.append(r)
                owner.append(i)
        self.ids = IntRanges(tuple(ranges))
        self.owner = owner

    def batch_of(self, task_id: int) -> int | None:
        i = self.ids.locate(task_id)
        return None if i is None else self.owner[i]


def _check_acyclic(batches: list[BatchSpec], owner: _RangeOwner) -> None:
    """Refuses a dependency cycle among the new tasks.

    Every task of a batch has the batch's dependencies, so the tasks form a cycle exactly when
    the batches do (an edge from a batch to the batch holding each of its dependencies; a task
    depending on its own batch was refused before). The check is on the batches and the
    explicit dependency lists: O(batches + dependencies), whatever the number of tasks.
    """
    graph = {i: {j for j in map(owner.batch_of, b.deps) if j is not None}
             for i, b in enumerate(batches)}
    _, blocked = cycles(graph)
    if blocked:
        cyc: list[int] = []  # the 10 smallest ids of the tasks on or behind a cycle, as before
        for i in sorted(blocked):
            cyc.extend(islice(batches[i].ids.iter_sorted(), 10))
        raise SubmitError(
            f"Invalid dependency: the tasks {sorted(cyc)[:10]} form a dependency cycle")


def close_job(core: Core, outbox: Outbox, job: Job, now: float) -> bool:
    """Closes an open job; False if it was not open."""
    if not job.is_open:
        return False
    job.is_open = False
    outbox.changed_jobs.add(job.id)
    if core.record_events:
        outbox.events.append(ev.JobClose(now, job.id))
    if job.is_done:
        _job_completed(core, outbox, job, now)
    return True


def cancel_job(core: Core, outbox: Outbox, job: Job, reason: str | None, now: float) -> int:
    """Cancels every task of `job` that has not ended; returns how many were canceled.

    Events as upstream records a cancel: `job-cancel`, then one `task-canceled` with every
    task canceled by it (waiting ones too), then `job-completed` if the job ended."""
    mark = len(outbox.events)
    bulk_mark = len(job.bulk)
    n = _end_open_tasks(core, outbox, job, TaskState.CANCELED, now, None)
    if n and reason is not None:
        job.cancel_reason = reason
    if n and core.record_events:
        caused = outbox.events[mark:]
        canceled = [t for e in caused if type(e) is ev.TaskCanceled and e.job == job.id
                    for t in e.tasks]
        for ids, state in job.bulk[bulk_mark:]:  # waiting tasks still in array form
            if state == TaskState.CANCELED:
                canceled.extend(ids)
        canceled.sort()
        rest = [e for e in caused if not (type(e) is ev.TaskCanceled and e.job == job.id)]
        tasks = [ev.TaskCanceled(now, job.id, canceled)] if canceled else []
        outbox.events[mark:] = [ev.JobCancel(now, job.id, reason), *tasks, *rest]
    return n


def forget_job(core: Core, outbox: Outbox, job: Job, now: float) -> bool:
    """Drops a completed, closed job from memory; False if it is not completed."""
    if not job.is_terminated:
        return False
    del core.jobs[job.id]
    if core.record_events:
        outbox.events.append(ev.JobForget(now, job.id))
    for b in job.batches:
        core.batches_by_template.pop(b.template_id, None)
    return True


def _end_open_tasks(core: Core, outbox: Outbox, job: Job, state: TaskState, now: float,
                    error: str | None) -> int:
    # Counted from the counters: consumers ended by the cascade of `_complete` count too.
    before = job.counts[state]
    # Queued tasks: the array remainder ends in bulk, without task records.
    for key in [k for k in core.queue_keys if k[2] == job.id]:
        q = core.queues[key]
        if q.cursor is not None and q.cursor.remaining:
            _end_bulk(job, cursor_remaining(q.cursor), state)
            q.cursor.position = q.cursor.total
        core.drop_queue(key)
    for task in list(job.tasks.values()):
        if not task.state.is_terminal:
            _complete(core, outbox, task, state, now, error, cascade=False)
    n = job.counts[state] - before
    if n:
        outbox.changed_jobs.add(job.id)
        if job.is_done:
            _job_completed(core, outbox, job, now)
    return n


# -- workers --------------------------------------------------------------------------------------
def add_worker(core: Core, outbox: Outbox, config: WorkerConfig, now: float) -> Worker:
    worker = Worker(core.next_worker_id, config, now)
    core.next_worker_id += 1
    core.workers[worker.id] = worker
    core.needs_schedule = True
    if core.record_events:
        outbox.events.append(ev.WorkerConnected(now, worker.id, config.to_wire()))
    return worker


def register_worker(core: Core, outbox: Outbox, config: WorkerConfig, previous, running,
                    results, now: float) -> tuple[Worker, list]:
    """A worker (re)connects. One that lost this server's previous run and is still awaited
    gets its old id back; the tasks it still runs are adopted instead of restarted, and the
    results it kept (not yet confirmed durable) are applied. Returns the worker and the running
    tasks that could not be adopted (the worker must kill them)."""
    worker = None
    if previous is not None and previous[0] == core.server_uid:
        w = core.workers.get(previous[1])
        if w is not None and w.is_running and core.awaiting.pop(w.id, None) is not None:
            worker = w
            worker.config = config
            core.needs_schedule = True
            if core.record_events:
                outbox.events.append(ev.WorkerReconnected(
                    now, w.id, config.to_wire(), list(previous), [list(r) for r in running],
                    [list(r) for r in results]))
    if worker is None:
        worker = add_worker(core, outbox, config, now)
    elif worker.mn_task is not None and worker.mn_task.worker is not worker:
        # A secondary node of a running multi-node task is still reserved (a registration
        # resets that on the worker).
        outbox.reserve[worker.id] = True
    # `running`: [job, task, instance] or [job, task, instance, variant] (newer workers).
    reported = {(r[0], r[1]): r[2] for r in running}
    for _kind, j, t, i, _err in results:
        reported[(j, t)] = i
    for task in sorted(worker.tasks, key=lambda t: (t.job.id, t.id)):
        if reported.get(task.key) != task.instance:
            _requeue(core, outbox, task, now)
    rejected = []
    for ref in running:
        j, t, i = ref[0], ref[1], ref[2]
        variant = ref[3] if len(ref) > 3 else 0
        if adopt_task(core, outbox, worker, j, t, i, now, variant) is None:
            rejected.append([j, t, i])
    for update in results:
        if adopt_task(core, outbox, worker, update[1], update[2], update[3], now) is not None:
            task_updates(core, outbox, worker, [update], now)
    return worker, rejected


def _requeue(core: Core, outbox: Outbox, task: Task, now: float | None = None) -> None:
    """Back to waiting without counting a crash (its worker lost it through no fault)."""
    _release(task, outbox, now)
    task.worker.tasks.discard(task)
    if task.state == TaskState.RUNNING:
        task.instance += 1
    _set_state(task, TaskState.WAITING)
    task.worker = None
    task.start_time = None
    core.make_ready(task)
    outbox.changed_jobs.add(task.job.id)


def expire_awaited_workers(core: Core, outbox: Outbox, now: float) -> list[int]:
    """Workers of the previous run that did not reconnect in time are lost (no crash)."""
    expired = [wid for wid, deadline in core.awaiting.items() if deadline <= now]
    for wid in expired:
        del core.awaiting[wid]
        lose_worker(core, outbox, core.workers[wid], WorkerState.CONNECTION_LOST, now,
                    count_crash=False)
    if expired:
        core.needs_schedule = True
    return expired


def stop_worker(core: Core, outbox: Outbox, worker: Worker) -> str:
    """Asks a worker to stop; it is marked lost (STOPPED) when its connection ends."""
    if not worker.is_running:
        return "worker is already stopped"
    if not worker.stopping:
        worker.stopping = True
        outbox.stop_workers.append(worker.id)
    return "stopped"


def lose_worker(core: Core, outbox: Outbox, worker: Worker, reason: WorkerState,
                now: float, *, count_crash: bool = True) -> None:
    """A worker is gone: its tasks go back to waiting, or fail when their crash limit is hit.

    `count_crash=False` is for workers that did not crash but could not come back (the server
    itself was restarted): their tasks rerun without counting against the crash limit.
    """
    if not worker.is_running:
        return
    _set_worker_state(worker, reason)
    worker.ended_at = now
    lost = None
    if core.record_events:
        lost = ev.WorkerLost(now, worker.id, reason.label, count_crash)
        outbox.events.append(lost)
    mn = worker.mn_task
    if mn is not None and mn.worker is not worker:
        # A secondary node of a multi-node task: the task goes on without it.
        mn.nodes.remove(worker)
        worker.mn_task = None
        worker.load = dict.fromkeys(worker.load, 0)
    for task in sorted(worker.tasks, key=lambda t: (t.job.id, t.id)):
        if task.state.is_terminal:
            # Ended (and released) by an earlier iteration: a crash-limit failure above went
            # over the job's max-fails and aborted the job's other tasks, including this one.
            continue
        _release(task, outbox, now)
        job = task.job
        if task.state == TaskState.ASSIGNED:
            # The lost worker may still start it (a network partition): the next run is
            # another instance, so both never share one id (`%{INSTANCE_ID}` paths). The
            # journal records the new id (assignments are not journaled).
            task.instance += 1
            if lost is not None:
                lost.requeued.append([job.id, task.id, task.instance])
            _set_state(task, TaskState.WAITING)
            task.worker = None
            core.make_ready(task)
            outbox.changed_jobs.add(job.id)
            continue
        # RUNNING
        limit = task.batch.template.crash_limit
        crashed = reason.is_failure and count_crash
        if crashed:
            task.crash_count += 1
        if (limit == CRASH_LIMIT_NEVER_RESTART and count_crash) or (
                limit != CRASH_LIMIT_UNLIMITED and crashed and task.crash_count >= limit):
            if limit == CRASH_LIMIT_NEVER_RESTART:  # upstream's texts (F29)
                msg = "Task was running on a lost worker while never restart flag was set."
            else:
                msg = (f"Task was running on a worker that was lost; the task has occurred "
                       f"{task.crash_count} times in this situation and limit was reached.")
            _complete(core, outbox, task, TaskState.FAILED, now, msg, released=True)
            _check_max_fails(core, outbox, job, now)
        else:
            task.instance += 1
            _set_state(task, TaskState.WAITING)
            task.worker = None
            task.start_time = None
            core.make_ready(task)
            outbox.changed_jobs.add(job.id)
    worker.tasks.clear()
    worker.n_running = 0
    core.needs_schedule = True


def adopt_task(core: Core, outbox: Outbox, worker: Worker, job_id: int, task_id: int,
               instance: int, now: float, variant: int = 0,
               nodes: list[Worker] | None = None) -> Task | None:
    """Makes a task RUNNING on `worker` because the worker says it runs it (a journal replay,
    or a worker that reconnected after a server restart). Returns None when the task cannot be
    adopted (unknown, already ended, running elsewhere, or another instance)."""
    job = core.jobs.get(job_id)
    if job is None or not worker.is_running:
        return None
    task = job.tasks.get(task_id)
    if task is None:
        task = _materialize_waiting(core, job, task_id)
        if task is None:
            return None
    if task.state == TaskState.RUNNING or task.state == TaskState.ASSIGNED:
        if task.worker is worker and task.instance == instance:
            if task.state == TaskState.ASSIGNED:
                _start(core, outbox, task, worker, now)
            return task
        return None
    if task.state != TaskState.WAITING or task.deps_pending or task.instance > instance:
        return None
    template = task.batch.template
    if not 0 <= variant < len(template.requests):
        return None
    if nodes is not None and not (template.is_multi_node and nodes[0] is worker
                                  and len(nodes) <= template.request.n_nodes):
        return None
    if template.is_multi_node:
        # (Without the nodes, e.g. a worker reconnecting with a task whose start the journal
        # missed, only the root is known.)
        nodes = nodes or [worker]
        if any(n.mn_task is not None or n.tasks or not n.is_running for n in nodes):
            return None
    _unqueue(core, task)
    task.instance = instance
    assign(task, worker, variant, nodes if template.is_multi_node else None)
    if template.is_multi_node:
        for node in nodes[1:]:
            outbox.reserve[node.id] = True
    _start(core, outbox, task, worker, now)
    return task


def unassign(core: Core, task: Task) -> None:
    """Undoes `assign` of a task in the same scheduling pass: back to the head of its queue."""
    _release(task)
    task.worker.tasks.discard(task)
    _set_state(task, TaskState.WAITING)
    task.worker = None
    core.queue_for(task.job, task.batch).tasks.appendleft(task)


def assign(task: Task, worker: Worker, variant: int, nodes: list[Worker] | None) -> None:
    """Hands a waiting task to a worker (root of `nodes` for a multi-node task)."""
    _set_state(task, TaskState.ASSIGNED)
    task.worker = worker
    task.variant = variant
    worker.tasks.add(task)
    worker.idle_since = None
    if nodes is not None:
        task.nodes = list(nodes)
        for node in nodes:
            node.mn_task = task
            node.load = dict(node.capacity)
            node.idle_since = None
    else:
        load = worker.load
        for name, amount in task_amounts(task, worker):
            load[name] = load.get(name, 0) + amount


def _materialize_waiting(core: Core, job: Job, task_id: int) -> Task | None:
    """The record of a task still in array form, taken out of its batch's cursor (tasks the
    cursor passes on the way are kept, in order, at the head of the ready queue)."""
    for key in [k for k in core.queue_keys if k[2] == job.id]:
        q = core.queues[key]
        cur = q.cursor
        if cur is None or not cur.remaining or task_id not in q.batch.ids:
            continue
        skipped = []
        while cur.remaining:
            pos, tid = cur.pop()
            task = Task(job, tid, q.batch, pos)
            job.tasks[tid] = task
            if tid == task_id:
                q.tasks.extendleft(reversed(skipped))
                q.tasks.appendleft(task)  # taken out again by the caller (_unqueue)
                return task
            skipped.append(task)
        q.tasks.extendleft(reversed(skipped))
    return None


# -- task updates ---------------------------------------------------------------------------------


def task_updates(core: Core, outbox: Outbox, worker: Worker, updates: list, now: float) -> None:
    """Applies a batch of updates `[kind, job, task, instance, error|None]` from `worker`.

    Updates about tasks that are no longer on that worker (canceled meanwhile, or an older
    instance) are ignored: the worker is told to cancel them separately. A result without an
    earlier RUNNING update (the worker leaves it out when both fall into one batch) starts the
    task first, so the history is the same.
    """
    jobs = core.jobs
    ended = 0
    for kind, job_id, task_id, instance, error in updates:
        if kind != UPDATE_RUNNING:
            ended += 1
        job = jobs.get(job_id)
        task = job.tasks.get(task_id) if job is not None else None
        if task is None or task.worker is not worker or task.instance != instance:
            continue
        state = task.state
        if kind == UPDATE_RUNNING:
            if state == TaskState.ASSIGNED:
                _start(core, outbox, task, worker, now)
        elif state in (TaskState.ASSIGNED, TaskState.RUNNING):
            if state == TaskState.ASSIGNED:
                _start(core, outbox, task, worker, now)
            if kind == UPDATE_FINISHED:
                _complete(core, outbox, task, TaskState.FINISHED, now, None)
            else:
                _complete(core, outbox, task, TaskState.FAILED, now, error or "Task failed")
                _check_max_fails(core, outbox, job, now)
    if not worker.tasks:
        worker.idle_since = now
    _update_rate(worker, ended, now)


def _update_rate(worker: Worker, n_ended: int, now: float) -> None:
    """Tracks how fast the worker completes tasks; fast workers get a deeper prefill."""
    worker.done_in_window += n_ended
    elapsed = now - worker.window_start
    if elapsed < RATE_WINDOW:
        return
    rate = worker.done_in_window / elapsed
    worker.rate = rate if worker.rate == 0 else 0.5 * worker.rate + 0.5 * rate
    worker.done_in_window = 0
    worker.window_start = now
    slots = max(1, worker.capacity.get("cpus", 0) // 10000)
    depth = worker.rate * PREFILL_HORIZON / slots
    worker.prefill = 1.0 + min(MAX_PREFILL, max(1.0, depth))


RATE_WINDOW = 0.1  # seconds over which a worker's completion rate is measured
PREFILL_HORIZON = 0.1  # a worker holds about this many seconds of work beyond its capacity
MAX_PREFILL = 1024


def tasks_retracted(core: Core, outbox: Outbox, worker: Worker, retracted: list,
                    refused: list) -> None:
    """The worker gave back prefilled tasks (they wait again) or had already started them
    (they stay where they are; their RUNNING update is on its way). Answers about another
    assignment than the task's current one (another worker or instance) are ignored."""
    for job_id, task_id, instance in retracted:
        job = core.jobs.get(job_id)
        task = job.tasks.get(task_id) if job is not None else None
        if (task is not None and task.worker is worker and task.instance == instance
                and task.state == TaskState.ASSIGNED):
            _requeue(core, outbox, task)
    for job_id, task_id, instance in refused:
        job = core.jobs.get(job_id)
        task = job.tasks.get(task_id) if job is not None else None
        if task is not None and task.worker is worker and task.instance == instance:
            task.retracting = False
    core.needs_schedule = True


def _start(core: Core, outbox: Outbox, task: Task, worker: Worker, now: float) -> None:
    _set_state(task, TaskState.RUNNING)
    worker.n_running += 1
    task.start_time = now
    job = task.job
    if job.started_at is None:
        job.started_at = now
    job.workers_used[worker.id] = worker.config.hostname
    worker.last_task_started = (job.id, task.id, now)
    outbox.changed_jobs.add(job.id)
    if task.nodes is not None:
        task.started_nodes = tuple((n.id, n.config.hostname) for n in task.nodes)
        for n in task.nodes:
            job.workers_used[n.id] = n.config.hostname
    else:
        task.started_nodes = None
    if core.record_events:
        nodes = None
        if task.nodes is not None:
            nodes = [n.id for n in task.nodes]
        outbox.events.append(ev.TaskStarted(now, job.id, task.id, task.instance, worker.id,
                                            task.variant, nodes))


def _check_max_fails(core: Core, outbox: Outbox, job: Job, now: float) -> None:
    if job.max_fails is not None and job.counts[TaskState.FAILED] > job.max_fails:
        # No per-task error: tasks still in array form end in bulk without one, and the
        # state ABORTED says it all (the job's failed tasks carry the errors).
        _end_open_tasks(core, outbox, job, TaskState.ABORTED, now, None)


def _set_state(task: Task, state: TaskState) -> None:
    """The one place a task record changes state (and its job's counters), checked against
    `TASK_TRANSITIONS`: an illegal move raises `IllegalTransition` before anything changes.
    Leaving a state ends any retraction in flight (`Task.retracting` is a sub-state of
    ASSIGNED)."""
    old = task.state
    if state not in TASK_TRANSITIONS[old]:
        raise IllegalTransition(f"task {task.job.id}@{task.id}", old, state)
    counts = task.job.counts
    counts[old] -= 1
    counts[state] += 1
    task.state = state
    task.retracting = False  # a retraction in flight is about the assignment that just ended


def _end_bulk(job: Job, ids: IntRanges, state: TaskState) -> None:
    """Ends waiting tasks still in array form (no records) in `state`, checked like
    `_set_state`."""
    if state not in TASK_TRANSITIONS[TaskState.WAITING]:
        raise IllegalTransition(f"tasks {job.id}@{ids.to_text()}", TaskState.WAITING, state)
    job.bulk.append((ids, state))
    job.counts[TaskState.WAITING] -= len(ids)
    job.counts[state] += len(ids)


def _set_worker_state(worker: Worker, state: WorkerState) -> None:
    """The one place a worker changes state, checked against `WORKER_TRANSITIONS`."""
    old = worker.state
    if state not in WORKER_TRANSITIONS[old]:
        raise IllegalTransition(f"worker {worker.id}", old, state)
    worker.state = state


def _release(task: Task, outbox: Outbox | None = None, now: float | None = None) -> None:
    """Gives the task's resources back to its worker's (or workers') accounting.

    The nodes of a multi-node task are free from `now` on (their idle time starts again), and
    the secondary ones are told so through `outbox` (they run nothing of the task themselves).
    """
    worker = task.worker
    if task.nodes is not None:
        for node in task.nodes:
            node.load = dict.fromkeys(node.load, 0)
            node.mn_task = None
            if now is not None and all(t is task for t in node.tasks):
                node.idle_since = now
            if outbox is not None and node is not worker and node.is_running:
                outbox.reserve[node.id] = False
        task.nodes = None
    else:
        load = worker.load
        for name, amount in task_amounts(task, worker):
            load[name] -= amount
    if task.state == TaskState.RUNNING:
        worker.n_running -= 1


def _complete(core: Core, outbox: Outbox, task: Task, state: TaskState, now: float,
              error: str | None, *, cascade: bool = True, released: bool = False) -> None:
    """Moves a task into a terminal state, freeing its worker and settling its consumers."""
    worker = task.worker
    prev = task.state
    if worker is not None and prev in (TaskState.ASSIGNED, TaskState.RUNNING):
        if not released:
            _release(task, outbox, now)
            worker.tasks.discard(task)
            if not worker.tasks:
                worker.idle_since = now
            if state != TaskState.FINISHED and state != TaskState.FAILED and worker.is_running:
                outbox.cancel.setdefault(worker.id, []).append((task.job.id, task.id,
                                                                task.instance))
        core.needs_schedule = True
    elif prev == TaskState.WAITING and task.deps_pending == 0:
        _unqueue(core, task)
    _set_state(task, state)
    task.error = error
    task.end_time = now
    if task.start_time is None and state in (TaskState.FINISHED, TaskState.FAILED):
        task.start_time = now
    job = task.job
    outbox.changed_jobs.add(job.id)
    if core.record_events:
        if state == TaskState.FINISHED:
            outbox.events.append(ev.TaskFinished(now, job.id, task.id, task.instance,
                                                 worker.id if worker is not None else None))
        elif state == TaskState.FAILED:
            outbox.events.append(ev.TaskFailed(now, job.id, task.id, task.instance, error))
        elif state == TaskState.CANCELED:
            outbox.events.append(ev.TaskCanceled(now, job.id, [task.id]))
        else:
            outbox.events.append(ev.TaskAborted(now, job.id, [task.id]))
    if task.consumers:
        consumers, task.consumers = task.consumers, None
        for c in consumers:
            if c.state.is_terminal:
                continue
            if state == TaskState.FINISHED:
                c.deps_pending -= 1
                if c.deps_pending == 0:
                    core.make_ready(c)
            elif state == TaskState.CANCELED:
                # Canceling a task cancels its consumers too (upstream cancels them recursively).
                c.deps_pending = 0
                _complete(core, outbox, c, TaskState.CANCELED, now, None)
            else:
                c.deps_pending = 0
                _complete(core, outbox, c, TaskState.ABORTED, now,
                          f"Task {task.id} (a dependency) did not finish")
    if (state == TaskState.FINISHED and task.started_nodes is None and worker is not None
            and job.n_tasks >= core.compact_min_tasks):
        _give_up_record(job, task, worker)
    if cascade and job.is_done:
        _job_completed(core, outbox, job, now)


def finish_run(core: Core, outbox: Outbox, job: Job, worker: Worker, first: int, last: int,
               now: float) -> None:
    """Tasks ``first..last`` of `job`, still in array form (taken from their cursor by the
    caller), started and finished on `worker` at `now` (instance 0): what `adopt_task` and a
    FINISHED update do for each of them, done for the run at once and without records (journal
    replay of a `task-progress` record)."""
    n = last - first + 1
    counts = job.counts
    counts[TaskState.WAITING] -= n
    counts[TaskState.FINISHED] += n
    done = job.own_done()
    done.add(first, last, done.segment(now, now, worker.id, 0, 0))
    if job.started_at is None:
        job.started_at = now
    job.workers_used[worker.id] = worker.config.hostname
    worker.last_task_started = (job.id, last, now)
    if not worker.tasks:
        worker.idle_since = now
    outbox.changed_jobs.add(job.id)
    core.needs_schedule = True
    _update_rate(worker, n, now)
    if job.is_done:
        _job_completed(core, outbox, job, now)


def _give_up_record(job: Job, task: Task, worker: Worker) -> None:
    """A plainly finished task keeps no record: its id joins `job.done` (compact runs)."""
    done = job.own_done()
    done.add(task.id, task.id, done.segment(task.start_time, task.end_time, worker.id,
                                            task.instance, task.crash_count))
    del job.tasks[task.id]
    job.sorted_record_ids = None


def _unqueue(core: Core, task: Task) -> None:
    key = queue_key(task.job, task.batch)
    q = core.queues.get(key)
    if q is not None:
        try:
            q.tasks.remove(task)
        except ValueError:
            pass
        if not len(q):
            core.drop_queue(key)


def _job_completed(core: Core, outbox: Outbox, job: Job, now: float) -> None:
    if job.finished_at is None:
        job.finished_at = now
        if not job.is_open:
            if core.record_events:
                outbox.events.append(ev.JobCompleted(now, job.id))
