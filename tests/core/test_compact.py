"""The compact store of finished tasks (`core.compact.FinishedRuns`) and the core around it: a
plainly finished task gives its record up, and every view of it stays as it was."""

from __future__ import annotations

import random

import pytest

from core_testkit import Env, array_spec, graph_spec, states
from hyperqueue.core import views
from hyperqueue.core.compact import FinishedRuns
from hyperqueue.core.model import TaskState, WorkerState


def test_runs_merge_with_neighbours_of_the_same_segment_only():
    r = FinishedRuns()
    a = r.segment(1.0, 2.0, 1, 0, 0)
    b = r.segment(1.5, 2.0, 1, 0, 0)
    assert r.segment(1.0, 2.0, 1, 0, 0) == a != b
    r.add(1, 1, a)
    r.add(2, 2, a)  # after the last run, same segment: extends it
    r.add(4, 4, a)
    assert list(r.runs()) == [(1, 2, a), (4, 4, a)]
    r.add(3, 3, a)  # fills the gap: the two runs become one
    assert list(r.runs()) == [(1, 4, a)]
    r.add(6, 6, b)
    r.add(5, 5, a)  # joins the run on its left, not the other segment's on its right
    assert list(r.runs()) == [(1, 5, a), (6, 6, b)]
    r.add(0, 0, b)  # before everything, another segment: a run of its own
    r.add(10, 20, b)
    r.add(8, 9, b)  # joins the run on its right
    assert list(r.runs()) == [(0, 0, b), (1, 5, a), (6, 6, b), (8, 20, b)]
    assert len(r) == 1 + 5 + 1 + 13
    assert [r.find(i) for i in (0, 1, 5, 6, 7, 8, 20, 21)] == [b, a, a, b, None, b, b, None]
    assert r.values(a) == (1.0, 2.0, 1, 0, 0)
    assert list(r.ids()) == [0, 1, 2, 3, 4, 5, 6, *range(8, 21)]


@pytest.mark.parametrize("first, last", [(3, 3), (1, 4), (7, 9), (0, 12)])
def test_an_id_is_added_once(first, last):
    r = FinishedRuns()
    seg = r.segment(1.0, 1.0, 1, 0, 0)
    r.add(2, 5, seg)
    r.add(8, 8, seg)
    before = list(r.runs())
    with pytest.raises(ValueError, match="finished already"):
        r.add(first, last, seg)
    assert list(r.runs()) == before and len(r) == 5


def test_random_order_matches_a_plain_map():
    rnd = random.Random(5)
    r = FinishedRuns()
    ids = list(range(2000))
    rnd.shuffle(ids)
    expected = {}
    for i, tid in enumerate(ids):
        end = float(i // 50)
        seg = r.segment(end - rnd.choice((0, 1)), end, rnd.randrange(3), 0, 0)
        r.add(tid, tid, seg)
        expected[tid] = r.values(seg)
    assert len(r) == 2000
    assert all(r.values(r.find(t)) == v for t, v in expected.items())
    runs = list(r.runs())
    assert all(a[1] < b[0] for a, b in zip(runs, runs[1:]))
    # adjacent runs never share a segment (they would have been merged)
    assert all(not (a[1] + 1 == b[0] and a[2] == b[2]) for a, b in zip(runs, runs[1:]))


def test_a_finished_array_keeps_no_task_records_and_shows_the_same_views():
    env = Env(record_events=True)
    w = env.worker(4)
    job = env.submit(array_spec("0-99"))
    while not job.is_done:
        env.schedule()
        env.tick(0.5)
        ts = sorted(env.out.take_worker_msgs(w), key=lambda t: t.id)
        env.start(w, ts[:2])
        env.tick(0.25)
        env.finish(w, ts)
        env.check()
    assert job.tasks == {} and len(job.done) == 100
    assert job.done.n_runs < 100  # ids finished together share runs
    views_ = views.job_tasks(env.core, job)
    assert [v["id"] for v in views_] == list(range(100))
    for v in views_:
        assert v["state"] == "finished" and v["worker"] == w.id and v["instance"] == 0
        assert v["started_at"] <= v["finished_at"] and v["stdout"].endswith(f"{v['id']}.stdout")
    assert views.job_tasks(env.core, job, states=["finished"]) == views_
    assert views.job_tasks(env.core, job, states=["failed", "running"]) == []
    assert env.core.task_state(job, 42) == TaskState.FINISHED


def test_tasks_with_something_to_show_keep_their_records():
    env = Env(record_events=True)
    w1 = env.worker(1)
    job = env.submit(array_spec("0-1"))
    env.schedule()
    a, b = sorted(env.out.take_worker_msgs(w1), key=lambda t: t.id)
    env.start(w1, [a])
    env.lose(w1, WorkerState.CONNECTION_LOST)  # a crash: a runs again (crash count 1)
    w2 = env.worker(1)
    env.schedule()
    assert {t.id for t in env.out.take_worker_msgs(w2)} == {a.id, b.id}
    env.fail(w2, [b], "exit 1")
    env.finish(w2, [a])
    assert a.crash_count == 1 and a.instance == 1
    # a finished without error: it gives its record up with its instance and crash count;
    # b keeps its record (its error)
    assert a.id not in job.tasks and b.id in job.tasks
    (va,) = views.job_tasks(env.core, job, ids=None, states=["finished"])
    assert (va["id"], va["instance"], va["crash_count"], va["worker"]) == (a.id, 1, 1, w2.id)
    assert states(job) == {a.id: "FINISHED", b.id: "FAILED"}
    env.check()


def test_graph_consumers_still_start_after_a_dependency_gave_its_record_up():
    env = Env()
    w = env.worker(4)
    job = env.submit(graph_spec({1: (), 2: (1,)}))
    env.schedule()
    (t1,) = env.out.take_worker_msgs(w)
    env.finish(w, [t1])
    assert 1 not in job.tasks and job.tasks[2].deps_pending == 0
    env.schedule()
    assert [t.id for t in env.out.take_worker_msgs(w)] == [2]
    env.check()
