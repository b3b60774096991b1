"""Upstream's scheduling rules (upstream-facts §9): time requests (F57), strict priority with
the gap (F58), weights and `--min-utilization` (F59); the server's placement and the worker's
local start order."""

import pytest

from core_testkit import R, Env, TaskState, array_spec, cpus, request
from hyperqueue.core.model import WorkerConfig
from hyperqueue.core.resources import (ResourceRequest, ResourceRequestEntry, UNIT,
                                       parse_resource_def)


def weighted(n_cpus: int, weight: float) -> ResourceRequest:
    return ResourceRequest([ResourceRequestEntry("cpus", n_cpus * UNIT)],
                           weight=round(weight * UNIT))


def picky_worker(env: Env, n_cpus: int, m: float, *extra):
    config = WorkerConfig("node", [cpus(n_cpus), *extra], min_utilization=m)
    return R.add_worker(env.core, env.out, config, env.now)


def sizes(tasks) -> list[int]:
    return sorted(t.batch.template.request.cpus.amount // UNIT for t in tasks)


# --------------------------------------------------------------------------- F57 time request


def test_time_request_equal_to_the_remaining_lifetime_fits():
    env = Env()
    w = env.worker(2, time_limit=100.0)
    exact = env.submit(array_spec("0", req=request(min_time=100, cpus=1)))
    over = env.submit(array_spec("0", req=request(min_time=100.5, cpus=1)))
    env.schedule()
    assert [t.job for t in env.out.take_worker_msgs(w)] == [exact]
    assert over.tasks == {}
    env.check()


# --------------------------------------------------------------------------- F58 priorities


def test_lower_priority_does_not_take_what_a_waiting_higher_one_could_use():
    """The 4-CPU example: 1 CPU busy, a waiting 4-CPU task of a higher priority: the 2-CPU tasks
    of a lower priority are not started (nor given to the worker to start beside it)."""
    env = Env()
    w = env.worker(4)
    first = env.submit(array_spec("0", req=request(cpus=1)))
    env.schedule()
    (running,) = env.out.take_worker_msgs(w, 1)
    env.start(w, [running])
    high = env.submit(array_spec("0", req=request(cpus=4), priority=5))
    low = env.submit(array_spec("0-1", req=request(cpus=2), priority=1))
    env.schedule()
    got = env.out.take_worker_msgs(w)
    # the 4-CPU task is prefilled (it starts when the 1-CPU task ends); a 2-CPU task may be
    # prefilled only beside it within the prefill bound, never in phase 1
    assert got[0].job is high
    assert w.load["cpus"] - 5 * UNIT <= 4 * UNIT
    assert all(t.job is low for t in got[1:])
    env.check()

    # Without the higher-priority task, a 2-CPU task would have started at once.
    env2 = Env()
    w2 = env2.worker(4)
    env2.submit(array_spec("0", req=request(cpus=1)))
    env2.schedule()
    env2.start(w2, env2.out.take_worker_msgs(w2, 1))
    env2.submit(array_spec("0-1", req=request(cpus=2), priority=1))
    env2.schedule()
    assert len(env2.out.take_worker_msgs(w2)) == 2  # one runs now, one is prefilled
    assert first.counts[TaskState.RUNNING] == 1


def test_prefill_respects_the_gap():
    env = Env()
    w = env.worker(4)
    filler = env.submit(array_spec("0-4", req=request(cpus=1), priority=9))
    env.schedule()
    tasks = env.out.take_worker_msgs(w, 5)  # 4 to run + 1 prefilled: load 5 of 8
    env.start(w, tasks[:4])
    high = env.submit(array_spec("0", req=request(cpus=4), priority=5))
    low = env.submit(array_spec("0-3", req=request(cpus=1), priority=1))
    env.schedule()
    # the 4-CPU task neither fits now nor in the prefill (5 + 4 > 8); a 1-CPU task of lower
    # priority would fit in the prefill, but only beside the waiting one: none is given
    env.out.emptiness_check()
    assert high.tasks == {} and low.tasks == {}
    assert filler.counts[TaskState.RUNNING] == 4
    env.check()


def test_the_gap_on_other_resources_is_used():
    """A waiting higher-priority task needs the busy GPU: CPUs it would leave free are the gap,
    and a lower-priority CPU-only task may use them."""
    env = Env()
    w = env.worker(4, parse_resource_def("gpus", "1"))
    gpu = env.submit(array_spec("0", req=request(cpus=1, gpus=1)))
    env.schedule()
    env.start(w, env.out.take_worker_msgs(w, 1))
    high = env.submit(array_spec("0-1", req=request(cpus=1, gpus=1), priority=5))
    low = env.submit(array_spec("0-9", req=request(cpus=1), priority=1))
    env.schedule()
    got = env.out.take_worker_msgs(w)
    # phase 1: 3 CPUs free, one held back for a waiting GPU task: 2 low-priority tasks;
    # then the prefill phase, which gives the GPU task first
    assert [t.job for t in got[:3]] == [low, low, high]
    assert sum(1 for t in got if t.job is high) == 1  # prefilled (the GPU is busy)
    assert gpu.counts[TaskState.RUNNING] == 1
    env.check()


def test_equal_priorities_do_not_block_each_other():
    env = Env()
    w = env.worker(4)
    env.submit(array_spec("0", req=request(cpus=1)))
    env.schedule()
    env.start(w, env.out.take_worker_msgs(w, 1))
    big = env.submit(array_spec("0", req=request(cpus=4)))
    small = env.submit(array_spec("0-1", req=request(cpus=2)))
    env.schedule()
    got = env.out.take_worker_msgs(w)
    assert got[0].job is small  # started now in phase 1, beside the 1-CPU task
    assert big.counts[TaskState.ASSIGNED] == 1  # prefilled
    env.check()


def test_a_higher_priority_task_the_worker_cannot_run_does_not_block():
    env = Env()
    w = env.worker(4)
    env.submit(array_spec("0", req=request(cpus=8), priority=5))  # too big for any worker
    env.submit(array_spec("0", req=request(cpus=1, gpus=1), priority=5))  # no GPUs here
    env.submit(array_spec("0", req=request(min_time=500, cpus=1), priority=5))
    w.config.time_limit = 100.0
    low = env.submit(array_spec("0-3", req=request(cpus=1)))
    env.schedule()
    assert [t.job for t in env.out.take_worker_msgs(w)] == [low] * 4
    env.check()


# --------------------------------------------------------------------------- F59 weights


def test_heavier_requests_go_first_and_lower_ids_are_preferred():
    env = Env()
    w1 = env.worker(4)
    w2 = env.worker(4)
    light = env.submit(array_spec("0-1", req=weighted(2, 1)))
    heavy = env.submit(array_spec("0-1", req=weighted(2, 3)))
    env.schedule()
    assert [t.job for t in env.out.take_worker_msgs(w1)[:2]] == [heavy, heavy]
    assert [t.job for t in env.out.take_worker_msgs(w2)[:2]] == [light, light]
    env.check()


def test_weights_never_block_lighter_tasks():
    env = Env()
    w = env.worker(4)
    env.submit(array_spec("0", req=request(cpus=1)))
    env.schedule()
    env.start(w, env.out.take_worker_msgs(w, 1))
    heavy = env.submit(array_spec("0", req=weighted(4, 5)))
    light = env.submit(array_spec("0-2", req=weighted(1, 1)))
    env.schedule()
    got = env.out.take_worker_msgs(w)
    assert [t.job for t in got[:3]] == [light] * 3  # run now beside the 1-CPU task
    assert heavy.counts[TaskState.ASSIGNED] == 1
    env.check()


@pytest.mark.parametrize("heavy_first", [True, False])
def test_min_utilization_takes_the_most_valuable_full_mix(heavy_first):
    """The 12-CPU example of F59: two 3-CPU tasks of weight 2 and 6-CPU tasks of weight 1
    on a worker with m = 1: 3 + 3 + 6 (value 18) beats 6 + 6 (value 12)."""
    env = Env()
    specs = [array_spec("0-1", req=weighted(3, 2)), array_spec("0-3", req=weighted(6, 1))]
    if not heavy_first:
        specs.reverse()
    jobs = [env.submit(s) for s in specs]
    w = picky_worker(env, 12, 1.0)
    env.schedule()
    got = env.out.take_worker_msgs(w)
    assert sizes(got) == [3, 3, 6]
    assert w.load["cpus"] == 12 * UNIT
    assert sum(j.counts[TaskState.WAITING] for j in jobs) == 3
    env.check()


def test_min_utilization_search_beats_greedy():
    """Three 3-CPU tasks of weight 2 (9 CPUs) cannot fill 12 CPUs; greedy would fall back to
    6 + 6 (value 12); the best full mix is 3 + 3 + 6 (value 18)."""
    env = Env()
    env.submit(array_spec("0-2", req=weighted(3, 2)))
    env.submit(array_spec("0-3", req=weighted(6, 1)))
    w = picky_worker(env, 12, 1.0)
    env.schedule()
    assert sizes(env.out.take_worker_msgs(w)) == [3, 3, 6]
    env.check()


def test_min_utilization_gives_nothing_rather_than_too_little():
    env = Env()
    job = env.submit(array_spec("0-1", req=request(cpus=3)))
    w = picky_worker(env, 12, 0.75)
    assert env.schedule() == 0
    env.out.emptiness_check()
    assert job.tasks == {}
    # one more 3-CPU task makes 9 of 12 = 0.75
    more = env.submit(array_spec("0", req=request(cpus=3)))
    assert env.schedule() == 3
    assert sizes(env.out.take_worker_msgs(w)) == [3, 3, 3]
    assert more.counts[TaskState.ASSIGNED] == 1
    # already busy: what runs counts; nothing new (no prefill) while it is full
    env.submit(array_spec("0-9", req=request(cpus=1)))
    env.schedule()
    assert sizes(env.out.take_worker_msgs(w)) == [1, 1, 1]
    assert env.schedule() == 0
    env.check()


def test_min_utilization_keeps_strict_priority():
    env = Env()
    high = env.submit(array_spec("0", req=request(cpus=8), priority=5))
    low = env.submit(array_spec("0-9", req=request(cpus=1)))
    w = picky_worker(env, 12, 1.0)
    env.schedule()
    # the 8-CPU task first, then four 1-CPU tasks make 12
    assert sizes(env.out.take_worker_msgs(w)) == [1, 1, 1, 1, 8]
    assert high.counts[TaskState.ASSIGNED] == 1
    assert low.counts[TaskState.ASSIGNED] == 4
    env.check()
    # two higher-priority 8-CPU tasks: one goes, the other could run here, so the lower
    # priority may not take the 4 CPUs it would need: nothing reaches 100%, nothing is placed
    env2 = Env()
    env2.submit(array_spec("0-1", req=request(cpus=8), priority=5))
    low2 = env2.submit(array_spec("0-9", req=request(cpus=1)))
    w2 = picky_worker(env2, 12, 1.0)
    assert env2.schedule() == 0
    assert low2.tasks == {}
    assert w2.load["cpus"] == 0
    env2.check()


# --------------------------------------------------------------------------- the worker side


def _spec(job, prio, req, task_id=0):
    from types import SimpleNamespace

    return SimpleNamespace(job_id=job, task_id=task_id, instance=0, key=(job, task_id),
                           request=req, template=SimpleNamespace(priority=prio))


def test_worker_local_queue_starts_lower_priority_only_in_the_gap():
    from hyperqueue.worker.allocator import Allocator
    from hyperqueue.worker.app import LocalQueue

    alloc = Allocator([cpus(4), parse_resource_def("gpus", "1")])
    busy = alloc.try_allocate(request(cpus=1, gpus=1))
    q = LocalQueue()
    q.push(_spec(1, 5, request(cpus=4)))  # waits: 3 CPUs free
    q.push(_spec(2, 0, request(cpus=2)))
    assert list(q.pop_startable(alloc)) == []
    # a GPU task of the higher priority waits for the GPU; CPUs beyond its one are the gap
    q2 = LocalQueue()
    q2.push(_spec(3, 5, request(cpus=1, gpus=1)))
    q2.push(_spec(4, 0, request(cpus=1), 0))
    q2.push(_spec(4, 0, request(cpus=1), 1))
    q2.push(_spec(4, 0, request(cpus=1), 2))
    started = [s.key for s, _ in q2.pop_startable(alloc)]
    assert started == [(4, 0), (4, 1)]  # 3 free - 1 held = 2
    # equal priority: no blocking
    alloc.release(busy)
    alloc2 = Allocator([cpus(4)])
    alloc2.try_allocate(request(cpus=1))
    q3 = LocalQueue()
    q3.push(_spec(5, 0, request(cpus=4)))
    q3.push(_spec(6, 0, request(cpus=2)))
    assert [s.key for s, _ in q3.pop_startable(alloc2)] == [(6, 0)]



def test_worker_local_queue_starts_heavier_requests_first():
    """F59 on the worker: of equal priorities, the heavier request starts first (as the
    server placed it), even from a newer job."""
    from hyperqueue.worker.allocator import Allocator
    from hyperqueue.worker.app import LocalQueue

    alloc = Allocator([cpus(4)])
    q = LocalQueue()
    for i in range(3):
        q.push(_spec(1, 0, request(cpus=1), i))
    q.push(_spec(2, 0, weighted(3, 3)))
    assert [s.key for s, _ in q.pop_startable(alloc)] == [(2, 0), (1, 0)]


# ----------------------------------------------------- the min-utilization search, exhaustively


def _brute_best(cap_cpus, load_cpus, m, queues):
    """Every count vector: the largest value among those that fit, keep the priority gap and
    reach `m` of the CPUs (with at least one task); None if none does."""
    import itertools

    best = None
    ranges = [range(0, min(avail, cap_cpus // size) + 1) for _p, size, _w, avail in queues]
    for counts in itertools.product(*ranges):
        if not any(counts):
            continue
        load = load_cpus
        ok = True
        for j, (prio, size, _w, _avail) in enumerate(queues):
            load += counts[j] * size
            block = max([queues[i][1] for i in range(j) if queues[i][0] > prio
                         and counts[i] < queues[i][3]], default=0)
            if load + (block if counts[j] else 0) > cap_cpus:
                ok = False
                break
        if not ok or load < m * cap_cpus:
            continue
        value = sum(c * w * size / cap_cpus for c, (_p, size, w, _a) in zip(counts, queues))
        if best is None or value > best + 1e-9:
            best = value
    return best


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=150, deadline=None)
@given(cap=st.integers(2, 12), busy=st.integers(0, 6), m=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
       shapes=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 6), st.integers(1, 3),
                                 st.integers(1, 4)), min_size=1, max_size=4))
def test_min_utilization_search_finds_the_best_value(cap, busy, m, shapes):
    """The search's mix has the best value an exhaustive enumeration finds (small cases, where
    the node budget is not reached), or there is none."""
    busy = min(busy, cap - 1)
    env = Env()
    if busy:
        env.submit(array_spec(f"0-{busy - 1}", req=request(cpus=1), priority=99))
    w = picky_worker(env, cap, 0.0)
    env.schedule()
    env.out.take_worker_msgs(w)
    assert w.load["cpus"] == busy * UNIT
    w.config.min_utilization = m
    jobs = []
    for prio, size, weight, avail in shapes:
        jobs.append(env.submit(array_spec(f"0-{avail - 1}", req=weighted(size, weight),
                                          priority=prio)))
    # the queues in the scheduler's order (priority, weight, job), as the search sees them
    order = sorted(zip(shapes, jobs), key=lambda sj: (-sj[0][0], -sj[0][2], sj[1].id))
    queues = [s for s, _j in order if s[1] <= cap]
    expected = _brute_best(cap, busy, m, queues)
    env.schedule()
    got = env.out.take_worker_msgs(w)
    if expected is None:
        assert got == []
    else:
        value = sum(t.batch.template.request.weight / UNIT
                    * (t.batch.template.request.cpus.amount / UNIT) / cap for t in got)
        assert abs(value - expected) < 1e-9, (got, expected)
        assert w.load["cpus"] >= m * cap * UNIT
    env.check()
