"""scale-1m: one array job of N tasks (`--stdout none --stderr none`) on one zero-spawn worker
with 8 CPUs, journal on: the end-to-end throughput (from `hq submit` to `hq job wait`
returning), the server's CPU per task (user + system from /proc/<pid>/stat over that span),
its RSS before the submit, at its peak (VmHWM) and after the job, and the journal's size per
task. The same run without a journal is the reference of the throughput (hq/ref is then
journal-on / journal-off). Targets are judged in full mode only."""

from __future__ import annotations

import time

from harness import Series, Workload, alternate
from workloads._hq import HqCluster, cpu_s, vmhwm_mb, vmrss_mb

TARGETS = {
    "wall": ("throughput", ">=", 60_000, ">= 60,000 tasks/s"),
    "server CPU per task": ("value", "<=", 10.0, "<= 10 µs"),
    "server RSS peak growth": ("value", "<=", 50.0, "<= 50 MB"),
    "server RSS growth after": ("value", "<=", 10.0, "<= 10 MB"),
    "journal per task": ("value", "<=", 10.0, "<= 10 B"),
}
CPUS = 8


def scale_run(ctx, n: int, *, journal: bool, cpus: int = CPUS, workers: int = 1,
              name: str = "hq-scale") -> tuple[dict, dict]:
    """N zero-spawn tasks on `workers` workers of `cpus` CPUs; the server's figures."""
    jpath = None
    server_args: tuple = ()
    if journal:
        jpath = ctx.tmpdir("scale-journal") / "journal.bin"
        server_args = ("--journal", jpath)
    with HqCluster(ctx, name, zero_spawn=True, cpus=cpus, server_args=server_args,
                   workers=workers) as c:
        pid = c.server.pid
        rss0, cpu0 = vmrss_mb(pid), cpu_s(pid)
        t0 = time.perf_counter()
        out, t_submit = c.hq("--output-mode", "quiet", "submit", "--array", f"1-{n}",
                             "--stdout", "none", "--stderr", "none", "--", "true")
        _, t_wait = c.hq("job", "wait", "last", timeout=3600)
        elapsed = time.perf_counter() - t0
        cpu = cpu_s(pid) - cpu0
        rss_after, peak = vmrss_mb(pid), vmhwm_mb(pid)
        c.check_finished(out, n)
        jbytes = jpath.stat().st_size if jpath is not None else 0
        workers_cpu = [cpu_s(p.pid) for p in c.workers]
    values = {"wall": elapsed, "server CPU per task": cpu / n * 1e6,
              "server RSS start": rss0, "server RSS peak growth": peak - rss0,
              "server RSS growth after": rss_after - rss0}
    if journal:
        values["journal per task"] = jbytes / n
    extra = {"submit_s": t_submit, "wait_s": t_wait, "server_cpu_s": cpu, "rss_start_mb": rss0,
             "rss_peak_mb": peak, "rss_after_mb": rss_after, "journal_bytes": jbytes,
             "workers_cpu_s": workers_cpu}
    return values, extra


def run(ctx) -> None:
    n = ctx.size("scale-1m")
    res = ctx.results
    name = "scale-1m"
    on = [res.add(Series(name, "wall", "hq --journal", n=n, role="primary",
                         target=TARGETS["wall"])),
          res.add(Series(name, "server CPU per task", "hq --journal", unit="µs",
                         role="primary", target=TARGETS["server CPU per task"])),
          res.add(Series(name, "server RSS start", "hq --journal", unit="MB", role="primary")),
          res.add(Series(name, "server RSS peak growth", "hq --journal", unit="MB",
                         role="primary", target=TARGETS["server RSS peak growth"])),
          res.add(Series(name, "server RSS growth after", "hq --journal", unit="MB",
                         role="primary", target=TARGETS["server RSS growth after"])),
          res.add(Series(name, "journal per task", "hq --journal", unit="B", role="primary",
                         target=TARGETS["journal per task"]))]
    off = [res.add(Series(name, "wall", "hq (no journal)", n=n, role="reference")),
           res.add(Series(name, "server CPU per task", "hq (no journal)", unit="µs",
                          role="baseline"))]
    alternate(ctx.reps, [(on, lambda _r: scale_run(ctx, n, journal=True)),
                         (off, lambda _r: scale_run(ctx, n, journal=False))], name)
    if on[0].throughput() and off[0].throughput():
        res.note(f"scale-1m: {n:,} zero-spawn tasks on 1 worker x {CPUS} CPUs; journal on reaches "
                 f"{100 * on[0].throughput() / off[0].throughput():.0f}% of the journal-off "
                 "throughput (target of the compact journal: >= 90%)")


WORKLOAD = Workload("scale-1m", run, sizes={"scale-1m": (50_000, 1_000_000)},
                    targets=TARGETS, full_only_targets=True)
