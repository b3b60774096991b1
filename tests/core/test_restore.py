"""Restore is a fold of events: replaying what a live core recorded rebuilds the same state.

Live histories are generated at random (submits, workers coming and going, scheduling, task
starts/results, cancels, open/close/forget, reconnects after a restart); the events the core
recorded are then replayed into a fresh core and the two are compared on everything a restart
must keep (job and task states, instance ids, crash counters, errors, times, the resource
variant and the nodes of running tasks, workers with their resource loads and what runs on them,
id counters). Tasks only *assigned* (not started) are not journaled on purpose: after a restart
they are simply waiting again (so loads are compared over what *runs*).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import cbor2

from core_testkit import Env, array_spec, graph_spec, ids, request, template
from hyperqueue.core import events as ev
from hyperqueue.core import reactor
from hyperqueue.core.model import TaskState, WorkerState
from hyperqueue.core.resources import ResourceRequest, parse_resource_def
from hyperqueue.core.restore import RestoreError, restore
from hyperqueue.core.state import task_amounts

LOSS = [WorkerState.CONNECTION_LOST, WorkerState.HEARTBEAT_LOST, WorkerState.STOPPED,
        WorkerState.IDLE_TIMEOUT, WorkerState.TIME_LIMIT_REACHED]
GPUS = parse_resource_def("gpus", "[a,b]")
# Requests of generated arrays: single ones, and variants whose first choice often does not fit
# the generated workers (1-4 cpus, some with gpus), so the scheduler picks a later one.
REQUESTS = [
    None,
    request(cpus=2),
    [request(cpus=3), request(cpus=1)],
    [request(cpus=1, gpus=1), request(cpus=2)],
    [request(cpus=4), request(cpus=2), request(cpus=1)],
    [request(gpus="all"), request(cpus="all")],
    request(cpus="all"),
    ResourceRequest([], n_nodes=2),  # multi-node: whole idle workers of one group
    ResourceRequest([], n_nodes=3),
]


def running_load(worker) -> dict:
    """What the worker's load must be when only its *running* tasks are counted."""
    mn = worker.mn_task
    if mn is not None and mn.state == TaskState.RUNNING:
        return dict(worker.capacity)
    load = dict.fromkeys(worker.capacity, 0)
    for t in worker.tasks:
        if t.state == TaskState.RUNNING:
            for name, amount in task_amounts(t, worker):
                load[name] += amount
    return load


def snapshot(core) -> dict:
    jobs = {}
    for job in core.jobs.values():
        tasks = {}
        for batch in job.batches:
            for tid in batch.ids:
                t = core.task_record(job, tid)  # (a finished task may have given it up)
                state = core.task_state(job, tid)
                if state == TaskState.ASSIGNED:
                    state = TaskState.WAITING
                if t is None or (state == TaskState.WAITING and t.instance == 0
                                 and t.crash_count == 0):
                    # (a record or not: a task that never started looks the same)
                    tasks[tid] = (state.name, 0, 0, None, None)
                elif state == TaskState.RUNNING:
                    nodes = None if t.nodes is None else [n.id for n in t.nodes]
                    tasks[tid] = (state.name, t.instance, t.crash_count, t.worker.id, t.error,
                                  t.variant, nodes, t.start_time)
                elif state.is_terminal and t.start_time is None:
                    # ended without starting (canceled/aborted while waiting or assigned)
                    tasks[tid] = (state.name, t.instance, t.crash_count, None, t.error)
                else:
                    tasks[tid] = (state.name, t.instance, t.crash_count, None, t.error,
                                  t.start_time, t.end_time)
        stats = job.task_stats()
        batches = [(b.template.to_wire(), b.ids.to_text(), b.entries, list(b.deps),
                    b.submit_dir) for b in job.batches]
        jobs[job.id] = (job.name, job.is_open, job.cancel_reason, job.max_fails, stats, tasks,
                        job.submit_dir, job.submit_date, job.started_at, job.finished_at,
                        dict(job.workers_used), batches)
    workers = {}
    for w in core.workers.values():
        running = sorted(t.key for t in w.tasks if t.state == TaskState.RUNNING)
        mn = w.mn_task
        mn = mn.key if mn is not None and mn.state == TaskState.RUNNING else None
        workers[w.id] = (w.state.name, running, mn, running_load(w), w.config.to_wire(),
                         w.capacity, w.started_at, w.ended_at, w.last_task_started)
    return {"jobs": jobs, "workers": workers, "next_job": core.next_job_id,
            "next_worker": core.next_worker_id, "uid": core.server_uid}


def replay(env) -> object:
    events = [e for e in env.out.events]
    return restore(events, server_uid=None)


ops = st.lists(st.tuples(st.integers(0, 14), st.integers(0, 10_000),
                         st.integers(0, len(REQUESTS) - 1)), min_size=10, max_size=60)
# The workers an example starts with: (cpus, with gpus)
first_workers = st.lists(st.tuples(st.integers(1, 4), st.booleans()), min_size=0, max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
@given(first_workers, ops, st.booleans())
def test_restore_equals_live_state(initial, history, start_all):
    env = Env(record_events=True)
    env.out.events.append((env.now, "server-start", {"server_uid": env.core.server_uid}))
    core = env.core
    for n_cpus, gpus in initial:
        env.worker(n_cpus, *([GPUS] if gpus else []))
    for op, r, ri in history:
        env.tick(0.5)
        workers = [w for w in core.workers.values() if w.is_running]
        jobs = list(core.jobs.values())
        if op == 0:
            env.submit(array_spec(f"0-{r % 7}", priority=r % 3, crash_limit=1 + r % 3,
                                  req=REQUESTS[ri],
                                  max_fails=(r % 4) if r % 5 == 0 else None))
        elif op == 1:
            n = 2 + r % 4
            deps = {i: tuple(j for j in range(i) if (r >> j) & 1) for i in range(n)}
            env.submit(graph_spec(deps))
        elif op == 2 and len(workers) < 5:
            env.worker(1 + r % 4, *([GPUS] if r % 3 == 0 else []))
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
        elif op == 12:
            # multi-node tasks first (a higher priority): whole idle workers of a group
            env.submit(array_spec(f"0-{r % 3}", req=REQUESTS[-1 - r % 2],
                                  crash_limit=1 + r % 3, priority=3))
        elif op == 13 and workers:
            # the worker gives back prefilled tasks (or has started them meanwhile)
            w = workers[r % len(workers)]
            refs = [[t.job.id, t.id, t.instance] for t in sorted(w.tasks, key=lambda t: t.key)
                    if t.state == TaskState.ASSIGNED and t.nodes is None]
            reactor.tasks_retracted(core, env.out, w, refs[::2], refs[1::2])
        elif op == 14:
            # a scheduling pass, and the workers start some of what they got
            env.schedule()
            for w in workers:
                assigned = sorted((t for t in w.tasks if t.state == TaskState.ASSIGNED),
                                  key=lambda t: t.key)
                env.start(w, assigned[: 1 + r % 3])
        env.check()
    if start_all:
        # the server crashes right after its workers started all they were given
        env.schedule()
        for w in core.workers.values():
            env.start(w, sorted(w.tasks, key=lambda t: t.key))
        env.check()
    live = snapshot(core)
    # From the events themselves, and from the journal's records of them (plain starts and
    # finishes batched into `task-progress` records of ranges), through CBOR.
    batched = [cbor2.loads(cbor2.dumps(r)) for r in ev.journal_records(env.out.events)]
    for restored in (replay(env), restore(batched)):
        restored.sanity_check()
        assert not any(t.state == TaskState.ASSIGNED for j in restored.jobs.values()
                       for t in j.tasks.values())
        for w in restored.workers.values():
            assert w.load == running_load(w), (w, w.load)
        back = snapshot(restored)
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


def _variant_and_multi_node_running(env):
    """Three 2-cpu workers; a 2-node task runs on workers 1+2, and a task whose first variant
    (3 cpus) can never fit runs with its second (1 cpu) on worker 3."""
    w1, w2, w3 = env.worker(2), env.worker(2), env.worker(2)
    env.submit(array_spec("0", req=ResourceRequest([], n_nodes=2), name="mn"))
    env.submit(array_spec("0", req=[request(cpus=3), request(cpus=1)], name="variants"))
    env.schedule()
    for w in (w1, w2, w3):
        env.start(w, sorted(w.tasks, key=lambda t: t.key))
    env.check()
    return w1, w2, w3


def test_restore_keeps_the_variant_and_all_nodes_of_running_tasks():
    env = Env(record_events=True)
    w1, w2, w3 = _variant_and_multi_node_running(env)
    mn, var = env.core.jobs[1].tasks[0], env.core.jobs[2].tasks[0]
    assert [n.id for n in mn.nodes] == [1, 2] and var.variant == 1 and var.worker is w3
    assert w3.load == {"cpus": 10_000}

    back = restore(list(env.out.events))
    back.sanity_check()
    bmn, bvar = back.jobs[1].tasks[0], back.jobs[2].tasks[0]
    assert bmn.state == bvar.state == TaskState.RUNNING
    assert [n.id for n in bmn.nodes] == [1, 2]
    assert back.workers[2].mn_task is bmn and back.workers[2].load == {"cpus": 20_000}
    assert bvar.variant == 1 and bvar.worker.id == 3
    assert back.workers[3].load == {"cpus": 10_000}  # 1 cpu, not the first variant's 3
    assert back.jobs[1].workers_used == {1: "node", 2: "node"}

    # The restored server places new work as the live one would: nothing on the reserved
    # node 2; the new 1-cpu tasks go next to the variant task on worker 3 (one to run now,
    # one prefilled).
    out = reactor.Outbox()
    reactor.submit(back, out, array_spec("0-1", req=request(cpus=1)), env.now)
    from hyperqueue.core.scheduler import schedule
    schedule(back, out, env.now)
    assert {wid: len(ts) for wid, ts in out.compute.items()} == {3: 2}
    # Ending the multi-node task frees both of its nodes.
    reactor.task_updates(back, out, back.workers[1],
                         [[reactor.UPDATE_FINISHED, 1, 0, 0, None]], env.now)
    assert back.workers[2].mn_task is None and back.workers[2].load == {"cpus": 0}
    back.sanity_check()


def test_restore_of_records_without_variant_or_nodes_takes_the_defaults():
    # Journals written before variants/multi-node tasks have neither field in `task-started`.
    env = Env(record_events=True)
    env.worker(2)
    env.submit(array_spec("0-1", req=request(cpus=1)))
    env.schedule()
    env.start(env.core.workers[1], sorted(env.core.workers[1].tasks, key=lambda t: t.key))
    events = [e.to_record() for e in env.out.events]
    assert all("variant" not in p and "nodes" not in p for _, k, p in events)
    back = restore(events, server_uid=env.core.server_uid)
    back.sanity_check()
    assert snapshot(back) == snapshot(env.core)
    assert back.workers[1].load == {"cpus": 20_000}
    assert all(t.variant == 0 and t.nodes is None for t in back.jobs[1].tasks.values())


@pytest.mark.parametrize("change, message", [
    ({"variant": 2}, "cannot start"),
    ({"variant": -1}, "invalid resource variant"),
    ({"variant": "1"}, "invalid resource variant"),
    ({"nodes": [3]}, "cannot start"),  # nodes for a task that is not multi-node
])
def test_restore_rejects_a_variant_or_nodes_that_do_not_fit(change, message):
    env = Env(record_events=True)
    _variant_and_multi_node_running(env)
    events = [e.to_record() for e in env.out.events]
    i = next(i for i, (_, k, p) in enumerate(events) if k == "task-started" and p["job"] == 2)
    when, kind, payload = events[i]
    events[i] = (when, kind, {**payload, **change})
    with pytest.raises(RestoreError, match=message):
        restore(events)


@pytest.mark.parametrize("nodes, message", [
    ([2, 1], "invalid nodes"),  # the root must come first
    ([1, 1], "invalid nodes"),
    ([1, 9], "unknown worker 9"),
    ([1, 2, 3], "cannot start"),  # more nodes than the task asked for
    ("1,2", "invalid nodes"),
])
def test_restore_rejects_wrong_nodes_of_a_multi_node_task(nodes, message):
    env = Env(record_events=True)
    _variant_and_multi_node_running(env)
    events = [e.to_record() for e in env.out.events]
    i = next(i for i, (_, k, p) in enumerate(events) if k == "task-started" and p["job"] == 1)
    when, kind, payload = events[i]
    events[i] = (when, kind, {**payload, "nodes": nodes})
    with pytest.raises(RestoreError, match=message):
        restore(events)


def test_sanity_check_catches_a_wrong_variant_or_missing_nodes():
    # What the old restore produced: the first variant's CPUs counted, one node of two held.
    env = Env(record_events=True)
    w1, w2, w3 = _variant_and_multi_node_running(env)
    var = env.core.jobs[2].tasks[0]
    var.variant = 0
    w3.load = {"cpus": 30_000}  # consistent with the wrong variant
    with pytest.raises(AssertionError):
        env.core.sanity_check()
    var.variant = 1
    w3.load = {"cpus": 10_000}
    env.core.sanity_check()

    mn = env.core.jobs[1].tasks[0]
    mn.nodes = [w1]
    w2.mn_task, w2.load = None, {"cpus": 0}
    with pytest.raises(AssertionError):
        env.core.sanity_check()
    # ... while a secondary node that was lost legitimately leaves the task with fewer.
    mn.nodes = [w1, w2]
    w2.mn_task, w2.load = mn, {"cpus": 20_000}
    env.lose(w2, WorkerState.CONNECTION_LOST)
    assert mn.nodes == [w1] and mn.state == TaskState.RUNNING
    env.core.sanity_check()
    back = restore(list(env.out.events))
    back.sanity_check()
    assert [n.id for n in back.jobs[1].tasks[0].nodes] == [1]


def test_a_reconnecting_worker_reports_the_variant_the_journal_missed():
    # The server was killed before the `task-started` of the variant task reached the disk;
    # the worker that still runs it reconnects and says which variant it runs.
    env = Env(record_events=True)
    _, _, w3 = _variant_and_multi_node_running(env)
    var = env.core.jobs[2].tasks[0]
    events = [e for e in env.out.events
              if not (e.kind == "task-started" and e.job == 2)]
    back = restore(events, server_uid=env.core.server_uid)
    assert back.jobs[2].tasks.get(0) is None or back.jobs[2].tasks[0].worker is None
    back.awaiting[3] = float("inf")  # a `reconnect` worker of the previous run
    out = reactor.Outbox()
    worker, rejected = reactor.register_worker(
        back, out, w3.config, [env.core.server_uid, 3],
        [[2, 0, var.instance, var.variant]], [], env.now)
    assert rejected == [] and worker.id == 3
    task = back.jobs[2].tasks[0]
    assert task.state == TaskState.RUNNING and task.worker is worker and task.variant == 1
    assert worker.load == {"cpus": 10_000}  # its 1 cpu, not the first variant's 3
    back.sanity_check()


def test_a_finished_array_restores_from_range_records_without_task_records():
    """Zero-spawn style: every task starts and finishes in one report, in id order; the journal
    holds one `task-progress` record per report, and restore applies them as ranges."""
    env = Env(record_events=True)
    w = env.worker(4)
    job = env.submit(array_spec("0-999"))
    env.submit(array_spec("0-9", name="second"))
    while not job.is_done:
        env.schedule()
        env.tick(0.01)
        env.finish(w, sorted((t for t in w.tasks if t.job is job), key=lambda t: t.id))
    env.schedule()
    other = sorted(w.tasks, key=lambda t: t.id)
    env.start(w, other[:1])  # one task of the second job still runs
    records = ev.journal_records(env.out.events)
    progress = [r for r in records if r[1] == "task-progress"]
    assert progress and len(records) < len(env.out.events) / 10
    assert [one for r in records for one in ev.expand_record(r)] == [
        e.to_record() for e in env.out.events]
    back = restore(records, server_uid=env.core.server_uid)
    back.sanity_check()
    assert back.jobs[1].tasks == {} and len(back.jobs[1].done) == 1000
    assert back.jobs[1].done.n_runs == len([r for r in progress if r[2]["job"] == 1])
    assert snapshot(back) == snapshot(env.core)


def test_batched_records_after_a_reconnect_with_results_restore():
    """A worker of the previous run reconnects with results: its `worker-reconnected` record
    applies them on replay, and the batched starts/finishes recorded after it are the same
    tasks again (nothing to do), as with per-task records."""
    env = Env(record_events=True)
    core = env.core
    w = env.worker(4)
    job = env.submit(array_spec("0-5"))
    env.schedule()
    tasks = sorted(w.tasks, key=lambda t: t.id)
    env.start(w, tasks[:2])
    env.tick()
    core.awaiting[w.id] = env.now + 10
    results = [[reactor.UPDATE_FINISHED, job.id, t.id, t.instance, None] for t in tasks]
    reactor.register_worker(core, env.out, w.config, [core.server_uid, w.id], [], results,
                            env.now)
    env.tick()
    env.schedule()
    rest = sorted(w.tasks, key=lambda t: t.id)
    env.finish(w, rest)
    assert job.is_done
    records = [cbor2.loads(cbor2.dumps(r)) for r in ev.journal_records(env.out.events)]
    assert any(r[1] == "task-progress" for r in records)
    back = restore(records, server_uid=core.server_uid)
    back.sanity_check()
    assert snapshot(back) == snapshot(core)
