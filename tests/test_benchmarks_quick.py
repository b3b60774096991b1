"""The benchmark suite runs (quick mode, hq only): the harness itself must not rot.

No timing is asserted here (shared, noisy machines); only that every workload produced results.
"""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_benchmark_quick_mode_runs(tmp_path):
    out = tmp_path / "bench.json"
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--no-references",
         "--only", "spawn-loop,zero-spawn", "--reps", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=170, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(out.read_text())
    series = {(s["workload"], s["system"]): s for s in data["series"]}
    zero = [s for (w, _), s in series.items() if w == "zero-spawn" and s["role"] == "primary"]
    assert zero and zero[0]["values"] and zero[0]["throughput"] > 0
    assert any(w == "spawn-loop" and s["values"] for (w, _), s in series.items())
    assert "zero-spawn" in res.stdout


@pytest.mark.timeout(300)
def test_benchmark_scale_workloads_run(tmp_path):
    """The scale workloads (scale-1m, many-workers, restore, latency) at tiny sizes: each one
    produces its figures (a restored job is checked inside the workload to hold its N-1
    finished tasks; many-workers checks every worker reported its count)."""
    out = tmp_path / "bench.json"
    sizes = ["scale-1m=3000", "many-workers=3000", "many-workers-count=3", "restore=2000",
             "latency=3"]
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--no-references",
         "--only", "scale-1m,many-workers,restore,latency", "--reps", "1", "--json", str(out),
         *[a for s in sizes for a in ("--size", s)]],
        capture_output=True, text=True, timeout=290, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    got = {(s["workload"], s["metric"], s["system"]): s for s in data["series"]}
    for s in got.values():
        assert s["status"] == "ok" and s["values"], s
    metrics = {(w, m) for w, m, _ in got}
    assert {("scale-1m", "wall"), ("scale-1m", "server CPU per task"),
            ("scale-1m", "journal per task"), ("scale-1m", "server RSS peak growth"),
            ("many-workers", "wall"), ("many-workers", "fewest / mean tasks per worker"),
            ("restore", "first answer, 2,000 tasks"),
            ("restore", "RSS restored / live, 2,000 tasks"),
            ("latency", "submit to start")} <= metrics
    scale = got[("scale-1m", "journal per task", "hq --journal")]
    assert scale["values"][0] > 0  # the journal was written
    many = got[("many-workers", "wall", "hq --zero-spawn, 3 x 2 CPUs")]
    assert sum(many["extra"][0]["tasks_per_worker"]) >= 3000
    assert len(many["extra"][0]["tasks_per_worker"]) == 3
    lat = got[("latency", "submit to start", "hq")]
    assert len(lat["extra"][0]["latencies_s"]) == 3
    assert all(x > 0 for x in lat["extra"][0]["latencies_s"])
