"""The pure dashboard model: folding events, time travel, bad records, work per update."""

from __future__ import annotations

import pytest
from dash_fixture import T0, records, template, worker_config

from hyperqueue.core import events as ev
from hyperqueue.dashboard.model import (
    CANCELED, FAILED, FINISHED, RUNNING, WAITING, DashboardModel, Timeline, cut,
)
from hyperqueue.dashboard import render as R


def timeline(recs=None) -> Timeline:
    tl = Timeline(snapshot_every=7)
    tl.extend(recs if recs is not None else records())
    return tl


def test_jobs_tasks_and_counts_follow_the_events():
    m = timeline().live
    j1, j2 = m.jobs[1], m.jobs[2]
    assert (j1.name, j1.n_tasks, j1.state) == ("array", 10, "RUNNING")
    assert j1.counts == [0, 1, 8, 1, 0, 0]
    assert j1.task(8).state == FAILED and j1.task(8).error == "Program terminated with exit code 3."
    # task 9 ran on worker 2, went back to waiting when it was lost, then runs on worker 1
    assert (j1.task(9).state, j1.task(9).worker, j1.task(9).instance) == (RUNNING, 1, 1)
    assert j2.state == "CANCELED" and j2.counts[CANCELED] == 4 and j2.cancel_reason == "enough"
    assert j2.completed == T0 + 18 and len(j2.batches) == 2
    assert m.workers[2].state == "CONNECTION LOST" and not m.workers[2].running
    assert m.workers[1].running == {(1, 9)}
    assert m.workers[1].n_cpus == 4 and m.workers[1].overview is not None
    assert m.server_uid == "uid-1" and m.bad_records == 0


def test_series_for_the_charts():
    m = timeline().live
    assert [n for _t, n in m.worker_series] == [1, 2, 1]
    last_counts = m.counts_series(1)[-1][1]
    assert last_counts[FINISHED] == 8 and last_counts[FAILED] == 1
    usage = m.usage[1]
    assert len(usage) == 5 and usage[-1][2] == pytest.approx(65.0)
    assert cut(usage, T0 + 8) == usage[:2]


def test_allocation_queues_from_the_autoalloc_records():
    reg, reasons = timeline().live.allocation_registry()
    assert sorted(reg.queues) == [1, 2]
    assert reg.queues[2].state == "PAUSED" and "bad queue" in reasons[2]
    states = {a.id: a.state for a in reg.queues[1].allocations.values()}
    assert states == {"1001": "FINISHED", "1002": "QUEUED"}


@pytest.mark.parametrize("offset", [0, 2.5, 9, 14, 17, 18.5, 100])
def test_the_model_as_of_a_time_equals_a_fresh_replay_up_to_it(offset):
    recs = records()
    tl = timeline(recs)
    t = T0 + offset
    fresh = DashboardModel()
    for r in recs:
        if r[0] <= t:
            fresh.apply_record(r)
    got = tl.model_at(t)
    assert got.n_events == fresh.n_events
    assert {k: (j.counts, dict(j.tasks)) for k, j in got.jobs.items()} == \
        {k: (j.counts, dict(j.tasks)) for k, j in fresh.jobs.items()}
    assert {k: (w.state, w.running) for k, w in got.workers.items()} == \
        {k: (w.state, w.running) for k, w in fresh.workers.items()}
    assert len(got.alloc_records) == len(fresh.alloc_records)


def test_time_travel_reuses_snapshots_and_leaves_the_live_model_alone():
    tl = timeline()
    live_counts = list(tl.live.jobs[1].counts)
    early = tl.model_at(T0 + 5)
    assert early.jobs[1].counts[FINISHED] == 2  # tasks 0 and 1 (at T0 + 4, T0 + 5)
    assert tl._snaps, "snapshots are taken on the way"
    mid = tl.model_at(T0 + 14)
    assert mid.jobs[1].counts[FAILED] == 1 and 2 not in mid.jobs
    assert tl.model_at(None) is tl.live and tl.model_at(T0 + 1e6) is tl.live
    assert tl.live.jobs[1].counts == live_counts
    assert early.jobs[1].counts[FINISHED] == 2  # a later view did not change an earlier one


def test_malformed_records_are_counted_and_change_nothing():
    tl = Timeline()
    bad = [["x"], [T0, 5, {}], [T0, "task-started", {"job": "1"}],
           [T0, "task-finished", {"job": 1, "task": 1, "instance": 0}],  # unknown job
           [T0, "worker-connected", {"id": 1, "configuration": "nonsense"}],
           [T0, "worker-overview", {"id": 1, "hw-state": {"state": "x"}}],
           [T0, "job-created", {"job": 1, "closed_job": True, "job_desc": {"name": "n",
                                                                           "max_fails": None},
                                "submit_desc": {"submit_dir": "/", "batches": [["t", "1-x"]]}}]]
    tl.extend(bad)
    m = tl.live
    assert m.bad_records >= 3
    assert not any(j.n_tasks for j in m.jobs.values())
    text = R.snapshot_text(tl)  # still renders
    assert "== Workers ==" in text


def _big_history(n_tasks: int, n_workers: int) -> list:
    recs = [ev.ServerStart(T0, "u").to_record()]
    for w in range(1, n_workers + 1):
        recs.append(ev.WorkerConnected(T0, w, worker_config(f"n{w}", 8)).to_record())
    recs.append(ev.JobCreated(T0 + 1, 1, True, "big", None, "/s",
                              [[template(["true"]), f"0-{n_tasks - 1}", None, []]]).to_record())
    t = T0 + 2
    for i in range(n_tasks):
        recs.append(ev.TaskStarted(t + i * 1e-3, 1, i, 0, 1 + i % n_workers).to_record())
        recs.append(ev.TaskFinished(t + i * 1e-3 + 5e-4, 1, i, 0).to_record())
    return recs


@pytest.mark.timeout(60)
def test_work_per_update_does_not_grow_with_the_history():
    """100,000 tasks and 100 workers in the history: a live update costs the same units of work
    as with a tiny history (no re-reading of the past per update)."""
    def work_of_updates(n_tasks):
        tl = Timeline()
        tl.extend(_big_history(n_tasks, 100))
        before = tl.live.work
        t = tl.end + 1
        tl.extend([ev.JobCreated(t, 2, True, "live", None, "/s",
                                 [[template(["true"]), "0-99", None, []]]).to_record()])
        for i in range(100):
            tl.extend([ev.TaskStarted(t + i, 2, i, 0, 1 + i % 100).to_record(),
                       ev.TaskFinished(t + i + 0.5, 2, i, 0).to_record()])
        return tl.live.work - before, tl

    small, _ = work_of_updates(100)
    big, tl = work_of_updates(100_000)
    assert big == small <= 4 * 201
    assert tl.live.jobs[1].counts[FINISHED] == 100_000 and len(tl.live.workers) == 100
    # the count series stays small: one point per second of history at most
    assert len(tl.live.count_series[1]) <= 110


def test_worker_lost_touches_only_its_running_tasks():
    tl = Timeline()
    tl.extend(_big_history(5000, 10))
    m = tl.live
    t = tl.end + 1
    tl.extend([ev.JobCreated(t, 2, True, "j", None, "/s",
                             [[template(["x"]), "0-2", None, []]]).to_record()]
              + [ev.TaskStarted(t, 2, i, 0, 3).to_record() for i in range(3)])
    before = m.work
    tl.extend([ev.WorkerLost(t + 1, 3, "HEARTBEAT LOST").to_record()])
    assert m.work - before <= 1 + 3 * 2
    assert m.jobs[2].counts[WAITING] == 3 and m.jobs[2].task(0).instance == 1
