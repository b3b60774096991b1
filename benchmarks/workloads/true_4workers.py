"""true-4workers: N tasks `true` with stdout/stderr discarded on four worker processes of 2 CPUs
each (the multi-worker path side by side: on this machine the four share its CPUs); hq against
upstream HyperQueue with the same four 2-core workers, timed like true-nooutput."""

from __future__ import annotations

from harness import Series, Workload, alternate
from references.upstream import upstream_true
from workloads._hq import hq_true

WORKERS = 4


def run(ctx) -> None:
    name = "true-4workers"
    n = ctx.size(name)
    res = ctx.results
    hq = res.add(Series(name, "wall", f"hq, {WORKERS} workers", n=n, role="primary"))
    runs = [([hq], lambda _r: hq_true(ctx, n, files=False, workers=WORKERS))]
    up = res.add(ctx.ref_series(name, "upstream", n=n))
    if up.status == "ok":
        up.system += f", {WORKERS} workers"
        runs.append(([up], lambda _r: upstream_true(ctx, n, files=False, workers=WORKERS)))
    alternate(ctx.reps, runs, name)
    limit = ctx.shared.get("spawn_limit")
    if limit and hq.throughput():
        res.note(f"{name}: hq reaches {100 * hq.throughput() / limit:.0f}% of the spawn-loop limit "
                 f"({limit:,.0f} spawns/s measured in this run)")


WORKLOAD = Workload("true-4workers", run, sizes={"true-4workers": (1_000, 10_000)},
                    needs=("upstream",))
