"""spawn-loop: the physical limit. `/bin/true` spawned N times with 2 processes in flight, by
`spawnloop.c` (posix_spawn) and by a Python loop of `subprocess.run` in 2 threads. Later rows
say what share of this limit hq reaches (ctx.shared["spawn_limit"])."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

from harness import BUILD, HERE, Series, Workload, alternate

PY_SPAWN_LOOP = r"""
import json, subprocess, sys, threading, time
n, k = int(sys.argv[1]), int(sys.argv[2])
lock = threading.Lock()
left = [n]
failed = [0]
def loop():
    while True:
        with lock:
            if left[0] == 0:
                return
            left[0] -= 1
        rc = subprocess.run(["/bin/true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        if rc:
            with lock:
                failed[0] += 1
threads = [threading.Thread(target=loop) for _ in range(k)]
t0 = time.perf_counter()
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"spawns": n, "inflight": k, "seconds": time.perf_counter() - t0, "failed": failed[0]}))
"""


def compile_spawnloop() -> tuple[str | None, str]:
    """Compiles spawnloop.c once per source version into benchmarks/.venvs/_build/."""
    src = HERE / "spawnloop.c"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    exe = BUILD / f"spawnloop-{digest}"
    if exe.exists():
        return str(exe), "cached"
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None, "gcc not found"
    BUILD.mkdir(parents=True, exist_ok=True)
    tmp = exe.with_suffix(".tmp")
    r = subprocess.run([cc, "-O2", "-Wall", "-o", str(tmp), str(src)], capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        return None, f"compile failed: {r.stderr.strip()[-300:]}"
    os.replace(tmp, exe)
    return str(exe), "compiled"


def run(ctx) -> None:
    n = ctx.size("spawn-loop")
    res = ctx.results
    exe, how = compile_spawnloop()
    runs = []
    c_series = res.add(Series("spawn-loop", "wall", "C posix_spawn, 2 in flight", n=n, per="spawns/s",
                              role="baseline"))
    if exe:
        def c_loop(_r):
            rc, out, err, _ = ctx.run([exe, n, 2], timeout=600)
            data = json.loads(out)
            if rc != 0 or data["failed"]:
                raise RuntimeError(f"spawnloop rc={rc} failed={data.get('failed')} {err[-200:]}")
            return data["seconds"]
        runs.append(([c_series], c_loop))
    else:
        c_series.status, c_series.note = "unavailable", f"{how}; see the Python loop"
    py_series = res.add(Series("spawn-loop", "wall", "Python subprocess, 2 threads", n=n, per="spawns/s",
                               role="baseline"))

    def py_loop(_r):
        rc, out, err, _ = ctx.run([sys.executable, "-S", "-c", PY_SPAWN_LOOP, n, 2], timeout=900)
        data = json.loads(out)
        if rc != 0 or data["failed"]:
            raise RuntimeError(f"python spawn loop rc={rc} {err[-200:]}")
        return data["seconds"]

    runs.append(([py_series], py_loop))
    alternate(ctx.reps, runs, "spawn-loop")
    best = max((s.throughput() or 0) for s in (c_series, py_series))
    if best:
        ctx.shared["spawn_limit"] = best


WORKLOAD = Workload("spawn-loop", run, sizes={"spawn-loop": (1_000, 10_000)})
