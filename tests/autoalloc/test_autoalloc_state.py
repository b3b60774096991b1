"""Queue registry, the allocation state table, tracking, backoff, journal events and replay."""

import itertools

import pytest

from hyperqueue.autoalloc import (
    ACTIVE, ALLOC_TRANSITIONS, FAILED, FINISHED, PAUSED, QUEUED, RUNNING, AllocationFailed,
    AllocationFinished,
    AllocationQueued, AllocationStarted, AutoallocError, BackoffPolicy, IllegalTransition,
    QueueCreated, QueueParams, QueuePaused, Registry, event_from_wire, event_to_wire,
)
from hyperqueue.autoalloc.backoff import UPSTREAM_POLICY, Backoff
from hyperqueue.batch import ExternalStatus
from hyperqueue.core.resources import parse_resource_def


def params(**kw):
    return QueueParams(**{"manager": "slurm", "time_limit": 3600, **kw})


def snapshot(reg):
    return {qid: (q.params, q.state, q.pause_reason, q.known_resources,
                  {a.id: (a.state, a.worker_count, a.workdir, a.queued_at, a.started_at,
                          a.ended_at) for a in q.allocations.values()})
            for qid, q in reg.queues.items()}, reg.max_queue_id


def test_transition_table_is_the_only_way():
    states = (QUEUED, RUNNING, FINISHED, FAILED)
    assert set(ALLOC_TRANSITIONS) == {(QUEUED, "start"), (QUEUED, "finish"), (QUEUED, "fail"),
                                      (RUNNING, "finish"), (RUNNING, "fail")}
    for state, action in itertools.product(states, ("start", "finish", "fail")):
        reg = Registry()
        reg.add_queue(params(backlog=1))
        reg.allocation_submitted(1, "7", 1, "/d", 0)
        a = reg.allocation("7")
        a.state = state
        ev = {"start": AllocationStarted, "finish": AllocationFinished,
              "fail": AllocationFailed}[action](1, "7", 5)
        if (state, action) in ALLOC_TRANSITIONS:
            reg.apply(ev)
            assert a.state == ALLOC_TRANSITIONS[(state, action)]
        else:
            with pytest.raises(IllegalTransition):
                reg.apply(ev)
            assert a.state == state


def test_queue_ids_continue_after_removed_queues():
    reg = Registry()
    assert [e.queue_id for _ in range(3) for e in reg.add_queue(params())] == [1, 2, 3]
    reg.remove_queue(3)
    reg.remove_queue(1)
    assert reg.add_queue(params())[0].queue_id == 4
    with pytest.raises(AutoallocError, match="Allocation queue 3 not found"):
        reg.pause(3)
    with pytest.raises(AutoallocError, match="already created"):
        reg.apply(QueueCreated(2, params()))


def test_pause_resume_and_remove_rules():
    reg = Registry()
    reg.add_queue(params(backlog=2))
    assert reg.pause(1)[0] == QueuePaused(1, "paused by the user")
    assert reg.pause(1) == []  # idempotent for the user
    assert not reg.can_submit(1, 0)
    with pytest.raises(AutoallocError, match="may not submit"):
        reg.allocation_submitted(1, "1", 1, "/d", 0)
    with pytest.raises(IllegalTransition):
        reg.apply(QueuePaused(1))
    reg.resume(1)
    assert reg.queue(1).state == ACTIVE and reg.can_submit(1, 0)
    reg.allocation_submitted(1, "11", 1, "/d1", 0)
    reg.allocation_submitted(1, "12", 1, "/d2", 0)
    reg.worker_connected("11", 100, 5)
    with pytest.raises(AutoallocError, match="running allocations \\(11\\); use --force"):
        reg.remove_queue(1)
    assert 1 in reg.queues
    events, cancel = reg.remove_queue(1, force=True)
    assert sorted(a.id for a in cancel) == ["11", "12"]
    assert reg.allocation("11") is None and reg.worker_connected("11", 100, 6) == []


def test_limits_enforced_on_submission():
    reg = Registry()
    reg.add_queue(params(backlog=2, max_workers_per_alloc=3, max_worker_count=4))
    with pytest.raises(AutoallocError, match="invalid worker count"):
        reg.allocation_submitted(1, "a", 4, "/d", 0)
    reg.allocation_submitted(1, "a", 3, "/d", 0)
    with pytest.raises(AutoallocError, match="max worker count"):
        reg.allocation_submitted(1, "b", 2, "/d", 0)
    reg.allocation_submitted(1, "b", 1, "/d", 0)
    with pytest.raises(AutoallocError, match="backlog is full"):
        reg.allocation_submitted(1, "c", 1, "/d", 0)
    with pytest.raises(AutoallocError, match="already exists"):
        reg.apply(AllocationQueued(1, "a", 1, "/d", 0))


def test_tracking_by_workers():
    reg = Registry()
    reg.add_queue(params(max_workers_per_alloc=2, cpus="4"))
    reg.allocation_submitted(1, "5", 2, "/d", 10)
    cpus = (parse_resource_def("cpus", "8"),)
    ev = reg.worker_connected("5", 1, 20, resources=cpus)
    assert [type(e).__name__ for e in ev] == ["AllocationStarted", "QueueWorkerResources"]
    assert reg.queue(1).known_resources == cpus
    assert reg.worker_connected("5", 2, 21, resources=cpus) == []
    assert reg.worker_lost("5", 1, 200, crashed=True) == []  # one still connected
    ev = reg.worker_lost("5", 2, 300, crashed=False)
    assert [type(e).__name__ for e in ev] == ["AllocationFinished"]
    a = reg.queue(1).allocations["5"]
    assert (a.state, a.started_at, a.ended_at) == (FINISHED, 20, 300)
    assert reg.worker_lost("5", 2, 301, crashed=False) == []


def test_all_workers_crashing_early_is_a_failed_allocation_and_backs_off():
    policy = BackoffPolicy(delays=(0, 5, 10), max_allocation_failures=2)
    reg = Registry(policy)
    reg.add_queue(params())
    reg.allocation_submitted(1, "1", 1, "/d", 0)
    reg.worker_connected("1", 1, 10)
    assert type(reg.worker_lost("1", 1, 70, crashed=True)[0]).__name__ == "AllocationFailed"
    assert reg.next_attempt_at(1) == 75 and not reg.can_submit(1, 74.9)
    assert reg.can_submit(1, 75)
    reg.allocation_submitted(1, "2", 1, "/d", 80)
    reg.worker_connected("2", 2, 90)
    ev = reg.worker_lost("2", 2, 100, crashed=True)
    assert [type(e).__name__ for e in ev] == ["AllocationFailed", "QueuePaused"]
    assert reg.queue(1).state == PAUSED
    assert reg.queue(1).pause_reason == "2 consecutive allocations failed"
    reg.resume(1)
    assert reg.can_submit(1, 100) and reg.next_attempt_at(1) is None


def test_crash_after_window_is_finished():
    reg = Registry()
    reg.add_queue(params())
    reg.allocation_submitted(1, "1", 1, "/d", 0)
    reg.worker_connected("1", 1, 10)
    assert type(reg.worker_lost("1", 1, 71, crashed=True)[0]).__name__ == "AllocationFinished"


def test_tracking_by_manager_status_and_status_errors():
    reg = Registry()
    reg.add_queue(params(backlog=3))
    for aid in ("1", "2", "3"):
        reg.allocation_submitted(1, aid, 1, "/d", 0)
    assert reg.manager_status("1", ExternalStatus(QUEUED, "PENDING"), 1) == []
    assert type(reg.manager_status("1", ExternalStatus(RUNNING, "RUNNING"), 2)[0]).__name__ \
        == "AllocationStarted"
    assert type(reg.manager_status("1", ExternalStatus(FAILED, "CANCELLED"), 3)[0]).__name__ \
        == "AllocationFailed"
    assert reg.manager_status("1", ExternalStatus(FINISHED, "COMPLETED"), 4) == []
    # a queued job that vanished: 10 consecutive errors, then assumed finished
    for i in range(9):
        assert reg.status_error("2", 10 + i) == []
    assert type(reg.status_error("2", 19)[0]).__name__ == "AllocationFinished"
    # a running one: 20; a good status in between resets the count
    reg.manager_status("3", ExternalStatus(RUNNING, "R"), 5)
    for i in range(19):
        reg.status_error("3", 30)
    reg.manager_status("3", ExternalStatus(RUNNING, "R"), 31)
    for i in range(19):
        assert reg.status_error("3", 40) == []
    assert reg.status_error("3", 41)[0].allocation_id == "3"


def test_backoff_ladder_upstream_and_pause_after_ten_submission_failures():
    assert UPSTREAM_POLICY.delays == (0, 60, 900, 1800, 3600)
    b = Backoff()
    t = 1000.0
    seen = []
    for _ in range(6):
        b.submission_failed(t)
        seen.append(b.next_attempt_at(UPSTREAM_POLICY) - t)
    assert seen == [60, 900, 1800, 3600, 3600, 3600]
    b.submission_succeeded()
    assert b.next_attempt_at(UPSTREAM_POLICY) is None
    reg = Registry(BackoffPolicy(delays=(0, 1)))
    reg.add_queue(params())
    now = 0.0
    for i in range(9):
        assert reg.submission_failed(1, now) == []
        assert not reg.can_submit(1, now + 0.5) and reg.can_submit(1, now + 1)
        now += 1
    assert reg.submission_failed(1, now) == [QueuePaused(1, "10 consecutive submissions failed")]
    with pytest.raises(ValueError):
        BackoffPolicy(delays=(5, 10))
    with pytest.raises(ValueError):
        BackoffPolicy(delays=(0, 10, 5))


def test_events_wire_roundtrip_and_restore_is_identical():
    reg = Registry()
    journal = []
    journal += reg.add_queue(params(name="gpu", cpus="2", additional_args=("--partition=g",)))
    journal += reg.add_queue(params(manager="pbs", backlog=2))
    journal += reg.allocation_submitted(1, "100", 1, "/a/1", 1.5)
    journal += reg.allocation_submitted(2, "200.srv", 1, "/a/2", 2)
    journal += reg.worker_connected("100", 7, 3, resources=(parse_resource_def("cpus", "2"),))
    journal += reg.pause(2)
    journal += reg.manager_status("200.srv", ExternalStatus(FAILED, "F"), 4)
    journal += reg.remove_queue(1, force=True)[0]
    journal += reg.add_queue(params())
    wire = [event_to_wire(e) for e in journal]
    import cbor2

    decoded = [event_from_wire(cbor2.loads(cbor2.dumps(w))) for w in wire]
    assert decoded == journal
    restored = Registry()
    restored.restore(decoded)
    assert snapshot(restored) == snapshot(reg)
    assert restored.add_queue(params())[0].queue_id == 4


@pytest.mark.parametrize("bad", [
    {"type": "nope"}, {"type": "alloc-queue-removed"}, {"type": "alloc-queue-removed",
                                                        "queue_id": 0},
    {"type": "alloc-queue-removed", "queue_id": 1, "x": 1},
    {"type": "allocation-queued", "queue_id": 1, "allocation_id": "a b", "worker_count": 1,
     "workdir": "/d", "time": 0},
    {"type": "allocation-queued", "queue_id": 1, "allocation_id": "a", "worker_count": 0,
     "workdir": "/d", "time": 0},
    {"type": "allocation-started", "queue_id": 1, "allocation_id": "a", "time": -1},
    {"type": "alloc-queue-created", "queue_id": 1, "params": {}},
    {"type": "alloc-queue-worker-resources", "queue_id": 1, "resources": [{"x": 1}]},
    "x", None])
def test_event_from_wire_rejects(bad):
    with pytest.raises(ValueError):
        event_from_wire(bad)


def test_bad_event_changes_nothing():
    reg = Registry()
    reg.add_queue(params())
    before = snapshot(reg)
    for ev in (AllocationStarted(1, "nope", 1), AllocationQueued(9, "a", 1, "/d", 0),
               AllocationQueued(1, "a", 0, "/d", 0), object()):
        with pytest.raises(AutoallocError):
            reg.apply(ev)
    assert snapshot(reg) == before


def test_cancelled_by_server_stop_is_finished_not_failed_and_replays():
    reg = Registry(BackoffPolicy((0, 60), 10, 1))  # one failed allocation would pause
    reg.add_queue(params(backlog=2))
    reg.allocation_submitted(1, "q", 1, "/d/1", 10)
    reg.allocation_submitted(1, "r", 1, "/d/2", 10)
    reg.worker_connected("r", 5, 11)
    assert {a.id for a in reg.cancel_all()} == {"q", "r"}
    events = reg.cancelled_by_stop("q", 20) + reg.cancelled_by_stop("r", 21)
    assert [type(e) for e in events] == [AllocationFinished, AllocationFinished]
    assert [(a.state, a.ended_at) for a in reg.queues[1].allocations.values()] == [
        (FINISHED, 20), (FINISHED, 21)]
    q = reg.queues[1]
    assert q.state == ACTIVE and q.backoff.allocation_failures == 0
    assert reg.cancel_all() == [] and reg.cancelled_by_stop("q", 30) == []
    # a worker lost afterwards changes nothing
    assert reg.worker_lost("r", 5, 22, crashed=True) == []
    # the journal replays to the same state
    replay = Registry()
    replay.restore([QueueCreated(1, params(backlog=2)),
                    AllocationQueued(1, "q", 1, "/d/1", 10),
                    AllocationQueued(1, "r", 1, "/d/2", 10), AllocationStarted(1, "r", 11),
                    *events])
    assert snapshot(replay) == snapshot(reg)
