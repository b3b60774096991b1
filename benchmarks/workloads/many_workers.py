"""many-workers: one array job of N tasks (`--stdout none --stderr none`) on W zero-spawn worker
processes of 2 CPUs each (journal off): the end-to-end throughput (target >= 60,000 tasks/s in
full mode: 100 workers, 1M tasks), the server's CPU per task, and how evenly the work spread:
each zero-spawn worker logs how many tasks it completed when it stops (one line at exit), and
the row "fewest / mean tasks per worker" is the least busy worker's count over the mean (1.0:
perfectly even; 0: a worker got nothing)."""

from __future__ import annotations

import re
import time

from harness import Series, Workload, alternate
from workloads._hq import HqCluster, cpu_s

TARGETS = {
    "wall": ("throughput", ">=", 60_000, ">= 60,000 tasks/s"),
    "fewest / mean tasks per worker": ("value", ">=", 0.5, ">= 0.5"),
}
DONE = re.compile(r"Zero-spawn: (\d+) tasks completed")


def many_run(ctx, n: int, workers: int) -> tuple[dict, dict]:
    c = HqCluster(ctx, "hq-many", zero_spawn=True, cpus=2, workers=workers)
    with c:
        pid = c.server.pid
        cpu0 = cpu_s(pid)
        t0 = time.perf_counter()
        out, t_submit = c.hq("--output-mode", "quiet", "submit", "--array", f"1-{n}",
                             "--stdout", "none", "--stderr", "none", "--", "true")
        c.hq("job", "wait", "last", timeout=3600)
        elapsed = time.perf_counter() - t0
        cpu = cpu_s(pid) - cpu0
        c.check_finished(out, n)
        procs = list(c.workers)
        workers_cpu = sum(cpu_s(p.pid) for p in procs)  # start-up included
    # stopped (gracefully) on leaving the block: each worker has logged its count
    counts = []
    for p in procs:
        found = DONE.findall(p.stderr())
        if not found:
            raise RuntimeError(f"worker pid {p.pid} logged no zero-spawn count")
        counts.append(int(found[-1]))
    if sum(counts) < n:
        raise RuntimeError(f"workers report {sum(counts)} completed tasks, expected >= {n}")
    mean = sum(counts) / len(counts)
    return ({"wall": elapsed, "server CPU per task": cpu / n * 1e6,
             "fewest / mean tasks per worker": min(counts) / mean},
            {"submit_s": t_submit, "tasks_per_worker": sorted(counts), "server_cpu_s": cpu,
             "workers_cpu_s": workers_cpu})


def run(ctx) -> None:
    n = ctx.size("many-workers")
    w = ctx.size("many-workers-count")
    res = ctx.results
    name = "many-workers"
    system = f"hq --zero-spawn, {w} x 2 CPUs"
    series = [res.add(Series(name, "wall", system, n=n, role="primary", target=TARGETS["wall"])),
              res.add(Series(name, "server CPU per task", system, unit="µs", role="primary")),
              res.add(Series(name, "fewest / mean tasks per worker", system, unit="",
                             role="primary", target=TARGETS["fewest / mean tasks per worker"]))]
    alternate(ctx.reps, [(series, lambda _r: many_run(ctx, n, w))], "many-workers")
    extra = series[0].extra
    if extra:
        counts = extra[len(extra) // 2]["tasks_per_worker"]
        res.note(f"{name}: {w} workers; tasks per worker (one repetition): min {counts[0]:,}, median "
                 f"{counts[len(counts) // 2]:,}, max {counts[-1]:,}")


WORKLOAD = Workload("many-workers", run,
                    sizes={"many-workers": (20_000, 1_000_000), "many-workers-count": (10, 100)},
                    targets=TARGETS, full_only_targets=True)
