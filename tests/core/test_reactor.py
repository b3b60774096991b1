"""Reactor tests: task updates, job states, cancel, max-fails, worker loss, crash limits."""

import pytest

from core_testkit import Env, R, TaskState, array_spec, request, states
from hyperqueue.core.model import (
    CRASH_LIMIT_NEVER_RESTART,
    CRASH_LIMIT_UNLIMITED,
    Job,
    JobState,
    WorkerState,
)

LOSS_REASONS = [WorkerState.CONNECTION_LOST, WorkerState.HEARTBEAT_LOST, WorkerState.STOPPED,
                WorkerState.IDLE_TIMEOUT, WorkerState.TIME_LIMIT_REACHED]
FAILURE_REASONS = [WorkerState.CONNECTION_LOST, WorkerState.HEARTBEAT_LOST]
BENIGN_REASONS = [WorkerState.STOPPED, WorkerState.IDLE_TIMEOUT, WorkerState.TIME_LIMIT_REACHED]


def run_one(env, n_cpus=1, spec=None):
    """A worker and a one-task job, scheduled: returns (worker, job, task)."""
    w = env.worker(n_cpus)
    job = env.submit(spec or array_spec("0"))
    env.schedule()
    (task,) = env.out.take_worker_msgs(w, 1)
    return w, job, task


# ------------------------------------------------------------------------- task updates


def test_running_then_finished():
    env = Env()
    w, job, task = run_one(env)
    assert job.state() == JobState.WAITING  # assigned is still waiting for users
    env.tick()
    env.start(w, [task])
    assert task.state == TaskState.RUNNING and task.start_time == env.now
    assert job.state() == JobState.RUNNING
    assert job.started_at == env.now
    assert w.n_running == 1 and w.last_task_started == (job.id, 0, env.now)
    assert job.workers_used == {w.id: "node"}
    assert job.finished_at is None
    env.tick()
    env.finish(w, [task])
    assert task.state == TaskState.FINISHED and task.end_time == env.now
    assert task.error is None
    assert job.state() == JobState.FINISHED
    assert job.finished_at == env.now
    assert job.task_stats() == {"aborted": 0, "canceled": 0, "failed": 0, "finished": 1,
                                "running": 0, "waiting": 0}
    assert w.load == {"cpus": 0} and not w.tasks and w.n_running == 0
    assert w.idle_since == env.now
    assert job.id in env.out.take_changed_jobs()
    env.out.emptiness_check()
    env.check()


def test_running_then_failed_keeps_the_error():
    env = Env()
    w, job, task = run_one(env)
    env.start(w, [task])
    env.fail(w, [task], "Program terminated with exit code 3.")
    assert task.state == TaskState.FAILED
    assert task.error == "Program terminated with exit code 3."
    assert job.state() == JobState.FAILED
    assert job.finished_at == env.now
    env.out.emptiness_check()  # a failed task needs no cancel message
    env.check()


def test_failed_without_message_gets_a_default_error():
    env = Env()
    w, job, task = run_one(env)
    env.update(w, R.UPDATE_FAILED, [task], None)
    assert task.state == TaskState.FAILED and task.error
    env.check()


def test_assigned_to_finished_directly():
    env = Env()
    w, job, task = run_one(env)
    env.tick(5)
    env.finish(w, [task])
    assert task.state == TaskState.FINISHED
    assert task.start_time == task.end_time == env.now
    assert job.started_at == env.now
    assert job.workers_used == {w.id: "node"}
    assert w.n_running == 0 and w.load == {"cpus": 0}
    assert job.state() == JobState.FINISHED
    env.check()


def test_assigned_to_failed_directly():
    env = Env()
    w, job, task = run_one(env)
    env.fail(w, [task], "spawn failed")
    assert task.state == TaskState.FAILED and task.start_time == env.now
    assert w.n_running == 0
    env.check()


def test_running_twice_is_harmless():
    env = Env()
    w, job, task = run_one(env)
    env.start(w, [task])
    t0 = task.start_time
    env.tick()
    env.start(w, [task])
    assert task.start_time == t0 and w.n_running == 1
    env.check()


def test_stale_updates_are_ignored():
    env = Env()
    w1 = env.worker(1)
    w2 = env.worker(1)
    job = env.submit(array_spec("0-1"))
    env.schedule()
    (t0,) = env.out.take_worker_msgs(w1, 1)[:1]
    (t1,) = env.out.take_worker_msgs(w2, 1)
    # Wrong instance, wrong worker, unknown job or task: nothing changes.
    env.update(w1, R.UPDATE_FINISHED, [t0], instance=t0.instance + 1)
    env.update(w2, R.UPDATE_FINISHED, [t0])
    env.update(w1, R.UPDATE_RUNNING, [t1])
    R.task_updates(env.core, env.out, w1, [[R.UPDATE_FINISHED, 99, 0, 0, None],
                                           [R.UPDATE_FINISHED, job.id, 77, 0, None]], env.now)
    assert t0.state == TaskState.ASSIGNED and t1.state == TaskState.ASSIGNED
    assert job.counts[TaskState.ASSIGNED] == 2
    env.out.emptiness_check()

    # An update from before a restart (old instance) is ignored after the task moved on.
    env.start(w1, [t0])
    env.lose(w1, WorkerState.CONNECTION_LOST)
    assert t0.instance == 1
    w3 = env.worker(1)
    env.schedule()
    assert env.out.take_worker_msgs(w3, 1) == [t0]
    env.update(w1, R.UPDATE_FINISHED, [t0], instance=0)
    env.update(w3, R.UPDATE_FINISHED, [t0], instance=0)
    assert t0.state == TaskState.ASSIGNED and t0.worker is w3
    env.finish(w3, [t0])
    assert t0.state == TaskState.FINISHED
    # ... and so is any update about a task that has already ended.
    env.fail(w3, [t0])
    assert t0.state == TaskState.FINISHED and t0.error is None
    env.out.emptiness_check()
    env.check()


def test_a_batch_of_updates_for_many_tasks():
    env = Env()
    w = env.worker(4)
    job = env.submit(array_spec("0-3"))
    env.schedule()
    tasks = env.out.take_worker_msgs(w, 4)
    env.start(w, tasks)
    ups = [[R.UPDATE_FINISHED, job.id, 0, 0, None], [R.UPDATE_FAILED, job.id, 1, 0, "x"],
           [R.UPDATE_RUNNING, job.id, 2, 0, None], [R.UPDATE_FINISHED, job.id, 3, 0, None]]
    R.task_updates(env.core, env.out, w, ups, env.now)
    assert states(job) == {0: "FINISHED", 1: "FAILED", 2: "RUNNING", 3: "FINISHED"}
    assert job.state() == JobState.RUNNING
    assert w.load == {"cpus": 10000} and w.n_running == 1
    env.check()


# ------------------------------------------------------------------------- job state


@pytest.mark.parametrize(
    "counts, is_open, expected",
    [
        ({TaskState.RUNNING: 1, TaskState.WAITING: 3, TaskState.FAILED: 1}, False,
         JobState.RUNNING),
        ({TaskState.ASSIGNED: 1, TaskState.FAILED: 1}, False, JobState.WAITING),
        ({TaskState.WAITING: 1, TaskState.FINISHED: 1}, True, JobState.WAITING),
        ({TaskState.FAILED: 1, TaskState.ABORTED: 1, TaskState.CANCELED: 1}, False,
         JobState.FAILED),
        ({TaskState.ABORTED: 1, TaskState.CANCELED: 1, TaskState.FINISHED: 1}, False,
         JobState.ABORTED),
        ({TaskState.CANCELED: 1, TaskState.FINISHED: 5}, True, JobState.CANCELED),
        ({TaskState.FINISHED: 5}, True, JobState.OPENED),
        ({}, True, JobState.OPENED),
        ({TaskState.FINISHED: 5}, False, JobState.FINISHED),
    ],
)
def test_job_state_rules_in_order(counts, is_open, expected):
    job = Job(1, "j", None, is_open, "/s", 0.0)
    for state, n in counts.items():
        job.counts[state] = n
    job.n_tasks = sum(counts.values())
    assert job.state() == expected


def test_job_state_follows_its_tasks():
    env = Env()
    w = env.worker(3)
    job = env.submit(array_spec("0-2"))
    assert job.state() == JobState.WAITING
    env.schedule()
    t0, t1, t2 = env.out.take_worker_msgs(w, 3)
    env.start(w, [t0])
    assert job.state() == JobState.RUNNING
    env.fail(w, [t0])
    assert job.state() == JobState.WAITING  # others not completed yet
    env.finish(w, [t1])
    assert job.finished_at is None
    env.tick()
    env.finish(w, [t2])
    assert job.state() == JobState.FAILED
    assert job.finished_at == env.now
    env.check()


# ------------------------------------------------------------------------- cancel


def test_cancel_array_in_bulk_and_running_tasks_get_cancel_messages():
    env = Env()
    w = env.worker(4)
    job = env.submit(array_spec("0-99"))
    env.schedule()
    tasks = env.out.take_worker_msgs(w, 8)
    env.start(w, tasks[:4])
    env.finish(w, tasks[:1])
    env.out.take_changed_jobs()

    env.tick()
    n = env.cancel(job, "by user")
    assert n == 99
    assert job.cancel_reason == "by user"
    # Only the tasks that were ever handed out have records (the finished one gave its up to
    # the compact runs of `job.done`): the rest ended in bulk.
    assert len(job.tasks) + len(job.done) == 8
    assert len(job.bulk) == 1 and len(job.bulk[0][0]) == 92
    assert job.bulk[0][1] == TaskState.CANCELED
    assert job.task_stats() == {"aborted": 0, "canceled": 99, "failed": 0, "finished": 1,
                                "running": 0, "waiting": 0}
    assert env.core.task_state(job, 50) == TaskState.CANCELED
    assert env.core.task_state(job, 0) == TaskState.FINISHED
    cancels = env.out.take_cancels(w, 7)
    assert sorted(cancels) == [(job.id, i, 0) for i in range(1, 8)]
    assert env.out.take_changed_jobs() == {job.id}
    env.out.emptiness_check()
    assert job.state() == JobState.CANCELED
    assert job.finished_at == env.now
    assert w.load == {"cpus": 0} and not w.tasks and w.n_running == 0
    assert env.core.queues == {}
    env.check()

    # Reports about canceled tasks that the worker sends before it sees the cancel are ignored.
    env.finish(w, tasks[1:3])
    assert all(t.state == TaskState.CANCELED for t in tasks[1:])
    # Nothing left: a second cancel changes nothing and does not overwrite the reason.
    assert env.cancel(job, "again") == 0
    assert job.cancel_reason == "by user"
    assert env.schedule() == 0
    env.out.emptiness_check()
    env.check()


def test_cancel_before_anything_ran_creates_no_task_records():
    env = Env()
    job = env.submit(array_spec("0-9,20-30:2"))
    assert env.cancel(job, None) == 16
    assert job.tasks == {}
    assert job.cancel_reason is None
    assert job.counts[TaskState.CANCELED] == 16
    assert env.core.task_state(job, 24) == TaskState.CANCELED
    assert env.core.task_state(job, 25) is None
    w = env.worker(4)
    assert env.schedule() == 0
    env.out.emptiness_check()
    assert w.load == {"cpus": 0}
    env.check()


def test_cancel_of_a_finished_job_stores_no_reason():
    env = Env()
    w, job, task = run_one(env)
    env.finish(w, [task])
    assert env.cancel(job, "late") == 0
    assert job.cancel_reason is None
    assert job.state() == JobState.FINISHED
    env.out.emptiness_check()
    env.check()


def test_cancel_partially_scheduled_array_keeps_other_jobs():
    env = Env()
    w = env.worker(2)
    a = env.submit(array_spec("0-9"))
    b = env.submit(array_spec("0-9"))
    env.schedule()
    assert [t.job.id for t in env.out.take_worker_msgs(w, 4)] == [a.id] * 4
    env.cancel(a)
    assert len(env.out.take_cancels(w)) == 4
    env.schedule()
    assert [(t.job.id, t.id) for t in env.out.take_worker_msgs(w, 4)] == [
        (b.id, i) for i in range(4)]
    env.out.emptiness_check()
    env.check()


# ------------------------------------------------------------------------- max fails


def test_max_fails_aborts_the_rest():
    env = Env()
    w = env.worker(2)
    job = env.submit(array_spec("0-19", max_fails=1))
    env.schedule()
    tasks = env.out.take_worker_msgs(w, 4)
    env.start(w, tasks[:2])
    env.fail(w, tasks[:1])
    assert job.counts[TaskState.ABORTED] == 0  # 1 failure is not more than max_fails=1
    env.schedule()
    env.out.take_worker_msgs(w)
    env.fail(w, tasks[1:2])
    # 2 > 1: every task that had not ended is aborted; the assigned ones are canceled on w.
    assert job.counts[TaskState.FAILED] == 2
    assert job.counts[TaskState.ABORTED] == 18
    assert job.state() == JobState.FAILED
    assert env.core.task_state(job, 19) == TaskState.ABORTED
    cancels = env.out.take_cancels(w)
    # tasks 2 and 3 were assigned (the prefill is refilled only once half of it is used up)
    assert sorted(c[1] for c in cancels) == [2, 3]
    env.out.emptiness_check()
    assert all(t.error is None for t in job.tasks.values() if t.state == TaskState.ABORTED)
    assert w.load == {"cpus": 0}
    env.check()


def test_max_fails_zero_aborts_on_first_failure():
    env = Env()
    w = env.worker(1)
    job = env.submit(array_spec("0-4", max_fails=0))
    env.schedule()
    t0, t1 = env.out.take_worker_msgs(w, 2)
    env.fail(w, [t0])
    assert job.counts[TaskState.ABORTED] == 4
    assert t1.state == TaskState.ABORTED
    assert env.out.take_cancels(w) == [(job.id, 1, 0)]
    env.out.emptiness_check()
    env.check()


def test_no_max_fails_means_no_abort():
    env = Env()
    w = env.worker(1)
    job = env.submit(array_spec("0-2"))
    for _ in range(3):
        env.schedule()
        for t in env.out.take_worker_msgs(w):
            env.fail(w, [t])
    assert job.counts[TaskState.FAILED] == 3 and job.counts[TaskState.ABORTED] == 0
    env.check()


# ------------------------------------------------------------------------- worker loss


@pytest.mark.parametrize("reason", LOSS_REASONS)
def test_lost_worker_assigned_tasks_return_with_a_new_instance(reason):
    # (upstream bumps the instance of every task of a lost worker: it may still start them)
    env = Env()
    w = env.worker(2)
    job = env.submit(array_spec("0-3"))
    env.schedule()
    tasks = env.out.take_worker_msgs(w, 4)
    env.tick()
    env.lose(w, reason)
    assert w.state == reason and w.ended_at == env.now
    assert all(t.state == TaskState.WAITING for t in tasks)
    assert all(t.instance == 1 and t.crash_count == 0 for t in tasks)
    assert all(t.worker is None for t in tasks)
    assert w.load == {"cpus": 0} and not w.tasks
    env.out.emptiness_check()  # nothing is sent to a lost worker
    w2 = env.worker(2)
    env.schedule()
    assert sorted(t.id for t in env.out.take_worker_msgs(w2, 4)) == [0, 1, 2, 3]
    env.check()


@pytest.mark.parametrize("reason", LOSS_REASONS)
def test_lost_worker_running_tasks_restart_with_new_instance(reason):
    env = Env()
    w = env.worker(1)
    job = env.submit(array_spec("0"))
    env.schedule()
    (task,) = env.out.take_worker_msgs(w, 1)
    env.start(w, [task])
    env.lose(w, reason)
    assert task.state == TaskState.WAITING
    assert task.instance == 1
    assert task.crash_count == (1 if reason in FAILURE_REASONS else 0)
    assert task.worker is None
    assert job.state() == JobState.WAITING
    assert w.n_running == 0
    env.out.emptiness_check()
    w2 = env.worker(1)
    env.schedule()
    assert env.out.take_worker_msgs(w2, 1) == [task]
    env.finish(w2, [task])
    assert job.state() == JobState.FINISHED
    env.check()


@pytest.mark.parametrize("reason", FAILURE_REASONS)
def test_crash_limit_reached_fails_the_task(reason):
    env = Env()
    job = env.submit(array_spec("0", crash_limit=2))
    for i in range(2):
        w = env.worker(1)
        env.schedule()
        (task,) = env.out.take_worker_msgs(w, 1)
        assert task.instance == i
        env.start(w, [task])
        env.lose(w, reason)
    assert task.state == TaskState.FAILED
    assert task.crash_count == 2
    assert task.error == ("Task was running on a worker that was lost; the task has occurred 2 "
                          "times in this situation and limit was reached.")  # F29
    assert job.state() == JobState.FAILED
    assert job.finished_at == env.now
    env.out.emptiness_check()
    env.check()


def test_benign_losses_never_hit_the_crash_limit():
    env = Env()
    job = env.submit(array_spec("0", crash_limit=1))
    for i, reason in enumerate(BENIGN_REASONS * 3):
        w = env.worker(1)
        env.schedule()
        (task,) = env.out.take_worker_msgs(w, 1)
        env.start(w, [task])
        env.lose(w, reason)
        assert task.state == TaskState.WAITING and task.instance == i + 1
    assert task.crash_count == 0
    env.check()


@pytest.mark.parametrize("reason", LOSS_REASONS)
def test_never_restart_fails_on_any_loss(reason):
    env = Env()
    job = env.submit(array_spec("0-1", crash_limit=CRASH_LIMIT_NEVER_RESTART))
    w = env.worker(1)
    env.schedule()
    running, assigned = env.out.take_worker_msgs(w, 2)
    env.start(w, [running])
    env.lose(w, reason)
    assert running.state == TaskState.FAILED
    assert running.error == "Task was running on a lost worker while never restart flag was set."
    # A task that had not started yet is simply given to another worker.
    assert assigned.state == TaskState.WAITING
    env.out.emptiness_check()
    env.check()


def test_unlimited_never_fails():
    env = Env()
    job = env.submit(array_spec("0", crash_limit=CRASH_LIMIT_UNLIMITED))
    for i in range(20):
        w = env.worker(1)
        env.schedule()
        (task,) = env.out.take_worker_msgs(w, 1)
        env.start(w, [task])
        env.lose(w, WorkerState.HEARTBEAT_LOST)
    assert task.state == TaskState.WAITING
    assert task.crash_count == 20 and task.instance == 20
    env.check()


def test_lose_worker_twice_is_a_noop():
    env = Env()
    w, job, task = run_one(env)
    env.start(w, [task])
    env.lose(w, WorkerState.CONNECTION_LOST)
    env.lose(w, WorkerState.HEARTBEAT_LOST)
    assert w.state == WorkerState.CONNECTION_LOST
    assert task.instance == 1 and task.crash_count == 1
    env.check()


def test_crash_limit_failures_over_max_fails_abort_other_tasks_of_the_lost_worker():
    """Regression: tasks aborted by max-fails while their worker was being lost were
    processed again (released twice, and revived from ABORTED)."""
    env = Env()
    w = env.worker(3)
    job = env.submit(array_spec("0-5", crash_limit=1, max_fails=0))
    env.schedule()
    tasks = env.out.take_worker_msgs(w, 6)
    env.start(w, tasks[:3])
    env.lose(w, WorkerState.CONNECTION_LOST)
    assert states(job) == {0: "FAILED", 1: "ABORTED", 2: "ABORTED", 3: "ABORTED",
                           4: "ABORTED", 5: "ABORTED"}
    assert job.counts[TaskState.FAILED] == 1 and job.counts[TaskState.ABORTED] == 5
    assert w.load == {"cpus": 0} and w.n_running == 0
    env.out.emptiness_check()  # no cancel messages to the lost worker
    assert env.core.queues == {}
    assert job.state() == JobState.FAILED
    env.check()


def test_lost_worker_with_tasks_of_several_jobs():
    env = Env()
    w = env.worker(2)
    a = env.submit(array_spec("0-1"))
    b = env.submit(array_spec("0-1", req=request(cpus=1)))
    env.schedule()
    got = env.out.take_worker_msgs(w, 4)
    env.start(w, got[:2])
    env.lose(w, WorkerState.HEARTBEAT_LOST)
    assert [t.instance for t in got] == [1, 1, 1, 1]
    assert [t.crash_count for t in got] == [1, 1, 0, 0]
    assert a.counts[TaskState.WAITING] == 2 and b.counts[TaskState.WAITING] == 2
    env.check()


# ------------------------------------------------------------------------- events


def test_events_are_recorded_when_asked():
    env = Env(record_events=True)
    w, job, task = run_one(env)
    env.finish(w, [task])
    kinds = [e.kind for e in env.out.take_events()]
    assert kinds == ["worker-connected", "job-created", "task-started", "task-finished",
                     "job-completed"]
    env2 = Env()
    w, job, task = run_one(env2)
    env2.finish(w, [task])
    assert env2.out.take_events() == []


def test_a_result_without_running_update_records_the_same_history():
    """Workers leave out the RUNNING update of a task whose result goes in the same batch."""
    env = Env(record_events=True)
    w, job, task = run_one(env)
    env.tick(0.5)
    env.fail(w, [task], "exit 3")
    events = env.out.take_events()
    assert [e.kind for e in events] == ["worker-connected", "job-created", "task-started",
                                         "task-failed", "job-completed"]
    assert task.state == TaskState.FAILED and task.error == "exit 3"
    assert task.start_time == task.end_time == env.now
    assert w.n_running == 0 and not w.tasks
    env.check()

