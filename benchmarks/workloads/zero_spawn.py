"""zero-spawn: N tasks on `hq worker start --zero-spawn` (completed without starting a process):
the scheduler + protocol figure. Dask with no-op functions, on fewer tasks (its scheduler runs a
few hundred to a few thousand tasks/s here; the ratio compares throughputs)."""

from __future__ import annotations

from harness import Series, Workload, alternate
from references import UPSTREAM_VERSION
from references.dask import dask_run
from workloads._hq import hq_zero_spawn

TARGET = ("throughput", ">=", 20_000, ">= 20,000 tasks/s")


def run(ctx) -> None:
    n = ctx.size("zero-spawn")
    nd = ctx.size("zero-spawn-dask")
    res = ctx.results
    hq = res.add(Series("zero-spawn", "wall", "hq --zero-spawn", n=n, role="primary", target=TARGET))
    runs = [([hq], lambda _r: hq_zero_spawn(ctx, n))]
    dk = res.add(ctx.ref_series("zero-spawn", "dask", n=nd))
    if dk.status == "ok":
        dk.system += " (no-op fn)"
        runs.append(([dk], lambda _r: dask_run(ctx, "noop", nd)))
    res.add(Series("zero-spawn", "wall", f"upstream {UPSTREAM_VERSION}", n=n, role="reference",
                   status="n/a", note="n/a: upstream has no zero-spawn mode"))
    alternate(ctx.reps, runs, "zero-spawn")
    if hq.throughput():
        ctx.shared["zero_spawn_tps"] = hq.throughput()
    if dk.status == "ok" and nd != n:
        res.note(f"zero-spawn: Dask ran {nd:,} tasks per repetition (hq {n:,}); the ratio compares "
                 "throughputs")


WORKLOAD = Workload(
    "zero-spawn", run,
    sizes={"zero-spawn": (10_000, 100_000),
           # Dask's scheduler handles a few hundred to a few thousand no-op tasks per second here;
           # 100,000 of them three times would take most of an hour on a busy 2-core machine.
           "zero-spawn-dask": (2_000, 20_000)},
    needs=("dask",), targets={"wall": TARGET})
