"""cluster-netns: N `true` tasks on a cluster of network namespaces built by
tests/cluster/netns_cluster.py (server and client on a login node, one 2-CPU worker on each of 3
compute nodes); hq only, n/a with the reason where namespaces cannot be made."""

from __future__ import annotations

import json
import sys
import time

from harness import REPO, Series, Workload, alternate, log


def run(ctx) -> None:
    """N `true` tasks on a cluster of network namespaces (tests/cluster/netns_cluster.py): the
    server on a login node, one `--cpus 2` worker on each of 3 compute nodes, the client on the
    login node; all over veths and a bridge inside namespaces the run creates."""
    n = ctx.size("cluster-netns")
    s = ctx.results.add(Series("cluster-netns", "wall", "hq (3 nodes x 2 cpus)", n=n,
                               role="primary"))
    sys.path.insert(0, str(REPO / "tests" / "cluster"))
    from netns_cluster import HqCluster, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        s.status, s.note = "n/a", f"n/a: {reason}"
        log(f"  cluster-netns skipped: {reason}")
        return

    def one(_r):
        with HqCluster(ctx.tmpdir("cluster-netns"), 3, env=ctx.env) as c:
            c.hq = [ctx.hq]
            c.start_server()
            for node in c.computes:
                c.start_worker(node, cpus="2")
            t0 = time.perf_counter()
            out = c.hq_ok("--output-mode", "quiet", "submit", "--array", f"1-{n}", "--stdout",
                          "none", "--stderr", "none", "--", "true", timeout=600)
            c.hq_ok("job", "wait", "last", timeout=3600)
            elapsed = time.perf_counter() - t0
            job_id = int(out.strip().splitlines()[-1])
            info = json.loads(c.hq_ok("--output-mode", "json", "job", "info", str(job_id)))[0]
            stats = info["info"]["task_stats"]
            if stats.get("finished") != n:
                raise RuntimeError(f"expected {n} finished tasks, got {stats}")
            per_host = {}
            for w in json.loads(c.hq_ok("--output-mode", "json", "worker", "list")):
                per_host[w["configuration"]["hostname"]] = w["id"]
        return elapsed, {"workers": per_host}

    alternate(ctx.reps, [([s], one)], "cluster-netns")


WORKLOAD = Workload("cluster-netns", run, sizes={"cluster-netns": (1_000, 10_000)})
