"""Dependencies (graph submits), submit validation, open jobs, close and forget."""

import pytest

from core_testkit import Env, R, TaskState, array_spec, graph_spec, states
from hyperqueue.core.model import JobState


def snapshot(core):
    """Everything a refused submit must leave untouched."""
    jobs = {}
    for jid, job in core.jobs.items():
        jobs[jid] = (job.n_tasks, list(job.counts), len(job.batches), sorted(job.tasks),
                     job.is_open, [(r.to_text(), s) for r, s in job.bulk], job.finished_at,
                     job.all_ids().to_text(),
                     {tid: (t.state, t.deps_pending, len(t.consumers or ()))
                      for tid, t in job.tasks.items()})
    return (core.next_job_id, core.next_template_id, jobs, list(core.queue_keys),
            sorted(core.batches_by_template), core.needs_schedule)


def run_all(env, w):
    """Schedules and finishes everything runnable; returns the ids in the order they ran."""
    order = []
    while True:
        env.schedule()
        got = env.out.take_worker_msgs(w)
        if not got:
            return order
        for t in got:
            order.append(t.id)
            env.finish(w, [t])


# ------------------------------------------------------------------------- dependencies


def test_chain_runs_in_dependency_order():
    env = Env()
    w = env.worker(4)
    job = env.submit(graph_spec({0: (), 1: (0,), 2: (1,)}))
    assert len(job.tasks) == 3  # graph submits get records at once
    env.schedule()
    assert [t.id for t in env.out.take_worker_msgs(w)] == [0]
    env.start(w, [job.tasks[0]])
    assert env.schedule() == 0
    env.finish(w, [job.tasks[0]])
    env.schedule()
    assert [t.id for t in env.out.take_worker_msgs(w)] == [1]
    env.finish(w, [job.tasks[1]])
    env.schedule()
    assert [t.id for t in env.out.take_worker_msgs(w)] == [2]
    env.finish(w, [job.tasks[2]])
    assert job.state() == JobState.FINISHED
    env.out.emptiness_check()
    env.check()


def test_consumer_waits_for_all_deps():
    env = Env()
    w = env.worker(4)
    job = env.submit(graph_spec({1: (), 2: (), 3: (1, 2), 4: (3,)}))
    env.schedule()
    first = env.out.take_worker_msgs(w)
    assert sorted(t.id for t in first) == [1, 2]
    env.finish(w, [job.tasks[1]])
    assert env.schedule() == 0
    assert job.tasks[3].deps_pending == 1
    env.fail(w, [job.tasks[2]])  # a failed dep: consumers are aborted transitively
    assert states(job) == {1: "FINISHED", 2: "FAILED", 3: "ABORTED", 4: "ABORTED"}
    assert "did not finish" in job.tasks[3].error
    assert job.state() == JobState.FAILED
    assert env.schedule() == 0
    env.out.emptiness_check()
    env.check()


def test_failed_dep_aborts_whole_subtree_but_not_siblings():
    env = Env()
    w = env.worker(1)
    job = env.submit(graph_spec({0: (), 1: (0,), 2: (1,), 3: (2,), 10: (), 11: (10,)}))
    env.schedule()
    got = env.out.take_worker_msgs(w)
    assert [t.id for t in got] == [0, 10]
    env.fail(w, [job.tasks[0]])
    assert [job.tasks[i].state for i in (1, 2, 3)] == [TaskState.ABORTED] * 3
    assert job.tasks[11].state == TaskState.WAITING
    env.finish(w, [job.tasks[10]])
    assert run_all(env, w) == [11]
    assert job.state() == JobState.FAILED
    env.check()


def test_deps_in_same_batch_array():
    """An array batch whose every task depends on a separate setup task."""
    env = Env()
    w = env.worker(2)
    from core_testkit import ids, template

    spec = R.SubmitSpec("g", "/s", [R.BatchSpec(template(), ids("0")),
                                    R.BatchSpec(template(), ids("1-4"), deps=(0,))])
    job = env.submit(spec)
    env.schedule()
    assert [t.id for t in env.out.take_worker_msgs(w)] == [0]
    env.finish(w, [job.tasks[0]])
    env.schedule()
    assert sorted(t.id for t in env.out.take_worker_msgs(w)) == [1, 2, 3, 4]
    env.check()


@pytest.mark.parametrize(
    "tasks, message",
    [
        ({0: (1,), 1: (0,)}, "cycle"),
        ({0: (), 1: (2,), 2: (3,), 3: (1,)}, "cycle"),
        ({0: (0,)}, "itself"),
        ({0: (), 1: (5,)}, "does not exist"),
    ],
)
def test_invalid_graphs_are_refused_without_any_change(tasks, message):
    env = Env()
    other = env.submit(array_spec("0-3"))
    env.out.clear()
    before = snapshot(env.core)
    with pytest.raises(R.SubmitError, match=message):
        env.submit(graph_spec(tasks))
    assert snapshot(env.core) == before
    assert list(env.core.jobs) == [other.id]
    assert env.out.is_empty()
    env.check()


def test_empty_or_colliding_submits_are_refused_without_any_change():
    env = Env()
    before = snapshot(env.core)
    with pytest.raises(R.SubmitError):
        env.submit(R.SubmitSpec("x", "/s", []))
    from core_testkit import ids, template

    with pytest.raises(R.SubmitError, match="collide"):
        env.submit(R.SubmitSpec("x", "/s", [R.BatchSpec(template(), ids("0-5")),
                                            R.BatchSpec(template(), ids("5-7"))]))
    assert snapshot(env.core) == before
    assert env.out.is_empty()


# ------------------------------------------------------------------------- open jobs


def test_open_job_lifecycle():
    env = Env()
    w = env.worker(2)
    job = env.open("stream", 3, "/sub")
    assert job.is_open and job.max_fails == 3
    assert job.state() == JobState.OPENED
    assert env.schedule() == 0

    env.submit(array_spec("0-2", job_id=job.id))
    env.submit(array_spec("10-11", job_id=job.id))
    assert job.n_tasks == 5 and len(job.batches) == 2
    assert job.state() == JobState.WAITING
    assert run_all(env, w) == [0, 1, 2, 10, 11]
    # All done but still open: OPENED, and it cannot be forgotten yet.
    assert job.state() == JobState.OPENED
    assert not job.is_terminated
    assert env.forget(job) is False
    assert job.id in env.core.jobs

    # New tasks reopen the work.
    env.tick()
    env.submit(array_spec("20", job_id=job.id))
    assert job.finished_at is None
    assert job.state() == JobState.WAITING
    assert run_all(env, w) == [20]

    env.tick()
    assert env.close(job) is True
    assert env.close(job) is False
    assert job.state() == JobState.FINISHED
    assert job.finished_at is not None
    with pytest.raises(R.SubmitError, match="not open"):
        env.submit(array_spec("30", job_id=job.id))

    templates = [b.template_id for b in job.batches]
    assert env.forget(job) is True
    assert job.id not in env.core.jobs
    assert not set(templates) & set(env.core.batches_by_template)
    env.out.clear()
    env.check()


def test_open_job_id_collision_and_unknown_job_refused_without_change():
    env = Env()
    job = env.open("o", None, "/s")
    env.submit(array_spec("0-9", job_id=job.id))
    env.out.clear()
    before = snapshot(env.core)
    with pytest.raises(R.SubmitError, match="collide"):
        env.submit(array_spec("9-12", job_id=job.id))
    with pytest.raises(R.SubmitError, match="not found"):
        env.submit(array_spec("0", job_id=999))
    assert snapshot(env.core) == before
    assert env.out.is_empty()
    env.check()


def test_close_open_job_with_pending_tasks_then_finish():
    env = Env()
    w = env.worker(1)
    job = env.open("o", None, "/s")
    env.submit(array_spec("0-1", job_id=job.id))
    env.close(job)
    assert job.state() == JobState.WAITING and job.finished_at is None
    assert env.forget(job) is False
    run_all(env, w)
    assert job.state() == JobState.FINISHED and job.is_terminated
    assert env.forget(job) is True
    env.check()


def test_close_empty_open_job_finishes_it():
    env = Env()
    job = env.open("o", None, "/s")
    env.tick()
    env.close(job)
    assert job.state() == JobState.FINISHED
    assert job.finished_at == env.now
    assert env.forget(job)


def test_forget_refuses_running_and_closed_non_open_jobs_work():
    env = Env()
    w = env.worker(1)
    job = env.submit(array_spec("0"))
    assert env.forget(job) is False
    run_all(env, w)
    assert env.forget(job) is True
    assert env.core.jobs == {}


def test_graph_submit_into_open_job_with_deps_on_existing_tasks():
    env = Env()
    w = env.worker(4)
    job = env.open("o", None, "/s")
    env.submit(graph_spec({0: (), 1: ()}, job_id=job.id))
    env.schedule()
    env.out.take_worker_msgs(w, 2)
    env.finish(w, [job.tasks[0]])
    env.fail(w, [job.tasks[1]])
    # A dep on a finished task is satisfied; on a failed one the consumer is aborted at once.
    env.submit(graph_spec({2: (0,), 3: (1,), 4: (2,)}, job_id=job.id))
    assert states(job)[3] == "ABORTED"
    assert job.tasks[2].deps_pending == 0 and job.tasks[4].deps_pending == 1
    env.schedule()
    assert [t.id for t in env.out.take_worker_msgs(w)] == [2]
    env.finish(w, [job.tasks[2]])
    assert run_all(env, w) == [4]
    env.check()

    # A dep on an existing task that is still waiting or running is tracked too.
    env.submit(graph_spec({5: ()}, job_id=job.id))
    env.schedule()
    env.out.take_worker_msgs(w, 1)
    env.submit(graph_spec({6: (5,)}, job_id=job.id))
    assert job.tasks[6].deps_pending == 1
    assert env.schedule() == 0
    env.finish(w, [job.tasks[5]])
    assert run_all(env, w) == [6]
    env.check()


def test_dep_on_compact_array_task_refused_without_change():
    """Regression: the submit raised half-way, leaving a batch nobody would ever schedule."""
    env = Env()
    job = env.open("o", None, "/s")
    env.submit(array_spec("0-99", job_id=job.id))
    env.out.clear()
    before = snapshot(env.core)
    with pytest.raises(R.SubmitError, match="Invalid dependency"):
        env.submit(graph_spec({200: (50,)}, job_id=job.id))
    assert snapshot(env.core) == before
    assert env.out.is_empty()
    env.check()
    # Once the array has ended (here: canceled in bulk), a dep on it is settled at once.
    env.cancel(job)
    env.submit(graph_spec({200: (50,)}, job_id=job.id))
    assert job.tasks[200].state == TaskState.ABORTED
    env.check()


def test_cancel_cancels_consumers_too():
    """Regression: consumers of a canceled task became ABORTED (job state ABORTED, and the
    canceled count reported to the user was too low)."""
    env = Env()
    w = env.worker(1)
    job = env.submit(graph_spec({0: (), 1: (0,), 2: (1,), 3: ()}))
    env.schedule()
    env.out.take_worker_msgs(w)
    env.start(w, [job.tasks[0]])
    assert env.cancel(job, "stop") == 4
    assert states(job) == {0: "CANCELED", 1: "CANCELED", 2: "CANCELED", 3: "CANCELED"}
    assert job.state() == JobState.CANCELED
    assert job.cancel_reason == "stop"
    assert sorted(env.out.take_cancels(w)) == [(job.id, 0, 0), (job.id, 3, 0)]
    env.out.emptiness_check()
    env.check()


def test_cancel_consumer_order_does_not_matter():
    env = Env()
    job = env.submit(graph_spec({5: (), 1: (5,), 0: (1,)}))
    assert env.cancel(job) == 3
    assert set(states(job).values()) == {"CANCELED"}
    env.check()


def test_max_fails_abort_with_deps():
    env = Env()
    w = env.worker(2)
    job = env.submit(graph_spec({0: (), 1: (), 2: (0,), 3: (1,)}, max_fails=0))
    env.schedule()
    env.out.take_worker_msgs(w, 2)
    env.fail(w, [job.tasks[0]])
    assert states(job) == {0: "FAILED", 1: "ABORTED", 2: "ABORTED", 3: "ABORTED"}
    assert env.out.take_cancels(w) == [(job.id, 1, 0)]
    env.out.emptiness_check()
    env.check()


def test_consumer_of_a_task_aborted_at_submit_is_aborted_not_queued():
    """Regression: a consumer that came after the aborted task in the submit was aborted by
    the cascade and then queued anyway (an ABORTED task was later handed to a worker)."""
    env = Env()
    job = env.open()
    env.submit(graph_spec({0: ()}, job_id=job.id))
    env.cancel(job)
    env.submit(graph_spec({3: (0,), 4: (), 5: (3,)}, job_id=job.id))
    assert env.core.task_state(job, 0) == TaskState.CANCELED  # canceled in bulk
    assert states(job) == {3: "ABORTED", 4: "WAITING", 5: "ABORTED"}
    env.check()
    w = env.worker(4)
    env.schedule()
    assert [t.id for t in env.out.take_worker_msgs(w)] == [4]
    env.check()


def test_task_with_a_failed_and_a_pending_dep_is_aborted():
    """Regression: the "aborted" marker (-1) of a task with a dep that already failed was
    counted back to 0 by a second, still pending dep, so the task was made ready at once."""
    env = Env()
    w = env.worker(4)
    job = env.open()
    env.submit(graph_spec({0: ()}, job_id=job.id))
    env.schedule()
    env.fail(w, env.out.take_worker_msgs(w, 1))
    env.submit(graph_spec({1: (), 2: (0, 1)}, job_id=job.id))
    assert states(job) == {0: "FAILED", 1: "WAITING", 2: "ABORTED"}
    env.schedule()
    assert [t.id for t in env.out.take_worker_msgs(w)] == [1]
    env.check()
