"""Limits on every value that enters hq from outside (CLI, job files, the wire, the Python API).

Pure constants. Each limit is what the runtime can honour, not a policy: a duration longer than
`MAX_DURATION` could not be waited for exactly (some waits count milliseconds in 32 bits, and
clamped waits loop), an id above `MAX_ID` does not fit upstream's u32 ids. Validators raise
ValueError naming the limit; the shells turn that into a clear error for that one request.
"""

from __future__ import annotations

from .ranges import MAX_ID

__all__ = [
    "MAX_ID", "MAX_DURATION", "MAX_WAIT_SLICE", "MAX_NAME_LEN", "MAX_STRING_LEN",
    "MAX_LIST_LEN", "MAX_RANGES", "MAX_PRIORITY", "MAX_RESULT_SIZE", "MAX_COUNT",
    "MAX_WORKER_INDICES", "check_duration", "check_text",
]

# Durations (time limits, time requests, idle timeouts, heartbeats, ...): finite, > 0 where a
# zero makes no sense, and at most ten years. Documented in README ("Limits"). Years are
# humantime's (365.25 days, what `10y` parses to), so `--time-limit 10y` is within the limit.
MAX_DURATION = 10 * 365.25 * 24 * 3600.0

# Any single blocking wait is cut into slices of at most this many seconds (a wait for a longer
# time loops), so no OS call ever sees a timeout it cannot represent.
MAX_WAIT_SLICE = 3600.0

MAX_NAME_LEN = 4096  # job names, worker hostnames, group names, resource names
MAX_STRING_LEN = 1 << 20  # any other single string field (a command argument, an env value)
MAX_LIST_LEN = 1 << 20  # items in one list field of one message
MAX_RANGES = 1 << 16  # [start, end, step] triples in one id selector

MAX_PRIORITY = 2**31 - 1  # priorities are i32 upstream
MAX_COUNT = 2**32 - 1  # counts (max fails, nodes, workers to wait for) are u32 upstream

# Indices of one indexed resource pool a worker offers (`--cpus 4096`, `gpus=range(0-7)`): the
# worker holds one entry per index, so `--cpus 4294967295` would exhaust its memory. Pools
# described by the server or an allocation queue are not materialised and are not limited.
MAX_WORKER_INDICES = 1 << 16

# The pickled return value of one Python function task (hyperqueue.task.function): larger values
# belong in files the task writes itself.
MAX_RESULT_SIZE = 64 << 20


def check_duration(value, what: str = "duration", *, allow_zero: bool = False) -> float:
    """Returns `value` as a float if it is a finite number of seconds in (0, MAX_DURATION].

    Raises:
        ValueError: not a number (bools are not numbers here), NaN, infinite, negative, zero
            (unless `allow_zero`) or longer than MAX_DURATION; the message names `what`.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Invalid {what}: expected a number of seconds, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError(f"Invalid {what}: too long (maximum is 10 years)") from None
    if seconds != seconds:
        raise ValueError(f"Invalid {what}: not a number")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"Invalid {what}: must be positive")
    if seconds > MAX_DURATION:
        raise ValueError(f"Invalid {what}: too long (maximum is 10 years)")
    return seconds


def check_text(value: str, what: str) -> str:
    """Returns `value` if it has no NUL character (no path, argument or environment entry can
    hold one: the task could never start). Raises ValueError naming `what`."""
    if "\0" in value:
        raise ValueError(f"{what} must not contain a NUL character")
    return value
