"""hq's own processes for the workloads: a server and (optionally) one worker on the test suite's
`HqEnv` (tests/hqenv.py), every process in its own session and tracked by the run's `Ctx`, so
that an error or Ctrl-C anywhere stops them all by pid."""

from __future__ import annotations

import json
import os
import subprocess
import time

from hqenv import HqEnv


def _status_mb(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} for pid {pid}")


def vmrss_mb(pid: int) -> float:
    """The process's RSS now (VmRSS)."""
    return _status_mb(pid, "VmRSS")


def vmhwm_mb(pid: int) -> float:
    """The process's peak RSS so far (VmHWM)."""
    return _status_mb(pid, "VmHWM")


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class HqCluster:
    """An hq server (and optionally one worker) in their own processes in a temp dir.

    `worker_argv` replaces the `hq` command of the worker (a wrapper such as _frames_worker.py);
    start-up (until the server lists the worker) is not part of any timing.
    """

    READY_TIMEOUT = 60.0

    def __init__(self, ctx, name: str, *, worker: bool = True, zero_spawn: bool = False,
                 cpus: int = 2, server_args: tuple = (), worker_argv: list | None = None,
                 workers: int = 1):
        self.ctx = ctx
        self.dir = ctx.tmpdir(name)
        self.env = HqEnv(self.dir, hq=[ctx.hq], env=ctx.env, procs=ctx.procs,
                         work_dir=self.dir / "cwd")
        self.sd = self.env.server_dir
        self.cwd = self.env.work_dir
        self.want_worker = worker
        self.zero_spawn = zero_spawn
        self.cpus = cpus
        self.server_args = [str(a) for a in server_args]
        self.worker_argv = worker_argv
        self.server = None  # hqenv.Process
        self.worker = None
        self.n_workers = workers if worker else 0
        self.workers: list = []  # every worker process (self.worker is the first)

    def __enter__(self) -> "HqCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.server = self.env.start_server(*self.server_args, timeout=self.READY_TIMEOUT)
        # Ready means "has answered a client": the first connection's one-off costs (e.g. the
        # RSS that submit-1m measures) are paid before any figure is taken.
        self.hq("server", "info", timeout=self.READY_TIMEOUT)
        if self.want_worker:
            args = ["--zero-spawn"] if self.zero_spawn else []
            if self.n_workers == 1:
                self.worker = self.env.start_worker(*args, cpus=self.cpus,
                                                    timeout=self.READY_TIMEOUT,
                                                    command=self.worker_argv)
                self.workers = [self.worker]
                return
            # Many workers: all started at once, then one wait for the server to list them.
            for _ in range(self.n_workers):
                self.workers.append(self.env.start_worker(*args, cpus=self.cpus, wait=False,
                                                          command=self.worker_argv))
            self.worker = self.workers[0]
            deadline = time.monotonic() + self.READY_TIMEOUT + self.n_workers
            while True:
                out, _ = self.hq("--output-mode", "json", "worker", "list")
                running = sum(1 for w in json.loads(out) if w["ended"] is None)
                if running == self.n_workers:
                    break
                dead = [p for p in self.workers if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"{running} of {self.n_workers} workers registered"
                                       f"{f'; {len(dead)} exited' if dead else ''}")
                time.sleep(0.2)

    def hq(self, *args, cwd=None, timeout: float = 600.0, check: bool = True) -> tuple[str, float]:
        """Runs `hq --server-dir SD ARGS...`; returns (stdout, wall seconds)."""
        args = [str(a) for a in args]
        t0 = time.perf_counter()
        try:
            res = self.env.run(args, cwd=cwd, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"timed out after {timeout:.0f} s: hq {' '.join(args)}") from None
        dt = time.perf_counter() - t0
        if check and res.returncode != 0:
            raise RuntimeError(f"`hq {' '.join(args)}` exited with {res.returncode}: "
                               f"{(res.stderr or res.stdout).strip()[-400:]}")
        return res.stdout, dt

    def job_stats(self, job_id: int) -> dict:
        # `job list`: JSON `job info` lists every task (millions here) and the client builds
        # each one's view
        out, _ = self.hq("--output-mode", "json", "job", "list", "--all")
        return next(j["task_stats"] for j in json.loads(out) if j["id"] == job_id)

    def check_finished(self, job, n: int) -> int:
        """The job id (`job`: an id, or the quiet output of a submit) after checking that all
        `n` tasks of that job finished.

        Raises:
            RuntimeError: they did not.
        """
        job_id = job if isinstance(job, int) else int(job.strip().splitlines()[-1])
        stats = self.job_stats(job_id)
        if stats.get("finished") != n:
            raise RuntimeError(f"expected {n} finished tasks, got {stats}")
        return job_id

    def stop(self) -> None:
        # The workers first (a graceful stop: _frames_worker.py writes its counts at exit).
        if len(self.workers) > 1:
            self.ctx.procs.stop_many([p.popen for p in self.workers if p is not None], 10.0)
        else:
            self.env.stop(self.worker)
        self.workers = []
        self.env.stop(self.server)
        self.env.close()
        self.worker = self.server = None


def hq_true(ctx, n: int, *, files: bool, server_args: tuple = (),
            workers: int = 1) -> tuple[float, dict]:
    """N `true` tasks on a fresh server + `workers` 2-CPU workers, timed from `hq submit` to
    `hq job wait` returning; every task is then checked to have finished (and, with files,
    its 2 files)."""
    with HqCluster(ctx, "hq-true", server_args=server_args, workers=workers) as c:
        stdio = [] if files else ["--stdout", "none", "--stderr", "none"]
        t0 = time.perf_counter()
        out, t_submit = c.hq("--output-mode", "quiet", "submit", "--array", f"1-{n}", *stdio, "--", "true")
        _, t_wait = c.hq("job", "wait", "last")
        elapsed = time.perf_counter() - t0
        job_id = c.check_finished(out, n)
        extra = {"submit_s": t_submit, "wait_s": t_wait}
        if files:
            job_dir = c.cwd / f"job-{job_id}"
            extra["files"] = len(os.listdir(job_dir)) if job_dir.is_dir() else 0
            if extra["files"] != 2 * n:
                raise RuntimeError(f"expected {2 * n} stdout/stderr files, found {extra['files']}")
    return elapsed, extra


def hq_zero_spawn(ctx, n: int, worker_argv=None) -> tuple[float, dict]:
    """N tasks on a `--zero-spawn` worker (completed without a process), timed like hq_true."""
    with HqCluster(ctx, "hq-zero", zero_spawn=True, worker_argv=worker_argv) as c:
        t0 = time.perf_counter()
        out, t_submit = c.hq("--output-mode", "quiet", "submit", "--array", f"1-{n}", "--stdout", "none",
                             "--stderr", "none", "--", "true")
        _, t_wait = c.hq("job", "wait", "last")
        elapsed = time.perf_counter() - t0
        c.check_finished(out, n)
    return elapsed, {"submit_s": t_submit, "wait_s": t_wait}
