"""restore: a server whose journal holds one incomplete job of N tasks (N-1 finished, one still
running, so that restore cannot drop the job) is killed with SIGKILL and started again on that
journal: the time from starting the new server process to its first answered client request
(a `ServerInfoRequest` retried every few ms; the interpreter's start is included), and its RSS
then against the live server's RSS just before the kill (target <= 1.2x). The journal is made
once per N (an open job: N-1 tasks on a zero-spawn worker, then task N `sleep` on a normal
worker, the job closed); each repetition restarts from a fresh copy of it. Full mode shows
100k / 1M / 5M tasks (the 2 s target is judged at 1M), quick mode 20k."""

from __future__ import annotations

import shutil
import time

from harness import Series, Workload, alternate, log
from hqenv import HqEnv, wait_until
from workloads._hq import HqCluster, vmhwm_mb, vmrss_mb

TARGET_TIME = ("value", "<=", 2.0, "<= 2 s")
TARGET_RSS = ("value", "<=", 1.2, "<= 1.2x")
TARGET_N = 1_000_000


def build_journal(ctx, n: int) -> tuple[object, dict]:
    """Makes the journal of an incomplete N-task job; returns (its path, figures of the live
    server just before it was killed)."""
    d = ctx.tmpdir(f"restore-build-{n}")
    journal = d / "journal.bin"
    with HqCluster(ctx, f"hq-restore-{n}", worker=False, server_args=("--journal", journal)) as c:
        out, _ = c.hq("--output-mode", "quiet", "job", "open")
        job = int(out.strip().splitlines()[-1])
        zero = c.env.start_worker("--zero-spawn", cpus=8, timeout=c.READY_TIMEOUT)
        t0 = time.perf_counter()
        if n > 1:
            c.hq("--output-mode", "quiet", "submit", "--job", job, "--array", f"1-{n - 1}",
                 "--stdout", "none", "--stderr", "none", "--", "true")
            wait_until(lambda: c.job_stats(job).get("finished") == n - 1, 3600, 0.5,
                       f"{n - 1} finished tasks")
        t_fill = time.perf_counter() - t0
        c.env.stop(zero)
        real = c.env.start_worker(cpus=1, timeout=c.READY_TIMEOUT)
        c.hq("--output-mode", "quiet", "submit", "--job", job, "--array", str(n),
             "--stdout", "none", "--stderr", "none", "--", "sleep", "3600")
        wait_until(lambda: c.job_stats(job).get("running") == 1, 60, 0.1, "the last task to run")
        c.hq("job", "close", job)
        c.hq("journal", "flush")
        pid = c.server.pid
        live = {"rss_mb": vmrss_mb(pid), "peak_mb": vmhwm_mb(pid), "job": job, "fill_s": t_fill,
                "journal_bytes": journal.stat().st_size}
        c.env.kill(c.server)  # SIGKILL: no goodbye record
        c.env.stop(real)
    log(f"  [restore] journal of {n:,} tasks: {live['journal_bytes'] / 1e6:.1f} MB, live server "
        f"RSS {live['rss_mb']:.0f} MB (filled in {t_fill:.1f} s)")
    return journal, live


def restore_once(ctx, n: int, journal, live: dict) -> tuple[dict, dict]:
    from hyperqueue.client.blocking import BlockingClient
    from hyperqueue.protocol import messages as m

    d = ctx.tmpdir(f"restore-{n}")
    args = []
    if journal is not None:
        copy = d / "journal.bin"
        shutil.copyfile(journal, copy)
        args = ["--journal", str(copy)]
    env = HqEnv(d, hq=[ctx.hq], env=ctx.env, procs=ctx.procs, work_dir=d / "cwd")
    t0 = time.perf_counter()
    server = env.start_server(*args, wait=False)
    try:
        answered = None
        deadline = time.monotonic() + 600
        while answered is None:
            if server.poll() is not None:
                raise RuntimeError(f"restored server exited with {server.poll()}: "
                                   f"{server.stderr()[-400:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the restored server did not answer within 600 s")
            try:
                with BlockingClient(str(env.server_dir), timeout=5.0) as client:
                    if isinstance(client.request(m.ServerInfoRequest()), m.ServerInfoResponse):
                        answered = time.perf_counter() - t0
            except Exception:  # noqa: BLE001 - not published yet / the old record's dead port
                time.sleep(0.005)
        rss, peak = vmrss_mb(server.pid), vmhwm_mb(server.pid)
        if journal is None:
            return {"first answer": answered}, {"rss_mb": rss}
        # (`job list`, not JSON `job info`: that lists every task, millions of them)
        jobs = env.command(["job", "list", "--all"], as_json=True, timeout=120)
        stats = next(j["task_stats"] for j in jobs if j["id"] == live["job"])
        if stats.get("finished") != n - 1:
            raise RuntimeError(f"restored job has {stats}, expected {n - 1:,} finished")
    finally:
        env.stop(server)
        env.close()
    return ({"first answer": answered, "RSS restored / live": rss / live["rss_mb"]},
            {"rss_restored_mb": rss, "rss_restored_peak_mb": peak, "rss_live_mb": live["rss_mb"],
             "stats": stats, "journal_bytes": live["journal_bytes"]})


def run(ctx) -> None:
    sizes = sorted({ctx.size(k) for k in ("restore", "restore-small", "restore-large")} - {0})
    res = ctx.results
    base = res.add(Series("restore", "first answer, no journal (start-up alone)", "hq",
                          role="baseline"))
    runs = [([base], lambda _r: restore_once(ctx, 0, None, {})[0]["first answer"])]
    for n in sizes:
        at_target = n == TARGET_N
        t = res.add(Series("restore", f"first answer, {n:,} tasks", "hq --journal", n=None,
                           role="primary", target=TARGET_TIME if at_target else None))
        r = res.add(Series("restore", f"RSS restored / live, {n:,} tasks", "hq --journal",
                           unit="x", role="primary", target=TARGET_RSS if at_target else None))
        journal, live = build_journal(ctx, n)

        def one(_r, n=n, journal=journal, live=live):
            values, extra = restore_once(ctx, n, journal, live)
            return {f"first answer, {n:,} tasks": values["first answer"],
                    f"RSS restored / live, {n:,} tasks": values["RSS restored / live"]}, extra
        runs.append(([t, r], one))
    alternate(ctx.reps, runs, "restore")
    times = [(n, s.median) for n, (ss, _) in zip(sizes, runs[1:]) for s in ss[:1] if s.median]
    if len(times) > 1:
        res.note("restore: first answer per million tasks: " + ", ".join(
            f"{n:,} -> {t:.2f} s ({t / n * 1e6:.2f} s/M)" for n, t in times))


WORKLOAD = Workload("restore", run,
                    sizes={"restore": (20_000, TARGET_N), "restore-small": (0, 100_000),
                           "restore-large": (0, 5_000_000)},
                    full_only_targets=True)
