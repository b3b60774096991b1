"""The reference virtual environments under benchmarks/.venvs/ (see benchmarks/README.md)."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import subprocess
import sys
import tempfile
import time

from harness import HERE, VENVS, clean_env, log, warn

UPSTREAM_VERSION = "0.27.0"
REFERENCES = {
    # name: (requirements, distributions whose versions are recorded, import check)
    "upstream": ([f"hyperqueue=={UPSTREAM_VERSION}"], ["hyperqueue"],
                 "from hyperqueue import LocalCluster, Client, Job; from hyperqueue.ffi.cluster import Cluster"),
    "dask": (["dask[distributed]"], ["dask", "distributed"],
             "from distributed import Client, LocalCluster"),
}


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
