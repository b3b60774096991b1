"""Requests are bounded (issue 10, item 2): task listings page over ranges, submit checks work
on ranges and dependency lists, invalid submits change nothing."""

import time

import pytest

from core_testkit import Env, R, TaskState, array_spec, graph_spec, template
from hyperqueue.core import views
from hyperqueue.core.ranges import MAX_ID, IntRanges


def _all_pages(env, job, ids=None, states=None, limit=views.TASK_PAGE, scan=views.TASK_SCAN):
    out, after, pages = [], -1, 0
    while True:
        page, after = views.job_tasks_page(env.core, job, ids, states, after, limit, scan)
        pages += 1
        assert len(page) <= limit
        out.extend(page)
        if after is None:
            return out, pages


def test_first_page_of_a_4g_array_is_bounded_and_fast():
    env = Env()
    job = env.submit(array_spec(f"0-{MAX_ID - 1}"))
    t0 = time.perf_counter()
    page, nxt = views.job_tasks_page(env.core, job)
    assert time.perf_counter() - t0 < 0.5
    assert [t["id"] for t in page] == list(range(views.TASK_PAGE))
    assert nxt == views.TASK_PAGE - 1
    page2, nxt2 = views.job_tasks_page(env.core, job, after=nxt, limit=3)
    assert [t["id"] for t in page2] == [nxt + 1, nxt + 2, nxt + 3]
    assert nxt2 == nxt + 3
    assert not job.tasks  # still in array form


def test_task_selector_is_intersected_with_the_job_ranges():
    env = Env()
    job = env.submit(array_spec("10-4000000000"))
    sel = IntRanges.parse(f"0-{MAX_ID}")
    t0 = time.perf_counter()
    page, _ = views.job_tasks_page(env.core, job, sel, limit=2)
    assert [t["id"] for t in page] == [10, 11]
    tail = IntRanges.parse("3999999999-4100000000")
    got, pages = _all_pages(env, job, tail)
    assert [t["id"] for t in got] == [3999999999, 4000000000]
    assert time.perf_counter() - t0 < 0.5


def test_state_filter_scans_a_bounded_number_of_ids_per_page():
    env = Env()
    job = env.submit(array_spec("0-9999"))
    w = env.worker(2)
    env.schedule()
    tasks = env.out.take_worker_msgs(w)
    env.start(w, tasks)
    env.finish(w, tasks[:1])
    # "waiting" needs the arrays: 10k ids, at most 1000 examined per answer
    got, pages = _all_pages(env, job, None, ["waiting"], scan=1000)
    assert pages >= 10
    assert [t["id"] for t in got] == [t for t in range(10000) if t not in
                                      {x.id for x in tasks}]
    # "finished" uses the records only
    got, pages = _all_pages(env, job, None, ["finished"])
    assert [t["id"] for t in got] == [tasks[0].id] and pages == 1


def test_pages_cover_everything_once_in_order():
    env = Env()
    job = env.submit(array_spec("0-99:3,1-99:3,200-260"))
    env.cancel(job)
    got, pages = _all_pages(env, job, limit=7)
    assert [t["id"] for t in got] == sorted(job.all_ids())
    assert all(t["state"] == "canceled" for t in got)
    assert got == views.job_tasks(env.core, job)


def test_job_detail_carries_the_continuation():
    env = Env()
    job = env.submit(array_spec("0-20000"))
    d = views.job_detail(env.core, job, True)
    assert len(d["tasks"]) == views.TASK_PAGE and d["tasks_next"] == views.TASK_PAGE - 1
    d = views.job_detail(env.core, job, True, task_limit=0)
    assert d["tasks"] == [] and d["tasks_next"] == -1
    d = views.job_detail(env.core, job, False)
    assert d["tasks"] == [] and d["tasks_next"] is None


def test_graph_submit_acyclicity_on_batches_not_ids():
    env = Env()
    # A 4G-task array depending on a small one: the check must not expand it (and the graph
    # submit is refused as too large before any record is created).
    big = R.BatchSpec(template(), IntRanges.parse(f"10-{MAX_ID}"), deps=(0,))
    small = R.BatchSpec(template(), IntRanges.parse("0-9"))
    t0 = time.perf_counter()
    with pytest.raises(R.SubmitError, match="at most"):
        env.submit(R.SubmitSpec("g", "/s", [small, big]))
    assert time.perf_counter() - t0 < 0.5
    assert not env.core.jobs and env.core.next_job_id == 1


def test_cycle_between_arrays_is_found():
    env = Env()
    a = R.BatchSpec(template(), IntRanges.parse("0-999"), deps=(1000,))
    b = R.BatchSpec(template(), IntRanges.parse("1000-1999"), deps=(5,))
    with pytest.raises(R.SubmitError, match=r"the tasks \[0, 1, 2, .*\] form a dependency cycle"):
        env.submit(R.SubmitSpec("g", "/s", [a, b]))
    assert not env.core.jobs and env.core.next_job_id == 1
    # the same without the back edge is fine
    b = R.BatchSpec(template(), IntRanges.parse("1000-1999"))
    job = env.submit(R.SubmitSpec("g", "/s", [a, b]))
    assert job.counts[TaskState.WAITING] == 2000


def test_cycle_message_is_unchanged_for_small_graphs():
    env = Env()
    with pytest.raises(R.SubmitError) as e:
        env.submit(graph_spec({1: (2,), 2: (3,), 3: (1,), 4: (1,), 5: ()}))
    assert str(e.value) == "Invalid dependency: the tasks [1, 2, 3, 4] form a dependency cycle"


def test_many_single_task_batches_are_checked_in_linear_time():
    env = Env()
    n = 10_000  # a job file with a chain of n tasks with scattered ids (old code: minutes)
    spec = graph_spec({i: ((i - 2,) if i else ()) for i in range(0, 2 * n, 2)})
    t0 = time.perf_counter()
    job = env.submit(spec)
    assert time.perf_counter() - t0 < 5
    assert job.n_tasks == n
    assert job.tasks[2].deps_pending == 1 and job.tasks[0].deps_pending == 0


def test_colliding_and_interleaving_batches_change_nothing():
    env = Env()
    a = R.BatchSpec(template(), IntRanges.parse("0-10"))
    b = R.BatchSpec(template(), IntRanges.parse("10-20"))
    with pytest.raises(R.SubmitError, match="collide"):
        env.submit(R.SubmitSpec("x", "/s", [a, b]))
    many = [R.BatchSpec(template(), IntRanges.parse(f"{i}-{MAX_ID - 5000}:5000"))
            for i in range(R.MAX_SUBMIT_INTERLEAVE + 1)]
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="interleave"):
        env.submit(R.SubmitSpec("x", "/s", many))
    assert time.perf_counter() - t0 < 2
    assert not env.core.jobs and env.core.next_job_id == 1


def test_task_state_of_a_job_with_many_batches_is_a_range_lookup():
    env = Env()
    job = env.submit(array_spec("0-9"))
    assert env.core.task_state(job, 5) == TaskState.WAITING
    assert env.core.task_state(job, 10) is None
