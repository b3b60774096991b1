"""Resource requests of Python API tasks (upstream's `hyperqueue.ffi.protocol`)."""

from __future__ import annotations

import datetime
from typing import Dict, Optional, Union

Amount = Union[int, float, str]


class ResourceRequest:
    """What one task needs: `cpus` (a number or `"<amount> <policy>"`, e.g. `"4 compact!"`),
    other named `resources` (same forms, e.g. `{"gpus": 1, "mem": "512"}`), `n_nodes` whole
    nodes (a multi-node task; `cpus` is then not requested) and `min_time`, the time the task
    needs left on a worker. A task given a list of requests has resource variants (earlier
    ones preferred)."""

    def __init__(self, *, n_nodes: int = 0, cpus: Amount = 1,
                 resources: Optional[Dict[str, Amount]] = None,
                 min_time: Optional[datetime.timedelta] = None):
        self.n_nodes = n_nodes
        resources = {} if resources is None else resources
        resources["cpus"] = cpus  # (upstream writes it into the given dict, too)
        self.resources = resources
        self.min_time = min_time

    def __repr__(self):
        return (f"<ResourceRequest n_nodes={self.n_nodes} resources={self.resources} "
                f"min_time={self.min_time}>")

    def to_spec(self):
        """The validated domain request (raises hyperqueue.errors.SpecError)."""
        from ..client import spec
        from ..errors import SpecError

        n_nodes = self.n_nodes
        if isinstance(n_nodes, bool) or not isinstance(n_nodes, int) or n_nodes < 0:
            raise SpecError("expected a non-negative integer", "n_nodes")
        entries = []
        for name, amount in self.resources.items():
            if name == "cpus" and n_nodes:
                continue  # a multi-node task gets whole nodes
            if not isinstance(name, str) or isinstance(amount, bool) or not isinstance(
                    amount, (int, float, str)):
                raise SpecError(f"invalid request {name!r}: {amount!r}", "resources")
            entries.append(spec.resource_entry(name, amount))
        min_time = 0.0
        if self.min_time is not None:
            seconds = (self.min_time.total_seconds()
                       if isinstance(self.min_time, datetime.timedelta) else self.min_time)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                raise SpecError("expected a datetime.timedelta", "min_time")
            from ..core.limits import check_duration

            try:
                min_time = check_duration(float(seconds), "min_time", allow_zero=True)
            except ValueError as e:
                raise SpecError(str(e), "min_time") from None
        return spec.resource_request(entries, n_nodes, min_time)
