"""Fixtures for end-to-end tests that run real `hq` processes over 127.0.0.1.

`HqEnv` starts servers and workers as subprocesses (output redirected to files in the test's
temporary directory, so a full pipe can never block them), runs client commands, and on teardown
stops every process it started -- by pid, SIGTERM first and SIGKILL after a grace period -- plus any
task pids that a test registered with `track_pid`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _hq_command() -> list[str]:
    # Prefer the console script of the interpreter running the tests (a pyenv shim on PATH costs
    # a second of shell start-up per call on a loaded machine), then whatever `hq` is on PATH.
    local = os.path.join(os.path.dirname(sys.executable), "hq")
    if os.path.isfile(local) and os.access(local, os.X_OK):
        return [local]
    found = shutil.which("hq")
    if found:
        return [found]
    return [sys.executable, "-c", "from hyperqueue.cli.main import main; main()"]


HQ = _hq_command()
DEFAULT_TIMEOUT = 20.0
_ENV_DROP = ("HQ_SERVER_DIR", "HQ_OUTPUT_MODE", "HQ_DEBUG", "HQ_JOB_ID", "HQ_TASK_ID",
             "HQ_INSTANCE_ID", "HQ_SUBMIT_DIR", "HQ_CPUS", "HQ")


def wait_until(fn, timeout: float = DEFAULT_TIMEOUT, interval: float = 0.1, message: str = ""):
    """Polls `fn` until it returns a truthy value (which is returned); fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"Timeout after {timeout}s waiting for {message or fn}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def parse_vertical(text: str) -> dict[str, str]:
    """Key/value rows of the (first) vertical table in `text`; continuation lines are joined
    with newlines."""
    rows: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.startswith("| "):
            if rows and line.startswith("+-") and key is not None:
                # a divider after rows ends the table
                pass
            continue
        cells = [c.strip() for c in line.strip()[1:-1].split(" | ")]
        if len(cells) != 2:
            continue
        k, v = cells
        if k:
            key = k
            rows[key] = v
        elif key is not None:
            rows[key] += "\n" + v
    return rows


def parse_vertical_keys(text: str) -> list[str]:
    keys = []
    for line in text.splitlines():
        if line.startswith("| "):
            k = line.strip()[1:-1].split(" | ")[0].strip()
            if k:
                keys.append(k)
    return keys


def parse_horizontal(text: str) -> list[dict[str, str]]:
    """Rows of the first horizontal table in `text` as dicts keyed by the header cells."""
    lines = text.splitlines()
    header = None
    rows: list[dict[str, str]] = []
    dividers = 0
    for line in lines:
        if line.startswith("+-"):
            dividers += 1
            if dividers == 3:
                break
            continue
        if not line.startswith("|"):
            if dividers:
                break
            continue
        cells = [c.strip() for c in line.strip()[1:-1].split(" | ")]
        if header is None:
            header = cells
        elif cells[0] == "" and rows:
            for h, c in zip(header, cells):
                if c:
                    rows[-1][h] += "\n" + c
        else:
            rows.append(dict(zip(header, cells)))
    return rows


class Process:
    """A long-running `hq` process (server or worker) with its output files."""

    def __init__(self, name: str, popen: subprocess.Popen, stdout: Path, stderr: Path):
        self.name = name
        self.popen = popen
        self.stdout_path = stdout
        self.stderr_path = stderr
        self.worker_id: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def poll(self):
        return self.popen.poll()

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} (pid {self.pid}) did not exit within {timeout}s; "
                                 f"stderr:\n{self.stderr()}") from None

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)


class HqEnv:
    def __init__(self, root: Path):
        self.root = root
        self.server_dir = root / "sd"
        self.work_dir = root / "work"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[Process] = []
        self.extra_pids: list[int] = []
        self.env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
        self._counter = 0

    # -- process management ------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], env=None, cwd=None) -> Process:
        self._counter += 1
        out = self.root / f"{name}-{self._counter}.out"
        err = self.root / f"{name}-{self._counter}.err"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            popen = subprocess.Popen(HQ + args, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                                     cwd=str(cwd or self.work_dir), env=env or self.env)
        proc = Process(name, popen, out, err)
        self.processes.append(proc)
        return proc

    def start_server(self, *args: str, server_dir=None, wait: bool = True,
                     timeout: float = DEFAULT_TIMEOUT) -> Process:
        sd = Path(server_dir or self.server_dir)
        proc = self._spawn("server", ["--server-dir", str(sd), "server", "start",
                                      "--host", "127.0.0.1", *args])
        if wait:
            access = sd / "hq-current" / "access.json"

            def ready():
                if proc.poll() is not None:
                    raise AssertionError(f"server exited with {proc.poll()}:\n{proc.stderr()}")
                text = proc.stdout()
                return access.exists() and "Journal path" in text and text.rstrip().endswith("+")

            wait_until(ready, timeout, 0.05, "server start")
        return proc

    def start_worker(self, *args: str, cpus="1", server_dir=None, wait: bool = True,
                     timeout: float = DEFAULT_TIMEOUT) -> Process:
        sd = Path(server_dir or self.server_dir)
        cpu_args = ["--cpus", str(cpus)] if cpus is not None else []
        if "--work-dir" not in args:
            # inside the test's tmp dir: a worker killed with SIGKILL cannot remove its scratch
            self._counter += 1
            cpu_args += ["--work-dir", str(self.root / f"worker-work-{self._counter}")]
        proc = self._spawn("worker", ["--server-dir", str(sd), "worker", "start",
                                      *cpu_args, *args])
        if wait:
            def ready():
                if proc.poll() is not None:
                    raise AssertionError(f"worker exited with {proc.poll()}:\n{proc.stderr()}")
                m = re.search(r"^\| Worker +\| (\d+) +\|", proc.stdout(), re.M)
                return m and proc.stdout().rstrip().endswith("+") and int(m.group(1))

            proc.worker_id = wait_until(ready, timeout, 0.05, "worker start")
            # and the server lists it as running
            wait_until(lambda: any(w["id"] == proc.worker_id and w["ended"] is None
                                   for w in self.command(["worker", "list"], as_json=True,
                                                         server_dir=sd)),
                       timeout, 0.1, f"worker {proc.worker_id} in worker list")
        return proc

    def kill(self, proc: Process, sig: int = signal.SIGKILL) -> None:
        proc.signal(sig)
        if sig == signal.SIGKILL:
            proc.wait(10)

    def track_pid(self, pid: int) -> None:
        """Registers a pid (e.g. of a task) to be killed on teardown if still alive."""
        self.extra_pids.append(pid)

    def close(self) -> None:
        for proc in self.processes:
            if proc.popen.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)  # in case a test stopped it
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for proc in self.processes:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.popen.wait(5)
        for pid in self.extra_pids:
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # -- client commands ---------------------------------------------------------------------

    def run(self, args, server_dir=None, cwd=None, env=None, timeout: float = 30.0,
            mode: str | None = None) -> subprocess.CompletedProcess:
        """Runs `hq --server-dir D [--output-mode M] args` and returns the CompletedProcess."""
        sd = Path(server_dir or self.server_dir)
        full = ["--server-dir", str(sd)] + (["--output-mode", mode] if mode else []) + list(args)
        run_env = dict(self.env)
        if env:
            run_env.update(env)
        return subprocess.run(HQ + full, capture_output=True, text=True, timeout=timeout,
                              cwd=str(cwd or self.work_dir), env=run_env,
                              stdin=subprocess.DEVNULL)

    def command(self, args, expect_fail: bool = False, as_json: bool = False,
                allow_stderr: bool = False, **kw):
        """Runs a client command, asserts its exit code (0, or 1 with `expect_fail`) and returns
        its stdout (parsed JSON with `as_json`). With `expect_fail` in cli mode, stdout and
        stderr are returned together (error messages go to stderr). A successful command must
        not write to stderr (callers merge the streams) unless `allow_stderr`."""
        res = self.run(args, mode="json" if as_json else kw.pop("mode", None), **kw)
        if expect_fail:
            assert res.returncode == 1, (
                f"hq {args} was expected to fail with 1, got {res.returncode}\n"
                f"stdout: {res.stdout}\nstderr: {res.stderr}")
            if as_json:
                return json.loads(res.stdout)
            return res.stdout + res.stderr
        assert res.returncode == 0, (
            f"hq {args} failed with {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}")
        assert allow_stderr or res.stderr == "", f"hq {args} wrote to stderr:\n{res.stderr}"
        if as_json:
            return json.loads(res.stdout)
        return res.stdout

    # -- conveniences ------------------------------------------------------------------------

    def submit(self, args, **kw) -> int:
        """`hq submit` in quiet mode; returns the job id."""
        out = self.command(["submit", *args], mode="quiet", **kw)
        return int(out.strip())

    def job_info(self, job_id, **kw) -> dict:
        return self.command(["job", "info", str(job_id)], as_json=True, **kw)[0]

    def job_state(self, job_id, **kw) -> str:
        jobs = self.command(["job", "list", "--all"], as_json=True, **kw)
        stats = None
        for j in jobs:
            if j["id"] == job_id:
                stats = j["task_stats"]
        assert stats is not None, f"job {job_id} not in job list"
        return stats

    def tasks(self, job_id, **kw) -> list[dict]:
        return self.command(["task", "list", str(job_id)], as_json=True, **kw)[str(job_id)]

    def wait_job(self, job_id, timeout: float = 30.0, **kw) -> None:
        self.command(["job", "wait", str(job_id)], timeout=timeout, **kw)

    def wait_task_state(self, job_id, task_id, state, timeout=DEFAULT_TIMEOUT, **kw) -> dict:
        def check():
            for t in self.tasks(job_id, **kw):
                if t["id"] == task_id and t["state"] == state:
                    return t
            return None

        return wait_until(check, timeout, 0.2, f"task {job_id}/{task_id} to be {state}")

    def worker_states(self, **kw) -> dict[int, str]:
        """`hq worker list --all` in cli mode as {id: State}."""
        out = self.command(["worker", "list", "--all"], **kw)
        return {int(r["ID"]): r["State"] for r in parse_horizontal(out)}


@pytest.fixture
def hq_env(tmp_path):
    env = HqEnv(tmp_path)
    try:
        yield env
    finally:
        env.close()


def read_file(path, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Waits until `path` exists and is non-empty, then returns its content."""
    p = Path(path)
    return wait_until(lambda: p.exists() and p.stat().st_size > 0 and p.read_text(), timeout,
                      0.05, f"file {p}")


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory):
    """One server for all tests of a module (tests must not depend on job/worker ids)."""
    env = HqEnv(tmp_path_factory.mktemp("shared"))
    try:
        env.start_server()
        yield env
    finally:
        env.close()
