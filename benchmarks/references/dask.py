"""Dask (`distributed.LocalCluster`, one worker with 2 threads), driven by `benchmarks/_dask.py`
under the dask venv's interpreter."""

from __future__ import annotations

import json

from harness import HERE, clean_env


def dask_run(ctx, mode: str, n: int) -> tuple[float, dict]:
    """`_dask.py MODE N` (mode `true`: N subprocess `true` tasks; `noop`: N no-op functions)."""
    d = ctx.tmpdir(f"dask-{mode}")
    rc, out, err, _ = ctx.run([ctx.refs["dask"].python, HERE / "_dask.py", mode, n], cwd=d,
                              env=clean_env(), timeout=3600)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if rc != 0 or not lines:
        raise RuntimeError(f"dask driver exited with {rc}: {err.strip()[-400:]}")
    data = json.loads(lines[-1])
    return data["elapsed_s"], data
