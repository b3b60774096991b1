"""Scheduler tests: which worker gets which tasks, capacity, prefill, priorities, requests."""

from core_testkit import Env, TaskState, array_spec, request
from hyperqueue.core.resources import ResourceDef, parse_resource_def
from hyperqueue.core import scheduler
from hyperqueue.core.model import Task
from hyperqueue.core.scheduler import PREFILL_FACTOR


def task_ids(tasks):
    return [(t.job.id, t.id) for t in tasks]


def test_array_submit_stays_compact_until_scheduled():
    env = Env()
    job = env.submit(array_spec("0-999999"))
    assert job.n_tasks == 1_000_000
    assert job.tasks == {}
    assert job.task_stats()["waiting"] == 1_000_000
    assert env.core.task_state(job, 123456) == TaskState.WAITING
    assert env.core.task_state(job, 1_000_000) is None
    env.check()

    w = env.worker(4)
    assert env.schedule() == 4 * PREFILL_FACTOR
    got = env.out.take_worker_msgs(w, 8)
    # Tasks are handed out in id order, and only they got records.
    assert [t.id for t in got] == list(range(8))
    assert sorted(job.tasks) == list(range(8))
    assert all(t.state == TaskState.ASSIGNED and t.worker is w for t in got)
    assert job.counts[TaskState.WAITING] == 1_000_000 - 8
    assert job.counts[TaskState.ASSIGNED] == 8
    assert job.task_stats()["waiting"] == 1_000_000  # assigned still shows as waiting
    env.out.emptiness_check()
    env.check()


def test_capacity_then_prefill_over_two_workers():
    env = Env()
    w1 = env.worker(2)
    w2 = env.worker(2)
    job = env.submit(array_spec("0-9"))
    assert env.schedule() == 8
    # Phase 1 fills each worker's capacity, phase 2 prefills up to PREFILL_FACTOR x capacity.
    assert [t.id for t in env.out.take_worker_msgs(w1)] == [0, 1, 4, 5]
    assert [t.id for t in env.out.take_worker_msgs(w2)] == [2, 3, 6, 7]
    assert w1.load == {"cpus": 40000} and w2.load == {"cpus": 40000}
    env.out.emptiness_check()
    # Everybody is full: nothing more is assigned.
    assert env.schedule() == 0
    env.out.emptiness_check()
    assert job.counts[TaskState.WAITING] == 2

    # One task ends on w2: its prefill is still more than half full, so nothing is sent
    # (refills come in batches, once half of the prefill is used up).
    env.start(w2, [job.tasks[2]])
    env.finish(w2, [job.tasks[2]])
    assert env.schedule() == 0
    env.out.emptiness_check()
    # A second one ends: now w2 is at half its prefill and gets topped up.
    env.start(w2, [job.tasks[3]])
    env.finish(w2, [job.tasks[3]])
    assert env.schedule() == 2
    assert [t.id for t in env.out.take_worker_msgs(w2, 2)] == [8, 9]
    env.out.emptiness_check()
    env.check()


def test_larger_requests_fill_up_to_capacity_then_prefill():
    env = Env()
    w = env.worker(3)
    job = env.submit(array_spec("0-9", req=request(cpus=2)))
    env.schedule()
    got = env.out.take_worker_msgs(w)
    # 1 task fits into 3 cpus; prefill allows up to 6 units: 2 more.
    assert len(got) == 3
    assert w.load["cpus"] == 60000
    assert job.counts[TaskState.ASSIGNED] == 3
    env.out.emptiness_check()
    env.check()


def test_higher_priority_first_then_older_job():
    env = Env()
    low = env.submit(array_spec("0-3", priority=0))
    high = env.submit(array_spec("0-3", priority=5))
    w = env.worker(4)
    env.schedule()
    got = env.out.take_worker_msgs(w, 8)
    assert task_ids(got[:4]) == [(high.id, i) for i in range(4)]
    assert task_ids(got[4:]) == [(low.id, i) for i in range(4)]
    env.out.emptiness_check()
    env.check()

    # Equal priority: the older job wins.
    env2 = Env()
    a = env2.submit(array_spec("0-5"))
    b = env2.submit(array_spec("0-5"))
    w2 = env2.worker(2)
    env2.schedule()
    got = env2.out.take_worker_msgs(w2, 4)
    assert task_ids(got) == [(a.id, 0), (a.id, 1), (a.id, 2), (a.id, 3)]
    assert b.tasks == {}
    env2.check()


def test_priority_is_per_batch_of_a_later_submit():
    env = Env()
    w = env.worker(1)
    first = env.submit(array_spec("0-2", priority=-1))
    second = env.submit(array_spec("0-2", priority=3))
    env.schedule()
    got = env.out.take_worker_msgs(w, 2)
    assert task_ids(got) == [(second.id, 0), (second.id, 1)]
    assert first.tasks == {}
    env.check()


def test_request_no_worker_has_stays_waiting():
    env = Env()
    w = env.worker(4)
    job = env.submit(array_spec("0-2", req=request(cpus=1, gpus=1)))
    big = env.submit(array_spec("0", req=request(cpus=8)))
    assert env.schedule() == 0
    env.out.emptiness_check()
    assert job.tasks == {} and big.tasks == {}
    explained = scheduler.explain(env.core, Task(job, 0, job.batches[0], 0), env.now)
    blocking = [i for v in explained["workers"][0]["variants"] for i in v["items"]
                if not i["ok"]]
    assert [i["resource"] for i in blocking] == ["gpus"]

    # A worker with GPUs arrives: the gpu tasks go there (and only there).
    g = env.worker(4, parse_resource_def("gpus", "[a,b]"))
    env.schedule()
    got = env.out.take_worker_msgs(g)
    assert sorted(t.id for t in got) == [0, 1, 2]
    assert g.load == {"cpus": 30000, "gpus": 30000}
    assert w.load == {"cpus": 0}
    assert big.tasks == {}
    env.out.emptiness_check()
    env.check()


def test_all_request_takes_the_whole_pool():
    env = Env()
    w = env.worker(4)
    nogpu_all = env.submit(array_spec("0-1", req=request(gpus="all")))
    job = env.submit(array_spec("0-9", req=request(cpus="all")))
    env.schedule()
    got = env.out.take_worker_msgs(w)
    # One task runs on the whole pool, one more is prefilled; `all` of a missing pool never fits.
    assert task_ids(got) == [(job.id, 0), (job.id, 1)]
    assert w.load["cpus"] == 80000
    assert nogpu_all.tasks == {}
    env.out.emptiness_check()

    env.check()


def test_all_request_prefill_after_partial_load():
    env = Env()
    w = env.worker(4)
    small = env.submit(array_spec("0-1", req=request(cpus=1)))
    env.schedule()
    assert len(env.out.take_worker_msgs(w)) == 2  # load 2
    allj = env.submit(array_spec("0-3", req=request(cpus="all")))
    env.schedule()
    got = env.out.take_worker_msgs(w)
    # 2 + 4 > 4 in phase 1; 2 + 4 <= 8 in the prefill phase: exactly one.
    assert task_ids(got) == [(allj.id, 0)]
    assert w.load["cpus"] == 60000
    assert small.counts[TaskState.ASSIGNED] == 2
    env.check()


def test_min_time_against_worker_time_limit():
    env = Env()
    limited = env.worker(2, time_limit=100.0)
    long_job = env.submit(array_spec("0-1", req=request(min_time=200, cpus=1)))
    short_job = env.submit(array_spec("0-1", req=request(min_time=50, cpus=1)))
    env.schedule()
    got = env.out.take_worker_msgs(limited)
    assert task_ids(got) == [(short_job.id, 0), (short_job.id, 1)]
    assert long_job.tasks == {}
    env.out.emptiness_check()

    # As the worker's lifetime runs out, even short requests stop fitting.
    later = env.submit(array_spec("0", req=request(min_time=50, cpus=1)))
    env.tick(60)  # 40 s left < 50
    assert env.schedule() == 0
    assert later.tasks == {}

    # A worker without a time limit accepts any min_time.
    free = env.worker(4)
    env.schedule()
    got = env.out.take_worker_msgs(free)
    assert sorted(task_ids(got)) == [(long_job.id, 0), (long_job.id, 1), (later.id, 0)]
    env.out.emptiness_check()
    env.check()


def test_sum_resource_and_multiple_entries():
    env = Env()
    w = env.worker(8, ResourceDef("mem", "sum", size=10000))
    job = env.submit(array_spec("0-19", req=request(cpus=1, mem=0.25)))
    env.schedule()
    got = env.out.take_worker_msgs(w)
    # mem (1.0 / 0.25 = 4 per capacity) limits before cpus do: 4 + 4 prefilled.
    assert len(got) == 8
    assert w.load == {"cpus": 80000, "mem": 20000}
    assert job.counts[TaskState.WAITING] == 12
    env.check()


def test_stopping_and_lost_workers_get_nothing():
    env = Env()
    w = env.worker(4)
    assert env.core.workers[w.id] is w
    from core_testkit import R

    assert R.stop_worker(env.core, env.out, w) == "stopped"
    assert env.out.take_stop_workers() == [w.id]
    assert R.stop_worker(env.core, env.out, w) == "stopped"
    assert env.out.take_stop_workers() == []  # asked only once
    job = env.submit(array_spec("0-3"))
    assert env.schedule() == 0
    env.out.emptiness_check()
    from hyperqueue.core.model import WorkerState

    env.lose(w, WorkerState.STOPPED)
    assert R.stop_worker(env.core, env.out, w) == "worker is already stopped"
    assert env.schedule() == 0
    assert job.tasks == {}
    env.check()


def test_schedule_without_work_or_workers_is_a_noop():
    env = Env()
    assert env.schedule() == 0
    env.submit(array_spec("0-3"))
    assert env.core.needs_schedule
    assert env.schedule() == 0
    assert not env.core.needs_schedule
    env.out.emptiness_check()
    env.check()


def test_restarted_tasks_go_before_the_array_remainder():
    from hyperqueue.core.model import WorkerState

    env = Env()
    w1 = env.worker(1)
    job = env.submit(array_spec("0-9"))
    env.schedule()
    got = env.out.take_worker_msgs(w1, 2)
    env.start(w1, got[:1])
    env.lose(w1, WorkerState.CONNECTION_LOST)
    w2 = env.worker(1)
    env.schedule()
    again = env.out.take_worker_msgs(w2, 2)
    assert [t.id for t in again] == [0, 1]
    assert [t.instance for t in again] == [1, 1]  # both were on the lost worker
    env.out.emptiness_check()
    env.check()


def test_load_never_exceeds_prefill_bound_with_mixed_requests():
    env = Env()
    workers = [env.worker(n) for n in (1, 2, 3, 5)]
    for size, amount in (("0-20", 1), ("0-20", 2), ("0-5", 3), ("0-3", "all")):
        env.submit(array_spec(size, req=request(cpus=amount)))
    env.schedule()
    for w in workers:
        assert 0 < w.load["cpus"] <= PREFILL_FACTOR * w.capacity["cpus"]
    env.check()


def test_fast_worker_gets_a_deeper_but_bounded_prefill():
    from core_testkit import R
    from hyperqueue.core.reactor import MAX_PREFILL

    env = Env()
    fast = env.worker(2)
    slow = env.worker(2)
    job = env.submit(array_spec("0-99999"))
    assert fast.prefill == slow.prefill == PREFILL_FACTOR
    # The fast worker runs ~200 tasks/s (4 tasks every 20 ms), measured over 0.1 s windows.
    for _ in range(10):
        env.schedule()
        tasks = env.out.take_worker_msgs(fast)
        env.out.take_worker_msgs(slow)
        env.tick(0.01)
        env.start(fast, tasks)
        env.tick(0.01)
        env.finish(fast, tasks)
    assert fast.prefill > PREFILL_FACTOR
    assert fast.prefill <= 1 + MAX_PREFILL
    assert slow.prefill == PREFILL_FACTOR
    env.schedule()
    env.out.take_worker_msgs(fast)
    env.out.take_worker_msgs(slow)
    assert PREFILL_FACTOR * 20000 < fast.load["cpus"] <= fast.prefill * 20000
    assert slow.load["cpus"] == PREFILL_FACTOR * 20000
    env.out.emptiness_check()
    env.check()

    # A worker that reports a huge burst is still capped.
    w = env.worker(1)
    env.schedule()
    tasks = env.out.take_worker_msgs(w)
    window_start = env.now
    env.tick(0.1)
    # (results count, whether or not they still match a task: here an unknown job)
    ups = [[R.UPDATE_FINISHED, 10**9, 0, 0, None]] * 1_000_000
    R.task_updates(env.core, env.out, w, ups, env.now)
    assert w.prefill == 1 + MAX_PREFILL
    assert window_start < w.window_start
    env.check()
