"""submit-1m: `hq submit --array 1-N -- true` against a server with no worker: the submit's wall
time, the server's RSS growth (VmRSS before/after) and the latency of `hq job info <id>` (median
of 3 calls). Targets are judged in full mode only. Upstream: n/a (no `hq` CLI in its package)."""

from __future__ import annotations

import statistics
from pathlib import Path

from harness import Series, Workload, alternate
from references import UPSTREAM_VERSION
from workloads._hq import HqCluster, vmrss_mb

TARGETS = {
    "submit": ("value", "<=", 1.0, "<= 1 s"),
    "server RSS growth": ("value", "<=", 150.0, "<= 150 MB"),
    "job info": ("value", "<=", 0.5, "<= 0.5 s"),
}


def run(ctx) -> None:
    n = ctx.size("submit-1m")
    res = ctx.results
    sub = res.add(Series("submit-1m", "submit", "hq", n=n, role="primary",
                         target=TARGETS["submit"]))
    rss = res.add(Series("submit-1m", "server RSS growth", "hq", unit="MB", role="primary",
                         target=TARGETS["server RSS growth"]))
    info = res.add(Series("submit-1m", "job info", "hq", n=1, per="calls/s", role="primary",
                          target=TARGETS["job info"]))
    up = ctx.refs.get("upstream")
    reason = "skipped (--no-references)"
    if up is not None:
        reason = "n/a: the PyPI package ships no `hq` CLI binary"
        if up.ok and (Path(up.python).parent / "hq").exists():
            reason = "n/a: upstream CLI found but this comparison is not implemented"
    res.add(Series("submit-1m", "submit", f"upstream {UPSTREAM_VERSION}", n=n, role="reference",
                   status="n/a", note=reason))

    def one(_r):
        with HqCluster(ctx, "hq-submit", worker=False) as c:
            pid = c.server.pid
            before = vmrss_mb(pid)
            out, t_submit = c.hq("--output-mode", "quiet", "submit", "--array", f"1-{n}", "--", "true")
            job_id = int(out.strip().splitlines()[-1])
            after_submit = vmrss_mb(pid)
            infos = []
            for _ in range(3):
                _, dt = c.hq("job", "info", str(job_id))
                infos.append(dt)
            after = max(after_submit, vmrss_mb(pid))
            stats = c.job_stats(job_id)
            if stats.get("waiting") != n:
                raise RuntimeError(f"expected {n} waiting tasks, got {stats}")
        return ({"submit": t_submit, "server RSS growth": after - before,
                 "job info": statistics.median(infos)},
                {"rss_before_mb": before, "rss_after_submit_mb": after_submit, "rss_after_mb": after,
                 "job_info_s": infos})

    alternate(ctx.reps, [([sub, rss, info], one)], "submit-1m")


WORKLOAD = Workload("submit-1m", run, sizes={"submit-1m": (100_000, 1_000_000)}, targets=TARGETS,
                    full_only_targets=True)
