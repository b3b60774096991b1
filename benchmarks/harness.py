"""The benchmark harness: arguments, repetitions alternated between systems, statistics, the
results table (targets, hq/reference ratios) and the JSON of every repetition.

It knows nothing about any workload: each one is a module under `workloads/` declaring a
`Workload` (name, quick/full sizes, the references it compares with, its targets and how it
runs); `workloads/__init__.py` lists them in the order they run. Reference systems (their venvs
and drivers) live under `references/`; hq's own processes are started through the test suite's
helper `tests/hqenv.py` (see `workloads/_hq.py`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
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
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENVS = HERE / ".venvs"
BUILD = VENVS / "_build"
RESULTS = HERE / "results"

sys.path.insert(0, str(REPO / "tests"))  # hqenv: the process helper shared with the tests

import hqenv  # noqa: E402

# The benchmark runs the installed `hq` as a user would: no PYTHONPATH/PYTHONHOME either.
ENV_DROP = ("PYTHONPATH", "PYTHONHOME")


def _checkout_env() -> dict:
    """What hq's processes need to run THIS checkout's package: nothing when the installed
    `hyperqueue` (what `hq` imports without PYTHONPATH) is this checkout's (the usual
    `pip install -e .`), else PYTHONPATH=<checkout> (e.g. a git worktree of a checkout
    installed elsewhere): the table must describe the code next to this script."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    try:
        found = subprocess.run([sys.executable, "-c", "import hyperqueue; print(hyperqueue.__file__)"],
                               capture_output=True, text=True, timeout=60, env=env, cwd="/").stdout
        installed = Path(found.strip()).resolve().parent.parent if found.strip() else None
    except (OSError, subprocess.SubprocessError):
        installed = None
    if str(REPO) not in sys.path:  # this process (compileall, machine info, library calls)
        sys.path.insert(0, str(REPO))
    for mod in [k for k in sys.modules if k == "hyperqueue" or k.startswith("hyperqueue.")]:
        del sys.modules[mod]
    return {} if installed == REPO else {"PYTHONPATH": str(REPO)}


CHECKOUT_ENV = _checkout_env()


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
    return hqenv.clean_env(drop=ENV_DROP, **extra)


# -- workloads ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Workload:
    """One row group of the table. `sizes` maps a size key to (quick N, full N) (the first key
    is usually the workload's name; other workloads may read it, e.g. crypto reads zero-spawn's);
    `needs` names the reference systems it compares with (their venvs are set up before the
    run); `targets` maps a metric to (kind, op, bound, text), kind "value" (the median) or
    "throughput"; `full_only_targets`: targets judged in full mode only."""

    name: str
    run: Callable[["Ctx"], None]
    sizes: dict = dataclasses.field(default_factory=dict)
    needs: tuple = ()
    targets: dict = dataclasses.field(default_factory=dict)
    full_only_targets: bool = False


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


def alternate(reps: int, runs: list[tuple[list[Series], Callable]], label: str) -> None:
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


def fmt_target(s: Series, quick: bool, full_only: frozenset = frozenset()) -> str:
    if s.target is None:
        return ""
    text = s.target[3]
    met = s.target_met()
    if met is None:
        return text
    if quick and s.workload in full_only:
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


def render_table(results: Results, quick: bool, full_only: frozenset = frozenset()) -> str:
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
                     fmt_target(s, quick, full_only), loads])
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
    found = hqenv.hq_script()
    if found is None:
        raise SystemExit("cannot find the `hq` console script; install the package (pip install -e .)")
    if os.path.dirname(found) not in (os.path.dirname(sys.executable), sysconfig.get_path("scripts"),
                                      os.path.join(sys.prefix, "bin")):
        warn(f"using {found} (not next to {sys.executable})")
    return found


# -- the run context -----------------------------------------------------------------------------


class Ctx:
    """What a workload gets: sizes, repetitions, results, the tracked processes, temp dirs, the
    reference systems, and `shared` figures one workload passes to a later one."""

    def __init__(self, args, sizes: dict) -> None:
        self.args = args
        self.quick = args.quick
        self.reps = args.reps
        self.sizes = sizes
        self.env = clean_env(**CHECKOUT_ENV)  # hq's processes (not the references')
        # Every process gets its own session: Ctrl-C reaches only this script, which then stops
        # them by pid (and sweeps their groups) in cleanup().
        self.procs = hqenv.Processes(env=self.env, new_session=True)
        self.results = Results()
        self.refs: dict = {}  # name -> references.Reference
        self.hq = find_hq()
        self.root = Path(tempfile.mkdtemp(prefix="hq-bench-"))
        self._n = 0
        self.shared: dict = {}  # figures one workload passes to another (zero-spawn -> crypto)

    def size(self, key: str) -> int:
        quick, full = self.sizes[key]
        return quick if self.quick else full

    def tmpdir(self, name: str) -> Path:
        self._n += 1
        d = self.root / f"{self._n:03d}-{name}"
        d.mkdir(parents=True)
        return d

    def run(self, argv, *, cwd=None, env=None, timeout: float = 600.0,
            stdin_data: bytes | None = None) -> tuple[int, str, str, float]:
        """Runs a command to completion; returns (returncode, stdout, stderr, wall seconds)."""
        t0 = time.perf_counter()
        try:
            res = self.procs.run(argv, cwd=cwd, env=env, timeout=timeout, input=stdin_data,
                                 text=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(map(str, argv))}") from None
        elapsed = time.perf_counter() - t0
        return (res.returncode, res.stdout.decode(errors="replace"),
                res.stderr.decode(errors="replace"), elapsed)

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


# -- main --------------------------------------------------------------------------------------


def parse_args(argv, doc: str, names: list[str]):
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Workloads: " + ", ".join(names))
    p.add_argument("--quick", action="store_true", help="small sizes (about 2 minutes with references)")
    p.add_argument("--only", help="comma-separated workloads to run (default: all)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per system (default 3)")
    p.add_argument("--json", default=str(RESULTS / "latest.json"), help="where to write raw results")
    p.add_argument("--no-references", action="store_true",
                   help="run hq only (no upstream HyperQueue or Dask; no venv set-up)")
    p.add_argument("--size", action="append", default=[], metavar="KEY=N",
                   help="override one size of the chosen mode (e.g. scale-1m=300000)")
    args = p.parse_args(argv)
    sizes = {}
    for item in args.size:
        key, _, value = item.partition("=")
        if not value.isdigit() or int(value) < 1:
            p.error(f"--size wants KEY=N with N >= 1, got {item!r}")
        sizes[key.strip()] = int(value)
    args.size = sizes
    if args.reps < 1:
        p.error("--reps must be at least 1")
    if args.only:
        chosen = [w.strip() for w in args.only.split(",") if w.strip()]
        unknown = [w for w in chosen if w not in names]
        if unknown:
            p.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(names)}")
        args.workloads = [w for w in names if w in chosen]
    else:
        args.workloads = list(names)
    return args


def main(workloads: list[Workload], argv=None, doc: str = "") -> int:
    from references import ensure_reference

    by_name = {w.name: w for w in workloads}
    sizes = {k: v for w in workloads for k, v in w.sizes.items()}
    full_only = frozenset(w.name for w in workloads if w.full_only_targets)
    args = parse_args(argv, doc, list(by_name))
    unknown = sorted(set(args.size) - set(sizes))
    if unknown:
        raise SystemExit(f"unknown --size key(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(sorted(sizes))}")
    for key, n in args.size.items():
        sizes[key] = (n, n)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # A shell without job control starts background commands with SIGINT ignored; a benchmark
    # that was asked to stop should stop (and clean up) all the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ctx = Ctx(args, sizes)
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
    if CHECKOUT_ENV:
        log(f"hq runs this checkout ({REPO}) with PYTHONPATH: the installed package is elsewhere")
    if la[0] > 0.5:
        warn(f"load average {la[0]} is above 0.5: other work on this machine skews the figures")
    t_start = time.perf_counter()
    rc = 0
    interrupted = False
    try:
        needed = sorted({r for w in args.workloads for r in by_name[w].needs})
        if needed and not args.no_references:
            log("reference systems:")
            for name in needed:
                ctx.refs[name] = ensure_reference(name)
        for w in args.workloads:
            log(f"== {w} (load {loadavg()[0]:.2f})")
            t0 = time.perf_counter()
            try:
                by_name[w].run(ctx)
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
    log(render_table(ctx.results, args.quick, full_only))
    for note in ctx.results.notes:
        log(f"- {note}")

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": machine,
        "config": {"quick": args.quick, "reps": args.reps, "workloads": args.workloads,
                   "no_references": args.no_references, "sizes": {k: ctx.size(k) for k in sizes},
                   "hq": ctx.hq, "interrupted": interrupted},
        "references": {k: dataclasses.asdict(v) for k, v in ctx.refs.items()},
        "series": [{**dataclasses.asdict(s), "median": s.median, "throughput": s.throughput(),
                    "target_met": s.target_met()} for s in ctx.results.series],
        "notes": ctx.results.notes,
    }
    out.write_text(json.dumps(payload, indent=2, default=str))
    log(f"raw results: {out}")
    return rc
