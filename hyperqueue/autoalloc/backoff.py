"""Rate limiting of one queue after failures (pure: `now` is an argument).

Upstream's rule (hq-features.md §7): a delay ladder 0 -> 1 min -> 15 min -> 30 min -> 1 h between
submission attempts, one step up per consecutive failure (a failed `sbatch`/`qsub` or a failed
allocation), back to the start on success; the queue is paused after 10 consecutive submission
failures or 3 consecutive failed allocations. The ladder and both limits are parameters
(`BackoffPolicy`) so tests against a real Slurm can use a short ladder.

Here the step is the number of consecutive failures of both kinds: a successful submission resets
the submission-failure count, an allocation that finishes normally resets the allocation-failure
count, so a queue whose `sbatch` always succeeds but whose allocations always fail still climbs
the ladder and is paused after 3.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BackoffPolicy", "UPSTREAM_POLICY", "Backoff"]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    delays: tuple[float, ...] = (0.0, 60.0, 900.0, 1800.0, 3600.0)
    max_submission_failures: int = 10
    max_allocation_failures: int = 3

    def __post_init__(self):
        if not self.delays or self.delays[0] != 0 or any(d < 0 for d in self.delays) \
                or list(self.delays) != sorted(self.delays):
            raise ValueError("Backoff delays must start at 0 and not decrease")
        if self.max_submission_failures < 1 or self.max_allocation_failures < 1:
            raise ValueError("Failure limits must be at least 1")

    def delay(self, failures: int) -> float:
        """Delay after `failures` consecutive failures (capped at the last step)."""
        return self.delays[min(failures, len(self.delays) - 1)]


UPSTREAM_POLICY = BackoffPolicy()


@dataclass(slots=True)
class Backoff:
    """Failure counters and the time before which the queue must not submit."""

    submission_failures: int = 0
    allocation_failures: int = 0
    last_failure_at: float | None = None

    @property
    def failures(self) -> int:
        return self.submission_failures + self.allocation_failures

    def next_attempt_at(self, policy: BackoffPolicy) -> float | None:
        """Earliest time of the next submission; None when not backing off."""
        if self.last_failure_at is None or not self.failures:
            return None
        return self.last_failure_at + policy.delay(self.failures)

    def blocked(self, policy: BackoffPolicy, now: float) -> bool:
        t = self.next_attempt_at(policy)
        return t is not None and now < t

    def submission_failed(self, now: float) -> None:
        self.submission_failures += 1
        self.last_failure_at = now

    def submission_succeeded(self) -> None:
        self.submission_failures = 0

    def allocation_failed(self, now: float) -> None:
        self.allocation_failures += 1
        self.last_failure_at = now

    def allocation_succeeded(self) -> None:
        self.allocation_failures = 0

    def pause_reason(self, policy: BackoffPolicy) -> str | None:
        """Why the queue must be paused now, or None."""
        if self.submission_failures >= policy.max_submission_failures:
            return f"{self.submission_failures} consecutive submissions failed"
        if self.allocation_failures >= policy.max_allocation_failures:
            return f"{self.allocation_failures} consecutive allocations failed"
        return None

    def reset(self) -> None:
        self.submission_failures = self.allocation_failures = 0
        self.last_failure_at = None
