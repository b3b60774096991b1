"""Ids continue after a prune: `journal prune` drops the records of terminated jobs and gone
workers, and an `id-floor` record it writes after the kept ones carries the highest job and
worker ids created so far, so a restore (`server.boot.restore`, with upstream's counters, F67)
gives the same next job and worker ids as the unpruned journal would. The record is validated
like every other (an int in 0..MAX_ID), replaces the one of an earlier prune, and unknown
records still pass through the prune.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))

from core_testkit import Env  # noqa: E402
from hyperqueue.core import events as ev  # noqa: E402
from hyperqueue.core.limits import MAX_ID  # noqa: E402
from hyperqueue.errors import HqError  # noqa: E402
from hyperqueue.journal.format import encode_header, encode_record, read_all  # noqa: E402
from hyperqueue.journal.prune import select_records  # noqa: E402
from hyperqueue.server.boot import restore as boot_restore  # noqa: E402

from .test_prune import _step, _through_file  # noqa: E402


def _write(path: Path, records) -> Path:
    path.write_bytes(encode_header() + b"".join(encode_record(list(r)) for r in records))
    return path


def _prune_like_the_server(core, records, now=100.0) -> list:
    """`Server.prune_journal`'s snapshot: what is live and the id floor, from the core."""
    live_jobs = frozenset(j.id for j in core.jobs.values() if not j.is_terminated)
    live_workers = frozenset(w.id for w in core.workers.values() if w.is_running)
    floor = ev.IdFloor(now, core.next_job_id - 1, max(core.workers, default=0))
    return select_records(records, live_jobs, live_workers, id_floor=floor)


def _history(seed: int) -> Env:
    rng = random.Random(seed)
    env = Env(record_events=True)
    env.out.events.append(ev.ServerStart(env.now, env.core.server_uid))
    for _ in range(rng.randint(4, 60)):
        _step(env, rng.randint(0, 11), rng.randint(0, 10_000))
    return env


@pytest.mark.timeout(60)
def test_pruned_journal_continues_ids_as_the_unpruned_one(tmp_path):
    pruned_something = 0
    for seed in range(150):
        env = _history(seed)
        records = _through_file(env.out.events)
        kept = _prune_like_the_server(env.core, records)
        full = boot_restore(str(_write(tmp_path / "full.bin", records)))
        pruned = boot_restore(str(_write(tmp_path / "pruned.bin", kept)))
        assert (pruned.next_job_id, pruned.next_worker_id) == \
            (full.next_job_id, full.next_worker_id), seed
        pruned_something += len(kept) < len(records)
        # pruned again after the restart (the floor record is replaced, not repeated)
        again = _prune_like_the_server(pruned, [tuple(r) for r in kept], now=200.0)
        assert sum(r[1] == "id-floor" for r in again) == 1
        twice = boot_restore(str(_write(tmp_path / "twice.bin", again)))
        assert (twice.next_job_id, twice.next_worker_id) == \
            (full.next_job_id, full.next_worker_id), seed
    assert pruned_something > 50  # the histories do have terminated jobs and gone workers


def test_prune_then_restart_does_not_reuse_ids(tmp_path):
    """Jobs 1..3 finished and worker 1 gone: everything is pruned, and still the next job is
    4 and the next worker 3 (upstream: highest worker id + 2), not 1 and 2."""
    records = [
        [1.0, "server-start", {"server_uid": "abc"}],
        [2.0, "worker-connected", {"id": 1, "configuration": _config()}],
        *[r for j in (1, 2, 3) for r in _finished_job(j, worker=1, t=2.0 + j)],
        [7.0, "worker-lost", {"id": 1, "reason": "STOPPED", "count_crash": False}],
    ]
    before = boot_restore(str(_write(tmp_path / "before.bin", records)))
    assert (before.next_job_id, before.next_worker_id) == (4, 3)
    kept = select_records(records, live_jobs=frozenset(), live_workers=frozenset(),
                          id_floor=ev.IdFloor(8.0, 3, 1))
    assert kept == [[1.0, "server-start", {"server_uid": "abc"}],
                    [8.0, "id-floor", {"last_job": 3, "last_worker": 1}]]
    after = boot_restore(str(_write(tmp_path / "after.bin", kept)))
    assert not after.jobs
    assert (after.next_job_id, after.next_worker_id) == (4, 3)
    # without the record (as before the fix): ids 1 and 2 again
    old = boot_restore(str(_write(tmp_path / "old.bin", kept[:1])))
    assert (old.next_job_id, old.next_worker_id) == (1, 2)


def test_floor_is_placed_after_the_kept_records_and_merges_earlier_floors():
    records = [
        [1.0, "server-start", {"server_uid": "abc"}],
        [1.5, "id-floor", {"last_job": 50, "last_worker": 2}],
        [2.0, "worker-connected", {"id": 9, "configuration": {}}],
        [3.0, "job-created", {"job": 51}],
        [4.0, "some-future-kind", {"x": 1}],  # unknown records still pass through
        [5.0, "id-floor", {"last_job": 40, "last_worker": 7}],
    ]
    kept = select_records(records, live_jobs={51}, live_workers={9},
                          id_floor=ev.IdFloor(6.0, 51, 9))
    assert [r[1] for r in kept] == ["server-start", "worker-connected", "job-created",
                                    "some-future-kind", "id-floor"]
    assert kept[-1] == [6.0, "id-floor", {"last_job": 51, "last_worker": 9}]
    # an earlier floor above what the core knows (its jobs were pruned before a restart)
    kept = select_records(records, live_jobs=set(), live_workers=set(),
                          id_floor=ev.IdFloor(6.0, 3, 1))
    assert kept[-1] == [6.0, "id-floor", {"last_job": 50, "last_worker": 7}]
    # without a floor (tools, older callers) the selection is as it always was
    assert [r[1] for r in select_records(records, {51}, {9})] == [
        "server-start", "id-floor", "worker-connected", "job-created", "some-future-kind",
        "id-floor"]


@pytest.mark.parametrize("payload, reason", [
    ({"last_job": -1, "last_worker": 0}, "last job id -1 is out of range"),
    ({"last_job": 0, "last_worker": MAX_ID + 1}, f"last worker id {MAX_ID + 1} is out of range"),
    ({"last_job": 1 << 70, "last_worker": 0}, "out of range"),
    ({"last_job": True, "last_worker": 0}, "last_job is not an integer: True"),
    ({"last_job": "3", "last_worker": 0}, "last_job is not an integer: '3'"),
    ({"last_job": 3.0, "last_worker": 0}, "last_job is not an integer: 3.0"),
    ({"last_job": 3}, "id-floor event without 'last_worker'"),
], ids=["negative", "above-max-id", "bignum", "bool", "string", "float", "missing"])
def test_restore_refuses_a_bad_floor_record(tmp_path, payload, reason):
    path = _write(tmp_path / "bad.bin", [[1.0, "server-start", {"server_uid": "abc"}],
                                         [2.0, "id-floor", payload]])
    with pytest.raises(HqError) as info:
        boot_restore(str(path))
    assert f"Cannot restore from journal {path}: record 2: " in str(info.value)
    assert reason in str(info.value)


def test_floor_at_max_id_is_accepted_and_the_floor_only_raises_counters(tmp_path):
    records = [[1.0, "server-start", {"server_uid": "abc"}],
               [2.0, "id-floor", {"last_job": 7, "last_worker": 0}],
               [3.0, "id-floor", {"last_job": 2, "last_worker": 0}]]  # lower: no effect
    core = boot_restore(str(_write(tmp_path / "j.bin", records)))
    assert (core.next_job_id, core.next_worker_id) == (8, 2)
    records[2][2] = {"last_job": MAX_ID, "last_worker": MAX_ID}
    core = boot_restore(str(_write(tmp_path / "j2.bin", records)))
    assert core.next_job_id == MAX_ID + 1


def test_the_floor_record_survives_the_file_format(tmp_path):
    rec = ev.IdFloor(1.5, 3, 4).to_record()
    records, tail = read_all(encode_header() + encode_record(rec))
    assert tail.clean and ev.from_record(records[0]) == ev.IdFloor(1.5, 3, 4)
    assert ev.to_public(records[0]) == {"type": "id-floor", "last_job": 3, "last_worker": 4}


# -- helpers ------------------------------------------------------------------------------------
def _config() -> list:
    from hyperqueue.core.model import WorkerConfig
    from hyperqueue.core.resources import ResourceDef

    return WorkerConfig("h", [ResourceDef.range_of("cpus", 0, 0)]).to_wire()


def _finished_job(job: int, worker: int, t: float) -> list:
    env = Env(record_events=True)
    from core_testkit import array_spec

    env.core.next_job_id = job
    env.submit(array_spec("0"))
    created = [r for r in ev.to_records(env.out.events) if r[1] == "job-created"][0]
    created[0] = t
    return [created,
            [t + 0.1, "task-started", {"job": job, "task": 0, "instance": 0, "worker": worker}],
            [t + 0.2, "task-finished", {"job": job, "task": 0, "instance": 0}],
            [t + 0.2, "job-completed", {"job": job}]]
