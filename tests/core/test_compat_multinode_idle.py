"""F45/F46/F77 in the core: the nodes of a multi-node task are never idle while it runs, the
secondary ones are told when they are reserved and released, and every node's idle time starts
again when the task ends. And F45 with the journal: every task of a lost worker, also one only
assigned there, gets a new instance id, which a restore reproduces."""

from __future__ import annotations

from core_testkit import Env, array_spec, request
from hyperqueue.core import reactor
from hyperqueue.core.model import TaskState, WorkerState
from hyperqueue.core.resources import ResourceRequest
from hyperqueue.core.restore import restore


def three_node_task(env, n_nodes=3):
    ws = [env.worker(1) for _ in range(n_nodes)]
    job = env.submit(array_spec("0", req=ResourceRequest([], n_nodes=n_nodes), name="mn"))
    env.tick()
    env.schedule()
    (task,) = env.out.take_worker_msgs(ws[0], 1)
    return ws, job, task


def test_secondary_nodes_are_reserved_and_not_idle_while_the_task_runs():
    env = Env()
    ws, _job, task = three_node_task(env)
    assert env.out.take_reservations() == {ws[1].id: True, ws[2].id: True}
    assert all(w.idle_since is None and w.mn_task is task for w in ws)
    env.start(ws[0], [task])
    env.tick(60)  # far beyond any idle timeout: still not idle
    assert all(w.idle_since is None for w in ws)
    env.out.emptiness_check()
    ended = env.tick()
    env.finish(ws[0], [task])
    assert env.out.take_reservations() == {ws[1].id: False, ws[2].id: False}
    assert [w.idle_since for w in ws] == [ended] * 3
    assert all(w.mn_task is None for w in ws)
    env.check()


def test_canceling_a_running_multi_node_task_releases_its_nodes():
    env = Env()
    ws, job, task = three_node_task(env)
    env.out.take_reservations()
    env.start(ws[0], [task])
    ended = env.tick()
    env.cancel(job)
    assert env.out.take_cancels(ws[0], 1) == [(job.id, 0, 0)]
    assert env.out.take_reservations() == {ws[1].id: False, ws[2].id: False}
    assert [w.idle_since for w in ws] == [ended] * 3
    env.check()


def test_losing_the_root_releases_the_secondaries_and_restarts_the_task():
    env = Env()
    ws, _job, task = three_node_task(env)
    env.out.take_reservations()
    env.start(ws[0], [task])
    lost = env.tick()
    env.lose(ws[0], WorkerState.CONNECTION_LOST)
    assert task.state == TaskState.WAITING and task.instance == 1 and task.crash_count == 1
    # (the two left cannot run a 3-node task: they are free and idle from now)
    assert env.out.take_reservations() == {ws[1].id: False, ws[2].id: False}
    assert [w.idle_since for w in ws[1:]] == [lost] * 2
    env.check()


def test_losing_a_secondary_node_leaves_the_task_running():
    env = Env()
    ws, _job, task = three_node_task(env)
    env.out.take_reservations()
    env.start(ws[0], [task])
    env.tick()
    env.lose(ws[2], WorkerState.HEARTBEAT_LOST)
    assert task.state == TaskState.RUNNING and task.nodes == ws[:2]
    env.out.emptiness_check()  # nothing to the lost node, the others stay reserved
    assert ws[1].mn_task is task and ws[1].idle_since is None
    env.finish(ws[0], [task])
    assert env.out.take_reservations() == {ws[1].id: False}
    env.check()


def test_a_secondary_node_reconnecting_after_a_restart_is_reserved_again():
    env = Env(record_events=True)
    ws, _job, task = three_node_task(env, 2)
    env.start(ws[0], [task])
    back = restore(list(env.out.events))
    for w in back.workers.values():
        back.awaiting[w.id] = env.now + 10
    out = reactor.Outbox()
    reactor.register_worker(back, out, ws[1].config, [back.server_uid, ws[1].id], [], [],
                            env.now)
    assert out.reserve == {ws[1].id: True}
    out.clear()
    reactor.register_worker(back, out, ws[0].config, [back.server_uid, ws[0].id],
                            [[1, 0, 0]], [], env.now)
    assert out.reserve == {}  # the root runs the task itself


def test_tasks_only_assigned_to_a_lost_worker_get_a_new_instance_which_restore_keeps():
    env = Env(record_events=True)
    env.out.events.append((env.now, "server-start", {"server_uid": env.core.server_uid}))
    w = env.worker(1)
    job = env.submit(array_spec("0-2", req=request(cpus=1)))
    env.schedule()
    t0, t1, *_ = env.out.take_worker_msgs(w)
    env.start(w, [t0])
    env.tick()
    env.lose(w, WorkerState.CONNECTION_LOST)
    # t0 was running, t1 only prefilled: both come back as instance 1 (the lost worker may
    # still start t1 as instance 0; the next run must not share its %{INSTANCE_ID})
    assert (t0.state, t0.instance, t0.crash_count) == (TaskState.WAITING, 1, 1)
    assert (t1.state, t1.instance, t1.crash_count) == (TaskState.WAITING, 1, 0)
    (lost,) = [e for e in env.out.events if getattr(e, "kind", "") == "worker-lost"]
    assert lost.to_record()[2]["requeued"] == [[job.id, 1, 1]]
    back = restore(list(env.out.events))
    back.sanity_check()
    bjob = back.jobs[job.id]
    assert bjob.tasks[1].instance == 1 and bjob.tasks[1].state == TaskState.WAITING
    assert bjob.tasks[0].instance == 1 and bjob.tasks[0].crash_count == 1
    assert back.task_state(bjob, 2) == TaskState.WAITING
    # a new worker gets them with the new ids, live and restored alike
    w2 = env.worker(3)
    env.schedule()
    live = sorted((t.id, t.instance) for t in env.out.take_worker_msgs(w2))
    out = reactor.Outbox()
    w2b = reactor.add_worker(back, out, w2.config, env.now)
    from hyperqueue.core.scheduler import schedule
    schedule(back, out, env.now)
    assert sorted((t.id, t.instance) for t in out.compute[w2b.id]) == live == [
        (0, 1), (1, 1), (2, 0)]
