"""The registries of the core: jobs, workers and the queues of tasks ready to run."""

from __future__ import annotations

import bisect
from collections import deque

from .model import COMPACT_MIN_TASKS, Job, Task, TaskBatch, TaskState, Worker
from .ranges import IntRanges
from .resources import ALL


class RangeCursor:
    """Walks the ids of an `IntRanges` in order, remembering how far it got (no expansion)."""

    __slots__ = ("ranges", "ri", "next_id", "position", "total")

    def __init__(self, ids: IntRanges):
        self.ranges = ids.ranges
        self.ri = 0
        self.next_id = self.ranges[0][0] if self.ranges else 0
        self.position = 0
        self.total = len(ids)

    @property
    def remaining(self) -> int:
        return self.total - self.position

    def pop(self) -> tuple[int, int]:
        """Returns `(position, id)` of the next id. The caller checks `remaining` first."""
        tid = self.next_id
        pos = self.position
        self.position = pos + 1
        start, end, step = self.ranges[self.ri]
        nxt = tid + step
        if nxt > end:
            self.ri += 1
            if self.ri < len(self.ranges):
                nxt = self.ranges[self.ri][0]
        self.next_id = nxt
        return pos, tid


def position_of(ids: IntRanges, task_id: int) -> int | None:
    """The index of `task_id` in the iteration order of `ids`, or None."""
    pos = 0
    for start, end, step in ids.ranges:
        if start <= task_id <= end and (task_id - start) % step == 0:
            return pos + (task_id - start) // step
        pos += (end - start) // step + 1
    return None


def queue_key(job: Job, batch: TaskBatch) -> tuple:
    """Ready queues are served in this order: priority (higher first), then the weight of the
    request (higher first: upstream's scheduler values heavier requests more), then older jobs
    and earlier batches."""
    t = batch.template
    return (-t.priority, -t.request.weight, job.id, batch.index)


_LAST_MIN_CPUS: list = [None, 0]  # [template, its min_cpus]: batches of a graph share one


def min_cpus(template) -> int:
    """The fewest CPU units any variant of the template's request takes (0 when one takes none,
    `all` CPUs, or the task is multi-node): a worker with less free CPU room than this for
    every ready queue cannot take any ready task."""
    last = _LAST_MIN_CPUS
    if last[0] is template:
        return last[1]
    if template.is_multi_node:
        return 0
    least = None
    for r in template.requests:
        amount = 0
        for e in r.entries:
            if e.name == "cpus":
                amount = 0 if e.amount == ALL else e.amount
                break
        if least is None or amount < least:
            least = amount
    last[0], last[1] = template, least or 0
    return least or 0


class ReadyQueue:
    """Tasks of one batch that may start now: restarted/released tasks first, then the array."""

    __slots__ = ("key", "job", "batch", "cursor", "tasks", "min_cpus")

    def __init__(self, job: Job, batch: TaskBatch, with_cursor: bool):
        self.key = queue_key(job, batch)
        self.job = job
        self.batch = batch
        self.min_cpus = min_cpus(batch.template)
        self.cursor = RangeCursor(batch.ids) if with_cursor else None
        self.tasks: deque[Task] = deque()

    def __len__(self) -> int:
        return len(self.tasks) + (self.cursor.remaining if self.cursor else 0)

    def pop(self) -> Task:
        """Takes the next ready task, creating its record if it was still in array form."""
        if self.tasks:
            return self.tasks.popleft()
        pos, tid = self.cursor.pop()
        task = Task(self.job, tid, self.batch, pos)
        self.job.tasks[tid] = task
        return task


def unmaterialized_state(job: Job, task_id: int) -> TaskState:
    """State of a task of `job` that has no record: FINISHED when it gave its record up when it
    finished (`Job.done`), WAITING unless it ended in bulk."""
    if job.done.count and job.done.find(task_id) is not None:
        return TaskState.FINISHED
    for ids, state in job.bulk:
        if task_id in ids:
            return state
    return TaskState.WAITING


class FinishedTask:
    """What a finished task without a record shows (read from `Job.done`): the attributes of a
    `Task` that the views read, made on demand."""

    __slots__ = ("job", "id", "batch", "instance", "crash_count", "worker",
                 "start_time", "end_time", "error", "started_nodes", "nodes", "variant",
                 "deps_pending", "retracting")

    def __init__(self, job: Job, task_id: int, values, worker):
        self.job = job
        self.id = task_id
        self.batch = job.batch_of(task_id)
        self.start_time, self.end_time, _wid, self.instance, self.crash_count = values
        self.worker = worker
        self.error = None
        self.started_nodes = None
        self.nodes = None
        self.variant = 0
        self.deps_pending = 0
        self.retracting = False

    @property
    def key(self) -> tuple[int, int]:
        return (self.job.id, self.id)

    state = TaskState.FINISHED

    def __repr__(self):
        return f"FinishedTask({self.job.id}@{self.id}, inst={self.instance})"


class Core:
    """All server state that the reactor and scheduler act on."""

    def __init__(self, server_uid: str = "000000", record_events: bool = False):
        self.server_uid = server_uid
        self.record_events = record_events
        self.jobs: dict[int, Job] = {}
        self.next_job_id = 1
        self.workers: dict[int, Worker] = {}
        self.next_worker_id = 1
        self.queues: dict[tuple, ReadyQueue] = {}
        self.queue_keys: list[tuple] = []  # sorted: priority desc, job id, batch
        # min_cpus of the queues -> how many queues: the least CPU room any ready task needs
        self.queue_min_cpus: dict[int, int] = {}
        self.batches_by_template: dict[int, TaskBatch] = {}
        self.next_template_id = 1
        self.needs_schedule = False
        self.priorities: set[int] = set()  # every task priority submitted so far
        # Workers of a previous server run that may reconnect: id -> deadline. Scheduling
        # waits while any is pending, so nothing they still run is started twice.
        self.awaiting: dict[int, float] = {}
        # Finished tasks of jobs of at least this many tasks give their records up (`Job.done`).
        self.compact_min_tasks = COMPACT_MIN_TASKS

    # -- ready queues ---------------------------------------------------------------------
    def queue_for(self, job: Job, batch: TaskBatch) -> ReadyQueue:
        key = queue_key(job, batch)
        q = self.queues.get(key)
        if q is None:
            q = ReadyQueue(job, batch, with_cursor=False)
            self._add_queue(q)
        return q

    def add_array_queue(self, job: Job, batch: TaskBatch) -> None:
        q = ReadyQueue(job, batch, with_cursor=True)
        self._add_queue(q)

    def _add_queue(self, q: ReadyQueue) -> None:
        self.queues[q.key] = q
        keys = self.queue_keys
        if not keys or keys[-1] < q.key:
            keys.append(q.key)
        else:
            bisect.insort(keys, q.key)
        m = self.queue_min_cpus
        m[q.min_cpus] = m.get(q.min_cpus, 0) + 1
        self.needs_schedule = True

    def drop_queue(self, key: tuple) -> None:
        q = self.queues.pop(key, None)
        if q is not None:
            i = bisect.bisect_left(self.queue_keys, key)
            del self.queue_keys[i]
            m = self.queue_min_cpus
            n = m[q.min_cpus] - 1
            if n:
                m[q.min_cpus] = n
            else:
                del m[q.min_cpus]

    def least_cpus_needed(self) -> int:
        """The fewest CPU units a ready task of any queue takes (0 when there is no queue)."""
        m = self.queue_min_cpus
        return min(m) if m else 0

    def make_ready(self, task: Task) -> None:
        self.queue_for(task.job, task.batch).tasks.append(task)
        self.needs_schedule = True

    # -- lookups --------------------------------------------------------------------------
    def task_state(self, job: Job, task_id: int) -> TaskState | None:
        """State of any task of `job`, including tasks still in compact array form."""
        t = job.tasks.get(task_id)
        if t is not None:
            return t.state
        if task_id in job.all_ids():  # a lookup over the ranges, whatever the job's size
            return unmaterialized_state(job, task_id)
        return None

    def task_record(self, job: Job, task_id: int):
        """The task's record, or a `FinishedTask` for a finished task that gave its record up,
        or None (a task still in array form, or no such task)."""
        t = job.tasks.get(task_id)
        if t is not None:
            return t
        done = job.done
        if done.count:
            seg = done.find(task_id)
            if seg is not None:
                values = done.values(seg)
                return FinishedTask(job, task_id, values, self.workers.get(values[2]))
        return None

    # -- invariants -----------------------------------------------------------------------
    @staticmethod
    def _check_placement(t: Task, n_lost: int) -> None:
        """The variant and nodes of an assigned or running task fit its template and worker."""
        template = t.batch.template
        assert 0 <= t.variant < len(template.requests), (t, t.variant)
        if template.is_multi_node:
            nodes = t.nodes
            assert nodes and nodes[0] is t.worker, (t, nodes)
            # It holds all its nodes; only secondary nodes lost since leave it with fewer.
            assert 0 <= template.request.n_nodes - len(nodes) <= n_lost, (t, nodes)
            assert len({n.id for n in nodes}) == len(nodes), (t, nodes)
            for n in nodes:
                assert n.is_running and n.mn_task is t and n.load == n.capacity, (t, n)
        else:
            assert t.nodes is None, t
            cap = t.worker.capacity
            for e in template.requests[t.variant].entries:
                # A variant the worker could never run cannot be the one it runs.
                assert cap.get(e.name, 0) > 0 and (e.amount == ALL or e.amount <= cap[e.name]), (
                    t, t.variant, t.worker)

    def sanity_check(self) -> None:
        """Asserts the invariants that every reaction must keep (used by tests)."""
        n_lost = sum(1 for w in self.workers.values() if not w.is_running)
        for job in self.jobs.values():
            counts = [0] * len(TaskState)
            for t in job.tasks.values():
                counts[t.state] += 1
                if t.state in (TaskState.ASSIGNED, TaskState.RUNNING):
                    assert t.worker is not None and t in t.worker.tasks, t
                    assert t.worker.is_running, (t, t.worker)
                    self._check_placement(t, n_lost)
                else:
                    assert t.nodes is None, t
                if t.retracting:  # asked back: only a prefilled single-node task
                    assert t.state == TaskState.ASSIGNED and t.nodes is None, t
            for ids, state in job.bulk:
                counts[state] += len(ids)
            counts[TaskState.FINISHED] += len(job.done)
            assert sum(e - s + 1 for s, e, _ in job.done.runs()) == len(job.done)
            materialized_or_bulk = sum(counts)
            assert materialized_or_bulk <= job.n_tasks
            counts[TaskState.WAITING] += job.n_tasks - materialized_or_bulk
            assert counts == job.counts, (job.id, counts, job.counts)
        queued = 0
        for key in self.queue_keys:
            q = self.queues[key]
            assert q.key == key
            for t in q.tasks:
                assert t.state == TaskState.WAITING and t.deps_pending == 0, t
            queued += len(q)
        assert len(self.queue_keys) == len(self.queues)
        mins: dict[int, int] = {}
        for q in self.queues.values():
            assert q.min_cpus == min_cpus(q.batch.template), q.key
            mins[q.min_cpus] = mins.get(q.min_cpus, 0) + 1
        assert mins == self.queue_min_cpus, (mins, self.queue_min_cpus)
        assert self.queue_keys == sorted(self.queue_keys)
        for w in self.workers.values():
            # The load is what the tasks here take, each for the variant it was given.
            load = dict.fromkeys(w.capacity, 0)
            for t in w.tasks:
                assert t.worker is w and t.state in (TaskState.ASSIGNED, TaskState.RUNNING), t
                for name, amount in task_amounts(t, w):
                    assert name in load, (w, t, t.variant, name)
                    load[name] += amount
            if w.mn_task is not None:
                assert w.mn_task.nodes and w in w.mn_task.nodes, w
                assert w.mn_task.state in (TaskState.ASSIGNED, TaskState.RUNNING)
                load = dict(w.capacity)
            assert load == w.load, (w, load, w.load)
            assert w.n_running == sum(1 for t in w.tasks if t.state == TaskState.RUNNING)
            if not w.is_running:
                assert not w.tasks and w.mn_task is None, w


def task_amounts(task, worker: Worker):
    """`(resource, units)` the task's current assignment takes from `worker`."""
    return request_amounts(task.batch.template.requests[task.variant], worker)


_FIXED_AMOUNTS: dict = {}  # request -> its (resource, units) pairs when it has no `all`


def request_amounts(request, worker: Worker):
    """`(resource, units)` a request takes from `worker` (`all` = the worker's whole pool)."""
    fixed = _FIXED_AMOUNTS.get(request)
    if fixed is not None:
        return fixed
    if all(e.amount != ALL for e in request.entries):
        fixed = tuple((e.name, e.amount) for e in request.entries)
        if len(_FIXED_AMOUNTS) < 10_000:
            _FIXED_AMOUNTS[request] = fixed
        return fixed
    cap = worker.capacity
    return [(e.name, cap.get(e.name, 0) if e.amount == ALL else e.amount)
            for e in request.entries]


def cursor_remaining(cursor: RangeCursor) -> IntRanges:
    """The ids a cursor has not handed out yet, still compact."""
    if cursor.remaining == 0:
        return IntRanges.from_ids(())
    rest = []
    start, end, step = cursor.ranges[cursor.ri]
    rest.append((cursor.next_id, end - (end - cursor.next_id) % step, step))
    rest.extend(cursor.ranges[cursor.ri + 1:])
    return IntRanges.from_ranges(rest)
