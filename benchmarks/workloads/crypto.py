"""crypto: `SealedChannel` seal+open per frame at 200 B, 2 KiB, 16 KiB and 64 KiB; a cost model
`a + b*bytes` from those; one extra zero-spawn run whose worker records every frame's size
(`_frames_worker.py`) gives the real frames; the estimated cost per task is set against the
per-task time of the zero-spawn median (ctx.shared["zero_spawn_tps"])."""

from __future__ import annotations

import json
import os
import sys
import time

from harness import HERE, Series, Workload, alternate, loadavg, warn
from workloads._hq import hq_zero_spawn

TARGET = ("value", "<=", 5.0, "<= 5 %")


def _counted_zero_spawn(ctx, n: int) -> dict | None:
    """One zero-spawn run whose worker records every frame's size (see _frames_worker.py)."""
    d = ctx.tmpdir("frames")
    stats_path = d / "frames.json"
    argv = [sys.executable, HERE / "_frames_worker.py", stats_path]
    elapsed, _ = hq_zero_spawn(ctx, n, worker_argv=argv)
    if not stats_path.exists():
        return None
    data = json.loads(stats_path.read_text())
    data["elapsed_s"] = elapsed
    return data


def run(ctx) -> None:
    try:
        from hyperqueue.protocol.secretbox import KEY_SIZE, SealedChannel
    except ImportError as e:
        ctx.results.add(Series("crypto", "seal+open", "hq", status="unavailable", note=str(e)))
        return
    res = ctx.results
    sizes = [("200 B (heartbeat)", 200), ("2 KiB (task-update batch)", 2048), ("16 KiB", 16384),
             ("64 KiB", 65536)]
    budget = 0.05 if ctx.quick else 0.25
    series = []
    runs = []
    for label, size in sizes:
        s = res.add(Series("crypto", f"seal+open {label}", "hq SealedChannel", n=1, per="frames/s",
                           role="primary"))
        series.append((s, size))

        def one(_r, size=size):
            k1, k2 = os.urandom(KEY_SIZE), os.urandom(KEY_SIZE)
            a, b = SealedChannel(k1, k2), SealedChannel(k2, k1)
            payload = os.urandom(size)
            iters = 0
            t0 = time.perf_counter()
            while True:
                for _ in range(100):
                    if b.open(a.seal(payload)) is None:
                        raise RuntimeError("open failed")
                iters += 100
                dt = time.perf_counter() - t0
                if dt >= budget:
                    return dt / iters, {"iterations": iters}
        runs.append(([s], one))
    alternate(ctx.reps, runs, "crypto")

    # Cost model t(size) = a + b * size (least squares over the measured sizes).
    pts = [(size, s.median) for s, size in series if s.median]
    if len(pts) < 2:
        return
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    b = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    a = my - b * mx
    n = ctx.size("zero-spawn")
    per_task = res.add(Series("crypto", "per task (est.)", "hq", role="primary"))
    share = res.add(Series("crypto", "share of zero-spawn time", "hq", unit="%", role="primary",
                           target=TARGET))
    try:
        frames = _counted_zero_spawn(ctx, n)
    except Exception as e:  # noqa: BLE001
        frames = None
        warn(f"crypto: counted zero-spawn run failed: {e}")
    if not frames:
        per_task.status = share.status = "error"
        per_task.note = share.note = "could not count frames in a zero-spawn run"
        return
    sizes_all = frames["sealed"] + frames["opened"]
    cost = len(sizes_all) * a + sum(sizes_all) * b  # every frame is sealed once and opened once
    per_task_s = cost / n
    tps = ctx.shared.get("zero_spawn_tps") or n / frames["elapsed_s"]
    source = "zero-spawn median of this run" if ctx.shared.get("zero_spawn_tps") else "the counted run"
    detail = {
        "model_a_s": a, "model_b_s_per_byte": b, "tasks": n,
        "frames_worker_to_server": len(frames["sealed"]),
        "bytes_worker_to_server": sum(frames["sealed"]),
        "frames_server_to_worker": len(frames["opened"]),
        "bytes_server_to_worker": sum(frames["opened"]),
        "zero_spawn_tps": tps, "zero_spawn_tps_source": source,
        "counted_run_s": frames["elapsed_s"],
    }
    per_task.values, per_task.loads, per_task.extra = [per_task_s], [loadavg()[0]], [detail]
    share.values, share.loads, share.extra = [100 * per_task_s * tps], [loadavg()[0]], [detail]
    fw, fs = detail["frames_worker_to_server"], detail["frames_server_to_worker"]
    res.note(
        f"crypto: {n:,} zero-spawn tasks moved {fw:,} frames worker->server "
        f"(avg {detail['bytes_worker_to_server'] / max(fw, 1):,.0f} B, "
        f"{n / max(fw, 1):.0f} tasks/frame) and {fs:,} frames server->worker "
        f"(avg {detail['bytes_server_to_worker'] / max(fs, 1):,.0f} B, {n / max(fs, 1):.0f} tasks/frame); "
        f"seal+open cost model {a * 1e6:.2f} µs + {b * 1e9:.2f} ns/byte -> "
        f"{per_task_s * 1e6:.3f} µs per task, against {1e6 / tps:.1f} µs per task at "
        f"{tps:,.0f} tasks/s ({source})")


WORKLOAD = Workload("crypto", run, targets={"share of zero-spawn time": TARGET})
