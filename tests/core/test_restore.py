"""Restore is a fold of events: replaying what a live core recorded rebuilds the same state.

Live histories are generated at random (submits, workers coming and going, scheduling, task
starts/results, cancels, open/close/forget, reconnects after a restart); the events the core
recorded are then replayed into a fresh core and the two are compared on everything a restart
must keep (job and task states, instance ids, crash counters, errors, workers and what runs
on them, id counters). Tasks only *assigned* (not started) are not journaled on purpose: after
a restart they are simply waiting again.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core_testkit import Env, array_spec, graph_spec
from hyperqueue.core import reactor
from hyperqueue.core.model import TaskState, WorkerState
from hyperqueue.core.restore import RestoreError, restore

LOSS = [WorkerState.CONNECTION_LOST, WorkerState.HEARTBEAT_LOST, WorkerState.STOPPED,
        WorkerState.IDLE_TIMEOUT, WorkerState.TIME_LIMIT_REACHED]


def snapshot(core) -> dict:
    jobs = {}
    for job in core.jobs.values():
        tasks = {}
        for batch in job.batches:
            for tid in batch.ids:
                t = job.tasks.get(tid)
                state = core.task_state(job, tid)
                if state == TaskState.ASSIGNED:
                    state = TaskState.WAITING
                if t is None:
                    tasks[tid] = (state.name, 0, 0, None, None)
                else:
                    worker = t.worker.id if state == TaskState.RUNNING else None
                    tasks[tid] = (state.name, t.instance, t.crash_count, worker, t.error)
        stats = job.task_stats()
        jobs[job.id] = (job.name, job.is_open, job.cancel_reason, job.max_fails, stats, tasks)
    workers = {w.id: (w.state.name, sorted(t.key for t in w.tasks
                                           if t.state == TaskState.RUNNING))
               for w in core.workers.values()}
    return {"jobs": jobs, "workers": workers, "next_job": core.next_job_id,
            "next_worker": core.next_worker_id, "uid": core.server_uid}


def replay(env) -> object:
    events = [e for e in env.out.events]
    return restore(events, server_uid=None)


ops = st.lists(st.tuples(st.integers(0, 11), st.integers(0, 10_000)), min_size=5, max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_restore_equals_live_state(history):
    env = Env(record_events=True)
    env.out.events.append((env.now, "server-start", {"server_uid": env.core.server_uid}))
    core = env.core
    for op, r in history:
        env.tick(0.5)
        workers = [w for w in core.workers.values() if w.is_running]
        jobs = list(core.jobs.values())
        if op == 0:
            env.submit(array_spec(f"0-{r % 7}", priority=r % 3, crash_limit=1 + r % 3,
                                  max_fails=(r % 4) if r % 5 == 0 else None))
        elif op == 1:
            n = 2 + r % 4
            deps = {i: tuple(j for j in range(i) if (r >> j) & 1) for i in range(n)}
            env.submit(graph_spec(deps))
        elif op == 2 and len(workers) < 4:
            env.worker(1 + r % 3)
        elif op == 3 and workers:
            env.lose(workers[r % len(workers)], LOSS[r % len(LOSS)])
        elif op == 4:
            env.schedule()
        elif op in (5, 6, 7) and workers:
            w = workers[r % len(workers)]
            tasks = sorted(w.tasks, key=lambda t: t.key)
            if not tasks:
                continue
            pick = tasks[: 1 + r % len(tasks)]
            if op == 5:
                env.start(w, pick)
            elif op == 6:
                env.finish(w, pick)
            else:
                env.fail(w, pick, error=f"boom {r}")
        elif op == 8 and jobs:
            env.cancel(jobs[r % len(jobs)], reason=f"r{r}" if r % 2 else None)
        elif op == 9:
            if r % 3 == 0:
                env.open(f"open{r}")
            elif jobs:
                env.close(jobs[r % len(jobs)])
        elif op == 10 and jobs:
            env.forget(jobs[r % len(jobs)])
        elif op == 11 and workers:
            # the server restarted and a worker reconnects, still running its tasks
            w = workers[r % len(workers)]
            running = [[t.job.id, t.id, t.instance] for t in w.tasks
                       if t.state == TaskState.RUNNING]
            core.awaiting[w.id] = env.now + 10
            reactor.register_worker(core, env.out, w.config, [core.server_uid, w.id],
                                    running, [], env.now)
        env.check()
    restored = replay(env)
    restored.sanity_check()
    live, back = snapshot(core), snapshot(restored)
    diff = {k: (live[k], back[k]) for k in live if live[k] != back[k]}
    assert not diff, diff


def test_restore_rejects_an_impossible_history():
    env = Env(record_events=True)
    w = env.worker(2)
    job = env.submit(array_spec("0-1"))
    events = list(env.out.events)
    events.append((env.now, "task-finished", {"job": job.id, "task": 0, "instance": 0}))
    with pytest.raises(RestoreError, match="ended without starting"):
        restore(events)
    events[-1] = (env.now, "no-such-event", {})
    with pytest.raises(RestoreError, match="unknown event type"):
        restore(events)
    assert w.is_running
