"""true-files: like true-nooutput, with each system's default per-task stdout/stderr files
(counted afterwards: 2N). Dask has no such files (n/a)."""

from __future__ import annotations

from harness import Workload
from workloads.true_nooutput import run_true

WORKLOAD = Workload("true-files", lambda ctx: run_true(ctx, files=True),
                    sizes={"true-files": (1_000, 10_000)}, needs=("upstream",))
