"""Automatic allocation, the pure part: queue parameters, queue registry and allocation state
table, backoff, and the demand -> submissions decision with its reasons. No I/O, no clock.

The server shell owns the I/O: it journals the events the `Registry` returns, runs
`sbatch`/`qsub`/... (argv and scripts from `hyperqueue.batch`), feeds their parsed output back
(`allocation_submitted`, `submission_failed`, `manager_status`, `status_error`) and the worker
connections (`worker_connected`, `worker_lost`), and asks `decide(registry, demand, now)` what to
submit, where `demand` is the core's list of `WaitingTasks`.

Layer: pure, beside the core. May import `core`, `batch` and the pure part of `common`; never
the OS, the clock, trio, protocol, the journal or a shell.
"""

from .backoff import UPSTREAM_POLICY, Backoff, BackoffPolicy  # noqa: F401
from .demand import (  # noqa: F401
    Decision, QueueDecision, Unservable, Verdict, WaitingTasks, WorkerShape, decide, explain,
    time_margin, verdict, worker_shape,
)
from .params import ADD_FLAGS, WORKER_TIME_LIMIT_ERROR, Flag, QueueParams  # noqa: F401
from .state import (  # noqa: F401
    ACTIVE, ALLOC_TRANSITIONS, FAILED, FINISHED, PAUSED, QUEUE_TRANSITIONS, QUEUED, RUNNING,
    Allocation, AllocationFailed, AllocationFinished, AllocationQueued, AllocationStarted,
    AutoallocError, IllegalTransition, Queue, QueueCreated, QueuePaused, QueueRemoved,
    QueueResumed, QueueWorkerResources, Registry, event_from_wire, event_to_wire,
)
