"""The architecture's import rules: the core is pure, imports point downward.

Every package under hyperqueue/ (and the embedded runner, local.py) has a rule below; a new
package without one fails `test_every_package_has_a_rule`. The layers, bottom up:

    core                          pure state machine: imports only itself
    common (pure part), batch,    pure helpers and decisions over core
      autoalloc, report
    protocol, streaming           pure byte formats (cbor2, nacl: no event loop)
    journal                       the journal format (pure) and its single trio writer
    transport                     framed, sealed connections (trio / blocking sockets) over protocol
    server, worker                trio shells; never import each other
    client, ffi, task             the client library and the Python API on it (no trio)
    local                         `hq run`: a server and a worker in one process
    cli                           click commands over client (its own rules below)
"""

import ast
import pathlib

import pytest

from hyperqueue.core.graph import find_cycle

ROOT = pathlib.Path(__file__).resolve().parent.parent / "hyperqueue"

#: What no pure module imports: an event loop, the wire libraries, the OS, the clock.
PURE = {"trio", "anyio", "cbor2", "nacl", "os", "time", "socket", "subprocess"}


def _hq(*names: str) -> set[str]:
    return {f"hyperqueue.{n}" for n in names}


#: The shells and front ends: nothing below them imports them.
_SHELLS = _hq("server", "worker", "client", "cli", "local", "ffi", "task")

FORBIDDEN = {
    "core": PURE | _SHELLS | _hq("protocol", "transport", "journal", "common", "streaming",
                                 "autoalloc", "batch", "report", "errors"),
    "common": {"anyio", "cbor2", "nacl", "click", "rich_click", "rich"} | _SHELLS
              | _hq("protocol", "transport", "journal", "streaming", "autoalloc", "batch",
                    "report"),
    # (autoalloc.params: the wire form of allocation-queue parameters is validated where it is
    # decoded, like core.model's templates)
    "protocol": {"trio", "anyio"} | _SHELLS | _hq("transport", "journal", "streaming",
                                                  "batch", "report"),
    "streaming": {"trio", "anyio"} | _SHELLS | _hq("transport", "journal", "autoalloc", "batch",
                                                   "report"),
    "transport": {"cbor2", "nacl"} | _SHELLS | _hq("journal", "streaming", "autoalloc", "batch",
                                                   "report"),
    "journal": _SHELLS | _hq("protocol", "transport", "streaming", "autoalloc", "batch",
                             "report"),
    "report": PURE | _SHELLS | _hq("protocol", "transport", "journal", "streaming", "autoalloc",
                                   "batch"),
    "autoalloc": PURE | _SHELLS | _hq("protocol", "transport", "journal", "streaming", "report"),
    "batch": PURE | _SHELLS | _hq("protocol", "transport", "journal", "streaming", "report",
                                  "autoalloc"),
    "server": _SHELLS - _hq("server"),
    "worker": _SHELLS - _hq("worker", "task") | _hq("journal", "autoalloc", "report"),
    # `client.api`/`client.aio` are upstream's `hyperqueue.client.Client` and our AsyncClient:
    # they use upstream's `ffi` and `task.function` paths (PythonEnv, ClientConnection).
    "client": {"trio", "click", "rich_click", "rich"} | _SHELLS - _hq("client", "ffi", "task")
              | _hq("journal", "batch", "report"),  # autoalloc.params: `hq alloc add` values
    # The Python API (upstream's paths): over the client library, like the CLI but without click.
    "ffi": {"trio", "click", "rich_click", "rich"} | _hq("server", "worker", "cli", "local"),
    "task": {"trio", "click", "rich_click", "rich"} | _hq("server", "worker", "cli", "local"),
    # The embedded runner of `hq run` composes the server and the worker shells.
    "local": {"click", "rich_click"} | _hq("client", "cli", "ffi", "task", "report"),
    # The dashboard: a client-side shell (blocking client in a thread, textual in `app` only).
    "dashboard": {"trio", "anyio", "click", "rich_click"} | _hq("server", "worker", "cli", "local",
                                                              "transport", "streaming", "report",
                                                              "batch"),
    # cli: see CLI_MAY_IMPORT / CLI_ENTRY_POINTS below.
    "cli": {"anyio", "cbor2", "nacl"},  # trio: only to run a server or worker shell
}

#: The modules of `common` that pure layers may use: no OS, no clock, no event loop. The others
#: are blocking OS helpers for the shells: serverdir (the server directory's files), rlimit
#: (process limits), ratelimit (log lines per period: the clock), waits (`sleep` imports trio).
COMMON_PURE = {"durations", "selectors"}
PURE_LAYERS = ("core", "protocol", "report", "autoalloc", "batch")


def _files(layer: str):
    module = ROOT / f"{layer}.py"
    return [module] if module.is_file() else sorted((ROOT / layer).rglob("*.py"))


def _imports(path: pathlib.Path):
    package = ".".join(("hyperqueue", *path.relative_to(ROOT).with_suffix("").parts))
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: -node.level]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports(layer):
    bad = []
    for path in _files(layer):
        for mod in _imports(path):
            for f in FORBIDDEN[layer]:
                if mod == f or mod.startswith(f + "."):
                    bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "\n".join(bad)


def test_every_package_has_a_rule():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert "core" in packages and "cli" in packages
    missing = sorted(packages - FORBIDDEN.keys())
    assert not missing, f"add a rule (and an __init__ docstring) for: {missing}"
    assert (ROOT / "local.py").is_file() and _imports(ROOT / "local.py")


def test_every_package_says_what_it_holds():
    """Each package's __init__ opens with a docstring (what it holds, its layer, its imports)."""
    bare = [p.parent.name for p in ROOT.glob("*/__init__.py")
            if len((ast.get_docstring(ast.parse(p.read_text())) or "").splitlines()) < 3]
    assert not bare, bare


def test_the_rules_catch_a_wrong_import(tmp_path):
    bad = tmp_path / "hyperqueue" / "core" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("import os\nfrom ..server import app\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path / "hyperqueue"
    try:
        found = [m for m in _imports(bad) if _within(m, FORBIDDEN["core"])]
    finally:
        ROOT = saved
    assert found == ["os", "hyperqueue.server"]


@pytest.mark.parametrize("layer", PURE_LAYERS)
def test_pure_layers_use_only_the_pure_part_of_common(layer):
    bad = [f"{path.relative_to(ROOT)} imports {mod}" for path in _files(layer)
           for mod in _imports(path)
           if _within(mod, {"hyperqueue.common"}) and mod.split(".")[2:3] != []
           and mod.split(".")[2] not in COMMON_PURE]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", sorted(COMMON_PURE))
def test_the_pure_part_of_common_is_pure(name):
    bad = [m for m in _imports(ROOT / "common" / f"{name}.py")
           if m.split(".")[0] in PURE or _within(m, {"hyperqueue.common"}) and
           m.split(".")[2:3] and m.split(".")[2] not in COMMON_PURE]
    assert not bad, bad


def test_journal_format_is_pure():
    bad = [m for m in _imports(ROOT / "journal" / "format.py")
           if m.split(".")[0] in ("trio", "anyio", "os", "time", "socket")]
    assert not bad, bad


# -- the CLI: a thin shell over the client library --------------------------------------------

#: Packages any cli module may import (protocol: for now, until every call is in client.calls).
CLI_MAY_IMPORT = {"hyperqueue.cli", "hyperqueue.client", "hyperqueue.common", "hyperqueue.core",
                  "hyperqueue.protocol", "hyperqueue.errors", "hyperqueue.version"}
#: The shells a command starts or the files it reads, each from its own command module only.
CLI_ENTRY_POINTS = {
    "server.py": {"hyperqueue.server.app", "hyperqueue.server.boot"},
    "worker.py": {"hyperqueue.worker.app", "hyperqueue.worker.hwdetect",
                  "hyperqueue.worker.batchdetect"},
    "run.py": {"hyperqueue.local"},
    "journal.py": {"hyperqueue.journal.format", "hyperqueue.report.html"},
    "output_log.py": {"hyperqueue.streaming.format", "hyperqueue.streaming.reader"},
    "dashboard.py": {"hyperqueue.dashboard"},
}


def _within(mod: str, packages) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in packages)


def test_cli_imports_only_the_client_side_and_its_entry_points():
    bad = []
    for path in sorted((ROOT / "cli").rglob("*.py")):
        allowed = CLI_MAY_IMPORT | CLI_ENTRY_POINTS.get(path.name, set())
        for mod in _imports(path):
            if mod.startswith("hyperqueue") and not _within(mod, allowed):
                bad.append(f"cli/{path.name} imports {mod}")
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_cli():
    bad = []
    for path in ROOT.rglob("*.py"):
        if path.relative_to(ROOT).parts[0] == "cli":
            continue
        bad += [f"{path.relative_to(ROOT)} imports {m}" for m in _imports(path)
                if _within(m, {"hyperqueue.cli"})]
    assert not bad, "\n".join(bad)


def _module_name(path: pathlib.Path) -> str:
    parts = ("hyperqueue", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_graph(packages) -> dict[str, set[str]]:
    """Static import graph (top-level and function-level imports) of the given packages'
    modules; `from . import x` counts as importing module `x`."""
    paths = [p for pkg in packages for p in (ROOT / pkg).rglob("*.py")]
    names = {_module_name(p): p for p in paths}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in names and t != name}
        graph[name] = edges
    return graph


def _cycle(graph):
    return find_cycle({node: sorted(edges) for node, edges in graph.items()})


def test_cli_and_client_have_no_import_cycles():
    graph = _module_graph(["cli", "client"])
    assert "hyperqueue.cli.job" in graph and graph["hyperqueue.cli.job"], graph
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_private_names_are_imported_across_modules():
    bad = []
    for pkg in ("cli", "client"):
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    def is_private(n):
                        return n.startswith("_") and not n.startswith("__")

                    private = [a.name for a in node.names if is_private(a.name)]
                    if is_private((node.module or "").split(".")[-1]) or private:
                        bad.append(f"{path.relative_to(ROOT)}: from {'.' * node.level}"
                                   f"{node.module or ''} import {', '.join(private) or '...'}")
    assert not bad, "\n".join(bad)


CLI_MODULES = sorted(p.stem for p in (ROOT / "cli").glob("*.py") if p.stem != "__init__")


@pytest.mark.timeout(60)
def test_every_cli_module_imports_alone_in_a_fresh_interpreter():
    """Each command module imports by itself (no hidden order, no cycle at run time) and
    without choosing the click flavour from sys.argv."""
    import subprocess
    import sys

    script = ("import importlib, sys\n"
              "name = sys.argv[1]\n"
              "sys.argv = ['hq', '--help']  # must not matter at import time\n"
              "importlib.import_module('hyperqueue.cli.' + name)\n"
              "assert 'rich_click' not in sys.modules, name\n")
    env = dict(__import__("os").environ, PYTHONPATH=str(ROOT.parent))
    procs = [subprocess.Popen([sys.executable, "-c", script, name], env=env,
                              stderr=subprocess.PIPE) for name in CLI_MODULES]
    failed = {name: p.communicate()[1].decode()[-500:] for name, p in zip(CLI_MODULES, procs)
              if p.wait() != 0}
    assert not failed, failed
