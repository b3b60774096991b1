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
