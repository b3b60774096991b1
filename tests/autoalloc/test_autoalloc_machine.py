"""Hypothesis state machine: under random events the autoallocator never exceeds backlog or
max worker count, never submits for a paused or backing-off queue, and never for tasks that no
queue can run."""

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from hyperqueue.autoalloc import (
    ACTIVE, QUEUED, RUNNING, AutoallocError, QueueParams, Registry, WaitingTasks, decide,
)
from hyperqueue.autoalloc.backoff import BackoffPolicy
from hyperqueue.batch import ExternalStatus
from hyperqueue.core.resources import UNIT, ResourceRequest, ResourceRequestEntry, parse_resource_def

SHAPES = [
    ResourceRequest([ResourceRequestEntry("cpus", UNIT)]),
    ResourceRequest([ResourceRequestEntry("cpus", 4 * UNIT)]),
    ResourceRequest([ResourceRequestEntry("cpus", UNIT), ResourceRequestEntry("gpus", UNIT)]),
    ResourceRequest([], n_nodes=2),
    ResourceRequest([ResourceRequestEntry("cpus", UNIT)], min_time=1800),
]
#: longer than every queue's time limit (at most 2h): never servable
TOO_LONG = ResourceRequest([ResourceRequestEntry("cpus", UNIT)], min_time=3 * 3600)

queue_params = st.builds(
    QueueParams, manager=st.sampled_from(["slurm", "pbs"]),
    time_limit=st.sampled_from([600.0, 3600.0, 7200.0]),
    backlog=st.integers(1, 3), max_workers_per_alloc=st.integers(1, 3),
    max_worker_count=st.none() | st.integers(1, 6),
    cpus=st.sampled_from([None, "2", "4"]),
    resources=st.sampled_from([(), ("gpus=2",)]),
    min_utilization=st.sampled_from([0.0, 0.0, 0.5]))


@settings(max_examples=60, stateful_step_count=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
class AutoallocMachine(RuleBasedStateMachine):
    @initialize(ps=st.lists(queue_params, min_size=1, max_size=3))
    def setup(self, ps):
        self.reg = Registry(BackoffPolicy(delays=(0, 5, 10, 30, 60), max_submission_failures=4,
                                          max_allocation_failures=3))
        for p in ps:
            self.reg.add_queue(p)
        self.now = 0.0
        self.demand = {i: 0 for i in range(len(SHAPES))}
        self.too_long = 0
        self.seq = 0
        self.wid = 0

    def waiting(self):
        out = [WaitingTasks.of(SHAPES[i], n) for i, n in self.demand.items() if n]
        if self.too_long:
            out.append(WaitingTasks.of(TOO_LONG, self.too_long))
        return out

    def allocs(self, states=(QUEUED, RUNNING)):
        return [a for q in self.reg.queues.values() for a in q.allocations.values()
                if a.state in states]

    @rule(shape=st.integers(0, len(SHAPES) - 1), n=st.integers(1, 30))
    def tasks_arrive(self, shape, n):
        self.demand[shape] += n
        self._tick([])  # the shell decides right away when work arrives

    @rule(n=st.integers(1, 20))
    def unservable_tasks_arrive(self, n):
        self.too_long += n

    @rule(shape=st.integers(0, len(SHAPES) - 1), n=st.integers(1, 30))
    def tasks_finish(self, shape, n):
        self.demand[shape] = max(0, self.demand[shape] - n)

    @rule(dt=st.sampled_from([0.5, 5.0, 30.0, 120.0]))
    def time_passes(self, dt):
        self.now += dt
        self._tick([])

    @rule(fail_mask=st.lists(st.booleans(), max_size=8))
    def tick(self, fail_mask):
        self._tick(fail_mask)

    def _tick(self, fail_mask):
        decision = decide(self.reg, self.waiting(), self.now)
        subs = decision.submissions()
        per_queue = {}
        for qid, n in subs:
            q = self.reg.queue(qid)
            assert q.state == ACTIVE, "submission while paused"
            assert self.reg.can_submit(qid, self.now), "submission during backoff"
            assert 1 <= n <= q.params.max_workers_per_alloc
            per_queue.setdefault(qid, []).append(n)
        for qid, ns in per_queue.items():
            q = self.reg.queue(qid)
            d = decision.queues[qid]
            assert d.for_new > 0 and d.servable > 0, "submission without servable demand"
            assert q.queued_count + len(ns) <= q.params.backlog
            if q.params.max_worker_count is not None:
                assert q.active_workers + sum(ns) <= q.params.max_worker_count
        if not any(self.demand.values()):
            assert subs == [], "submission for tasks no queue can run"
        for i, (qid, n) in enumerate(subs):
            if i < len(fail_mask) and fail_mask[i]:
                self.reg.submission_failed(qid, self.now)
                break  # the shell stops submitting to that queue this round
            if not self.reg.can_submit(qid, self.now):
                continue
            self.seq += 1
            self.reg.allocation_submitted(qid, str(self.seq), n, f"/d/{self.seq}", self.now)

    @rule(data=st.data())
    def allocation_starts(self, data):
        queued = self.allocs((QUEUED,))
        if queued:
            a = data.draw(st.sampled_from(queued))
            self.reg.manager_status(a.id, ExternalStatus(RUNNING, "R"), self.now)

    @rule(data=st.data(), with_resources=st.booleans())
    def worker_connects(self, data, with_resources):
        active = [a for a in self.allocs() if a.coming_workers]
        if active:
            a = data.draw(st.sampled_from(active))
            self.wid += 1
            res = (parse_resource_def("cpus", "4"),) if with_resources else None
            self.reg.worker_connected(a.id, self.wid, self.now, resources=res)

    @rule(data=st.data(), crashed=st.booleans())
    def worker_lost(self, data, crashed):
        with_workers = [a for a in self.allocs() if a.connected]
        if with_workers:
            a = data.draw(st.sampled_from(with_workers))
            w = data.draw(st.sampled_from(sorted(a.connected)))
            self.reg.worker_lost(a.id, w, self.now, crashed)

    @rule(data=st.data(), failed=st.booleans())
    def allocation_ends(self, data, failed):
        active = self.allocs()
        if active:
            a = data.draw(st.sampled_from(active))
            st_ = ExternalStatus("FAILED" if failed else "FINISHED", "F")
            self.reg.manager_status(a.id, st_, self.now)

    @rule(data=st.data())
    def status_error(self, data):
        active = self.allocs()
        if active:
            self.reg.status_error(data.draw(st.sampled_from(active)).id, self.now)

    @rule(data=st.data(), pause=st.booleans())
    def pause_or_resume(self, data, pause):
        if self.reg.queues:
            qid = data.draw(st.sampled_from(sorted(self.reg.queues)))
            (self.reg.pause if pause else self.reg.resume)(qid)

    @rule(data=st.data(), force=st.booleans())
    def remove_queue(self, data, force):
        if self.reg.queues:
            qid = data.draw(st.sampled_from(sorted(self.reg.queues)))
            try:
                self.reg.remove_queue(qid, force)
            except AutoallocError:
                assert not force

    @rule(p=queue_params)
    def add_queue(self, p):
        before = self.reg.max_queue_id
        assert self.reg.add_queue(p)[0].queue_id == before + 1

    @invariant()
    def limits_hold(self):
        if not hasattr(self, "reg"):
            return
        for q in self.reg.queues.values():
            assert q.queued_count <= q.params.backlog
            if q.params.max_worker_count is not None:
                assert q.active_workers <= q.params.max_worker_count
            for a in q.allocations.values():
                assert len(a.connected) + a.lost <= a.worker_count


TestAutoallocMachine = AutoallocMachine.TestCase
TestAutoallocMachine = pytest.mark.timeout(100)(TestAutoallocMachine)
