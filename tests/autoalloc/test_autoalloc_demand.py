"""Demand -> submissions across all queues, with reasons."""

import pytest

from hyperqueue.autoalloc import QueueParams, Registry, WaitingTasks, decide, explain
from hyperqueue.autoalloc.backoff import BackoffPolicy
from hyperqueue.core.resources import UNIT, ResourceRequest, ResourceRequestEntry, parse_resource_def


def req(cpus=1, min_time=0.0, n_nodes=0, **other):
    entries = [] if n_nodes else [ResourceRequestEntry("cpus", int(cpus * UNIT))]
    entries += [ResourceRequestEntry(k, int(v * UNIT)) for k, v in other.items()]
    return ResourceRequest(entries, n_nodes=n_nodes, min_time=min_time)


def tasks(count, **kw):
    return WaitingTasks.of(req(**kw), count)


def reg_with(*qs, policy=None):
    reg = Registry(policy) if policy else Registry()
    for kw in qs:
        reg.add_queue(QueueParams(**{"manager": "slurm", "time_limit": 3600, **kw}))
    return reg


def test_time_request_longer_than_time_limit_never_submits():
    reg = reg_with(dict(cpus="4", backlog=5))
    d = decide(reg, [tasks(10, min_time=7200)], 0)
    assert d.submissions() == [] and d.unservable_tasks == 10
    q = d.queues[1]
    assert q.servable == 0 and q.unservable[0].kind == "time-limit"
    assert "time request 2h is longer than the queue's time limit 1h" in q.unservable[0].text
    # also when it is just under the limit: the worker needs time to start
    assert decide(reg, [tasks(1, min_time=3590)], 0).submissions() == []
    assert decide(reg, [tasks(1, min_time=3540)], 0).submissions() == [(1, 1)]
    # the worker time limit counts, not the allocation's
    reg2 = reg_with(dict(cpus="4", worker_time_limit=1800))
    d2 = decide(reg2, [tasks(1, min_time=2400)], 0)
    assert d2.submissions() == []
    assert "time request 40m is longer than the queue's --worker-time-limit 30m" in \
        d2.queues[1].unservable[0].text


def test_packing_backlog_and_max_workers_per_alloc():
    reg = reg_with(dict(cpus="4", backlog=2, max_workers_per_alloc=3))
    d = decide(reg, [tasks(40)], 0)  # 10 workers wanted, 2 allocations x 3 allowed
    assert d.submissions() == [(1, 3), (1, 3)]
    q = d.queues[1]
    assert (q.servable, q.for_new, q.uncovered) == (40, 24, 16)
    assert any("backlog is full" in b for b in q.blocked)
    assert decide(reg, [tasks(5)], 0).submissions() == [(1, 2)]


def test_queued_allocations_absorb_demand():
    reg = reg_with(dict(cpus="4", backlog=3))
    reg.allocation_submitted(1, "a", 1, "/d", 0)
    d = decide(reg, [tasks(6)], 1)
    assert d.submissions() == [(1, 1)]  # 4 tasks covered by the queued worker, 2 by a new one
    assert (d.queues[1].covered_by_coming, d.queues[1].for_new) == (4, 2)


def test_max_worker_count():
    reg = reg_with(dict(cpus="1", backlog=10, max_workers_per_alloc=2, max_worker_count=5))
    reg.allocation_submitted(1, "a", 2, "/d", 0)
    reg.worker_connected("a", 1, 1)
    reg.worker_connected("a", 2, 1)
    d = decide(reg, [tasks(100)], 2)
    assert d.submissions() == [(1, 2), (1, 1)]
    assert sum(n for _, n in d.submissions()) + reg.queue(1).active_workers == 5


def test_two_queues_do_not_answer_the_same_demand():
    reg = reg_with(dict(cpus="4", backlog=1), dict(cpus="4", backlog=1))
    d = decide(reg, [tasks(4)], 0)
    assert d.submissions() == [(1, 1)]
    assert d.queues[2].by_other == {1: 4} and d.queues[2].submit == []
    # spill-over when the first queue's backlog is used
    d = decide(reg, [tasks(8)], 0)
    assert d.submissions() == [(1, 1), (2, 1)]


def test_resources_choose_the_queue():
    reg = reg_with(dict(cpus="4"), dict(cpus="4", resources=("gpus=2",), name="gpu"))
    d = decide(reg, [tasks(2, gpus=1), tasks(3, cpus=8)], 0)
    assert d.submissions() == [(2, 1)]
    assert d.unservable_tasks == 3
    q1 = d.queues[1]
    # queue 1 may still detect gpus (declared resources are a partial hint) ...
    assert q1.servable == 2 and q1.by_other == {2: 2}
    assert any(u.kind == "resources" and "cpus 8" in u.text for u in q1.unservable)
    # ... unless its resources are known completely
    reg.queue(1).known_resources = (parse_resource_def("cpus", "4"),)
    d = decide(reg, [tasks(2, gpus=1)], 0)
    assert d.queues[1].servable == 0
    assert "needs resource 'gpus'" in d.queues[1].unservable[0].text


def test_multi_node_tasks():
    reg = reg_with(dict(cpus="4", backlog=3, max_workers_per_alloc=2))
    d = decide(reg, [tasks(2, n_nodes=2), tasks(1, n_nodes=3)], 0)
    assert d.submissions() == [(1, 2), (1, 2)]
    assert "needs 3 nodes" in d.queues[1].unservable[0].text
    # multi-node first, single-node packed into what the backlog leaves
    d = decide(reg, [tasks(8), tasks(1, n_nodes=2)], 0)
    assert d.submissions() == [(1, 2), (1, 2)]


def test_paused_and_backoff_block_but_explain():
    reg = reg_with(dict(cpus="4"), policy=BackoffPolicy(delays=(0, 30)))
    reg.submission_failed(1, 100)
    d = decide(reg, [tasks(1)], 110)
    assert d.submissions() == [] and d.queues[1].next_attempt_at == 130
    # the end of the delay as a readable time, not a number of seconds since 1970
    assert d.queues[1].blocked[0] == ("backing off after 1 failure(s) until "
                                      "1970-01-01 00:02:10 UTC (in 20s)")
    assert decide(reg, [tasks(1)], 130).submissions() == [(1, 1)]
    reg.pause(1)
    d = decide(reg, [tasks(1)], 200)
    assert d.submissions() == [] and "paused" in d.queues[1].blocked[0]
    assert d.queues[1].uncovered == 1


def test_probing_mode_one_allocation_at_a_time():
    reg = reg_with(dict(backlog=4, max_workers_per_alloc=2))
    assert decide(reg, [tasks(50)], 0).submissions() == [(1, 2)]
    reg.allocation_submitted(1, "a", 2, "/d", 0)
    reg.worker_connected("a", 1, 1)  # no resources reported yet
    d = decide(reg, [tasks(50)], 2)
    assert d.submissions() == []
    reg.worker_connected("a", 2, 3, resources=(parse_resource_def("cpus", "1"),))
    assert decide(reg, [tasks(50)], 4).submissions() == [(1, 2)] * 4


def test_min_utilization():
    reg = reg_with(dict(cpus="4", backlog=5, min_utilization=0.75))
    d = decide(reg, [tasks(2)], 0)  # 2 of 4 cpus: below 75 %
    assert d.submissions() == [] and "min-utilization" in d.queues[1].blocked[0]
    assert decide(reg, [tasks(5)], 0).submissions() == [(1, 1)]  # 2 workers would not be 75 % full
    assert decide(reg, [tasks(7)], 0).submissions() == [(1, 1)] * 2  # 4 + 3 tasks
    assert decide(reg, [tasks(12)], 0).submissions() == [(1, 1)] * 3


def test_variants_and_explain():
    reg = reg_with(dict(cpus="2"), dict(cpus="16", name="big"))
    big_or_small = WaitingTasks((req(cpus=8), req(cpus=2)), 3)
    d = decide(reg, [big_or_small], 0)
    # queue 1 runs the second variant (one task per worker, backlog 1), queue 2 the rest
    assert d.submissions() == [(1, 1), (2, 1)]
    assert explain(reg, WaitingTasks.of(req(cpus=8), 1)) == [
        (1, False, "needs cpus 8, a worker of the queue has 2"), (2, True, "")]
    js = d.queues[2].to_json()
    assert js["covered_by_other_queues"] == {"1": 1} and js["servable"] == 3
    assert js["for_new_allocations"] == 2 and js["submit"] == [1]
    assert "\n".join(d.queues[1].lines()).startswith("Waiting tasks it could run: 3")


@pytest.mark.parametrize("bad", [dict(variants=()), dict(variants=("x",)),
                                 dict(variants=(req(),), count=-1)])
def test_waiting_tasks_validation(bad):
    with pytest.raises(ValueError):
        WaitingTasks(**{"variants": (req(),), "count": 1, **bad})


def test_multi_node_task_waits_for_a_starting_allocation():
    """A 2-node allocation whose first worker connected (RUNNING, the second still starting)
    covers a waiting 2-node task: no second allocation (seen with fake PBS: one 2-node task
    made two allocations)."""
    reg = reg_with(dict(cpus="1", max_workers_per_alloc=2, backlog=2))
    reg.allocation_submitted(1, "a", 2, "/d", 0)
    assert decide(reg, [tasks(1, n_nodes=2)], 1).submissions() == []
    reg.worker_connected("a", 1, 2)
    assert reg.allocation("a").state == "RUNNING"
    d = decide(reg, [tasks(1, n_nodes=2)], 3)
    assert d.submissions() == [] and d.queues[1].covered_by_coming == 1
    # single-node tasks get new workers: the starting one is for the 2-node task
    assert decide(reg, [tasks(1, n_nodes=2), tasks(2)], 3).submissions() == [(1, 2)]
    # both connected (and busy: the task still waits): a new allocation is needed
    reg.worker_connected("a", 2, 4)
    assert decide(reg, [tasks(1, n_nodes=2)], 5).submissions() == [(1, 2)]
    # a worker of it lost: the rest cannot run a 2-node task
    reg2 = reg_with(dict(cpus="1", max_workers_per_alloc=2, backlog=2))
    reg2.allocation_submitted(1, "b", 2, "/d", 0)
    reg2.worker_connected("b", 1, 1)
    reg2.worker_lost("b", 1, 2, crashed=False)
    assert decide(reg2, [tasks(1, n_nodes=2)], 3).submissions() == [(1, 2)]
