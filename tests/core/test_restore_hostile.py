"""A corrupt or hostile journal never restores into a broken state (issue 10, session 3).

Batched `task-progress` records (ranges of task ids) are mutated -- ranges reversed, of 2^32
ids, of ids the job does not have, overlapping or stepped, wrong types, huge or negative job /
worker / instance ids, records moved out of order or duplicated -- and restored: restore either
refuses with a `RestoreError` (the server then says "Cannot restore from journal PATH: record
N: ...") or rebuilds a state that passes `sanity_check()` and holds no task the job does not
have. Neither restore nor the offline readers' expansion (`events.expand_records`) ever
expands a range into ids the job does not have, and both stay fast.
"""

from __future__ import annotations

import copy
import time

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core_testkit import Env, array_spec, graph_spec
from hyperqueue.core import events as ev
from hyperqueue.core.model import TaskState
from hyperqueue.core.ranges import MAX_ID, IntRanges
from hyperqueue.core.restore import RestoreError, restore


def _history() -> list:
    """Journal records of a small live history: two arrays and a graph on two workers, most
    tasks finished in batches, some still running at the end."""
    env = Env(record_events=True)
    env.out.events.append((env.now, "server-start", {"server_uid": env.core.server_uid}))
    w1, w2 = env.worker(4), env.worker(2)
    a = env.submit(array_spec("0-59"))
    b = env.submit(array_spec("3-40:3,100-120", name="stepped"))
    env.submit(graph_spec({0: (), 1: (0,), 2: (0,), 3: (1, 2)}))
    while not a.is_done:
        env.schedule()
        env.tick(0.01)
        for w in (w1, w2):
            env.finish(w, sorted(w.tasks, key=lambda t: (t.job.id, t.id))[:3])
    env.schedule()
    env.tick(0.01)
    for w in (w1, w2):
        env.start(w, sorted(w.tasks, key=lambda t: (t.job.id, t.id)))  # left running
    assert not b.is_done and any(w.tasks for w in (w1, w2))
    records = [cbor2.loads(cbor2.dumps(r)) for r in ev.journal_records(env.out.events)]
    assert sum(r[1] == "task-progress" for r in records) >= 5
    return records


RECORDS = _history()
PROGRESS = [i for i, r in enumerate(RECORDS) if r[1] == "task-progress"]


def _job_ids(job) -> IntRanges:
    return IntRanges(tuple(r for b in job.batches for r in b.ids.ranges))


def _check_restored(core) -> None:
    core.sanity_check()
    for job in core.jobs.values():
        have = _job_ids(job)
        for tid, task in job.tasks.items():
            assert tid in have, (job.id, tid)
            assert 0 <= task.instance <= MAX_ID, task
        done = IntRanges(tuple((s, e, 1) for s, e, _ in job.done.runs()))
        assert len(done.intersection(have)) == len(done), (job.id, done)
    for w in core.workers.values():
        for t in w.tasks:
            assert t.state in (TaskState.ASSIGNED, TaskState.RUNNING), t


def _restore_or_refuse(records) -> None:
    started = time.monotonic()
    try:
        core = restore(records)
    except RestoreError as e:
        assert str(e)  # a reason the server can show
    else:
        _check_restored(core)
    assert time.monotonic() - started < 2.0


def _expand_or_refuse(records) -> None:
    """The offline readers' expansion: a clear EventError, or per-task records only of ids that
    the job has (never more than the history's records could stand for)."""
    try:
        out = ev.expand_records(records)
    except ev.EventError as e:
        assert str(e).startswith("record ")
        return
    jobs: dict[int, IntRanges] = {}
    for r in records:
        if r[1] == "job-created":
            rs = [x for b in r[2]["submit_desc"]["batches"] for x in IntRanges.parse(b[1]).ranges]
            jobs[r[2]["job"]] = IntRanges(tuple(rs))
    for r in out:
        if r[1] in ("task-started", "task-finished") and isinstance(r[2], dict) \
                and type(r[2].get("job")) is int:
            assert r[2]["task"] in jobs[r[2]["job"]], r
    assert len(out) <= len(records) + 2 * sum(len(x) for x in jobs.values()) * len(PROGRESS)


def test_the_unmutated_history_restores_and_expands():
    core = restore(copy.deepcopy(RECORDS))
    _check_restored(core)
    assert any(t.state == TaskState.RUNNING for j in core.jobs.values() for t in j.tasks.values())
    assert ev.expand_records(RECORDS) == [one for r in RECORDS for one in ev.expand_record(r)]


# -- hand-made ------------------------------------------------------------------------------------
def _first_progress(**change) -> list:
    records = copy.deepcopy(RECORDS)
    records[PROGRESS[0]][2].update(change)
    return records


HANDMADE = {
    "reversed": ({"started": "5-1"}, "the start is greater than the end"),
    "2^32 ids": ({"started": "0-4294967295", "finished": "0-4294967295"}, "cannot start"),
    "2^32 ids finished only": ({"finished": "0-4294967295"}, "without starting"),
    "2^32 ids stepped": ({"started": "0-4294967295:7", "finished": "0-4294967295:7"},
                         "cannot start"),
    "ids beyond the job": ({"started": "1000-1005", "finished": "1000-1005"}, "cannot start"),
    "overlapping": ({"started": "0-5,3-8", "finished": "0-5,3-8"}, "overlap"),
    "unsorted": ({"started": "7,2", "finished": "7,2"}, "not sorted"),
    "a list, not a range text": ({"started": [0, 1]}, "not a range text"),
    "a number": ({"finished": 3}, "not a range text"),
    "an id above u32": ({"started": "4294967296"}, "too large"),
    "huge worker": ({"worker": 2**70}, "worker"),
    "negative worker": ({"worker": -1}, "worker"),
    "huge instance": ({"instance": 2**70}, "instance"),
    "instance above u32": ({"instance": 2**40}, "instance"),
    "negative instance": ({"instance": -5}, "instance"),
    "bool instance": ({"instance": True}, "instance"),
    "float job": ({"job": 1.0}, "job"),
    "unknown job": ({"job": 77}, "unknown job 77"),
    "unknown worker": ({"worker": 9}, "unknown worker 9"),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", sorted(HANDMADE))
def test_hand_made_hostile_progress_is_refused_with_a_reason(name):
    change, reason = HANDMADE[name]
    records = _first_progress(**change)
    started = time.monotonic()
    with pytest.raises(RestoreError, match=reason):
        restore(records)
    _expand_or_refuse(records)
    assert time.monotonic() - started < 1.0


def test_progress_before_its_job_or_worker_is_refused():
    records = copy.deepcopy(RECORDS)
    records.insert(1, records.pop(PROGRESS[0]))  # before the job-created and worker records
    with pytest.raises(RestoreError, match="unknown (job|worker)"):
        restore(records)
    with pytest.raises(ev.EventError, match="record 2: .*no job-created event before it"):
        ev.expand_records(records)


def test_a_replayed_progress_record_changes_nothing():
    """A record applied twice is skipped as for per-task records (a task that ended already
    ends again: the existing policy for records a reconnect replay applied first)."""
    records = copy.deepcopy(RECORDS)
    for i in reversed(PROGRESS):
        records.insert(i + 1, copy.deepcopy(records[i]))
    once, twice = restore(copy.deepcopy(RECORDS)), restore(records)
    _check_restored(twice)
    assert {j.id: j.task_stats() for j in twice.jobs.values()} == {
        j.id: j.task_stats() for j in once.jobs.values()}


def test_offline_expansion_refuses_ids_the_job_does_not_have_without_expanding():
    records = _first_progress(started="0-4294967295", finished="0-4294967295")
    started = time.monotonic()
    with pytest.raises(ev.EventError, match=r"record \d+: .*started names tasks that job \d+ "
                                            r"does not have \(0-4294967295\)"):
        ev.expand_records(records)
    assert time.monotonic() - started < 0.5
    # stepped ids of a stepped array are expanded when (and only when) the job has them
    job_b = next(r[2]["job"] for r in RECORDS if r[1] == "job-created"
                 and r[2]["job_desc"]["name"] == "stepped")
    extra = [1e9, "task-progress", {"job": job_b, "worker": 1, "started": "3-39:6"}]
    out = ev.expand_records(RECORDS + [extra])
    assert [r[2]["task"] for r in out[-7:]] == [3, 9, 15, 21, 27, 33, 39]
    extra[2]["started"] = "3-39:2"  # 5, 7, ... are no task of the job
    with pytest.raises(ev.EventError, match="does not have"):
        ev.expand_records(RECORDS + [extra])


# -- generated ------------------------------------------------------------------------------------
_range_texts = st.one_of(
    st.sampled_from(["", "0", "0-4294967295", "4294967295", "5-1", "0-5,3-8", "7,2", "0-59",
                     "0-59:2", "3-40:3", "100-120", "0-3", "1-2", "0-10,20-30", "61-70",
                     "0-4294967295:1000", "-1", "1-", "a", "0-5:0"]),
    st.lists(st.integers(0, 130), min_size=1, max_size=8).map(
        lambda xs: ",".join(map(str, sorted(set(xs))))),
    st.tuples(st.integers(0, 130), st.integers(0, 200)).map(lambda t: f"{t[0]}-{t[1]}"),
)
_ints = st.one_of(st.integers(-3, 5), st.sampled_from([MAX_ID, MAX_ID + 1, 2**40, 2**70, -2**70]))
_wrong = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=5),
                   st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                         st.integers(), max_size=2))
_mutation = st.one_of(
    st.tuples(st.sampled_from(["started", "finished"]), st.one_of(_range_texts, _wrong)),
    st.tuples(st.sampled_from(["job", "worker", "instance"]), st.one_of(_ints, _wrong)),
    st.tuples(st.sampled_from(["drop"]), st.sampled_from(["started", "finished", "job",
                                                          "worker", "instance"])),
    st.tuples(st.sampled_from(["move", "duplicate"]), st.integers(0, len(RECORDS) - 1)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PROGRESS), _mutation), min_size=1, max_size=3))
def test_mutated_progress_records_are_refused_or_restore_sanely(mutations):
    records = copy.deepcopy(RECORDS)
    for index, (what, value) in mutations:
        record = records[index]
        if what == "drop":
            record[2].pop(value, None)
        elif what == "move":
            records.remove(record)
            records.insert(value, record)
        elif what == "duplicate":
            records.insert(value, copy.deepcopy(record))
        else:
            record[2][what] = value
    _restore_or_refuse(records)
    _expand_or_refuse(records)


def test_the_events_module_bounds_are_the_limits():
    from hyperqueue.core.limits import MAX_ID as LIMIT

    assert ev._MAX_ID == LIMIT  # (events.py stays stdlib-only: its own copy of the bound)
