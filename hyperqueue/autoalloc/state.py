"""Allocation queues and their allocations: states, the one transition table, journal events.

Pure (no I/O, no clock): every method that depends on time takes `now`. Every change of
journaled state is an event; `Registry.apply(event)` is the only code that changes it, both when
the server acts (the command methods build events, apply them and return them for the journal)
and on restore (replay). An event that does not fit the current state raises `AutoallocError`
and changes nothing.

Queue states: ACTIVE <-> PAUSED. Allocation states (`ALLOC_TRANSITIONS`):

    QUEUED --start--> RUNNING --finish--> FINISHED
       |                  \\---fail----> FAILED
       +--finish/fail-->  FINISHED / FAILED  (ended before it ran: scancel'ed, rejected, vanished)

Tracking (hq-features.md §7): RUNNING when the first worker of the allocation connects or the
manager says it runs; FINISHED when all its workers disconnected, FAILED if every one of them
was lost (crash, heartbeat) within `CRASH_WINDOW` of the start; the manager's status (FINISHED /
FAILED) ends it too; a job the manager no longer knows is "assumed finished" after
`MAX_STATUS_ERRORS_QUEUED` / `MAX_STATUS_ERRORS_RUNNING` consecutive status errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..batch.parse import ExternalStatus
from ..core.limits import MAX_ID, MAX_NAME_LEN, MAX_STRING_LEN
from ..core.resources import ResourceDef
from .backoff import UPSTREAM_POLICY, Backoff, BackoffPolicy
from .params import QueueParams

__all__ = [
    "ACTIVE", "PAUSED", "QUEUED", "RUNNING", "FINISHED", "FAILED", "ALLOC_TRANSITIONS",
    "QUEUE_TRANSITIONS", "AutoallocError", "IllegalTransition", "Allocation", "Queue",
    "Registry", "CRASH_WINDOW", "MAX_STATUS_ERRORS_QUEUED", "MAX_STATUS_ERRORS_RUNNING",
    "USER_PAUSE", "QueueCreated", "QueueRemoved", "QueuePaused", "QueueResumed",
    "QueueWorkerResources", "AllocationQueued", "AllocationStarted", "AllocationFinished",
    "AllocationFailed", "EVENT_TYPES", "event_to_wire", "event_from_wire",
]

ACTIVE, PAUSED = "ACTIVE", "PAUSED"
QUEUED, RUNNING, FINISHED, FAILED = "QUEUED", "RUNNING", "FINISHED", "FAILED"
USER_PAUSE = "paused by the user"

CRASH_WINDOW = 60.0
MAX_STATUS_ERRORS_QUEUED = 10
MAX_STATUS_ERRORS_RUNNING = 20

#: (state, action) -> new state. Anything else is illegal.
ALLOC_TRANSITIONS: dict[tuple[str, str], str] = {
    (QUEUED, "start"): RUNNING,
    (QUEUED, "finish"): FINISHED,
    (QUEUED, "fail"): FAILED,
    (RUNNING, "finish"): FINISHED,
    (RUNNING, "fail"): FAILED,
}
QUEUE_TRANSITIONS: dict[tuple[str, str], str] = {
    (ACTIVE, "pause"): PAUSED,
    (PAUSED, "resume"): ACTIVE,
}


class AutoallocError(ValueError):
    """A request or event that does not fit the current state (unknown queue, bad move...)."""


class IllegalTransition(AutoallocError):
    pass


def _move(table, state: str, action: str, what: str) -> str:
    try:
        return table[(state, action)]
    except KeyError:
        raise IllegalTransition(f"{what} cannot {action} in state {state}") from None


# ------------------------------------------------------------------------------------ events


def _check_id(v, what="queue id"):
    if type(v) is not int or not 1 <= v <= MAX_ID:
        raise ValueError(f"Invalid {what}")


def _check_alloc_id(v):
    if not isinstance(v, str) or not v or len(v) > 256 or any(c.isspace() for c in v):
        raise ValueError("Invalid allocation id")


def _check_time(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e12:
        raise ValueError("Invalid time")


@dataclass(frozen=True, slots=True)
class QueueCreated:
    queue_id: int
    params: QueueParams

    def check(self):
        _check_id(self.queue_id)
        if not isinstance(self.params, QueueParams):
            raise ValueError("Invalid queue parameters")


@dataclass(frozen=True, slots=True)
class QueueRemoved:
    queue_id: int

    def check(self):
        _check_id(self.queue_id)


@dataclass(frozen=True, slots=True)
class QueuePaused:
    queue_id: int
    reason: str = USER_PAUSE

    def check(self):
        _check_id(self.queue_id)
        if not isinstance(self.reason, str) or len(self.reason) > MAX_STRING_LEN:
            raise ValueError("Invalid pause reason")


@dataclass(frozen=True, slots=True)
class QueueResumed:
    queue_id: int

    def check(self):
        _check_id(self.queue_id)


@dataclass(frozen=True, slots=True)
class QueueWorkerResources:
    """Resources learnt from the first connected worker of the queue (`known_worker_resources`)."""

    queue_id: int
    resources: tuple[ResourceDef, ...]

    def check(self):
        _check_id(self.queue_id)
        if not isinstance(self.resources, tuple) or not all(
                isinstance(r, ResourceDef) for r in self.resources) or len(self.resources) > 1024:
            raise ValueError("Invalid worker resources")


@dataclass(frozen=True, slots=True)
class AllocationQueued:
    queue_id: int
    allocation_id: str
    worker_count: int
    workdir: str
    time: float

    def check(self):
        _check_id(self.queue_id)
        _check_alloc_id(self.allocation_id)
        _check_id(self.worker_count, "worker count")
        if not isinstance(self.workdir, str) or len(self.workdir) > MAX_NAME_LEN:
            raise ValueError("Invalid allocation directory")
        _check_time(self.time)


@dataclass(frozen=True, slots=True)
class AllocationStarted:
    queue_id: int
    allocation_id: str
    time: float

    def check(self):
        _check_id(self.queue_id)
        _check_alloc_id(self.allocation_id)
        _check_time(self.time)


@dataclass(frozen=True, slots=True)
class AllocationFinished(AllocationStarted):
    pass


@dataclass(frozen=True, slots=True)
class AllocationFailed(AllocationStarted):
    pass


EVENT_TYPES = {
    "alloc-queue-created": QueueCreated, "alloc-queue-removed": QueueRemoved,
    "alloc-queue-paused": QueuePaused, "alloc-queue-resumed": QueueResumed,
    "alloc-queue-worker-resources": QueueWorkerResources,
    "allocation-queued": AllocationQueued, "allocation-started": AllocationStarted,
    "allocation-finished": AllocationFinished, "allocation-failed": AllocationFailed,
}
_TYPE_NAMES = {cls: name for name, cls in EVENT_TYPES.items()}


def event_to_wire(ev) -> dict:
    """`{"type": "<name>", <fields>}` with params/resources in their own wire forms."""
    out = {"type": _TYPE_NAMES[type(ev)]}
    for f in fields(ev):
        v = getattr(ev, f.name)
        if isinstance(v, QueueParams):
            v = v.to_wire()
        elif f.name == "resources":
            v = [r.to_wire() for r in v]
        out[f.name] = v
    return out


def event_from_wire(obj):
    """Inverse of `event_to_wire`: exact key set, every field checked. Raises ValueError."""
    if not isinstance(obj, dict) or obj.get("type") not in EVENT_TYPES:
        raise ValueError("Invalid autoalloc event: unknown type")
    cls = EVENT_TYPES[obj["type"]]
    names = [f.name for f in fields(cls)]
    if set(obj) != {"type", *names}:
        raise ValueError(f"Invalid autoalloc event {obj['type']}: unexpected or missing fields")
    kw = {n: obj[n] for n in names}
    if "params" in kw:
        kw["params"] = QueueParams.from_wire(kw["params"])
    if "resources" in kw:
        if not isinstance(kw["resources"], list):
            raise ValueError("Invalid worker resources")
        kw["resources"] = tuple(ResourceDef.from_wire(r) for r in kw["resources"])
    ev = cls(**kw)
    ev.check()
    return ev


# ------------------------------------------------------------------------------------ model


@dataclass(slots=True)
class Allocation:
    """One submitted batch job of a queue (`id` is the manager's job id)."""

    id: str
    queue_id: int
    worker_count: int
    workdir: str
    queued_at: float
    state: str = QUEUED
    started_at: float | None = None
    ended_at: float | None = None
    connected: set = field(default_factory=set)  # worker ids now connected
    lost: int = 0  # workers that disconnected
    crashed_early: int = 0  # of them, lost (not a clean stop) within CRASH_WINDOW of the start
    status_errors: int = 0

    @property
    def is_active(self) -> bool:
        return self.state in (QUEUED, RUNNING)

    @property
    def coming_workers(self) -> int:
        """Workers of this allocation that may still connect."""
        if not self.is_active:
            return 0
        return max(0, self.worker_count - len(self.connected) - self.lost)

    def to_json(self) -> dict:
        """`hq alloc info --output-mode json` item (times are the caller's clock, seconds)."""
        return {"id": self.id, "target_worker_count": self.worker_count,
                "queued_at": self.queued_at, "started_at": self.started_at,
                "ended_at": self.ended_at, "status": self.state, "workdir": self.workdir}


@dataclass(slots=True)
class Queue:
    id: int
    params: QueueParams
    state: str = ACTIVE
    pause_reason: str | None = None
    known_resources: tuple[ResourceDef, ...] | None = None
    allocations: dict[str, Allocation] = field(default_factory=dict)
    backoff: Backoff = field(default_factory=Backoff)
    counter: int = 0  # allocation directory counter (NNN)

    def active_allocations(self) -> list[Allocation]:
        return [a for a in self.allocations.values() if a.is_active]

    @property
    def queued_count(self) -> int:
        return sum(1 for a in self.allocations.values() if a.state == QUEUED)

    @property
    def active_workers(self) -> int:
        """Workers of queued and running allocations (what `--max-worker-count` caps)."""
        return sum(a.worker_count for a in self.allocations.values() if a.is_active)


class Registry:
    """All allocation queues of a server (ids continue after the highest ever used: F73)."""

    def __init__(self, policy: BackoffPolicy = UPSTREAM_POLICY):
        self.policy = policy
        self.queues: dict[int, Queue] = {}
        self.max_queue_id = 0
        self._alloc_queue: dict[str, int] = {}  # allocation id -> queue id

    # --------------------------------------------------------------------------- lookups

    def queue(self, queue_id: int) -> Queue:
        q = self.queues.get(queue_id)
        if q is None:
            raise AutoallocError(f"Allocation queue {queue_id} not found")
        return q

    def allocation(self, allocation_id: str) -> Allocation | None:
        qid = self._alloc_queue.get(allocation_id)
        if qid is None or qid not in self.queues:
            return None
        return self.queues[qid].allocations.get(allocation_id)

    def next_counter(self, queue_id: int) -> int:
        """The next allocation directory number of a queue (1, 2, ...); not journaled: the shell
        creates the directory exclusively and asks again if it exists (after a restart)."""
        q = self.queue(queue_id)
        q.counter += 1
        return q.counter

    # --------------------------------------------------------------------------- the mutator

    def apply(self, ev) -> None:
        """Applies one event (a server action or a journal record). Raises AutoallocError."""
        if type(ev) not in _TYPE_NAMES:
            raise AutoallocError(f"Not an autoalloc event: {type(ev).__name__}")
        try:
            ev.check()
        except AutoallocError:
            raise
        except ValueError as e:
            raise AutoallocError(str(e)) from None
        if isinstance(ev, QueueCreated):
            if ev.queue_id in self.queues or ev.queue_id <= self.max_queue_id:
                raise AutoallocError(f"Allocation queue {ev.queue_id} was already created")
            self.queues[ev.queue_id] = Queue(ev.queue_id, ev.params)
            self.max_queue_id = ev.queue_id
            return
        q = self.queue(ev.queue_id)
        if isinstance(ev, QueueRemoved):
            del self.queues[ev.queue_id]
            for aid in q.allocations:
                self._alloc_queue.pop(aid, None)
        elif isinstance(ev, QueuePaused):
            q.state = _move(QUEUE_TRANSITIONS, q.state, "pause", f"Queue {q.id}")
            q.pause_reason = ev.reason
        elif isinstance(ev, QueueResumed):
            q.state = _move(QUEUE_TRANSITIONS, q.state, "resume", f"Queue {q.id}")
            q.pause_reason = None
            q.backoff.reset()
        elif isinstance(ev, QueueWorkerResources):
            q.known_resources = ev.resources
        elif isinstance(ev, AllocationQueued):
            if ev.allocation_id in self._alloc_queue:
                raise AutoallocError(f"Allocation {ev.allocation_id} already exists")
            q.allocations[ev.allocation_id] = Allocation(
                ev.allocation_id, q.id, ev.worker_count, ev.workdir, float(ev.time))
            self._alloc_queue[ev.allocation_id] = q.id
            q.counter = max(q.counter, len(q.allocations))
        else:
            a = q.allocations.get(ev.allocation_id)
            if a is None:
                raise AutoallocError(f"Allocation {ev.allocation_id} not found in queue {q.id}")
            action = {AllocationStarted: "start", AllocationFinished: "finish",
                      AllocationFailed: "fail"}[type(ev)]
            a.state = _move(ALLOC_TRANSITIONS, a.state, action, f"Allocation {a.id}")
            if action == "start":
                a.started_at = float(ev.time)
            else:
                a.ended_at = float(ev.time)

    def restore(self, events) -> None:
        """Replays journal events (a fresh registry). Raises on an inconsistent journal."""
        for ev in events:
            self.apply(ev)

    def _do(self, ev) -> list:
        self.apply(ev)
        return [ev]

    # --------------------------------------------------------------------------- commands

    def add_queue(self, params: QueueParams) -> list:
        if not isinstance(params, QueueParams):
            raise AutoallocError("Invalid queue parameters")
        if self.max_queue_id >= MAX_ID:
            raise AutoallocError("No more allocation queue ids")
        return self._do(QueueCreated(self.max_queue_id + 1, params))

    def remove_queue(self, queue_id: int, force: bool = False) -> tuple[list, list[Allocation]]:
        """Removes a queue. Returns (events, allocations the shell must cancel).

        Refuses (AutoallocError, nothing changed) while allocations run, unless `force`.
        """
        q = self.queue(queue_id)
        running = [a for a in q.allocations.values() if a.state == RUNNING]
        if running and not force:
            raise AutoallocError(
                f"Allocation queue {queue_id} has running allocations "
                f"({', '.join(a.id for a in running)}); use --force to remove it and cancel them")
        cancel = q.active_allocations()
        return self._do(QueueRemoved(queue_id)), cancel

    def pause(self, queue_id: int, reason: str = USER_PAUSE) -> list:
        q = self.queue(queue_id)
        if q.state == PAUSED:
            return []
        return self._do(QueuePaused(queue_id, reason))

    def resume(self, queue_id: int) -> list:
        q = self.queue(queue_id)
        if q.state == ACTIVE:
            return []
        return self._do(QueueResumed(queue_id))

    def can_submit(self, queue_id: int, now: float) -> bool:
        q = self.queue(queue_id)
        return q.state == ACTIVE and not q.backoff.blocked(self.policy, now)

    def next_attempt_at(self, queue_id: int) -> float | None:
        return self.queue(queue_id).backoff.next_attempt_at(self.policy)

    def allocation_submitted(self, queue_id: int, allocation_id: str, worker_count: int,
                             workdir: str, now: float) -> list:
        """A successful `sbatch`/`qsub`. Refuses while the queue may not submit."""
        q = self.queue(queue_id)
        if not self.can_submit(queue_id, now):
            raise AutoallocError(f"Allocation queue {queue_id} may not submit now")
        if q.queued_count >= q.params.backlog:
            raise AutoallocError(f"Allocation queue {queue_id}: the backlog is full")
        limit = q.params.max_worker_count
        if limit is not None and q.active_workers + worker_count > limit:
            raise AutoallocError(f"Allocation queue {queue_id}: max worker count reached")
        if not 1 <= worker_count <= q.params.max_workers_per_alloc:
            raise AutoallocError(f"Allocation queue {queue_id}: invalid worker count")
        events = self._do(AllocationQueued(queue_id, allocation_id, worker_count, workdir, now))
        q.backoff.submission_succeeded()
        return events

    def submission_failed(self, queue_id: int, now: float) -> list:
        """A failed `sbatch`/`qsub` (the shell logs its stderr). May pause the queue."""
        q = self.queue(queue_id)
        q.backoff.submission_failed(now)
        return self._maybe_pause(q)

    def _maybe_pause(self, q: Queue) -> list:
        reason = q.backoff.pause_reason(self.policy)
        if reason and q.state == ACTIVE:
            return self._do(QueuePaused(q.id, reason))
        return []

    def _end(self, a: Allocation, failed: bool, now: float) -> list:
        q = self.queues[a.queue_id]
        cls = AllocationFailed if failed else AllocationFinished
        events = self._do(cls(q.id, a.id, max(now, a.queued_at)))
        if failed:
            q.backoff.allocation_failed(now)
            events += self._maybe_pause(q)
        else:
            q.backoff.allocation_succeeded()
        return events

    def _start(self, a: Allocation, now: float) -> list:
        return self._do(AllocationStarted(a.queue_id, a.id, max(now, a.queued_at)))

    # --------------------------------------------------------------------------- tracking

    def worker_connected(self, allocation_id: str, worker_id: int, now: float,
                         resources: tuple[ResourceDef, ...] | None = None) -> list:
        """A worker reporting this manager job id connected. Unknown ids are ignored."""
        a = self.allocation(allocation_id)
        if a is None or not a.is_active:
            return []
        events = []
        if a.state == QUEUED:
            events += self._start(a, now)
        a.connected.add(worker_id)
        a.status_errors = 0
        q = self.queues[a.queue_id]
        if resources is not None and q.known_resources != tuple(resources):
            events += self._do(QueueWorkerResources(q.id, tuple(resources)))
        return events

    def worker_lost(self, allocation_id: str, worker_id: int, now: float, crashed: bool) -> list:
        """A worker of the allocation disconnected (`crashed`: connection/heartbeat lost)."""
        a = self.allocation(allocation_id)
        if a is None or not a.is_active or worker_id not in a.connected:
            return []
        a.connected.discard(worker_id)
        a.lost += 1
        if crashed and a.started_at is not None and now - a.started_at <= CRASH_WINDOW:
            a.crashed_early += 1
        if a.lost >= a.worker_count:
            return self._end(a, a.crashed_early >= a.worker_count, now)
        return []

    def manager_status(self, allocation_id: str, status: ExternalStatus, now: float) -> list:
        """The manager's view of the job (from `scontrol`/`qstat`)."""
        a = self.allocation(allocation_id)
        if a is None or not a.is_active:
            return []
        a.status_errors = 0
        if status.state == RUNNING and a.state == QUEUED:
            return self._start(a, now)
        if status.state in (FINISHED, FAILED):
            return self._end(a, status.state == FAILED, now)
        return []

    def status_error(self, allocation_id: str, now: float) -> list:
        """The manager did not report the job (unknown id, bad output, tool failure)."""
        a = self.allocation(allocation_id)
        if a is None or not a.is_active:
            return []
        a.status_errors += 1
        limit = MAX_STATUS_ERRORS_QUEUED if a.state == QUEUED else MAX_STATUS_ERRORS_RUNNING
        if a.status_errors >= limit:
            return self._end(a, False, now)
        return []

    def cancel_all(self) -> list[Allocation]:
        """Allocations to `scancel`/`qdel` when the server stops (`cancelled_by_stop` then
        records the end of each one that was cancelled)."""
        return [a for q in self.queues.values() for a in q.active_allocations()]

    def cancelled_by_stop(self, allocation_id: str, now: float) -> list:
        """The server stopped and cancelled this allocation: it ends FINISHED (journaled, so a
        restart shows it at once). Not a failed allocation: the backoff does not change."""
        a = self.allocation(allocation_id)
        if a is None or not a.is_active:
            return []
        return self._do(AllocationFinished(a.queue_id, a.id, max(now, a.queued_at)))
