"""`core.waiting.waiting_summary`: what no worker took, grouped by request, bounded work."""

from core_testkit import Env, array_spec, request
from hyperqueue.core.waiting import waiting_summary


def test_summary_counts_what_no_worker_took_grouped_by_request():
    env = Env()
    assert waiting_summary(env.core) == []
    env.submit(array_spec("0-9"))
    env.submit(array_spec("0-4", req=request(cpus=2)))
    env.submit(array_spec("0-2"))  # same request as the first job: one group
    out = waiting_summary(env.core)
    assert sorted(n for _v, n in out) == [5, 13] and all(len(v) == 1 for v, _n in out)
    env.worker(2)
    env.schedule()
    after = dict(waiting_summary(env.core))
    assert sum(after.values()) == 18 - sum(len(t) for t in env.out.take_all_compute().values())


def test_summary_looks_at_a_bounded_number_of_ready_queues():
    env = Env()
    for _ in range(50):
        env.submit(array_spec("0-1"))
    assert sum(n for _, n in waiting_summary(env.core, max_queues=10)) == 20
    assert sum(n for _, n in waiting_summary(env.core)) == 100
