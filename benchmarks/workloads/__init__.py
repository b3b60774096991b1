"""The workloads, one module each, in the order they run (and appear in the table).

Each module defines `WORKLOAD = harness.Workload(name, run, sizes=..., needs=..., targets=...)`;
`run(ctx)` adds its `Series` to `ctx.results` and measures them with `harness.alternate`.
Order matters where one workload passes a figure to a later one through `ctx.shared`:
spawn-loop -> true-* ("spawn_limit"), zero-spawn -> crypto ("zero_spawn_tps").
Adding a workload: a module here plus one line in `MODULES`.
"""

from __future__ import annotations

import importlib

MODULES = ["spawn_loop", "true_nooutput", "true_4workers", "true_files", "zero_spawn", "scale_1m", "many_workers", "submit_1m", "job_list",
           "crypto", "journal", "restore", "latency", "cluster_netns", "function_noop", "pyapi"]


def all_workloads() -> list:
    return [importlib.import_module(f"workloads.{m}").WORKLOAD for m in MODULES]
