"""`journal prune`: which records are kept, and the rewrite of the file itself.

The selection is checked against the restore: random live histories are pruned at a random
moment (with what is live decided from the core at that moment, as the server does), the
history goes on, and the pruned journal plus everything recorded afterwards must restore
every job that was live or came later, and every running worker, exactly as the live core has
them -- whatever the record kinds, payload keys (`job`, `job_id`, `id`) or worker references.

The rewrite runs on real files: mode 0600 whatever the umask, no predictable temporary path
followed, records appended while the rewrite thread runs land in the new file, a failure leaves
the old file untouched and nothing behind.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import stat
import sys
import threading
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))

from core_testkit import Env, array_spec, graph_spec  # noqa: E402
from hyperqueue.core import reactor  # noqa: E402
from hyperqueue.core.events import ServerStart, journal_records  # noqa: E402
from hyperqueue.core.model import TaskState, WorkerState  # noqa: E402
from hyperqueue.core.restore import restore  # noqa: E402
from hyperqueue.journal.format import (JournalError, encode_header, encode_record,  # noqa: E402
                                       read_all)
from hyperqueue.journal.prune import job_of, select_records  # noqa: E402
from hyperqueue.journal.writer import JournalWriter  # noqa: E402

LOSS = [WorkerState.CONNECTION_LOST, WorkerState.HEARTBEAT_LOST, WorkerState.STOPPED]


def _step(env: Env, op: int, r: int) -> None:
    core = env.core
    env.tick(0.5)
    workers = [w for w in core.workers.values() if w.is_running]
    jobs = list(core.jobs.values())
    if op == 0:
        env.submit(array_spec(f"0-{r % 5}", crash_limit=1 + r % 3,
                              max_fails=(r % 4) if r % 5 == 0 else None))
    elif op == 1:
        n = 2 + r % 3
        env.submit(graph_spec({i: tuple(j for j in range(i) if (r >> j) & 1)
                               for i in range(n)}))
    elif op == 2 and len(workers) < 4:
        env.worker(1 + r % 3)
    elif op == 3 and workers:
        env.lose(workers[r % len(workers)], LOSS[r % len(LOSS)])
    elif op == 4:
        env.schedule()
    elif op in (5, 6, 7) and workers:
        w = workers[r % len(workers)]
        tasks = sorted(w.tasks, key=lambda t: t.key)
        if tasks:
            pick = tasks[: 1 + r % len(tasks)]
            (env.start, env.finish, env.fail)[op - 5](w, pick)
    elif op == 8 and jobs:
        env.cancel(jobs[r % len(jobs)], reason=None)
    elif op == 9:
        if r % 3 == 0:
            env.open(f"open{r}")
        elif jobs:
            env.close(jobs[r % len(jobs)])
    elif op == 10 and jobs:
        env.forget(jobs[r % len(jobs)])
    elif op == 11 and workers:
        # a restart: the worker reconnects still running its tasks
        w = workers[r % len(workers)]
        running = [[t.job.id, t.id, t.instance] for t in w.tasks
                   if t.state == TaskState.RUNNING]
        core.awaiting[w.id] = env.now + 10
        reactor.register_worker(core, env.out, w.config, [core.server_uid, w.id], running, [],
                                env.now)


def _job_view(core, job):
    tasks = {}
    for batch in job.batches:
        for tid in batch.ids:
            t = core.task_record(job, tid)  # (a finished task may have given it up)
            state = core.task_state(job, tid)
            if state == TaskState.ASSIGNED:
                state = TaskState.WAITING
            if t is None:
                tasks[tid] = (state.name, 0, 0, None, None)
            else:
                worker = t.worker.id if state == TaskState.RUNNING else None
                tasks[tid] = (state.name, t.instance, t.crash_count, worker, t.error)
    return (job.name, job.is_open, job.max_fails, job.task_stats(), tasks)


def _through_file(events) -> list:
    """The records as a journal file gives them back (as the server writes them: plain task
    starts and finishes batched, `journal_records`; CBOR round trip)."""
    data = encode_header() + b"".join(encode_record(r) for r in journal_records(events))
    records, tail = read_all(data)
    assert tail.clean
    return records


ops = st.lists(st.tuples(st.integers(0, 11), st.integers(0, 10_000)), min_size=4, max_size=50)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops, ops)
def test_pruned_journal_restores_everything_live(before, after):
    _check_prune(before, after)


def test_pruned_journal_restores_everything_live_random_histories():
    # Hypothesis favours short and boundary histories; these are long and uniform (each
    # seed is reproducible on its own).
    for seed in range(300):
        rng = random.Random(seed)

        def history():
            return [(rng.randint(0, 11), rng.randint(0, 10_000))
                    for _ in range(rng.randint(4, 60))]

        try:
            _check_prune(history(), history())
        except Exception as e:
            raise AssertionError(f"seed {seed}: {e!r}") from e


def _check_prune(before, after) -> None:
    env = Env(record_events=True)
    core = env.core
    env.out.events.append(ServerStart(env.now, core.server_uid))
    for op, r in before:
        _step(env, op, r)
    # The prune, as the server does it: what is live is decided on the core with every
    # event of the moment recorded.
    live_jobs = frozenset(j.id for j in core.jobs.values() if not j.is_terminated)
    live_workers = frozenset(w.id for w in core.workers.values() if w.is_running)
    pruned_jobs = set(core.jobs) - live_jobs
    records = _through_file(env.out.events)
    kept = select_records(records, live_jobs, live_workers)
    n_before = len(env.out.events)
    env.out.events.append(ServerStart(env.now, core.server_uid))
    for op, r in after:
        _step(env, op, r)
    later = _through_file(env.out.events[n_before:])

    restored = restore([tuple(r) for r in kept + later])
    restored.sanity_check()
    expected = {jid for jid in core.jobs if jid not in pruned_jobs}
    assert set(restored.jobs) == expected
    for jid in expected:
        assert _job_view(restored, restored.jobs[jid]) == _job_view(core, core.jobs[jid]), jid
    for w in core.workers.values():
        if w.is_running:
            back = restored.workers[w.id]
            assert back.is_running
            assert (sorted(t.key for t in back.tasks if t.state == TaskState.RUNNING)
                    == sorted(t.key for t in w.tasks if t.state == TaskState.RUNNING))
    assert restored.server_uid == core.server_uid
    # and it actually prunes: nothing of a terminated job stays
    assert not any(job_of(r[2]) in pruned_jobs for r in kept)


def test_selection_keeps_what_kept_records_need():
    records = [
        [1.0, "server-start", {"server_uid": "abc"}],
        [2.0, "worker-connected", {"id": 1, "configuration": {}}],
        [2.1, "worker-connected", {"id": 2, "configuration": {}}],
        [2.2, "worker-connected", {"id": 3, "configuration": {}}],
        [2.3, "worker-connected", {"id": 4, "configuration": {}}],
        [2.4, "worker-connected", {"id": 5, "configuration": {}}],
        [3.0, "job-open", {"job_id": 7, "name": "o", "max_fails": None, "submit_dir": "/"}],
        [3.1, "job-created", {"job": 7}],
        [3.2, "job-created", {"job": 8}],
        [4.0, "task-started", {"job": 7, "task": 0, "instance": 0, "worker": 1}],
        [4.1, "task-started", {"job": 7, "task": 1, "instance": 0, "worker": 2,
                               "nodes": [2, 3]}],
        [4.2, "task-started", {"job": 8, "task": 0, "instance": 0, "worker": 4}],
        [4.3, "worker-reconnected", {"id": 5, "previous": ["abc", 5], "running": [[7, 2, 0]],
                                     "results": []}],
        [5.0, "worker-lost", {"id": 1, "reason": "connection lost"}],
        [5.1, "worker-lost", {"id": 4, "reason": "connection lost"}],
        [5.2, "job-completed", {"job": 8}],
        [5.3, "job-cancel", {"job_id": 8, "reason": None}],
        [6.0, "some-future-kind", {"x": 1}],
        [6.1, "server-stop", {}],
    ]
    kept = select_records(records, live_jobs={7}, live_workers=set())
    kinds = [(r[1], r[2].get("id", job_of(r[2]))) for r in kept]
    assert kinds == [
        ("server-start", None),
        ("worker-connected", 1), ("worker-connected", 2), ("worker-connected", 3),
        ("worker-connected", 5),
        ("job-open", 7), ("job-created", 7),
        ("task-started", 7), ("task-started", 7),
        ("worker-reconnected", 5),
        ("worker-lost", 1),
        ("some-future-kind", None),
        ("server-stop", None),
    ]


# -- the rewrite on real files --------------------------------------------------------------


def _records_in(path) -> list:
    records, tail = read_all(Path(path).read_bytes())
    assert tail.clean
    return records


async def _writer_with(path, n: int) -> JournalWriter:
    w = JournalWriter(str(path))
    w.open()
    w.append([(float(i), "job-created", {"job": i}) for i in range(n)])
    await w.flush()
    return w


def _keep_even(records):
    return [r for r in records if r[2]["job"] % 2 == 0]


def test_rewrite_mode_0600_and_no_predictable_tmp_path_followed(tmp_path):
    path = tmp_path / "journal"
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    planted = [tmp_path / "journal.tmp", tmp_path / ".journal.tmp", tmp_path / "journal~"]
    for p in planted:
        p.symlink_to(victim)
    old_umask = os.umask(0)
    try:
        async def main():
            w = await _writer_with(path, 10)
            os.chmod(path, 0o644)
            kept, dropped = await w.rewrite(lambda: _keep_even)
            assert (kept, dropped) == (5, 5)
            w.append([(99.0, "job-created", {"job": 100})])
            await w.aclose()

        trio.run(main)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert not path.is_symlink()
    assert [r[2]["job"] for r in _records_in(path)] == [0, 2, 4, 6, 8, 100]
    assert victim.read_bytes() == b"precious"
    assert all(p.is_symlink() for p in planted)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["journal", "victim"] + [p.name for p in planted])


def test_records_appended_during_the_rewrite_land_in_the_new_file(tmp_path):
    path = tmp_path / "journal"
    in_select = threading.Event()
    release = threading.Event()

    def slow_select(records):
        in_select.set()
        assert release.wait(10)
        return _keep_even(records)

    async def main():
        w = await _writer_with(path, 6)

        def snapshot():
            # called with the journal locked: what it appends is part of the rewritten file
            w.append([(50.0, "job-created", {"job": 50})])
            return slow_select

        async def during():
            await trio.to_thread.run_sync(in_select.wait)
            # the rewrite thread is running: these records are buffered, a durable() wait
            # and a flush queue behind the rewrite
            pos = w.append([(60.0, "job-created", {"job": 61}), (61.0, "job-forget",
                                                                 {"job_id": 3})])
            async with trio.open_nursery() as inner:
                inner.start_soon(w.durable, pos)
                inner.start_soon(w.flush)
                await trio.sleep(0.2)
                assert w.durable_pos < pos  # nothing written while the rewrite runs
                release.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(during)
            kept, dropped = await w.rewrite(snapshot)
        assert (kept, dropped) == (4, 3)  # 0 2 4 50 kept; 1 3 5 dropped
        await w.aclose()

    trio.run(main)
    jobs = [job_of(r[2]) for r in _records_in(path)]
    assert jobs == [0, 2, 4, 50, 61, 3]


def test_a_failed_rewrite_leaves_the_journal_as_it_was(tmp_path):
    path = tmp_path / "journal"

    def broken(records):
        raise OSError(errno.ENOSPC, "No space left on device")

    async def main():
        w = await _writer_with(path, 4)
        before = path.read_bytes()
        with pytest.raises(OSError):
            await w.rewrite(lambda: broken)
        assert path.read_bytes() == before
        assert sorted(os.listdir(tmp_path)) == ["journal"]
        w.append([(9.0, "job-created", {"job": 9})])  # still appending to the same file
        await w.flush()
        await w.aclose()

    trio.run(main)
    assert [r[2]["job"] for r in _records_in(path)] == [0, 1, 2, 3, 9]


def test_a_write_failure_is_final_and_reported(tmp_path, caplog):
    path = tmp_path / "journal"
    failures = []

    async def main():
        w = await _writer_with(path, 2)
        w.on_failure = failures.append
        durable = []
        w.on_durable = durable.append
        # the kernel's ENOSPC: writes to /dev/full always fail
        os.close(w.fd)
        w.fd = os.open("/dev/full", os.O_WRONLY)
        pos = w.append([(5.0, "job-created", {"job": 5})])
        await w.flush()
        assert isinstance(w.failed, OSError) and w.failed.errno == errno.ENOSPC
        assert len(failures) == 1 and not durable
        with trio.move_on_after(0.3) as scope:
            await w.durable(pos)
        assert scope.cancelled_caught  # never reported durable
        w.append([(6.0, "job-created", {"job": 6})])
        await w.flush()
        assert len(failures) == 1
        with pytest.raises(JournalError, match="cannot be written"):
            await w.rewrite(lambda: _keep_even)
        await w.aclose()
        assert w.fd is None

    with caplog.at_level(logging.ERROR, logger="hq.journal"):
        trio.run(main)
    assert f"Cannot write the journal {path}: No space left on device" in caplog.text


def test_selection_keeps_the_workers_of_a_live_jobs_batched_task_records():
    records = [
        [2.0, "worker-connected", {"id": 1, "configuration": {}}],
        [2.1, "worker-connected", {"id": 2, "configuration": {}}],
        [3.1, "job-created", {"job": 7}],
        [3.2, "job-created", {"job": 8}],
        [4.0, "task-progress", {"job": 7, "worker": 1, "started": "0-9", "finished": "0-8"}],
        [4.1, "task-progress", {"job": 8, "worker": 2, "started": "0-9", "finished": "0-9"}],
        [5.0, "worker-lost", {"id": 1, "reason": "connection lost"}],
        [5.1, "worker-lost", {"id": 2, "reason": "connection lost"}],
        [5.2, "job-completed", {"job": 8}],
    ]
    kept = select_records(records, live_jobs={7}, live_workers=set())
    assert [(r[1], r[2].get("id", job_of(r[2]))) for r in kept] == [
        ("worker-connected", 1), ("job-created", 7), ("task-progress", 7), ("worker-lost", 1)]
