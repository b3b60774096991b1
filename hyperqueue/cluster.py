"""`LocalCluster`: a server and workers on this machine for scripts, notebooks and tests
(upstream's `hyperqueue.cluster`).

Unlike upstream's in-process cluster, the server and each worker are real `hq server start` /
`hq worker start` processes of this interpreter, with encryption and authentication on (as any
server). Each runs in its own session (a Ctrl-C in the terminal reaches only the script, which
then stops them in order); `stop()`, leaving the `with` block, garbage collection of the
cluster and interpreter exit (atexit: also after an exception or a KeyboardInterrupt) stop
them: SIGTERM, SIGKILL after a grace period, then whatever is left in their process groups. On
Linux a cluster created in the main thread also has its processes killed by the kernel if the
script itself dies without running atexit handlers (SIGKILL; PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import List, Optional

START_TIMEOUT = 20.0
STOP_GRACE = 5.0
_HQ = [sys.executable, "-c", "from hyperqueue.cli.main import main; main()"]
# A worker started with the server imports its code while the server boots, then waits for the
# server's access record (argv[1]) before running `hq` with the rest of its arguments.
_WORKER_BOOT = """\
import os, sys, time
from hyperqueue.cli.main import main
import hyperqueue.worker.app
access, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while not os.path.exists(access) and time.monotonic() < deadline:
    time.sleep(0.005)
main(sys.argv[3:])
"""


@dataclasses.dataclass
class WorkerConfig:
    """A worker of a LocalCluster: `cores` CPUs (None: all CPUs of the machine)."""

    cores: Optional[int] = None


def _pdeathsig():
    """A preexec function making the child get SIGTERM when this thread's process dies."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not \
            threading.main_thread():
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec():  # in the child, between fork and exec: async-signal-safe calls only
        prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died already
            os._exit(1)

    return preexec


def _stop_processes(procs: List[subprocess.Popen], grace: float = STOP_GRACE) -> None:
    for p in procs:
        if p.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGTERM):
                try:
                    os.kill(p.pid, sig)
                except ProcessLookupError:
                    pass
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # its session's group: anything it left behind
        except (ProcessLookupError, PermissionError):
            pass


class _Resources:
    """What a cluster must release, kept apart from the cluster object so that a finalizer
    (weakref.finalize / atexit) can release it without keeping the cluster alive."""

    def __init__(self):
        self.procs: List[subprocess.Popen] = []
        self.temp_dir: Optional[str] = None
        self.logs = []
        self.lock = threading.Lock()

    def release(self) -> None:
        with self.lock:
            procs, self.procs = self.procs, []
        # Workers first (they end their tasks), then the server: no worker sees its server go.
        _stop_processes(procs[1:])
        _stop_processes(procs[:1])
        for f in self.logs:
            try:
                f.close()
            except OSError:
                pass
        self.logs = []
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None


class LocalCluster:
    """A HyperQueue server (and workers) on this machine, stopped by `stop()` or at the end of
    a `with` block::

        with LocalCluster(worker_config=WorkerConfig(cores=2)) as cluster:
            client = cluster.client()
            ...

    `server_dir`: where the server keeps its files (default: a temporary directory, removed
    on stop); `worker_config`: start one worker with it.
    """

    def __init__(self, server_dir: Optional[Path] = None,
                 worker_config: Optional[WorkerConfig] = None):
        self._res = _Resources()
        self._finalizer = weakref.finalize(self, self._res.release)
        atexit.register(self._finalizer)
        self._n_workers = 0
        try:
            if server_dir is None:
                self._res.temp_dir = tempfile.mkdtemp(prefix="hq-cluster-")
                server_dir = os.path.join(self._res.temp_dir, "server")
            self.server_dir = os.path.abspath(str(server_dir))
            self._log_dir = self._res.temp_dir or self.server_dir
            access = os.path.join(self.server_dir, "hq-current", "access.json")
            server = self._spawn("server", ["server", "start", "--host", "127.0.0.1"])
            # The worker's interpreter starts alongside the server's (see _WORKER_BOOT).
            worker = self._spawn_worker(worker_config, access) if worker_config else None
            self._wait(server, "server", lambda: os.path.exists(access))
            if worker is not None:
                self._wait_worker(*worker)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, args: List[str], boot: Optional[List[str]] = None
               ) -> subprocess.Popen:
        os.makedirs(self._log_dir, mode=0o700, exist_ok=True)
        log = open(os.path.join(self._log_dir, f"{name}.log"), "ab")
        self._res.logs.append(log)
        env = {k: v for k, v in os.environ.items()
               if k not in ("HQ_SERVER_DIR", "HQ_OUTPUT_MODE", "HQ_JOB_ID", "HQ_TASK_ID",
                            "HQ_INSTANCE_ID", "HQ_SUBMIT_DIR", "HQ_CPUS")}
        p = subprocess.Popen([*(boot or _HQ), "--server-dir", self.server_dir, *args],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             env=env, start_new_session=True, preexec_fn=_pdeathsig())
        with self._res.lock:
            self._res.procs.append(p)
        return p

    def _wait(self, p: subprocess.Popen, name: str, ready) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        delay = 0.002
        while not ready():
            if p.poll() is not None:
                raise RuntimeError(f"The {name} exited with {p.returncode} while starting: "
                                   f"{self._log_tail(name)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"The {name} did not start within {START_TIMEOUT} s: "
                                   f"{self._log_tail(name)}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)

    def _log_tail(self, name: str) -> str:
        try:
            return Path(self._log_dir, f"{name}.log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def start_worker(self, config: Optional[WorkerConfig] = None) -> None:
        """Starts a worker with `config` (default: all CPUs) and returns once the server lists
        it."""
        self._wait_worker(*self._spawn_worker(config if config is not None else WorkerConfig()))

    def _spawn_worker(self, config: WorkerConfig, access: Optional[str] = None):
        self._n_workers += 1
        name = f"worker{self._n_workers}"
        args = ["worker", "start", "--work-dir", os.path.join(self._log_dir, f"{name}-work")]
        if config.cores is not None:
            if isinstance(config.cores, bool) or not isinstance(config.cores, int) \
                    or config.cores < 1:
                raise ValueError(f"Invalid number of cores: {config.cores!r}")
            args += ["--cpus", str(config.cores)]
        boot = None
        if access is not None:
            boot = [sys.executable, "-c", _WORKER_BOOT, access, str(START_TIMEOUT)]
        return self._spawn(name, args, boot), name

    def _wait_worker(self, p: subprocess.Popen, name: str) -> None:
        from .client import calls
        from .client.blocking import BlockingClient

        with BlockingClient(self.server_dir) as client:
            self._wait(p, name, lambda: any(
                w["configuration"].get("pid") == p.pid and w["ended"] is None
                for w in client.call(calls.worker_list())))

    def client(self, **client_args):
        """A `Client` connected to this cluster (`client_args`: e.g. `python_env`)."""
        from .client.api import Client

        return Client(self.server_dir, **client_args)

    def stop(self) -> None:
        """Stops the workers and the server (waiting for them to exit); idempotent."""
        self._finalizer()
        atexit.unregister(self._finalizer)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.stop()
