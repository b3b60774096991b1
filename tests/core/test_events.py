"""The typed events (`core.events`): every kind round-trips through its journal record, the
records keep the on-disk keys earlier versions wrote (so old journals read and `journal export`
prints the same shapes), and malformed records are refused with a clear message."""

from __future__ import annotations

import random

import cbor2
import pytest

from core_testkit import Env, array_spec, graph_spec
from hyperqueue.core import events as ev
from hyperqueue.core import reactor
from hyperqueue.core.model import TaskState, WorkerState
from hyperqueue.core.ranges import IntRanges
from hyperqueue.core.restore import restore

CONFIG = ["h", [], "default", None, 8.0, None, "/w", "stop", None, None, 1, None, 0.0, "",
          None, []]

# One event of each kind and the record hq has always written for it (payload keys and
# their order are the public shapes of `journal export/replay/stream`).
GOLDEN = [
    (ev.ServerStart(1.0, "uid"), [1.0, "server-start", {"server_uid": "uid"}]),
    (ev.ServerStop(2.0), [2.0, "server-stop", {}]),
    # (journal only: written by `journal prune`, the highest ids it may have dropped)
    (ev.IdFloor(2.5, 9, 4), [2.5, "id-floor", {"last_job": 9, "last_worker": 4}]),
    (ev.JobOpen(3.0, 7, "o", None, "/d"),
     [3.0, "job-open", {"job_id": 7, "name": "o", "max_fails": None, "submit_dir": "/d"}]),
    (ev.JobCreated(3.5, 7, False, "o", 2, "/d", [["tpl", "0-3", None, []]]),
     [3.5, "job-created", {"job": 7, "closed_job": False,
                           "job_desc": {"name": "o", "max_fails": 2},
                           "submit_desc": {"submit_dir": "/d",
                                           "batches": [["tpl", "0-3", None, []]]}}]),
    (ev.JobClose(4.0, 7), [4.0, "job-close", {"job_id": 7}]),
    (ev.JobCancel(4.5, 7, None), [4.5, "job-cancel", {"job_id": 7, "reason": None}]),
    (ev.JobForget(5.0, 7), [5.0, "job-forget", {"job_id": 7}]),
    (ev.JobCompleted(5.5, 7), [5.5, "job-completed", {"job": 7}]),
    (ev.WorkerConnected(6.0, 2, CONFIG), [6.0, "worker-connected", {"id": 2,
                                                                    "configuration": CONFIG}]),
    (ev.WorkerReconnected(6.5, 2, CONFIG, ["uid", 2], [[7, 1, 0]], [[1, 7, 2, 0, None]]),
     [6.5, "worker-reconnected", {"id": 2, "configuration": CONFIG, "previous": ["uid", 2],
                                  "running": [[7, 1, 0]], "results": [[1, 7, 2, 0, None]]}]),
    (ev.WorkerLost(7.0, 2, "HEARTBEAT LOST", False),
     [7.0, "worker-lost", {"id": 2, "reason": "HEARTBEAT LOST", "count_crash": False}]),
    (ev.WorkerOverview(7.5, 2, {"state": {"timestamp": 7}}),
     [7.5, "worker-overview", {"id": 2, "hw-state": {"state": {"timestamp": 7}}}]),
    (ev.TaskStarted(8.0, 7, 1, 0, 2),
     [8.0, "task-started", {"job": 7, "task": 1, "instance": 0, "worker": 2}]),
    (ev.TaskStarted(8.0, 7, 1, 3, 2, 1, [2, 3]),
     [8.0, "task-started", {"job": 7, "task": 1, "instance": 3, "worker": 2, "variant": 1,
                            "nodes": [2, 3]}]),
    (ev.TaskFinished(9.0, 7, 1, 0), [9.0, "task-finished", {"job": 7, "task": 1,
                                                            "instance": 0}]),
    (ev.TaskFailed(9.5, 7, 2, 1, "exit 1"),
     [9.5, "task-failed", {"job": 7, "task": 2, "instance": 1, "error": "exit 1"}]),
    (ev.TaskCanceled(10.0, 7, [3, 4]), [10.0, "task-canceled", {"job": 7, "tasks": [3, 4]}]),
    (ev.TaskAborted(10.5, 7, [5]), [10.5, "task-aborted", {"job": 7, "tasks": [5]}]),
    # (journal only: batched plain starts and finishes, see `journal_records`)
    (ev.TaskProgress(11.0, 7, 2, 0, IntRanges.parse("1-3,5"), IntRanges.parse("1-3")),
     [11.0, "task-progress", {"job": 7, "worker": 2, "started": "1-3,5", "finished": "1-3"}]),
    (ev.TaskProgress(11.5, 7, 2, 4, IntRanges.parse("8"), IntRanges.from_ids(())),
     [11.5, "task-progress", {"job": 7, "worker": 2, "instance": 4, "started": "8"}]),
]


def test_every_kind_has_a_golden_record():
    assert {type(e).kind for e, _ in GOLDEN} == set(ev.KINDS)


@pytest.mark.parametrize("event, record", GOLDEN, ids=lambda x: getattr(x, "kind", None))
def test_record_keys_and_order_are_the_on_disk_ones(event, record):
    assert event.to_record() == record
    # the key order too: it is what `journal export` prints
    assert list(event.to_record()[2]) == list(record[2])
    back = ev.from_record(cbor2.loads(cbor2.dumps(event.to_record())))
    assert type(back) is type(event) and back == event
    if "configuration" not in record[2]:
        assert ev.to_public(record) == PUBLIC.get(record[1], {"type": record[1], **record[2]})


# Upstream's shapes where they differ from the payload on disk (upstream-facts.md F65).
PUBLIC = {
    "job-cancel": {"type": "job-cancel", "job_id": 7, "reason": ""},
    "worker-lost": {"type": "worker-lost", "id": 2, "reason": "HeartbeatLost"},
    "task-canceled": {"type": "task-canceled", "tasks": [{"job_id": 7, "job_task_id": 3},
                                                         {"job_id": 7, "job_task_id": 4}]},
    "task-aborted": {"type": "task-aborted", "tasks": [{"job_id": 7, "job_task_id": 5}]},
}


def test_one_spelling_per_field():
    fields = {f for cls in ev.KINDS.values() for f in cls.fields}
    assert not fields & {"job_id", "id", "worker_id", "task_id"}
    for event, _ in GOLDEN:
        assert event.fields[0] == "time" and type(event).__match_args__ == event.fields
        assert not hasattr(event, "__dict__")  # slotted: cheap to make per task
        for f in event.fields:
            getattr(event, f)


def test_records_of_older_writers_take_the_defaults():
    lost = ev.from_record([1.0, "worker-lost", {"id": 3, "reason": "STOPPED"}])
    assert lost == ev.WorkerLost(1.0, 3, "STOPPED", True)
    started = ev.from_record((2, "task-started", {"job": 1, "task": 2, "instance": 0,
                                                   "worker": 3}))
    assert (started.variant, started.nodes, started.time) == (0, None, 2)
    failed = ev.from_record([3.0, "task-failed", {"job": 1, "task": 2, "instance": 0}])
    assert failed.error is None


def test_unknown_kinds_are_kept_as_they_are():
    record = [1.0, "worker-telemetry", {"id": 1, "hw": {"cpu": [1, 2]}}]
    e = ev.from_record(record)
    assert type(e) is ev.Unknown and e.record_kind == "worker-telemetry"
    assert e.to_record() == record


@pytest.mark.parametrize("record, message", [
    ("garbage", "not a \\[time, kind, payload\\] record"),
    ([1.0, "task-finished"], "not a \\[time, kind, payload\\] record"),
    (["now", "server-stop", {}], "time is not a number"),
    ([float("nan"), "server-stop", {}], "time is not a number"),
    ([1.0, 5, {}], "type is not a string"),
    ([1.0, "task-finished", [1, 2]], "payload is not a map"),
    ([1.0, "task-finished", {"job": 1, "task": 2}], "without 'instance'"),
    ([1.0, "task-started", {"job": 1, "task": 2, "instance": 0, "worker": "w"}],
     "worker is not an integer"),
    ([1.0, "job-close", {"job": 1}], "without 'job_id'"),
    ([1.0, "job-cancel", {"job_id": True, "reason": None}], "job_id is not an integer"),
    ([1.0, "task-canceled", {"job": 1, "tasks": [1, "2"]}], "not a list of integers"),
    ([1.0, "job-created", {"job": 1, "closed_job": True, "job_desc": None,
                           "submit_desc": {}}], "must be maps"),
    ([1.0, "job-created", {"job": 1, "closed_job": True, "job_desc": {"name": "x"},
                           "submit_desc": {}}], "without 'max_fails'"),
])
def test_malformed_records_are_refused(record, message):
    with pytest.raises(ev.EventError, match=message):
        ev.from_record(record)


def test_public_shape_maps_the_worker_configuration():
    shape = ev.to_public([1.0, "worker-connected", {"id": 1, "configuration": CONFIG}])
    assert list(shape) == ["type", "id", "configuration"]
    assert shape["configuration"]["hostname"] == "h" and shape["configuration"]["group"] == "default"


def _history(seed: int) -> Env:
    """A random live history touching every event kind the reactor emits."""
    rng = random.Random(seed)
    env = Env(record_events=True)
    env.out.events.append(ev.ServerStart(env.now, env.core.server_uid))
    core = env.core
    for _ in range(80):
        env.tick(0.25)
        op, r = rng.randint(0, 11), rng.randint(0, 10_000)
        workers = [w for w in core.workers.values() if w.is_running]
        jobs = list(core.jobs.values())
        if op == 0:
            env.submit(array_spec(f"0-{r % 5}", crash_limit=1 + r % 3))
        elif op == 1:
            env.submit(graph_spec({i: tuple(j for j in range(i) if (r >> j) & 1)
                                   for i in range(2 + r % 3)}))
        elif op == 2 and len(workers) < 4:
            env.worker(1 + r % 3)
        elif op == 3 and workers:
            env.lose(workers[r % len(workers)],
                     (WorkerState.CONNECTION_LOST, WorkerState.STOPPED)[r % 2])
        elif op == 4:
            env.schedule()
        elif op in (5, 6, 7) and workers:
            w = workers[r % len(workers)]
            tasks = sorted(w.tasks, key=lambda t: t.key)[:1 + r % 3]
            if tasks:
                (env.start, env.finish, env.fail)[op - 5](w, tasks)
        elif op == 8 and jobs:
            env.cancel(jobs[r % len(jobs)], reason=None if r % 2 else "why")
        elif op == 9:
            if r % 2:
                env.open(f"open{r}")
            elif jobs:
                env.close(jobs[r % len(jobs)])
        elif op == 10 and jobs:
            env.forget(jobs[r % len(jobs)])
        elif op == 11 and workers:
            w = workers[r % len(workers)]
            running = sorted([t.job.id, t.id, t.instance] for t in w.tasks
                             if t.state == TaskState.RUNNING)
            core.awaiting[w.id] = env.now + 10
            reactor.register_worker(core, env.out, w.config, [core.server_uid, w.id], running,
                                    [], env.now)
    return env


@pytest.mark.timeout(60)
def test_live_events_round_trip_through_journal_records():
    """What the server writes (records, CBOR) decodes to the events the reactor made, and
    restoring from the records equals restoring from the events."""
    kinds = set()
    for seed in range(40):
        env = _history(seed)
        events = list(env.out.events)
        records = [cbor2.loads(cbor2.dumps(e.to_record())) for e in events]
        decoded = [ev.from_record(r) for r in records]
        assert decoded == events, seed
        kinds.update(e.kind for e in events)
        a, b = restore(events), restore(records)
        a.sanity_check()
        assert ({j: (job.task_stats(), job.is_open) for j, job in a.jobs.items()}
                == {j: (job.task_stats(), job.is_open) for j, job in b.jobs.items()})
        assert ({w: x.state for w, x in a.workers.items()}
                == {w: x.state for w, x in b.workers.items()})
    # (overviews come from the server's shell, not from the reactor; task-progress records
    # from the journal's batching, `journal_records`; id-floor records from `journal prune`)
    assert kinds == set(ev.KINDS) - {"server-stop", "worker-overview", "task-progress",
                                     "id-floor"}
