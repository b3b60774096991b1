"""What a client needs to build `hq alloc add`/`dry-run` requests: the flag table and the
queue parameters (checked here before anything is sent, and again by the server)."""

from __future__ import annotations

from ..autoalloc.params import ADD_FLAGS, ON_SERVER_LOST, QueueParams

__all__ = ["ADD_FLAGS", "ON_SERVER_LOST", "QueueParams", "queue_params"]


def queue_params(manager: str, kw: dict) -> QueueParams:
    """`QueueParams` from the CLI's option values (keys: the flags' long names with `_`, plus
    `resource` and `manager_args`). Raises ValueError with upstream's messages."""
    mu = kw.get("min_utilization", 0.0)
    return QueueParams(
        manager=manager, time_limit=kw["time_limit"], backlog=kw["backlog"],
        max_workers_per_alloc=kw["max_workers_per_alloc"],
        max_worker_count=kw["max_worker_count"], name=kw["name"], cpus=kw["cpus"],
        resources=tuple(kw["resource"]), group=kw["group"], coupling=kw["coupling"],
        detect_resources=kw["detect_resources"], no_hyper_threading=kw["no_hyper_threading"],
        idle_timeout=float(kw["idle_timeout"]), overview_interval=kw["overview_interval"],
        min_utilization=float(mu) if mu is not None else 0.0,
        on_server_lost=kw["on_server_lost"], worker_time_limit=kw["worker_time_limit"],
        worker_start_cmd=kw["worker_start_cmd"], worker_stop_cmd=kw["worker_stop_cmd"],
        worker_wrap_cmd=kw["worker_wrap_cmd"], additional_args=tuple(kw["manager_args"]))
