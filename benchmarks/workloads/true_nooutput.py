"""true-nooutput: N tasks `true` with stdout/stderr discarded, one 2-CPU worker in its own
process; hq against upstream HyperQueue and Dask (also the body of true-files)."""

from __future__ import annotations

from harness import Series, Workload, alternate
from references.dask import dask_run
from references.upstream import upstream_true
from workloads._hq import hq_true


def run_true(ctx, files: bool) -> None:
    name = "true-files" if files else "true-nooutput"
    n = ctx.size(name)
    res = ctx.results
    hq = res.add(Series(name, "wall", "hq", n=n, role="primary"))
    runs = [([hq], lambda _r: hq_true(ctx, n, files=files))]
    up = res.add(ctx.ref_series(name, "upstream", n=n))
    if up.status == "ok":
        runs.append(([up], lambda _r: upstream_true(ctx, n, files=files)))
    if not files:
        dk = res.add(ctx.ref_series(name, "dask", n=n))
        if dk.status == "ok":
            runs.append(([dk], lambda _r: dask_run(ctx, "true", n)))
    else:
        res.add(Series(name, "wall", "dask", n=n, role="reference", status="n/a",
                       note="n/a: Dask has no per-task output files"))
    alternate(ctx.reps, runs, name)
    limit = ctx.shared.get("spawn_limit")
    if limit and hq.throughput():
        res.note(f"{name}: hq reaches {100 * hq.throughput() / limit:.0f}% of the spawn-loop limit "
                 f"({limit:,.0f} spawns/s measured in this run)")


WORKLOAD = Workload("true-nooutput", lambda ctx: run_true(ctx, files=False),
                    sizes={"true-nooutput": (1_000, 10_000)}, needs=("upstream", "dask"))
