"""A hypothesis state machine over the pure core: random submits (arrays and graphs), workers
coming and going, scheduling, task reports, cancels and open jobs, retraction of prefilled tasks
for higher-priority work (and the workers' answers), with the core's invariants checked after
every step and a drain to completion at the end."""

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from core_testkit import Env, R, TaskState, check_ready_tasks_queued, request, template
from hyperqueue.core.model import (
    CRASH_LIMIT_NEVER_RESTART,
    CRASH_LIMIT_UNLIMITED,
    TASK_TRANSITIONS,
    JobState,
    WorkerState,
)
from hyperqueue.core.ranges import IntRanges
from hyperqueue.core.reactor import MAX_PREFILL
from hyperqueue.core.resources import ResourceDef, parse_resource_def
from hyperqueue.core.scheduler import PREFILL_FACTOR

REQUESTS = [
    request(cpus=1),
    request(cpus=2),
    request(cpus=3),
    request(cpus="all"),
    request(cpus=1, gpus=1),
    request(cpus=0.5, gpus=0.5),
    request(cpus=1, mem=0.5),
    request(min_time=50, cpus=1),
]
CRASH_LIMITS = [5, 1, 2, CRASH_LIMIT_UNLIMITED, CRASH_LIMIT_NEVER_RESTART]
LOSS_REASONS = list(WorkerState)[1:]
UPDATE_KINDS = [R.UPDATE_RUNNING, R.UPDATE_FINISHED, R.UPDATE_FAILED]


def snapshot(core):
    jobs = {jid: (job.n_tasks, list(job.counts), len(job.batches), sorted(job.tasks),
                  job.is_open, len(job.bulk))
            for jid, job in core.jobs.items()}
    return (core.next_job_id, core.next_template_id, jobs, list(core.queue_keys),
            sorted(core.batches_by_template))


class CoreMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.env = Env()
        self.core = self.env.core
        # What each simulated worker was told to run: (job, task, instance), never pruned, so
        # reports about canceled or restarted tasks (stale reports) happen too.
        self.received: dict[int, list[tuple[int, int, int]]] = {}
        self.seen: dict[tuple[int, int], tuple[TaskState, int]] = {}
        # The largest prefill factor each worker had while tasks could be assigned to it
        # (the factor adapts to the worker's completion rate; it never goes below 2).
        self.max_factor: dict[int, float] = {}
        # Retractions each simulated worker was asked for and has not answered yet.
        self.asked: dict[int, list[tuple[int, int, int]]] = {}
        # (worker, job, task, instance) the simulated worker reported on (it started it, so
        # it can no longer give it back).
        self.reported: set[tuple[int, int, int, int]] = set()

    # ----------------------------------------------------------------------- helpers
    def drain_outbox(self):
        out = self.env.out
        for wid, tasks in out.compute.items():
            self.received.setdefault(wid, []).extend(
                (t.job.id, t.id, t.instance) for t in tasks)
        for wid, refs in out.take_all_retractions().items():
            self.asked.setdefault(wid, []).extend(refs)
        out.clear()

    def check_retractions(self):
        """After a scheduling pass: the retractions asked for are exactly what the priorities
        call for (prefilled lower-priority tasks, as many as higher-priority tasks wait)."""
        core, out = self.core, self.env.out
        asked = 0
        for wid, refs in out.retract.items():
            w = core.workers[wid]
            assert w.is_running and not w.stopping, w
            for job_id, task_id, instance in refs:
                t = core.jobs[job_id].tasks[task_id]
                assert (t.worker is w and t.instance == instance and t.retracting
                        and t.state == TaskState.ASSIGNED and t.nodes is None), t
                assert t.batch.template.priority < -core.queue_keys[0][0], t
                asked += 1
        if not core.queue_keys or len(core.priorities) < 2:
            assert asked == 0
            return
        top = -core.queue_keys[0][0]
        waiting_top = sum(len(core.queues[k]) for k in core.queue_keys if -k[0] == top)
        assert asked <= waiting_top
        if asked < waiting_top:
            # Nothing else could have been asked back.
            for w in core.workers.values():
                if w.is_running and not w.stopping and w.mn_task is None:
                    for t in w.tasks:
                        assert not (t.state == TaskState.ASSIGNED and not t.retracting
                                    and t.nodes is None
                                    and t.batch.template.priority < top), t

    def running_workers(self):
        return [w for w in self.core.workers.values() if w.is_running]

    def open_jobs(self):
        return [j for j in self.core.jobs.values() if j.is_open]

    @staticmethod
    def next_free_id(job):
        return job.all_ids().max() + 1 if job.n_tasks else 0

    # ----------------------------------------------------------------------- rules
    @rule(size=st.integers(1, 12), step=st.sampled_from([1, 1, 3]),
          priority=st.integers(-1, 2), req=st.sampled_from(REQUESTS),
          max_fails=st.sampled_from([None, None, 0, 2]),
          crash_limit=st.sampled_from(CRASH_LIMITS), into_open=st.integers(0, 3))
    def submit_array(self, size, step, priority, req, max_fails, crash_limit, into_open):
        opened = self.open_jobs()
        job_id, start = None, 0
        if opened and into_open:
            job = opened[into_open % len(opened)]
            job_id, start = job.id, self.next_free_id(job)
        ids = IntRanges.from_ranges([(start, start + step * (size - 1), step)])
        spec = R.SubmitSpec("arr", "/submit", [R.BatchSpec(
            template(req, priority, crash_limit), ids)], max_fails=max_fails, job_id=job_id)
        job = self.env.submit(spec)
        assert job.all_ids().overlaps(ids)
        self.drain_outbox()

    @rule(data=st.data(), n=st.integers(1, 6), into_open=st.integers(0, 2),
          max_fails=st.sampled_from([None, 0, 1]))
    def submit_graph(self, data, n, into_open, max_fails):
        opened = self.open_jobs()
        job = None
        if opened and into_open:
            job = opened[into_open % len(opened)]
        base = self.next_free_id(job) if job else 0
        existing = sorted(job.tasks) if job else []
        batches = []
        for i in range(n):
            own = [base + j for j in range(i) if data.draw(st.booleans())]
            old = data.draw(st.lists(st.sampled_from(existing), max_size=2, unique=True)) \
                if existing else []
            req = data.draw(st.sampled_from(REQUESTS))
            batches.append(R.BatchSpec(template(req, data.draw(st.integers(-1, 1))),
                                       IntRanges.single(base + i), deps=own + old))
        spec = R.SubmitSpec("graph", "/submit", batches, max_fails=max_fails,
                            job_id=job.id if job else None)
        self.env.submit(spec)
        self.drain_outbox()

    @rule(kind=st.sampled_from(["cycle", "missing", "self", "collide", "closed", "compact"]))
    def submit_invalid(self, kind):
        core = self.core
        job_id = None
        if kind == "cycle":
            batches = [R.BatchSpec(template(), IntRanges.single(i), deps=[(i + 1) % 3])
                       for i in range(3)]
        elif kind == "missing":
            batches = [R.BatchSpec(template(), IntRanges.single(0), deps=[7])]
        elif kind == "self":
            batches = [R.BatchSpec(template(), IntRanges.parse("0-3"), deps=[2])]
        elif kind == "collide":
            opened = [j for j in self.open_jobs() if j.n_tasks]
            if not opened:
                return
            job_id = opened[0].id
            batches = [R.BatchSpec(template(), IntRanges.single(opened[0].all_ids().min()))]
        elif kind == "closed":
            closed = [j for j in core.jobs.values() if not j.is_open]
            if not closed:
                return
            job_id = closed[0].id
            batches = [R.BatchSpec(template(), IntRanges.single(10**6))]
        else:
            # A dep on a task of an open job that is still waiting in compact array form.
            candidates = []
            for j in self.open_jobs():
                for b in j.batches:
                    for tid in b.ids:
                        if tid not in j.tasks and core.task_state(j, tid) == TaskState.WAITING:
                            candidates.append((j, tid))
                            break
            if not candidates:
                return
            j, tid = candidates[0]
            job_id = j.id
            batches = [R.BatchSpec(template(), IntRanges.single(self.next_free_id(j)),
                                   deps=[tid])]
        before = snapshot(core)
        try:
            self.env.submit(R.SubmitSpec("bad", "/submit", batches, job_id=job_id))
        except R.SubmitError:
            pass
        else:
            raise AssertionError(f"an invalid submit ({kind}) was accepted")
        assert snapshot(core) == before
        assert self.env.out.is_empty()

    @rule(n_cpus=st.integers(1, 4), gpus=st.booleans(), mem=st.booleans(),
          time_limit=st.sampled_from([None, None, 30.0, 1000.0]))
    def add_worker(self, n_cpus, gpus, mem, time_limit):
        extra = []
        if gpus:
            extra.append(parse_resource_def("gpus", "[a,b]"))
        if mem:
            extra.append(ResourceDef("mem", "sum", size=20000))
        w = self.env.worker(n_cpus, *extra, time_limit=time_limit)
        self.received[w.id] = []
        self.drain_outbox()

    @precondition(lambda self: self.running_workers())
    @rule(idx=st.integers(0, 100), reason=st.sampled_from(LOSS_REASONS))
    def lose_worker(self, idx, reason):
        ws = self.running_workers()
        w = ws[idx % len(ws)]
        before = {t: (t.state, t.instance, t.crash_count) for t in w.tasks}
        self.env.lose(w, reason)
        assert not w.tasks and w.load == dict.fromkeys(w.capacity, 0)
        assert w.state == reason
        for t, (state, instance, crashes) in before.items():
            if t.state == TaskState.WAITING:
                assert t.instance == instance + 1  # assigned or running: a new instance
                assert t.crash_count == crashes + (state == TaskState.RUNNING
                                                   and reason.is_failure)
        # Nothing may be sent to a worker that is gone.
        assert w.id not in self.env.out.compute and w.id not in self.env.out.cancel
        assert w.id not in self.env.out.retract and w.id not in self.env.out.reserve
        self.asked.pop(w.id, None)
        self.drain_outbox()

    @precondition(lambda self: self.running_workers())
    @rule(idx=st.integers(0, 100))
    def stop_worker(self, idx):
        ws = self.running_workers()
        R.stop_worker(self.core, self.env.out, ws[idx % len(ws)])
        self.drain_outbox()

    @rule(dt=st.sampled_from([0.0, 0.01, 1.0, 20.0]))
    def schedule(self, dt):
        self.env.tick(dt)
        core = self.core
        self.env.schedule()
        for wid, tasks in self.env.out.compute.items():
            w = core.workers[wid]
            assert w.is_running and not w.stopping
            factor = max(PREFILL_FACTOR, w.prefill)
            for name, load in w.load.items():
                assert load <= factor * w.capacity[name], (w, name, load, factor)
            for t in tasks:
                assert t.state == TaskState.ASSIGNED and t.worker is w
                for d in t.batch.deps:
                    # A task is never handed out before all its deps finished.
                    assert core.task_state(t.job, d) == TaskState.FINISHED, (t, d)
                mt = t.batch.template.request.min_time
                if mt and w.config.time_limit is not None:
                    assert w.remaining_time(self.env.now) >= mt
        self.check_retractions()
        self.drain_outbox()

    @precondition(lambda self: any(t.state == TaskState.ASSIGNED and t.nodes is None
                                   for w in self.running_workers() for t in w.tasks))
    @rule(size=st.integers(1, 12), req=st.sampled_from(REQUESTS[:3]))
    def submit_urgent(self, size, req):
        """Higher-priority work arrives while workers hold prefilled (assigned, not started)
        tasks: once it cannot be placed, some of those are asked back."""
        top = max(t.batch.template.priority for w in self.running_workers() for t in w.tasks)
        spec = R.SubmitSpec("urgent", "/submit", [R.BatchSpec(
            template(req, top + 1), IntRanges.from_ranges([(0, size - 1, 1)]))])
        self.env.submit(spec)
        self.env.schedule()
        self.check_retractions()
        self.drain_outbox()

    @precondition(lambda self: any(self.asked.get(w.id) for w in self.running_workers()))
    @rule(data=st.data())
    def answer_retraction(self, data):
        """A worker answers a retraction: tasks it had only queued are given back (they wait
        again), tasks it already started are refused (they stay)."""
        ws = [w for w in self.running_workers() if self.asked.get(w.id)]
        w = data.draw(st.sampled_from(ws))
        refs = data.draw(st.lists(st.sampled_from(self.asked[w.id]), min_size=1, unique=True))
        retracted, refused, before = [], [], {}
        for ref in refs:
            started = (w.id, *ref) in self.reported
            if not started and data.draw(st.booleans()):
                retracted.append(ref)
            else:
                refused.append(ref)
            job = self.core.jobs.get(ref[0])
            t = job.tasks.get(ref[1]) if job else None
            if t is not None:
                current = t.worker is w and t.instance == ref[2]
                before[ref] = (t, current, t.state, t.instance, t.worker, t.retracting)
        R.tasks_retracted(self.core, self.env.out, w, [list(r) for r in retracted],
                          [list(r) for r in refused])
        for ref, (t, current, state, instance, worker, retracting) in before.items():
            if not current:  # stale: about an earlier assignment, ignored
                assert (t.state, t.instance, t.worker, t.retracting) == (
                    state, instance, worker, retracting), t
            elif ref in retracted and state == TaskState.ASSIGNED:
                assert t.state == TaskState.WAITING and t.worker is None, t
                assert t.instance == instance and not t.retracting and t not in w.tasks, t
            else:  # refused (or already started): stays on the worker
                assert (t.state, t.instance, t.worker) == (state, instance, worker), t
                assert not t.retracting, t
        for ref in refs:
            self.asked[w.id].remove(ref)
        self.env.out.emptiness_check()
        self.drain_outbox()

    @precondition(lambda self: any(self.received.get(w.id) for w in self.running_workers()))
    @rule(data=st.data())
    def report_one(self, data):
        ws = [w for w in self.running_workers() if self.received.get(w.id)]
        w = data.draw(st.sampled_from(ws))
        job_id, task_id, instance = data.draw(st.sampled_from(self.received[w.id]))
        kind = data.draw(st.sampled_from(UPDATE_KINDS))
        self.reported.add((w.id, job_id, task_id, instance))
        job = self.core.jobs.get(job_id)
        task = job.tasks.get(task_id) if job else None
        current = (task is not None and task.worker is w and task.instance == instance
                   and task.state in (TaskState.ASSIGNED, TaskState.RUNNING))
        before = (task.state, task.instance, task.worker) if task else None
        R.task_updates(self.core, self.env.out, w, [[kind, job_id, task_id, instance, "err"]],
                       self.env.now)
        if not current:
            if task is not None:
                assert (task.state, task.instance, task.worker) == before  # stale: ignored
        elif kind == R.UPDATE_RUNNING:
            assert task.state == TaskState.RUNNING and task.start_time is not None
        elif kind == R.UPDATE_FINISHED:
            assert task.state == TaskState.FINISHED
        else:
            assert task.state == TaskState.FAILED and task.error == "err"
        if current and kind != R.UPDATE_RUNNING:
            assert task not in w.tasks
        self.drain_outbox()

    @precondition(lambda self: any(w.tasks for w in self.running_workers()))
    @rule(data=st.data())
    def report_batch(self, data):
        ws = [w for w in self.running_workers() if w.tasks]
        w = data.draw(st.sampled_from(ws))
        tasks = sorted(w.tasks, key=lambda t: t.key)
        chosen = data.draw(st.lists(st.sampled_from(tasks), min_size=1, unique=True))
        ups = [[data.draw(st.sampled_from(UPDATE_KINDS)), t.job.id, t.id, t.instance, None]
               for t in chosen]
        self.reported.update((w.id, t.job.id, t.id, t.instance) for t in chosen)
        R.task_updates(self.core, self.env.out, w, ups, self.env.now)
        self.drain_outbox()

    @precondition(lambda self: self.core.jobs)
    @rule(idx=st.integers(0, 100), reason=st.sampled_from([None, "why"]))
    def cancel_job(self, idx, reason):
        jobs = list(self.core.jobs.values())
        job = jobs[idx % len(jobs)]
        pending = job.n_tasks - job.n_completed
        old_reason = job.cancel_reason
        on_workers = {}
        for t in job.tasks.values():
            if t.state in (TaskState.ASSIGNED, TaskState.RUNNING):
                on_workers.setdefault(t.worker.id, set()).add((job.id, t.id, t.instance))
        n = self.env.cancel(job, reason)
        assert n == pending
        assert job.is_done
        assert job.counts[TaskState.WAITING] == job.counts[TaskState.ASSIGNED] == 0
        assert job.counts[TaskState.RUNNING] == 0
        assert job.cancel_reason == (reason if n and reason is not None else old_reason)
        got = {wid: set(refs) for wid, refs in self.env.out.cancel.items()}
        assert got == on_workers
        self.drain_outbox()

    @rule(max_fails=st.sampled_from([None, 1]))
    def open_job(self, max_fails):
        job = self.env.open("open", max_fails)
        assert job.state() == JobState.OPENED
        self.drain_outbox()

    @precondition(lambda self: self.open_jobs())
    @rule(idx=st.integers(0, 100))
    def close_job(self, idx):
        opened = self.open_jobs()
        job = opened[idx % len(opened)]
        assert self.env.close(job)
        assert not job.is_open
        assert job.state() != JobState.OPENED
        self.drain_outbox()

    @precondition(lambda self: self.core.jobs)
    @rule(idx=st.integers(0, 100))
    def forget_job(self, idx):
        jobs = list(self.core.jobs.values())
        job = jobs[idx % len(jobs)]
        terminated = job.is_terminated
        assert self.env.forget(job) == terminated
        assert (job.id in self.core.jobs) != terminated
        if terminated:
            for key in [k for k in self.seen if k[0] == job.id]:
                del self.seen[key]

    # ----------------------------------------------------------------------- invariants
    @invariant()
    def core_is_sane(self):
        self.core.sanity_check()
        check_ready_tasks_queued(self.core)

    @invariant()
    def retracting_tasks_were_asked_back(self):
        for w in self.running_workers():
            for t in w.tasks:
                if t.retracting:
                    assert (t.job.id, t.id, t.instance) in self.asked.get(w.id, ()), t

    @invariant()
    def loads_within_prefill_bound(self):
        for w in self.core.workers.values():
            assert PREFILL_FACTOR <= w.prefill <= 1 + MAX_PREFILL
            factor = self.max_factor.get(w.id, PREFILL_FACTOR)
            for name, load in w.load.items():
                assert 0 <= load <= factor * w.capacity[name], (w, name, load, factor)
            self.max_factor[w.id] = max(factor, w.prefill)

    @invariant()
    def each_task_has_one_state_and_moves_legally(self):
        for job in self.core.jobs.values():
            assert job.n_tasks == len(job.all_ids())
            bulk_ids = []
            for ids, state in job.bulk:
                assert state in (TaskState.CANCELED, TaskState.ABORTED)
                bulk_ids.extend(ids)
            assert len(bulk_ids) == len(set(bulk_ids))
            assert not set(bulk_ids) & set(job.tasks)
            # finished tasks without records (`job.done`): in no other form
            done_ids = set(job.done.ids())
            assert len(done_ids) == len(job.done)
            assert not done_ids & set(job.tasks) and not done_ids & set(bulk_ids)
            assert set(job.tasks) <= set(job.all_ids())
            for t in job.tasks.values():
                prev = self.seen.get(t.key)
                if prev is not None:
                    pstate, pinst = prev
                    if pstate.is_terminal:
                        assert t.state == pstate, (t, pstate)
                    else:
                        assert t.state == pstate or t.state in TASK_TRANSITIONS[pstate], (
                            t, pstate)
                    assert t.instance >= pinst
                self.seen[t.key] = (t.state, t.instance)
                if t.state.is_terminal:
                    assert t.end_time is not None
            if job.is_terminated:
                assert job.finished_at is not None
            if not job.is_done:
                assert job.finished_at is None

    # ----------------------------------------------------------------------- drain
    def teardown(self):
        env, core = self.env, self.core
        for job in self.open_jobs():
            env.close(job)
        env.worker(8, parse_resource_def("gpus", "[a,b]"), ResourceDef("mem", "sum", size=20000))
        for _ in range(500):
            env.schedule()
            # The workers start everything they hold: every retraction is refused.
            for wid, refs in env.out.take_all_retractions().items():
                R.tasks_retracted(core, env.out, core.workers[wid], [], [list(r) for r in refs])
            env.out.clear()
            for w in self.running_workers():
                if w.tasks:
                    ups = [[R.UPDATE_FINISHED, t.job.id, t.id, t.instance, None]
                           for t in sorted(w.tasks, key=lambda t: t.key)]
                    R.task_updates(core, env.out, w, ups, env.now)
            core.sanity_check()
            if all(j.is_done for j in core.jobs.values()):
                break
        for job in core.jobs.values():
            assert job.is_terminated, (job.id, job.counts)
            assert job.state() not in (JobState.WAITING, JobState.RUNNING, JobState.OPENED)
            assert job.finished_at is not None
            # Every task ends in exactly one terminal state: a record or one bulk range.
            for tid in job.all_ids():
                state = core.task_state(job, tid)
                assert state is not None and state.is_terminal, (job.id, tid, state)
            assert sum(job.counts[s] for s in TaskState if s.is_terminal) == job.n_tasks
        assert not core.queues and not core.queue_keys
        for w in core.workers.values():
            assert not w.tasks and all(v == 0 for v in w.load.values())
        core.sanity_check()


CoreMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCoreMachine = CoreMachine.TestCase
