"""Retraction: prefilled tasks (assigned, not started) asked back from a busy worker when work
of a higher priority waits, and the worker's answer (given back, or refused because it already
started them) through `reactor.tasks_retracted`."""

from core_testkit import Env, R, TaskState, array_spec, request
from hyperqueue.core.model import WorkerState


def busy_worker(env, n_low="0-1"):
    """A 1-cpu worker holding a low-priority job's tasks: 0 started, 1 prefilled."""
    w = env.worker(1)
    low = env.submit(array_spec(n_low, req=request(cpus=1)))
    env.schedule()
    tasks = env.out.take_worker_msgs(w, 2)
    env.start(w, tasks[:1])
    return w, low, tasks


def ask_back(env, w, low):
    """Higher-priority work arrives and cannot be placed: the prefilled task is asked back."""
    high = env.submit(array_spec("0", priority=1, req=request(cpus=1), name="high"))
    env.schedule()
    assert env.out.take_worker_msgs(w, 0) == []  # nothing assigned: the worker is full
    return high


def test_retracted_task_waits_again_and_runs_elsewhere():
    env = Env(record_events=True)
    w1, low, (t0, t1) = busy_worker(env)
    high = ask_back(env, w1, low)
    assert env.out.take_retractions(w1, 1) == [(low.id, 1, 0)]
    assert t1.retracting and t1.state == TaskState.ASSIGNED
    env.out.take_events()
    env.check()

    env.tick()
    R.tasks_retracted(env.core, env.out, w1, [[low.id, 1, 0]], [])
    assert t1.state == TaskState.WAITING and t1.worker is None and not t1.retracting
    assert t1.instance == 0  # never started: not a new instance
    assert w1.tasks == {t0} and w1.load == {"cpus": 10000}
    assert low.counts[TaskState.WAITING] == 1 and low.counts[TaskState.ASSIGNED] == 0
    assert env.out.take_events() == []  # a task that never started leaves no trace
    env.out.emptiness_check()
    env.check()

    # The worker's freed prefill slot goes to the higher priority.
    env.schedule()
    (h,) = env.out.take_worker_msgs(w1, 1)
    assert h.job is high
    env.out.emptiness_check()
    # The retracted task runs on the next worker with room, with the same instance.
    w2 = env.worker(1)
    env.schedule()
    assert env.out.take_worker_msgs(w2, 1) == [t1]
    env.start(w2, [t1])
    started = [e.to_record()[2] for e in env.out.take_events() if e.kind == "task-started"]
    assert started == [{"job": low.id, "task": 1, "instance": 0, "worker": w2.id}]
    env.finish(w2, [t1])
    assert t1.state == TaskState.FINISHED
    env.out.emptiness_check()
    env.check()


def test_refused_task_stays_and_runs_where_it_is():
    env = Env(record_events=True)
    w, low, (t0, t1) = busy_worker(env)
    ask_back(env, w, low)
    env.out.take_retractions(w, 1)
    env.out.take_events()
    # The worker had started it already; its RUNNING update comes after the answer.
    R.tasks_retracted(env.core, env.out, w, [], [[low.id, 1, 0]])
    assert t1.state == TaskState.ASSIGNED and t1.worker is w and not t1.retracting
    env.start(w, [t1])
    assert t1.state == TaskState.RUNNING and t1.instance == 0
    started = [e.to_record()[2] for e in env.out.take_events() if e.kind == "task-started"]
    assert started == [{"job": low.id, "task": 1, "instance": 0, "worker": w.id}]
    env.schedule()  # a running task is never asked back
    env.out.emptiness_check()
    env.check()


def test_running_task_is_not_given_back():
    env = Env()
    w, low, (t0, t1) = busy_worker(env)
    ask_back(env, w, low)
    env.out.take_retractions(w, 1)
    # The RUNNING update overtook the answer; a "retracted" answer (out of order) is ignored.
    env.start(w, [t1])
    assert not t1.retracting
    R.tasks_retracted(env.core, env.out, w, [[low.id, 1, 0]], [])
    assert t1.state == TaskState.RUNNING and t1.worker is w and t1 in w.tasks
    assert low.counts[TaskState.RUNNING] == 2
    env.out.emptiness_check()
    env.check()


def test_canceled_while_asked_back():
    env = Env()
    w, low, (t0, t1) = busy_worker(env)
    ask_back(env, w, low)
    env.out.take_retractions(w, 1)
    env.cancel(low)
    assert t1.state == TaskState.CANCELED and not t1.retracting
    assert sorted(env.out.take_cancels(w, 2)) == [(low.id, 0, 0), (low.id, 1, 0)]
    # The late answer changes nothing (no second count, no requeue).
    R.tasks_retracted(env.core, env.out, w, [[low.id, 1, 0]], [])
    assert t1.state == TaskState.CANCELED and low.counts[TaskState.CANCELED] == 2
    env.out.emptiness_check()
    env.check()


def test_requeued_task_can_be_asked_back_again():
    """A task asked back from a worker that is then lost waits again without the pending
    retraction; placed on another worker, it can be asked back from there."""
    env = Env()
    w1, low, (t0, t1) = busy_worker(env)
    high = ask_back(env, w1, low)
    env.out.take_retractions(w1, 1)
    env.lose(w1, WorkerState.CONNECTION_LOST)
    assert t1.state == TaskState.WAITING and not t1.retracting
    assert t0.state == TaskState.WAITING and t0.instance == 1
    w2 = env.worker(2)
    env.schedule()
    assert len(env.out.take_worker_msgs(w2)) == 3  # the high task, t0 and t1 (prefill)
    env.out.emptiness_check()
    top = env.submit(array_spec("0-2", priority=2, req=request(cpus=1), name="top"))
    env.schedule()
    asked = env.out.take_retractions(w2, 3)
    assert (low.id, 1, 1) in asked and (low.id, 0, 1) in asked
    # A refusal about an older instance is not about this assignment: ignored.
    R.tasks_retracted(env.core, env.out, w2, [], [[low.id, 0, 0]])
    assert t0.retracting
    R.tasks_retracted(env.core, env.out, w2, [list(r) for r in asked], [])
    assert not w2.tasks and t0.instance == 1 and t1.instance == 1
    env.schedule()
    got = env.out.take_worker_msgs(w2, 4)
    assert [t.job for t in got] == [top] * 3 + [high]  # the highest priority first
    env.out.emptiness_check()
    env.check()


def test_started_tasks_are_never_asked_back():
    env = Env()
    w, low, (t0, t1) = busy_worker(env)
    env.start(w, [t1])
    ask_back(env, w, low)
    env.out.emptiness_check()
    assert not t0.retracting and not t1.retracting
