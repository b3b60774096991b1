"""Real `hq` processes for the end-to-end tests, the namespace cluster and the benchmarks.

One helper, three users: `tests/e2e/conftest.py` (the `hq_env` / `shared_env` fixtures re-export
everything below), `tests/cluster/netns_cluster.py` (the `hq` command) and `benchmarks/`
(`benchmarks/workloads/_hq.py` builds its server + worker on `HqEnv`).

* `hq_command()` finds the `hq` console script of the running interpreter (not a pyenv shim on
  PATH, which costs a shell and a second exec per call), then `hq` on PATH, then
  `python -c "...main()"`.
* `Processes` starts commands (optionally each in its own session), runs client commands to
  completion, and stops by pid what it started: SIGCONT + SIGTERM, SIGKILL after a grace period,
  then a sweep of the process group of those that got their own session.
* `HqEnv` starts servers and workers with their output redirected to files (a full pipe can never
  block them), waits until they are ready (the server's banner and access record; the worker's id
  in its banner and in `hq worker list`), runs client commands and on `close()` stops everything
  it started plus any pid registered with `track_pid`.

Standard library only (the benchmarks import it without pytest). Failures raise AssertionError
(what the e2e tests have always seen); they are raised explicitly, so `python -O` keeps them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

DEFAULT_TIMEOUT = 20.0
# Variables of an hq task or a user's shell that would change what a started `hq` does.
ENV_DROP = ("HQ_SERVER_DIR", "HQ_OUTPUT_MODE", "HQ_DEBUG", "HQ_JOB_ID", "HQ_TASK_ID",
            "HQ_INSTANCE_ID", "HQ_SUBMIT_DIR", "HQ_CPUS", "HQ")
_MAIN = "from hyperqueue.cli.main import main; main()"


def hq_script() -> str | None:
    """The `hq` console script next to the running interpreter, else the one on PATH."""
    for d in (os.path.dirname(sys.executable), sysconfig.get_path("scripts"),
              os.path.join(sys.prefix, "bin")):
        local = os.path.join(d, "hq")
        if os.path.isfile(local) and os.access(local, os.X_OK):
            return local
    return shutil.which("hq")


def hq_command() -> list[str]:
    """argv prefix that runs the hq CLI (see `hq_script`; last resort: this interpreter)."""
    script = hq_script()
    return [script] if script else [sys.executable, "-c", _MAIN]


HQ = hq_command()


def clean_env(base: dict | None = None, drop: tuple = (), **extra: str) -> dict:
    """`base` (default: this process's environment) without `ENV_DROP` and `drop`, plus `extra`."""
    base = os.environ if base is None else base
    env = {k: v for k, v in base.items() if k not in ENV_DROP and k not in drop}
    env.update(extra)
    return env


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


def tail(path: Path, n: int = 15) -> str:
    """The last `n` lines of a log file ("" if it cannot be read)."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


# -- processes ---------------------------------------------------------------------------------


class Processes:
    """Every process started through it, so that each is stopped by pid in the end.

    With `new_session=True` a process gets its own session (a Ctrl-C in the terminal reaches
    only the caller, which then stops them in order) and, when it is stopped, whatever is left
    in that session's process group (a descendant that outlived its parent) is killed too.
    """

    def __init__(self, env: dict | None = None, new_session: bool = False) -> None:
        self.env = env
        self.new_session = new_session
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()

    def start(self, argv, *, cwd=None, env: dict | None = None, stdout=subprocess.DEVNULL,
              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text: bool = False,
              new_session: bool | None = None) -> subprocess.Popen:
        own = self.new_session if new_session is None else new_session
        p = subprocess.Popen([str(a) for a in argv], cwd=None if cwd is None else str(cwd),
                             env=env or self.env or clean_env(), stdout=stdout, stderr=stderr,
                             stdin=stdin, text=text, start_new_session=own)
        p.hq_own_session = own
        with self._lock:
            self._procs.append(p)
        return p

    def run(self, argv, *, cwd=None, env: dict | None = None, timeout: float = 600.0,
            input: str | bytes | None = None, text: bool = True) -> subprocess.CompletedProcess:
        """Runs a command to completion with its output captured. On a timeout the process is
        stopped and subprocess.TimeoutExpired raised, like `subprocess.run`."""
        p = self.start(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL, text=text)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except BaseException:  # the timeout, Ctrl-C, ...: the command must not outlive the call
            self.stop(p, grace=1.0)
            raise
        self.forget(p)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def forget(self, p: subprocess.Popen) -> None:
        with self._lock:
            if p in self._procs:
                self._procs.remove(p)

    def stop(self, p: subprocess.Popen | None, grace: float = 10.0) -> None:
        """Stops one process: SIGCONT + SIGTERM, SIGKILL after `grace` s; then its own group."""
        if p is not None:
            self.stop_many([p], grace)

    def stop_all(self, grace: float = 5.0) -> None:
        """Stops everything still tracked, all at once (one shared grace period)."""
        with self._lock:
            procs = list(self._procs)
        self.stop_many(procs, grace)

    def stop_many(self, procs: list[subprocess.Popen], grace: float) -> None:
        procs = [p for p in procs if not getattr(p, "hq_stopped", False)]
        for p in procs:
            if p.poll() is None:
                _signal(p.pid, signal.SIGCONT)  # in case it was stopped (SIGSTOP)
                _signal(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(p.pid, signal.SIGKILL)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    print(f"WARNING: pid {p.pid} did not die after SIGKILL", file=sys.stderr)
            if getattr(p, "hq_own_session", False):
                try:
                    os.killpg(p.pid, signal.SIGKILL)  # its session's group: only its descendants
                except (ProcessLookupError, PermissionError):
                    pass
            for f in (p.stdin, p.stdout, p.stderr):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass
            p.hq_stopped = True
            self.forget(p)


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


# -- readiness ---------------------------------------------------------------------------------


def server_ready(proc: Process, access: Path) -> bool:
    """The server wrote its access record and printed its whole banner (a table ending in +)."""
    if proc.poll() is not None:
        raise AssertionError(f"server exited with {proc.poll()}:\n{proc.stderr()}")
    text = proc.stdout()
    return access.exists() and "Journal path" in text and text.rstrip().endswith("+")


_WORKER_ID = re.compile(r"^\| Worker +\| (\d+) +\|", re.M)


def worker_banner_id(proc: Process) -> int | None:
    """The worker id from the worker's complete start-up banner (None: not printed yet)."""
    if proc.poll() is not None:
        raise AssertionError(f"worker exited with {proc.poll()}:\n{proc.stderr()}")
    text = proc.stdout()
    m = _WORKER_ID.search(text)
    return int(m.group(1)) if m and text.rstrip().endswith("+") else None


# -- the environment ---------------------------------------------------------------------------


#: An INFO log record (upstream logs outcomes such as `Wait finished in ...` on stderr); a
#: successful command may write these, nothing else.
_INFO_RECORD = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO .*\n", re.M)


_RECORD = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (ERROR|WARN|INFO|DEBUG|TRACE) (.*)$")


def log_records(stderr: str) -> list[str]:
    """The log records of a command's stderr as `LEVEL message` (timestamps dropped); a line
    that is not a record fails."""
    out = []
    for line in stderr.splitlines():
        m = _RECORD.match(line)
        if m is None:
            raise AssertionError(f"not a log record: {line!r}\nstderr:\n{stderr}")
        out.append(f"{m.group(1)} {m.group(2)}")
    return out


class HqEnv:
    """Servers, workers and client commands under one directory `root`.

    `hq` overrides the command (default `HQ`), `env` the environment (default: this process's
    without `ENV_DROP`), `work_dir` the cwd of every process (default `root/work`); `procs` is
    the tracker to start processes through (default: a new one, with `new_session`; the
    benchmarks pass one that tracks the whole run).
    """

    def __init__(self, root: Path, *, hq: list[str] | None = None, env: dict | None = None,
                 work_dir: Path | None = None, procs: Processes | None = None,
                 new_session: bool = False):
        self.root = Path(root)
        self.server_dir = self.root / "sd"
        self.work_dir = Path(work_dir) if work_dir is not None else self.root / "work"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.hq = list(hq) if hq is not None else list(HQ)
        self.processes: list[Process] = []
        self.extra_pids: list[int] = []
        self.env = clean_env() if env is None else env
        self.procs = procs if procs is not None else Processes(new_session=new_session)
        self._counter = 0

    # -- process management ------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], env=None, cwd=None,
               command: list[str] | None = None) -> Process:
        self._counter += 1
        out = self.root / f"{name}-{self._counter}.out"
        err = self.root / f"{name}-{self._counter}.err"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            popen = self.procs.start([*(command or self.hq), *args], stdout=fo, stderr=fe,
                                     cwd=cwd or self.work_dir, env=env or self.env)
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
            wait_until(lambda: server_ready(proc, access), timeout, 0.05, "server start")
        return proc

    def start_worker(self, *args: str, cpus="1", server_dir=None, wait: bool = True,
                     timeout: float = DEFAULT_TIMEOUT, command: list[str] | None = None) -> Process:
        """`hq worker start --cpus CPUS --work-dir <in root> ARGS`; with `wait`, returns once the
        server lists the worker as running. `command` replaces the `hq` command (a wrapper)."""
        sd = Path(server_dir or self.server_dir)
        cpu_args = ["--cpus", str(cpus)] if cpus is not None else []
        if "--work-dir" not in args:
            # inside the test's tmp dir: a worker killed with SIGKILL cannot remove its scratch
            self._counter += 1
            cpu_args += ["--work-dir", str(self.root / f"worker-work-{self._counter}")]
        proc = self._spawn("worker", ["--server-dir", str(sd), "worker", "start",
                                      *cpu_args, *args], command=command)
        if wait:
            proc.worker_id = wait_until(lambda: worker_banner_id(proc), timeout, 0.05,
                                        "worker start")
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

    def stop(self, proc: Process | None, grace: float = 10.0) -> None:
        """Stops one process now (SIGTERM, SIGKILL after `grace` s)."""
        if proc is not None:
            self.procs.stop(proc.popen, grace)

    def track_pid(self, pid: int) -> None:
        """Registers a pid (e.g. of a task) to be killed on teardown if still alive."""
        self.extra_pids.append(pid)

    def close(self) -> None:
        """Stops every process this environment started (all at once, 5 s grace), then the
        registered pids. Safe to call more than once."""
        self.procs.stop_many([p.popen for p in self.processes], grace=5.0)
        for pid in self.extra_pids:
            if pid_alive(pid):
                _signal(pid, signal.SIGKILL)

    # -- client commands ---------------------------------------------------------------------

    def run(self, args, server_dir=None, cwd=None, env=None, timeout: float = 30.0,
            mode: str | None = None) -> subprocess.CompletedProcess:
        """Runs `hq --server-dir D [--output-mode M] args` and returns the CompletedProcess."""
        sd = Path(server_dir or self.server_dir)
        full = ["--server-dir", str(sd)] + (["--output-mode", mode] if mode else []) + list(args)
        run_env = dict(self.env)
        if env:
            run_env.update(env)
        return self.procs.run([*self.hq, *full], cwd=cwd or self.work_dir, env=run_env,
                              timeout=timeout)

    def command(self, args, expect_fail: bool = False, as_json: bool = False,
                allow_stderr: bool = False, **kw):
        """Runs a client command, asserts its exit code (0, or 1 with `expect_fail`) and returns
        its stdout (parsed JSON with `as_json`). With `expect_fail` in cli mode, stdout and
        stderr are returned together (error messages go to stderr). A successful command must
        not write to stderr (callers merge the streams) unless `allow_stderr`."""
        res = self.run(args, mode="json" if as_json else kw.pop("mode", None), **kw)
        if expect_fail:
            if res.returncode != 1:
                raise AssertionError(
                    f"hq {args} was expected to fail with 1, got {res.returncode}\n"
                    f"stdout: {res.stdout}\nstderr: {res.stderr}")
            if as_json:
                return json.loads(res.stdout)
            return res.stdout + res.stderr
        if res.returncode != 0:
            raise AssertionError(
                f"hq {args} failed with {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}")
        if not allow_stderr and _INFO_RECORD.sub("", res.stderr) != "":
            raise AssertionError(f"hq {args} wrote to stderr:\n{res.stderr}")
        if as_json:
            return json.loads(res.stdout)
        return res.stdout

    def logged(self, args, **kw) -> list[str]:
        """Runs a client command that must succeed and print nothing on stdout (cli mode);
        returns its log records as `LEVEL message` lines (upstream logs outcomes on stderr)."""
        res = self.run(args, **kw)
        if res.returncode != 0 or res.stdout != "":
            raise AssertionError(f"hq {args}: exit {res.returncode}\nstdout: {res.stdout}\n"
                                 f"stderr: {res.stderr}")
        return log_records(res.stderr)

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
        if stats is None:
            raise AssertionError(f"job {job_id} not in job list")
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


# -- output parsers ----------------------------------------------------------------------------


def parse_vertical(text: str) -> dict[str, str]:
    """Key/value rows of the (first) vertical table in `text`; continuation lines are joined
    with newlines."""
    rows: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.startswith("| "):
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


def read_file(path, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Waits until `path` exists and is non-empty, then returns its content."""
    p = Path(path)
    return wait_until(lambda: p.exists() and p.stat().st_size > 0 and p.read_text(), timeout,
                      0.05, f"file {p}")


@contextlib.contextmanager
def function_task_cluster(path: Path):
    """A server and a 2-CPU worker (`env.worker`) for Python function tasks: `python3` on the
    worker's PATH is this interpreter (not a pyenv shim, which falls back)."""
    bin_path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    e = HqEnv(path, env=clean_env(PATH=bin_path))
    try:
        e.start_server()
        e.worker = e.start_worker(cpus=2)
        yield e
    finally:
        e.close()
