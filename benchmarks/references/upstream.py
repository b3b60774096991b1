"""Upstream HyperQueue (the PyPI package) with its server and its worker in two processes,
driven by `benchmarks/_upstream.py` under the upstream venv's interpreter (see the README's "How
upstream's worker runs in its own process")."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

from harness import HERE, clean_env
from hqenv import tail


class UpstreamCluster:
    """Upstream's server in one process and its worker in another (see _upstream.py)."""

    def __init__(self, ctx, name: str, cores: int = 2, workers: int = 1):
        self.ctx = ctx
        self.dir = ctx.tmpdir(name)
        self.sd = self.dir / "server"
        self.cwd = self.dir / "cwd"
        self.cwd.mkdir()
        self.cores = cores
        self.workers = workers
        self.procs: list[subprocess.Popen] = []
        self.env = clean_env(TQDM_DISABLE="1", RUST_BACKTRACE="0")

    def __enter__(self) -> "UpstreamCluster":
        try:
            self._spawn("server", [str(self.sd)])
            for i in range(self.workers):
                self._spawn("worker", [str(self.sd), str(self.dir / f"worker-own-{i}"),
                                       str(self.cores)], label=f"worker-{i}")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, mode: str, args: list[str], label: str | None = None) -> None:
        label = label or mode
        logfile = self.dir / f"{label}.log"
        with open(logfile, "wb") as log:
            p = self.ctx.procs.start([self.ctx.refs["upstream"].python, HERE / "_upstream.py", mode,
                                      *args], cwd=self.dir, env=self.env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log)
        self.procs.append(p)
        ready: dict = {}

        def drain():
            with open(self.dir / f"{label}.stdout", "wb") as sink:
                for raw in p.stdout:
                    if not ready and raw.startswith(b"{"):
                        try:
                            ready.update(json.loads(raw))
                            continue
                        except ValueError:
                            pass
                    sink.write(raw)

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + 60
        while not ready:
            if p.poll() is not None:
                raise RuntimeError(f"upstream {mode} exited with {p.returncode}: {tail(logfile, 8)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"upstream {mode} not ready after 60 s: {tail(logfile, 8)}")
            time.sleep(0.02)

    def client(self, n: int, stdio: str) -> dict:
        rc, out, err, _ = self.ctx.run(
            [self.ctx.refs["upstream"].python, HERE / "_upstream.py", "client", self.sd, n, stdio],
            cwd=self.cwd, env=self.env, timeout=3600)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if rc != 0 or not lines:
            raise RuntimeError(f"upstream client exited with {rc}: {err.strip()[-400:]}")
        return json.loads(lines[-1])

    def stop(self) -> None:
        for p in reversed(self.procs):  # the worker first
            if p.poll() is None and p.stdin is not None:
                try:
                    p.stdin.write(b"stop\n")
                    p.stdin.close()
                    p.wait(10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self.ctx.procs.stop(p)
        self.procs = []


def upstream_true(ctx, n: int, *, files: bool, workers: int = 1) -> tuple[float, dict]:
    """N `true` tasks on upstream (one Job, `program(["true"])` each) with `workers` 2-core
    workers; the completion time."""
    with UpstreamCluster(ctx, "upstream-true", workers=workers) as c:
        data = c.client(n, "default" if files else "none")
        if data["failed_jobs"]:
            raise RuntimeError(f"upstream reported failed jobs {data['failed_jobs']}")
        if files:
            data["files"] = sum(1 for f in os.listdir(c.cwd) if f.endswith((".stdout", ".stderr")))
            if data["files"] != 2 * n:
                raise RuntimeError(f"expected {2 * n} stdout/stderr files, found {data['files']}")
    return data["completed_s"], data
