"""How many allocations each queue submits now, and why (pure: `now` is an argument).

Input: a summary of the waiting tasks that no connected worker can take (`WaitingTasks`, one
item per resource-request shape, in the core's priority order) and the `Registry`. Output: a
`Decision` with, per queue, the allocations to submit (worker counts) and the reasons behind it,
for `hq alloc info` and `hq task explain`.

All queues are decided at once, so two queues never answer the same demand:

1. Each shape is checked against each queue's worker shape (`verdict`): its time request must fit
   the worker time limit minus a start-up margin (`time_margin`), a multi-node task must fit one
   allocation (`n_nodes <= max workers per alloc`), a single-node task's resources must fit one
   worker (known resources of a connected worker, else those declared by `--cpus`/`--resource`:
   a resource that is not declared may still be detected, so it only disqualifies when the
   resources are known completely). A shape no queue can serve is reported and never causes a
   submission (no runaway sbatch loop).
2. Workers that are coming anyway (queued allocations, running ones whose workers have not all
   connected) absorb demand first, in queue id order.
3. The rest goes to the servable queues in id order (queues whose workers surely fit before
   those that fit only if their workers detect an undeclared resource), each up to what it may submit now:
   ACTIVE, not backing off, `backlog - queued` new allocations, `max worker count - active`
   workers, and in probing mode (nothing known about its workers) one allocation at a time.
   Multi-node tasks first (one allocation of `n_nodes` workers each), then single-node tasks
   packed into allocations of at most `max workers per alloc` workers; a queue with
   `--min-utilization` only gets workers that the tasks can fill that much.

Workers are estimated as "how many could the waiting tasks use at once" (tasks per worker from
the resources); sequential reuse of a worker is not predicted (upstream does not either).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction

from ..common.durations import format_duration
from ..core.resources import ALL, CPUS, ResourceRequest, format_amount
from .state import ACTIVE, Queue, Registry

__all__ = ["WaitingTasks", "WorkerShape", "Verdict", "Unservable", "QueueDecision", "Decision",
           "time_margin", "worker_shape", "verdict", "decide", "explain", "TIME", "RESOURCES",
           "NODES"]

TIME, RESOURCES, NODES = "time-limit", "resources", "nodes"


@dataclass(frozen=True, slots=True)
class WaitingTasks:
    """`count` waiting tasks with the same resource variants (the core fills a list of these).

    `variants[i].min_time` is the time request, `variants[i].n_nodes` > 0 marks a multi-node task
    (which has exactly one variant).
    """

    variants: tuple[ResourceRequest, ...]
    count: int

    def __post_init__(self):
        if not self.variants or not all(isinstance(v, ResourceRequest) for v in self.variants):
            raise ValueError("WaitingTasks needs at least one ResourceRequest")
        if type(self.count) is not int or self.count < 0:
            raise ValueError("WaitingTasks.count must be a non-negative integer")

    @classmethod
    def of(cls, request: ResourceRequest, count: int) -> "WaitingTasks":
        return cls((request,), count)

    @property
    def n_nodes(self) -> int:
        return self.variants[0].n_nodes

    def describe(self) -> str:
        return " | ".join(v.describe().replace("\n", ", ") for v in self.variants)


@dataclass(frozen=True, slots=True)
class WorkerShape:
    """What one worker of a queue will have. `capacity` None = nothing known (probing)."""

    capacity: dict[str, int] | None
    complete: bool
    time_limit: float
    min_utilization: float
    max_nodes: int
    time_limit_name: str = "the queue's time limit"  # for reasons: which limit it is


def worker_shape(q: Queue) -> WorkerShape:
    p = q.params
    if q.known_resources is not None:
        cap, complete = {r.name: r.amount for r in q.known_resources}, True
    else:
        declared = p.declared_resources()
        cap = {n: r.amount for n, r in declared.items()} or None
        complete = p.resources_complete
    return WorkerShape(cap, complete, p.effective_worker_time_limit, float(p.min_utilization),
                       p.max_workers_per_alloc,
                       "the queue's time limit" if p.worker_time_limit is None
                       else "the queue's --worker-time-limit")


def time_margin(limit: float) -> float:
    """Room for the worker to start: min(60 s, 10 % of the limit)."""
    return min(60.0, 0.1 * limit)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one worker shape can run one request; `per_worker` tasks fit on one worker."""

    ok: bool
    kind: str | None = None  # TIME / RESOURCES / NODES when not ok
    text: str = ""
    per_worker: int = 1
    variant: int = 0
    certain: bool = True  # False: fits only if workers detect a resource not declared


def _one(shape: WorkerShape, r: ResourceRequest, idx: int) -> Verdict:
    if r.min_time:
        usable = shape.time_limit - time_margin(shape.time_limit)
        if r.min_time > usable:
            return Verdict(False, TIME, f"time request {format_duration(r.min_time)} is longer than "
                           f"{shape.time_limit_name} {format_duration(shape.time_limit)} allows "
                           f"(minus {format_duration(time_margin(shape.time_limit))} for the "
                           "worker to start)")
    if r.n_nodes:
        if r.n_nodes > shape.max_nodes:
            return Verdict(False, NODES, f"needs {r.n_nodes} nodes, allocations of the queue "
                           f"have at most {shape.max_nodes} workers")
        return Verdict(True, variant=idx)
    per_worker = None
    certain = shape.capacity is not None
    if shape.capacity is not None:
        for e in r.entries:
            cap = shape.capacity.get(e.name)
            if cap is None:
                if shape.complete:
                    return Verdict(False, RESOURCES, f"needs resource '{e.name}', which workers "
                                   "of the queue do not have")
                certain = False
                continue
            if e.amount == ALL:
                n = 1
            elif e.amount > cap:
                return Verdict(False, RESOURCES, f"needs {e.name} {format_amount(e.amount)}, a "
                               f"worker of the queue has {format_amount(cap)}")
            else:
                n = cap // e.amount
            per_worker = n if per_worker is None else min(per_worker, n)
    return Verdict(True, per_worker=max(1, per_worker or 1), variant=idx, certain=certain)


def verdict(shape: WorkerShape, tasks: WaitingTasks) -> Verdict:
    """The first variant the shape can run, else the reason of the first variant."""
    first = None
    for i, r in enumerate(tasks.variants):
        v = _one(shape, r, i)
        if v.ok:
            return v
        first = first or v
    return first


@dataclass(frozen=True, slots=True)
class Unservable:
    kind: str
    count: int
    text: str


@dataclass(slots=True)
class QueueDecision:
    """The decision for one queue and its reasons (`hq alloc info`).

    Attributes:
        submit: worker counts of the allocations to submit now.
        servable: waiting tasks a worker of this queue could run.
        covered_by_coming: of them, tasks that workers already queued/starting in this queue take.
        for_new: tasks the new allocations are for.
        by_other: other queue id -> tasks of `servable` that that queue covers.
        uncovered: servable tasks nobody covers now (see `blocked`).
        unservable: tasks this queue could not run, grouped by reason.
        blocked: why the queue submits less than its demand (paused, backoff, backlog, ...).
        next_attempt_at: end of the backoff delay, if backing off.
    """

    queue_id: int
    submit: list[int] = field(default_factory=list)
    servable: int = 0
    covered_by_coming: int = 0
    for_new: int = 0
    by_other: dict[int, int] = field(default_factory=dict)
    uncovered: int = 0
    unservable: list[Unservable] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    next_attempt_at: float | None = None

    def to_json(self) -> dict:
        return {"submit": list(self.submit), "servable": self.servable,
                "covered_by_queued": self.covered_by_coming, "for_new_allocations": self.for_new,
                "covered_by_other_queues": {str(k): v for k, v in sorted(self.by_other.items())},
                "uncovered": self.uncovered,
                "unservable": [{"reason": u.kind, "count": u.count, "detail": u.text}
                               for u in self.unservable],
                "blocked": list(self.blocked), "next_attempt_at": self.next_attempt_at}

    def lines(self) -> list[str]:
        """Human text for `hq alloc info`."""
        out = [f"Waiting tasks it could run: {self.servable}"]
        if self.covered_by_coming:
            out.append(f"  covered by its queued allocations: {self.covered_by_coming}")
        if self.for_new:
            out.append(f"  covered by new allocations: {self.for_new} "
                       f"(submitting {len(self.submit)}: workers {self.submit})")
        for qid, n in sorted(self.by_other.items()):
            out.append(f"  covered by queue {qid}: {n}")
        if self.uncovered:
            out.append(f"  not covered now: {self.uncovered}")
        for u in self.unservable:
            out.append(f"Waiting tasks it cannot run: {u.count} ({u.text})")
        for b in self.blocked:
            out.append(f"Not submitting: {b}")
        return out


@dataclass(slots=True)
class Decision:
    queues: dict[int, QueueDecision]
    unservable_tasks: int = 0  # waiting tasks no queue could run

    def submissions(self) -> list[tuple[int, int]]:
        """(queue id, worker count) of every allocation to submit now, in queue id order."""
        return [(qid, n) for qid, d in sorted(self.queues.items()) for n in d.submit]


@dataclass(slots=True)
class _Plan:
    q: Queue
    shape: WorkerShape
    may_submit: bool
    slots: int
    workers: int | None  # None = unlimited
    coming_single: Fraction
    # (workers it will have, workers still to connect) of each allocation whose workers have
    # not all connected yet (queued, or running and starting), not yet used by a multi-node task
    coming_allocs: list[tuple[int, int]]
    mn: list[int] = field(default_factory=list)
    single: Fraction = Fraction(0)
    cpu_units: int = 0

    def single_room(self) -> Fraction:
        mwpa = self.q.params.max_workers_per_alloc
        room = (self.slots - len(self.mn)) * mwpa
        if self.workers is not None:
            room = min(room, self.workers - sum(self.mn))
        return max(Fraction(0), room - self.single)


def _plan(q: Queue, registry: Registry, now: float, d: QueueDecision) -> _Plan:
    p = q.params
    shape = worker_shape(q)
    may_submit = True
    if q.state != ACTIVE:
        d.blocked.append(f"the queue is paused ({q.pause_reason})")
        may_submit = False
    elif q.backoff.blocked(registry.policy, now):
        d.next_attempt_at = q.backoff.next_attempt_at(registry.policy)
        d.blocked.append(f"backing off after {q.backoff.failures} failure(s) until "
                         f"{_utc(d.next_attempt_at)} (in "
                         f"{format_duration(math.ceil(d.next_attempt_at - now))})")
        may_submit = False
    slots = max(0, p.backlog - q.queued_count)
    if shape.capacity is None and not shape.complete:
        slots = 0 if q.active_allocations() else min(slots, 1)
    workers = None
    if p.max_worker_count is not None:
        workers = max(0, p.max_worker_count - q.active_workers)
    coming = [a for a in q.allocations.values() if a.is_active]
    return _Plan(q, shape, may_submit, slots if may_submit else 0,
                 workers if may_submit else 0,
                 Fraction(sum(a.coming_workers for a in coming)),
                 sorted(((a.worker_count - a.lost, a.coming_workers) for a in coming
                         if a.coming_workers), reverse=True))


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cpu_units(shape: WorkerShape, tasks: WaitingTasks, v: Verdict) -> int:
    e = tasks.variants[v.variant].get(CPUS)
    if e is None or shape.capacity is None:
        return 0
    return shape.capacity.get(CPUS, 0) if e.amount == ALL else e.amount


def decide(registry: Registry, demand, now: float) -> Decision:
    """Decides the submissions of all queues at once (see the module docstring)."""
    queues = [registry.queues[k] for k in sorted(registry.queues)]
    decisions = {q.id: QueueDecision(q.id) for q in queues}
    plans = [_plan(q, registry, now, decisions[q.id]) for q in queues]
    result = Decision(decisions)
    items = [t for t in demand if t.count and t.n_nodes] + [t for t in demand if t.count
                                                            and not t.n_nodes]
    for tasks in items:
        verdicts = [(pl, verdict(pl.shape, tasks)) for pl in plans]
        # queues whose workers surely fit come first, then those that fit only if their
        # workers detect a resource the queue did not declare
        cands = [(pl, v) for pl, v in verdicts if v.ok and v.certain] + [
            (pl, v) for pl, v in verdicts if v.ok and not v.certain]
        for pl, v in verdicts:
            if not v.ok:
                decisions[pl.q.id].unservable.append(Unservable(v.kind, tasks.count, v.text))
        if not cands:
            result.unservable_tasks += tasks.count
            continue
        remaining = tasks.count
        taken: dict[int, int] = {}
        for pl, v in cands:
            decisions[pl.q.id].servable += tasks.count
        # 2. workers that are coming anyway
        for pl, v in cands:
            if not remaining:
                break
            if tasks.n_nodes:
                k = 0
                while remaining and pl.coming_allocs and \
                        pl.coming_allocs[0][0] >= tasks.n_nodes:
                    pl.coming_single -= pl.coming_allocs.pop(0)[1]
                    k += 1
                    remaining -= 1
            else:
                k = min(remaining, math.floor(pl.coming_single * v.per_worker))
                pl.coming_single -= Fraction(k, v.per_worker)
                remaining -= k
            if k:
                decisions[pl.q.id].covered_by_coming += k
                taken[pl.q.id] = taken.get(pl.q.id, 0) + k
        # 3. new allocations
        for pl, v in cands:
            if not remaining:
                break
            k = 0
            if tasks.n_nodes:
                while remaining and len(pl.mn) < pl.slots and (
                        pl.workers is None or sum(pl.mn) + math.ceil(pl.single) + tasks.n_nodes
                        <= pl.workers):
                    pl.mn.append(tasks.n_nodes)
                    k += 1
                    remaining -= 1
            else:
                k = min(remaining, math.floor(pl.single_room() * v.per_worker))
                pl.single += Fraction(k, v.per_worker)
                pl.cpu_units += k * _cpu_units(pl.shape, tasks, v)
                remaining -= k
            if k:
                decisions[pl.q.id].for_new += k
                taken[pl.q.id] = taken.get(pl.q.id, 0) + k
        for pl, v in cands:
            d = decisions[pl.q.id]
            for other, n in taken.items():
                if other != pl.q.id:
                    d.by_other[other] = d.by_other.get(other, 0) + n
            d.uncovered += remaining
    for pl in plans:
        d = decisions[pl.q.id]
        single = math.ceil(pl.single)
        mu = pl.shape.min_utilization
        cpus = (pl.shape.capacity or {}).get(CPUS)
        if single and mu > 0 and cpus:
            fillable = math.floor(pl.cpu_units / (mu * cpus) + 1e-9)
            if fillable < single:
                d.blocked.append(f"the waiting tasks would fill {fillable} worker(s) to "
                                 f"--min-utilization {mu:g}, not {single}")
                single = fillable
        mwpa = pl.q.params.max_workers_per_alloc
        d.submit = list(pl.mn)
        while single > 0:
            d.submit.append(min(mwpa, single))
            single -= mwpa
        if d.uncovered and pl.may_submit:
            if len(d.submit) >= pl.slots:
                if pl.shape.capacity is None and pl.q.active_allocations():
                    d.blocked.append("probing: waiting for the first worker of the queue to "
                                     "learn its resources")
                else:
                    d.blocked.append(f"the backlog is full ({pl.q.queued_count} queued + "
                                     f"{len(d.submit)} new allocation(s), backlog "
                                     f"{pl.q.params.backlog})")
            elif pl.workers is not None:
                d.blocked.append(f"max worker count {pl.q.params.max_worker_count} reached")
    return result


def explain(registry: Registry, tasks: WaitingTasks) -> list[tuple[int, bool, str]]:
    """For `hq task explain`: (queue id, can run it, why not) for every queue."""
    out = []
    for qid in sorted(registry.queues):
        v = verdict(worker_shape(registry.queues[qid]), tasks)
        out.append((qid, v.ok, "" if v.ok else v.text))
    return out
