#!/usr/bin/env python3
"""Side-by-side benchmarks of hq against upstream HyperQueue 0.27.0 and Dask.

    python benchmarks/run.py [--quick] [--only NAME,...] [--reps N] [--json OUT] [--no-references]

See benchmarks/README.md for what each workload measures and the caveats. In short: every
workload runs on hq and on each applicable reference in the same run, alternating systems per
repetition (A B C A B C ...); a table with medians, ranges, throughputs and hq/reference ratios
is printed, and every repetition is written as JSON (default benchmarks/results/latest.json).

The reference systems live in their own virtual environments under benchmarks/.venvs/ (created
on first use; a marker file records what was installed so later runs skip pip). Every process
the benchmark starts is stopped by pid when it ends, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENVS = HERE / ".venvs"
BUILD = VENVS / "_build"
RESULTS = HERE / "results"

UPSTREAM_VERSION = "0.27.0"
REFERENCES = {
    # name: (requirements, distributions whose versions are recorded, import check)
    "upstream": ([f"hyperqueue=={UPSTREAM_VERSION}"], ["hyperqueue"],
                 "from hyperqueue import LocalCluster, Client, Job; from hyperqueue.ffi.cluster import Cluster"),
    "dask": (["dask[distributed]"], ["dask", "distributed"],
             "from distributed import Client, LocalCluster"),
}

WORKLOADS = ["spawn-loop", "true-nooutput", "true-files", "zero-spawn", "submit-1m",
             "job-list-1000", "crypto", "journal", "cluster-netns"]
NEEDS = {"true-nooutput": ("upstream", "dask"), "true-files": ("upstream",),
         "zero-spawn": ("dask",)}

# Sizes: (quick, full).
SIZES = {
    "spawn-loop": (1_000, 10_000),
    "true-nooutput": (1_000, 10_000),
    "true-files": (1_000, 10_000),
    "zero-spawn": (10_000, 100_000),
    # Dask's scheduler handles a few hundred to a few thousand no-op tasks per second here;
    # 100,000 of them three times would take most of an hour on a busy 2-core machine.
    "zero-spawn-dask": (2_000, 20_000),
    "submit-1m": (100_000, 1_000_000),
    "job-list-jobs": (1_000, 1_000),
    "job-list-calls": (10, 20),
    "journal": (1_000, 10_000),
    "cluster-netns": (1_000, 10_000),
}

HQ_ENV_DROP = ("HQ_SERVER_DIR", "HQ_OUTPUT_MODE", "HQ_DEBUG", "PYTHONPATH", "PYTHONHOME")


def log(msg: str = "") -> None:
    print(msg, flush=True)


def warn(msg: str) -> None:
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return [float("nan")] * 3


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in HQ_ENV_DROP}
    env.update(extra)
    return env


# -- processes ---------------------------------------------------------------------------------


class Procs:
    """Every process the benchmark starts, so that all of them are stopped by pid at the end.

    Processes get their own session (Ctrl-C in the terminal reaches only this script, which
    then stops them in order). A leftover member of such a session (a descendant that outlived
    its parent, e.g. a Dask worker) is swept with a kill of that session's process group.
    """

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()

    def start(self, argv: list[str], *, cwd: str | Path | None = None, env: dict | None = None,
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
              text: bool = False) -> subprocess.Popen:
        p = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=env if env is not None else clean_env(),
                             stdout=stdout, stderr=stderr, stdin=stdin, text=text,
                             start_new_session=True)
        with self._lock:
            self._procs.append(p)
        return p

    def run(self, argv: list[str], *, cwd=None, env=None, timeout: float = 600.0,
            stdin_data: bytes | None = None) -> tuple[int, str, str, float]:
        """Runs a command to completion; returns (returncode, stdout, stderr, wall seconds)."""
        t0 = time.perf_counter()
        p = self.start(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL)
        try:
            out, err = p.communicate(stdin_data, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(p)
            raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(map(str, argv))}") from None
        elapsed = time.perf_counter() - t0
        self._forget(p)
        return p.returncode, out.decode(errors="replace"), err.decode(errors="replace"), elapsed

    def _forget(self, p: subprocess.Popen) -> None:
        with self._lock:
            if p in self._procs:
                self._procs.remove(p)

    def stop(self, p: subprocess.Popen | None, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; then sweep the process's own group."""
        if p is None:
            return
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    warn(f"pid {p.pid} did not die after SIGKILL")
        try:
            os.killpg(p.pid, signal.SIGKILL)  # its session's group: only our descendants
        except (ProcessLookupError, PermissionError):
            pass
        for f in (p.stdin, p.stdout, p.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self._forget(p)

    def stop_all(self) -> None:
        with self._lock:
            procs = list(reversed(self._procs))
        for p in procs:
            self.stop(p, grace=5.0)


# -- results -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Series:
    """The repetitions of one metric of one workload on one system."""

    workload: str
    metric: str
    system: str
    unit: str = "s"  # "s" (a duration; throughput = n / value), "MB" or "%"
    n: int | None = None  # items per repetition
    per: str = "tasks/s"
    role: str = "system"  # "primary" (hq), "reference" (gets a ratio), "baseline" (no ratio)
    status: str = "ok"  # ok | unavailable | error | n/a
    note: str = ""
    target: tuple | None = None  # ("value"|"throughput", "<="|">=", number, text)
    values: list = dataclasses.field(default_factory=list)
    loads: list = dataclasses.field(default_factory=list)
    extra: list = dataclasses.field(default_factory=list)
    failures: list = dataclasses.field(default_factory=list)  # [{"rep": r, "error": text}]

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def throughput(self) -> float | None:
        m = self.median
        if self.unit != "s" or not self.n or not m:
            return None
        return self.n / m

    def target_met(self) -> bool | None:
        if self.target is None or self.median is None:
            return None
        kind, op, bound, _ = self.target
        value = self.throughput() if kind == "throughput" else self.median
        if value is None:
            return None
        return value <= bound if op == "<=" else value >= bound


class Results:
    def __init__(self) -> None:
        self.series: list[Series] = []
        self.notes: list[str] = []

    def add(self, s: Series) -> Series:
        self.series.append(s)
        return s

    def note(self, text: str) -> None:
        self.notes.append(text)
        log(f"  note: {text}")


def alternate(reps: int, runs: list[tuple[list[Series], callable]], label: str) -> None:
    """Runs each system once per repetition, in turn (A B C A B C ...).

    Each callable returns {metric: value} (or a single value for a one-series system) and
    optionally an `extra` dict: `(values, extra)`. A failed repetition is recorded and the
    system is tried again in the next one (the machine is shared: a failure can be transient);
    after two failures in a row without any success it is given up. A system with no successful
    repetition ends with status "error".
    """
    for r in range(reps):
        for series, fn in runs:
            lead = series[0]
            if lead.status != "ok":
                continue
            if len(lead.failures) >= 2 and not lead.values and lead.failures[-1]["rep"] == r:
                lead.status = "error"
                continue
            load = loadavg()[0]
            t0 = time.perf_counter()
            try:
                out = fn(r)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - a broken system must not stop the run
                msg = f"{type(e).__name__}: {e}".strip()
                for s in series:
                    s.failures.append({"rep": r + 1, "error": msg[:1000]})
                log(f"  [{label}] {lead.system}: rep {r + 1} FAILED: {msg[:300]}")
                continue
            values, extra = out if isinstance(out, tuple) else (out, {})
            if not isinstance(values, dict):
                values = {lead.metric: values}
            for s in series:
                s.values.append(values[s.metric])
                s.loads.append(load)
                s.extra.append(extra)
            shown = ", ".join(f"{s.metric}={fmt_value(s, values[s.metric])}" for s in series)
            log(f"  [{label}] {lead.system}: rep {r + 1}/{reps}: {shown}"
                f"  (load {load:.2f}, {time.perf_counter() - t0:.1f} s)")
    for series, _fn in runs:
        for s in series:
            if s.failures and not s.values:
                s.status = "error"
                s.note = " / ".join(s.failures[-1]["error"].splitlines())[:300]


# -- formatting ------------------------------------------------------------------------------


def fmt_seconds(v: float) -> str:
    if v >= 100:
        return f"{v:.0f} s"
    if v >= 1:
        return f"{v:.2f} s"
    if v >= 1e-3:
        return f"{v * 1e3:.1f} ms"
    return f"{v * 1e6:.2f} µs"


def fmt_value(s: Series, v: float) -> str:
    if s.unit == "s":
        return fmt_seconds(v)
    if s.unit == "%":
        return f"{v:.2f} %"
    return f"{v:.2f} {s.unit}" if abs(v) < 10 else f"{v:.1f} {s.unit}"


def fmt_rate(v: float | None, per: str) -> str:
    if v is None:
        return ""
    if v >= 1e6:
        return f"{v / 1e6:.2f} M {per}"
    if v >= 100:
        return f"{v:,.0f} {per}"
    return f"{v:.1f} {per}"


def fmt_target(s: Series, quick: bool) -> str:
    if s.target is None:
        return ""
    text = s.target[3]
    met = s.target_met()
    if met is None:
        return text
    if quick and s.workload == "submit-1m":
        return f"{text} (full N only)"
    return f"{text} {'ok' if met else 'MISSED'}"


def ratio_for(s: Series, primary: Series | None) -> str:
    """hq vs this reference: > 1 means hq is better (faster, or smaller for sizes)."""
    if s.role != "reference" or primary is None or primary.status != "ok" or s.status != "ok":
        return ""
    if not primary.values or not s.values:
        return ""
    if s.unit == "s":
        a, b = primary.throughput(), s.throughput()
        if a is None or b is None:
            a, b = 1 / primary.median, 1 / s.median  # per-op latency: fewer seconds is better
        return f"{a / b:.2f}x"
    if s.median and primary.median:
        return f"{s.median / primary.median:.2f}x"
    return ""


def render_table(results: Results, quick: bool) -> str:
    header = ["workload", "system", "n", "median", "min-max", "throughput", "hq/ref",
              "target", "load"]
    rows = []
    for s in results.series:
        if s.status == "skipped":
            continue
        name = s.workload if s.metric in ("", "wall") else f"{s.workload}: {s.metric}"
        system = s.system
        if s.failures and s.values:
            system += f" ({len(s.failures)} rep(s) failed)"
        if s.status != "ok" or not s.values:
            reason = s.note or s.status
            rows.append([name, system, f"{s.n:,}" if s.n else "", s.status, "", "", "", reason, ""])
            continue
        primary = next((p for p in results.series if p.workload == s.workload and p.metric == s.metric
                        and p.role == "primary"), None)
        lo, hi = min(s.values), max(s.values)
        loads = f"{min(s.loads):.1f}-{max(s.loads):.1f}" if s.loads else ""
        rows.append([name, system, f"{s.n:,}" if s.n else "", fmt_value(s, s.median),
                     f"{fmt_value(s, lo)} - {fmt_value(s, hi)}" if len(s.values) > 1 else "",
                     fmt_rate(s.throughput(), s.per), ratio_for(s, primary),
                     fmt_target(s, quick), loads])
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    # The reason of an unavailable row can be long: let the last columns run on.
    widths = [min(w, 48) for w in widths]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


# -- machine -----------------------------------------------------------------------------------


def machine_info() -> dict:
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_before": loadavg(),
    }
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["mem_total_kb"] = int(line.split()[1])
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        info["git_commit"] = commit or None
        info["git_dirty"] = bool(dirty)
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    try:
        import hyperqueue.version as hqv

        info["hq_version"] = hqv.__version__
        info["hq_package"] = os.path.dirname(hqv.__file__)
    except Exception as e:  # noqa: BLE001
        info["hq_version"] = f"unimportable: {e}"
    return info


def find_hq() -> str:
    """The real console script (not a pyenv shim, which would add a shell and a second exec)."""
    candidates = [Path(sysconfig.get_path("scripts")) / "hq", Path(sys.prefix) / "bin" / "hq"]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which("hq")
    if found is None:
        raise SystemExit("cannot find the `hq` console script; install the package (pip install -e .)")
    warn(f"using {found} (not next to {sys.executable})")
    return found


# -- reference environments ----------------------------------------------------------------------


@dataclasses.dataclass
class Reference:
    name: str
    python: str | None = None
    versions: dict = dataclasses.field(default_factory=dict)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.python is not None

    @property
    def label(self) -> str:
        if self.name == "upstream":
            return f"upstream {self.versions.get('hyperqueue', UPSTREAM_VERSION)}"
        if self.name == "dask":
            return f"dask {self.versions.get('distributed', '')}".strip()
        return self.name


def ensure_reference(name: str) -> Reference:
    """Creates benchmarks/.venvs/NAME with its packages unless a marker says it is there."""
    requirements, dists, check = REFERENCES[name]
    venv = VENVS / name
    py = venv / "bin" / "python"
    marker = venv / ".hq-bench-installed.json"
    want = {"requirements": requirements, "base_python": sys.version.split()[0]}
    ref = Reference(name)
    if marker.is_file() and py.exists():
        try:
            data = json.loads(marker.read_text())
            if all(data.get(k) == v for k, v in want.items()):
                ref.python, ref.versions = str(py), data.get("versions", {})
                log(f"  {name}: present ({', '.join(f'{k} {v}' for k, v in ref.versions.items())})")
                return ref
        except (OSError, ValueError):
            pass
    log(f"  {name}: creating {venv} and installing {' '.join(requirements)} ...")
    t0 = time.perf_counter()
    try:
        VENVS.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"python -m venv failed: {r.stderr.strip()[-500:]}")
        r = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                            *requirements], capture_output=True, text=True, timeout=1200,
                           env=clean_env())
        if r.returncode != 0:
            lines = [ln for ln in r.stderr.splitlines() if "is ignored" not in ln]
            raise RuntimeError("pip install failed: " + " ".join(lines)[-600:])
        r = subprocess.run([str(py), "-c", check], capture_output=True, text=True, timeout=120,
                           env=clean_env(), cwd=tempfile.gettempdir())
        if r.returncode != 0:
            raise RuntimeError(f"import check failed: {r.stderr.strip()[-500:]}")
        r = subprocess.run([str(py), "-c",
                            "import importlib.metadata as m, json, sys; "
                            "print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))", *dists],
                           capture_output=True, text=True, timeout=60, env=clean_env())
        versions = json.loads(r.stdout)
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
        ref.reason = f"could not install: {e}"
        warn(f"{name}: {ref.reason}")
        return ref
    marker.write_text(json.dumps({**want, "versions": versions,
                                  "installed_at": datetime.datetime.now().isoformat(timespec="seconds")},
                                 indent=2))
    ref.python, ref.versions = str(py), versions
    log(f"  {name}: installed in {time.perf_counter() - t0:.0f} s ({versions})")
    return ref


def _source_stamp() -> str:
    """A hash of the package sources and pyproject: the clean install is redone when it changes."""
    import hashlib

    h = hashlib.sha256()
    root = HERE.parent
    for path in sorted([root / "pyproject.toml", *(root / "hyperqueue").rglob("*.py")]):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def ensure_clean_hq() -> tuple[str, str] | None:
    """benchmarks/.venvs/hq-clean: this checkout installed the way a user installs it
    (`pip install .`, not editable) in a venv that does not see the host's site-packages or its
    `.pth` start-up hooks. Returns (python, hq script), or None if it cannot be installed."""
    venv = VENVS / "hq-clean"
    py, script = venv / "bin" / "python", venv / "bin" / "hq"
    marker = venv / ".hq-bench-installed.json"
    stamp = _source_stamp()
    try:
        if marker.is_file() and script.exists() and json.loads(marker.read_text()).get("stamp") == stamp:
            return str(py), str(script)
    except (OSError, ValueError):
        pass
    log(f"  hq-clean: installing this checkout into {venv} ...")
    try:
        fresh = not py.exists()
        if fresh:
            VENVS.mkdir(parents=True, exist_ok=True)
            r = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)],
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError(f"python -m venv failed: {r.stderr.strip()[-300:]}")
        # Dependencies once; the package itself again whenever the sources changed.
        args = [str(HERE.parent)] if fresh else ["--force-reinstall", "--no-deps", str(HERE.parent)]
        r = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                            *args], capture_output=True, text=True, timeout=900, env=clean_env())
        if r.returncode != 0:
            raise RuntimeError("pip install failed: " + r.stderr.strip()[-400:])
        r = subprocess.run([str(py), "-m", "compileall", "-q", str(venv / "lib")],
                           capture_output=True, text=True, timeout=300)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        warn(f"hq-clean: {e}")
        return None
    marker.write_text(json.dumps({"stamp": stamp}))
    return str(py), str(script)


# -- hq processes ------------------------------------------------------------------------------


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def vmrss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class HqCluster:
    """An hq server (and optionally one worker) in their own processes in a temp dir."""

    def __init__(self, ctx: "Ctx", name: str, *, worker: bool = True, zero_spawn: bool = False,
                 cpus: int = 2, server_args: tuple = (), worker_argv: list | None = None):
        self.ctx = ctx
        self.dir = ctx.tmpdir(name)
        self.sd = self.dir / "sd"
        self.cwd = self.dir / "cwd"
        self.cwd.mkdir()
        self.want_worker = worker
        self.zero_spawn = zero_spawn
        self.cpus = cpus
        self.server_args = list(server_args)
        self.worker_argv = worker_argv
        self.server: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None

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
        ctx = self.ctx
        self.server_log = self.dir / "server.log"
        self.server = ctx.procs.start(
            [ctx.hq, "--server-dir", self.sd, "server", "start", "--host", "127.0.0.1", *self.server_args],
            cwd=self.cwd, stdout=open(self.server_log, "wb"), stderr=subprocess.STDOUT)
        self._wait(lambda: self._request("ServerInfoRequest") is not None, self.server, self.server_log,
                   "server")
        if self.want_worker:
            self.worker_log = self.dir / "worker.log"
            argv = self.worker_argv or [ctx.hq]
            # An explicit work dir keeps the worker's files inside our temp dir.
            argv = [*argv, "--server-dir", self.sd, "worker", "start", "--cpus", str(self.cpus),
                    "--work-dir", self.dir / "worker-work"]
            if self.zero_spawn:
                argv.append("--zero-spawn")
            self.worker = ctx.procs.start(argv, cwd=self.cwd, stdout=open(self.worker_log, "wb"),
                                          stderr=subprocess.STDOUT)
            self._wait(lambda: len(self._request("WorkerListRequest").workers) >= 1, self.worker,
                       self.worker_log, "worker")

    def _request(self, kind: str):
        from hyperqueue.client.blocking import BlockingClient
        from hyperqueue.protocol import messages as m

        msg = m.ServerInfoRequest() if kind == "ServerInfoRequest" else m.WorkerListRequest(False)
        with BlockingClient(str(self.sd), timeout=5) as c:
            return c.request(msg, timeout=10)

    def _wait(self, ready, proc, logfile: Path, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"hq {what} exited with {proc.returncode}:\n{_tail(logfile)}")
            try:
                if ready():
                    return
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - not up yet
                last = e
            time.sleep(0.05)
        raise RuntimeError(f"hq {what} not ready after {timeout:.0f} s ({last}):\n{_tail(logfile)}")

    def hq(self, *args, cwd=None, timeout: float = 600.0, check: bool = True) -> tuple[str, float]:
        """Runs `hq --server-dir SD ARGS...`; returns (stdout, wall seconds)."""
        rc, out, err, dt = self.ctx.procs.run([self.ctx.hq, "--server-dir", self.sd, *args],
                                              cwd=cwd or self.cwd, timeout=timeout)
        if check and rc != 0:
            raise RuntimeError(f"`hq {' '.join(map(str, args))}` exited with {rc}: {(err or out).strip()[-400:]}")
        return out, dt

    def job_stats(self, job_id: int) -> dict:
        out, _ = self.hq("--output-mode", "json", "job", "info", str(job_id))
        return json.loads(out)[0]["info"]["task_stats"]

    def stop(self) -> None:
        self.ctx.procs.stop(self.worker)
        self.ctx.procs.stop(self.server)
        self.worker = self.server = None


# -- upstream processes --------------------------------------------------------------------------


class UpstreamCluster:
    """Upstream's server in one process and its worker in another (see _upstream.py)."""

    def __init__(self, ctx: "Ctx", name: str, cores: int = 2):
        self.ctx = ctx
        self.dir = ctx.tmpdir(name)
        self.sd = self.dir / "server"
        self.cwd = self.dir / "cwd"
        self.cwd.mkdir()
        self.cores = cores
        self.procs: list[subprocess.Popen] = []
        self.env = clean_env(TQDM_DISABLE="1", RUST_BACKTRACE="0")

    def __enter__(self) -> "UpstreamCluster":
        try:
            self._spawn("server", [str(self.sd)])
            self._spawn("worker", [str(self.sd), str(self.dir / "worker-own"), str(self.cores)])
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, mode: str, args: list[str]) -> None:
        logfile = self.dir / f"{mode}.log"
        p = self.ctx.procs.start([self.ctx.refs["upstream"].python, HERE / "_upstream.py", mode, *args],
                                 cwd=self.dir, env=self.env, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=open(logfile, "wb"))
        self.procs.append(p)
        ready: dict = {}

        def drain():
            with open(self.dir / f"{mode}.stdout", "wb") as sink:
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
                raise RuntimeError(f"upstream {mode} exited with {p.returncode}: {_tail(logfile, 8)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"upstream {mode} not ready after 60 s: {_tail(logfile, 8)}")
            time.sleep(0.02)

    def client(self, n: int, stdio: str) -> dict:
        rc, out, err, _ = self.ctx.procs.run(
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


# -- the run context -----------------------------------------------------------------------------


class Ctx:
    def __init__(self, args) -> None:
        self.args = args
        self.quick = args.quick
        self.reps = args.reps
        self.procs = Procs()
        self.results = Results()
        self.refs: dict[str, Reference] = {}
        self.hq = find_hq()
        self.root = Path(tempfile.mkdtemp(prefix="hq-bench-"))
        self._n = 0
        self.shared: dict = {}  # figures one workload passes to another (zero-spawn -> crypto)

    def size(self, key: str) -> int:
        quick, full = SIZES[key]
        return quick if self.quick else full

    def tmpdir(self, name: str) -> Path:
        self._n += 1
        d = self.root / f"{self._n:03d}-{name}"
        d.mkdir(parents=True)
        return d

    def ref(self, name: str) -> Reference | None:
        return self.refs.get(name)

    def ref_series(self, workload: str, name: str, metric: str = "wall", **kw) -> Series:
        """A reference's series: unavailable (with the reason) when it is not installed."""
        ref = self.refs.get(name)
        label = ref.label if ref else name
        s = Series(workload, metric, label, role="reference", **kw)
        if ref is None:
            s.status, s.note = "skipped", "--no-references"
        elif not ref.ok:
            s.status, s.note = "unavailable", ref.reason
        return s

    def cleanup(self) -> None:
        self.procs.stop_all()
        shutil.rmtree(self.root, ignore_errors=True)


# -- workloads ---------------------------------------------------------------------------------


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


def wl_spawn_loop(ctx: Ctx) -> None:
    n = ctx.size("spawn-loop")
    res = ctx.results
    exe, how = compile_spawnloop()
    runs = []
    c_series = res.add(Series("spawn-loop", "wall", "C posix_spawn, 2 in flight", n=n, per="spawns/s",
                              role="baseline"))
    if exe:
        def c_loop(_r):
            rc, out, err, _ = ctx.procs.run([exe, n, 2], timeout=600)
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
        rc, out, err, _ = ctx.procs.run([sys.executable, "-S", "-c", PY_SPAWN_LOOP, n, 2], timeout=900)
        data = json.loads(out)
        if rc != 0 or data["failed"]:
            raise RuntimeError(f"python spawn loop rc={rc} {err[-200:]}")
        return data["seconds"]

    runs.append(([py_series], py_loop))
    alternate(ctx.reps, runs, "spawn-loop")
    best = max((s.throughput() or 0) for s in (c_series, py_series))
    if best:
        ctx.shared["spawn_limit"] = best


def _hq_true(ctx: Ctx, n: int, *, files: bool, server_args: tuple = ()) -> tuple[float, dict]:
    with HqCluster(ctx, "hq-true", server_args=server_args) as c:
        stdio = [] if files else ["--stdout", "none", "--stderr", "none"]
        t0 = time.perf_counter()
        out, t_submit = c.hq("--output-mode", "quiet", "submit", "--array", f"1-{n}", *stdio, "--", "true")
        _, t_wait = c.hq("job", "wait", "last")
        elapsed = time.perf_counter() - t0
        job_id = int(out.strip().splitlines()[-1])
        stats = c.job_stats(job_id)
        if stats.get("finished") != n:
            raise RuntimeError(f"expected {n} finished tasks, got {stats}")
        extra = {"submit_s": t_submit, "wait_s": t_wait}
        if files:
            job_dir = c.cwd / f"job-{job_id}"
            extra["files"] = len(os.listdir(job_dir)) if job_dir.is_dir() else 0
            if extra["files"] != 2 * n:
                raise RuntimeError(f"expected {2 * n} stdout/stderr files, found {extra['files']}")
    return elapsed, extra


def _upstream_true(ctx: Ctx, n: int, *, files: bool) -> tuple[float, dict]:
    with UpstreamCluster(ctx, "upstream-true") as c:
        data = c.client(n, "default" if files else "none")
        if data["failed_jobs"]:
            raise RuntimeError(f"upstream reported failed jobs {data['failed_jobs']}")
        if files:
            data["files"] = sum(1 for f in os.listdir(c.cwd) if f.endswith((".stdout", ".stderr")))
            if data["files"] != 2 * n:
                raise RuntimeError(f"expected {2 * n} stdout/stderr files, found {data['files']}")
    return data["completed_s"], data


def _dask_run(ctx: Ctx, mode: str, n: int) -> tuple[float, dict]:
    d = ctx.tmpdir(f"dask-{mode}")
    rc, out, err, _ = ctx.procs.run([ctx.refs["dask"].python, HERE / "_dask.py", mode, n], cwd=d,
                                    env=clean_env(), timeout=3600)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if rc != 0 or not lines:
        raise RuntimeError(f"dask driver exited with {rc}: {err.strip()[-400:]}")
    data = json.loads(lines[-1])
    return data["elapsed_s"], data


def wl_true(ctx: Ctx, files: bool) -> None:
    name = "true-files" if files else "true-nooutput"
    n = ctx.size(name)
    res = ctx.results
    hq = res.add(Series(name, "wall", "hq", n=n, role="primary"))
    runs = [([hq], lambda _r: _hq_true(ctx, n, files=files))]
    up = res.add(ctx.ref_series(name, "upstream", n=n))
    if up.status == "ok":
        runs.append(([up], lambda _r: _upstream_true(ctx, n, files=files)))
    if not files:
        dk = res.add(ctx.ref_series(name, "dask", n=n))
        if dk.status == "ok":
            runs.append(([dk], lambda _r: _dask_run(ctx, "true", n)))
    else:
        res.add(Series(name, "wall", "dask", n=n, role="reference", status="n/a",
                       note="n/a: Dask has no per-task output files"))
    alternate(ctx.reps, runs, name)
    limit = ctx.shared.get("spawn_limit")
    if limit and hq.throughput():
        res.note(f"{name}: hq reaches {100 * hq.throughput() / limit:.0f}% of the spawn-loop limit "
                 f"({limit:,.0f} spawns/s measured in this run)")


def _hq_zero_spawn(ctx: Ctx, n: int, worker_argv=None) -> tuple[float, dict]:
    with HqCluster(ctx, "hq-zero", zero_spawn=True, worker_argv=worker_argv) as c:
        t0 = time.perf_counter()
        out, t_submit = c.hq("--output-mode", "quiet", "submit", "--array", f"1-{n}", "--stdout", "none",
                             "--stderr", "none", "--", "true")
        _, t_wait = c.hq("job", "wait", "last")
        elapsed = time.perf_counter() - t0
        job_id = int(out.strip().splitlines()[-1])
        stats = c.job_stats(job_id)
        if stats.get("finished") != n:
            raise RuntimeError(f"expected {n} finished tasks, got {stats}")
    return elapsed, {"submit_s": t_submit, "wait_s": t_wait}


def wl_zero_spawn(ctx: Ctx) -> None:
    n = ctx.size("zero-spawn")
    nd = ctx.size("zero-spawn-dask")
    res = ctx.results
    hq = res.add(Series("zero-spawn", "wall", "hq --zero-spawn", n=n, role="primary",
                        target=("throughput", ">=", 20_000, ">= 20,000 tasks/s")))
    runs = [([hq], lambda _r: _hq_zero_spawn(ctx, n))]
    dk = res.add(ctx.ref_series("zero-spawn", "dask", n=nd))
    if dk.status == "ok":
        dk.system += " (no-op fn)"
        runs.append(([dk], lambda _r: _dask_run(ctx, "noop", nd)))
    res.add(Series("zero-spawn", "wall", f"upstream {UPSTREAM_VERSION}", n=n, role="reference",
                   status="n/a", note="n/a: upstream has no zero-spawn mode"))
    alternate(ctx.reps, runs, "zero-spawn")
    if hq.throughput():
        ctx.shared["zero_spawn_tps"] = hq.throughput()
    if dk.status == "ok" and nd != n:
        res.note(f"zero-spawn: Dask ran {nd:,} tasks per repetition (hq {n:,}); the ratio compares "
                 "throughputs")


def wl_submit_1m(ctx: Ctx) -> None:
    n = ctx.size("submit-1m")
    res = ctx.results
    sub = res.add(Series("submit-1m", "submit", "hq", n=n, role="primary",
                         target=("value", "<=", 1.0, "<= 1 s")))
    rss = res.add(Series("submit-1m", "server RSS growth", "hq", unit="MB", role="primary",
                         target=("value", "<=", 150.0, "<= 150 MB")))
    info = res.add(Series("submit-1m", "job info", "hq", n=1, per="calls/s", role="primary",
                          target=("value", "<=", 0.5, "<= 0.5 s")))
    up = ctx.refs.get("upstream")
    reason = "skipped (--no-references)"
    if up is not None:
        reason = "n/a: the PyPI package ships no `hq` CLI binary"
        if up.ok and (Path(up.python).parent / "hq").exists():
            reason = "n/a: upstream CLI found but this comparison is not implemented"
    res.add(Series("submit-1m", "submit", f"upstream {UPSTREAM_VERSION}", n=n, role="reference",
                   status="n/a", note=reason))

    def one(_r):
        with HqCluster(ctx, "hq-submit", worker=False) as c:
            pid = c.server.pid
            before = vmrss_mb(pid)
            out, t_submit = c.hq("--output-mode", "quiet", "submit", "--array", f"1-{n}", "--", "true")
            job_id = int(out.strip().splitlines()[-1])
            after_submit = vmrss_mb(pid)
            infos = []
            for _ in range(3):
                _, dt = c.hq("job", "info", str(job_id))
                infos.append(dt)
            after = max(after_submit, vmrss_mb(pid))
            stats = c.job_stats(job_id)
            if stats.get("waiting") != n:
                raise RuntimeError(f"expected {n} waiting tasks, got {stats}")
        return ({"submit": t_submit, "server RSS growth": after - before,
                 "job info": statistics.median(infos)},
                {"rss_before_mb": before, "rss_after_submit_mb": after_submit, "rss_after_mb": after,
                 "job_info_s": infos})

    alternate(ctx.reps, [([sub, rss, info], one)], "submit-1m")


def _submit_many_jobs(c: HqCluster, jobs: int) -> str:
    """Submits `jobs` one-task jobs; through the library in this process when it can."""
    try:
        from hyperqueue.cli.submit import build_request
        from hyperqueue.client.blocking import BlockingClient
        from hyperqueue.protocol import messages as m

        old = os.getcwd()
        os.chdir(c.cwd)
        try:
            request = build_request({}, ("true",))
        finally:
            os.chdir(old)
        with BlockingClient(str(c.sd)) as client:
            for _ in range(jobs):
                r = client.request(request)
                if not isinstance(r, m.SubmitResponse):
                    raise RuntimeError(f"unexpected response {r!r}")
        return "BlockingClient"
    except ImportError as e:
        warn(f"job-list-1000: library submit unavailable ({e}); submitting through the CLI (slow)")
    for _ in range(jobs):
        c.hq("submit", "--", "true")
    return "CLI"


def wl_job_list(ctx: Ctx) -> None:
    jobs = ctx.size("job-list-jobs")
    calls = ctx.size("job-list-calls")
    res = ctx.results
    name = f"job-list-{jobs}"
    with HqCluster(ctx, "hq-joblist", worker=False) as c:
        t0 = time.perf_counter()
        how = _submit_many_jobs(c, jobs)
        log(f"  [{name}] submitted {jobs} jobs via {how} in {time.perf_counter() - t0:.1f} s")
        out, _ = c.hq("job", "list")
        if out.count("\n") < jobs:
            raise RuntimeError(f"`hq job list` printed {out.count(chr(10))} lines for {jobs} jobs")
        clean = ensure_clean_hq()
        hq_s = res.add(Series(name, "per call", "hq job list", n=1, per="calls/s", role="primary",
                              target=("value", "<=", 0.120, "<= 120 ms")))
        if clean is not None:
            hq_clean = res.add(Series(name, "per call", "hq job list (clean venv)", n=1,
                                      per="calls/s", role="primary",
                                      target=("value", "<=", 0.120, "<= 120 ms")))
            py_clean = res.add(Series(name, "per call", "python -c pass (clean venv)", n=1,
                                      per="calls/s", role="baseline"))
        ver = res.add(Series(name, "per call", "hq --version (CLI start)", n=1, per="calls/s",
                             role="baseline"))
        py = res.add(Series(name, "per call", "python -c pass", n=1, per="calls/s", role="baseline"))
        pys = res.add(Series(name, "per call", "python -S -c pass", n=1, per="calls/s", role="baseline"))
        upstream = ctx.refs.get("upstream")
        if upstream is not None:
            res.add(Series(name, "per call", f"upstream {UPSTREAM_VERSION}", n=1, role="reference",
                           status="n/a", note="n/a: the PyPI package ships no `hq` CLI binary"))

        def timed(argv):
            def f(_r):
                rc, _out, err, dt = ctx.procs.run(argv, cwd=c.cwd)
                if rc != 0:
                    raise RuntimeError(f"{argv[0]} exited with {rc}: {err[-300:]}")
                return dt
            return f

        systems = [
            ([hq_s], timed([ctx.hq, "--server-dir", c.sd, "job", "list"])),
            ([ver], timed([ctx.hq, "--version"])),
            ([py], timed([sys.executable, "-c", "pass"])),
            ([pys], timed([sys.executable, "-S", "-c", "pass"])),
        ]
        if clean is not None:
            systems += [([hq_clean], timed([clean[1], "--server-dir", c.sd, "job", "list"])),
                        ([py_clean], timed([clean[0], "-c", "pass"]))]
        alternate(calls, systems, name)
    pth = [p.name for p in Path(sysconfig.get_path("purelib")).glob("*.pth")]
    if py.median and pys.median:
        res.note(f"{name}: interpreter start: `python -c pass` {py.median * 1e3:.0f} ms vs "
                 f"`python -S -c pass` {pys.median * 1e3:.0f} ms; the difference is site-packages "
                 f"start-up hooks ({', '.join(sorted(pth))}); this sandbox's egress .pth hook costs "
                 "~50 ms per interpreter start and is part of every `hq` call here")
    if clean is not None and hq_clean.median:
        res.note(f"{name}: `hq job list (clean venv)` is this checkout installed with `pip install .` "
                 "into benchmarks/.venvs/hq-clean, a venv without the host's site-packages and "
                 "their start-up hooks: what a user's installation runs")


def _counted_zero_spawn(ctx: Ctx, n: int) -> dict | None:
    """One zero-spawn run whose worker records every frame's size (see _frames_worker.py)."""
    d = ctx.tmpdir("frames")
    stats_path = d / "frames.json"
    argv = [sys.executable, HERE / "_frames_worker.py", stats_path]
    elapsed, _ = _hq_zero_spawn(ctx, n, worker_argv=argv)
    if not stats_path.exists():
        return None
    data = json.loads(stats_path.read_text())
    data["elapsed_s"] = elapsed
    return data


def wl_crypto(ctx: Ctx) -> None:
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
                           target=("value", "<=", 5.0, "<= 5 %")))
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


def _journal_works(ctx: Ctx) -> tuple[bool, str]:
    d = ctx.tmpdir("journal-probe")
    journal = d / "journal.bin"
    try:
        with HqCluster(ctx, "hq-journal-probe", worker=False, server_args=("--journal", journal)) as c:
            c.hq("submit", "--", "true")
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                if journal.exists() and journal.stat().st_size > 0:
                    return True, ""
                time.sleep(0.1)
    except Exception as e:  # noqa: BLE001
        return False, f"n/a: `hq server start --journal` failed ({str(e)[:120]})"
    return False, "n/a: journal not implemented yet (no journal file written)"


def wl_journal(ctx: Ctx) -> None:
    n = ctx.size("journal")
    res = ctx.results
    works, why = _journal_works(ctx)
    on = res.add(Series("journal", "wall", "hq --journal", n=n, role="primary"))
    off = res.add(Series("journal", "wall", "hq (no journal)", n=n, role="reference"))
    if not works:
        on.status = off.status = "n/a"
        on.note = off.note = why
        return
    def with_journal(_r):
        jdir = ctx.tmpdir("journal")
        return _hq_true(ctx, n, files=False, server_args=("--journal", jdir / "journal.bin"))

    alternate(ctx.reps, [([on], with_journal), ([off], lambda _r: _hq_true(ctx, n, files=False))],
              "journal")


def wl_cluster_netns(ctx: Ctx) -> None:
    """N `true` tasks on a cluster of network namespaces (tests/cluster/netns_cluster.py): the
    server on a login node, one `--cpus 2` worker on each of 3 compute nodes, the client on the
    login node; all over veths and a bridge inside namespaces the run creates."""
    n = ctx.size("cluster-netns")
    s = ctx.results.add(Series("cluster-netns", "wall", "hq (3 nodes x 2 cpus)", n=n,
                               role="primary"))
    sys.path.insert(0, str(REPO / "tests" / "cluster"))
    from netns_cluster import HqCluster, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        s.status, s.note = "n/a", f"n/a: {reason}"
        log(f"  cluster-netns skipped: {reason}")
        return

    def one(_r):
        with HqCluster(ctx.tmpdir("cluster-netns"), 3, env=clean_env()) as c:
            c.hq = [ctx.hq]
            c.start_server()
            for node in c.computes:
                c.start_worker(node, cpus="2")
            t0 = time.perf_counter()
            out = c.hq_ok("--output-mode", "quiet", "submit", "--array", f"1-{n}", "--stdout",
                          "none", "--stderr", "none", "--", "true", timeout=600)
            c.hq_ok("job", "wait", "last", timeout=3600)
            elapsed = time.perf_counter() - t0
            job_id = int(out.strip().splitlines()[-1])
            info = json.loads(c.hq_ok("--output-mode", "json", "job", "info", str(job_id)))[0]
            stats = info["info"]["task_stats"]
            if stats.get("finished") != n:
                raise RuntimeError(f"expected {n} finished tasks, got {stats}")
            per_host = {}
            for w in json.loads(c.hq_ok("--output-mode", "json", "worker", "list")):
                per_host[w["configuration"]["hostname"]] = w["id"]
        return elapsed, {"workers": per_host}

    alternate(ctx.reps, [([s], one)], "cluster-netns")


RUNNERS = {
    "spawn-loop": wl_spawn_loop,
    "true-nooutput": lambda ctx: wl_true(ctx, files=False),
    "true-files": lambda ctx: wl_true(ctx, files=True),
    "zero-spawn": wl_zero_spawn,
    "submit-1m": wl_submit_1m,
    "job-list-1000": wl_job_list,
    "crypto": wl_crypto,
    "journal": wl_journal,
    "cluster-netns": wl_cluster_netns,
}


# -- main --------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Workloads: " + ", ".join(WORKLOADS))
    p.add_argument("--quick", action="store_true", help="small sizes (about 2 minutes with references)")
    p.add_argument("--only", help="comma-separated workloads to run (default: all)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per system (default 3)")
    p.add_argument("--json", default=str(RESULTS / "latest.json"), help="where to write raw results")
    p.add_argument("--no-references", action="store_true",
                   help="run hq only (no upstream HyperQueue or Dask; no venv set-up)")
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be at least 1")
    if args.only:
        chosen = [w.strip() for w in args.only.split(",") if w.strip()]
        unknown = [w for w in chosen if w not in WORKLOADS]
        if unknown:
            p.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
        args.workloads = [w for w in WORKLOADS if w in chosen]
    else:
        args.workloads = list(WORKLOADS)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # A shell without job control starts background commands with SIGINT ignored; a benchmark
    # that was asked to stop should stop (and clean up) all the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ctx = Ctx(args)
    # An installed package has its bytecode compiled (pip does it); an editable checkout run
    # with PYTHONDONTWRITEBYTECODE would recompile hq's modules on every CLI call instead.
    import compileall

    import hyperqueue

    compileall.compile_dir(os.path.dirname(hyperqueue.__file__), quiet=1)
    machine = machine_info()
    la = machine["loadavg_before"]
    log(f"hq benchmarks ({'quick' if args.quick else 'full'} mode, {args.reps} repetitions) "
        f"{machine['date']}")
    log(f"machine: nproc={machine['cpu_count']}, load average {la[0]} {la[1]} {la[2]}, "
        f"Python {machine['python']}, hq {machine.get('hq_version')} "
        f"(commit {str(machine.get('git_commit'))[:10]}{' dirty' if machine.get('git_dirty') else ''})")
    if la[0] > 0.5:
        warn(f"load average {la[0]} is above 0.5: other work on this machine skews the figures")
    t_start = time.perf_counter()
    rc = 0
    interrupted = False
    try:
        needed = sorted({r for w in args.workloads for r in NEEDS.get(w, ())})
        if needed and not args.no_references:
            log("reference systems:")
            for name in needed:
                ctx.refs[name] = ensure_reference(name)
        for w in args.workloads:
            log(f"== {w} (load {loadavg()[0]:.2f})")
            t0 = time.perf_counter()
            try:
                RUNNERS[w](ctx)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - report and go on with the next workload
                rc = 1
                msg = f"{type(e).__name__}: {e}"
                log(f"  {w} FAILED: {msg[:600]}")
                ctx.results.add(Series(w, "wall", "hq", status="error", note=msg[:300]))
            log(f"   ({time.perf_counter() - t0:.1f} s)")
    except KeyboardInterrupt:
        interrupted = True
        rc = 130
        log("\ninterrupted: stopping every process started by the benchmark")
    finally:
        ctx.cleanup()
    machine["loadavg_after"] = loadavg()
    machine["duration_s"] = round(time.perf_counter() - t_start, 1)
    if any(s.status == "error" for s in ctx.results.series) and rc == 0:
        rc = 1

    log("")
    la2 = machine["loadavg_after"]
    log(f"Results ({'quick' if args.quick else 'full'} mode; nproc={machine['cpu_count']}; load average "
        f"before {la[0]} {la[1]} {la[2]}, after {la2[0]} {la2[1]} {la2[2]}; "
        f"{machine['duration_s']:.0f} s{'; INTERRUPTED' if interrupted else ''})")
    log("hq/ref: hq's throughput divided by the reference's (> 1: hq is faster; for MB: smaller). "
        "load: 1-minute load average at the start of the repetitions.")
    log(render_table(ctx.results, args.quick))
    for note in ctx.results.notes:
        log(f"- {note}")

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": machine,
        "config": {"quick": args.quick, "reps": args.reps, "workloads": args.workloads,
                   "no_references": args.no_references, "sizes": {k: ctx.size(k) for k in SIZES},
                   "hq": ctx.hq, "interrupted": interrupted},
        "references": {k: dataclasses.asdict(v) for k, v in ctx.refs.items()},
        "series": [{**dataclasses.asdict(s), "median": s.median, "throughput": s.throughput(),
                    "target_met": s.target_met()} for s in ctx.results.series],
        "notes": ctx.results.notes,
    }
    out.write_text(json.dumps(payload, indent=2, default=str))
    log(f"raw results: {out}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
