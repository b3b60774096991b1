"""The architecture's import rules: the core is pure, imports point downward."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "hyperqueue"

FORBIDDEN = {
    "core": {"trio", "anyio", "cbor2", "nacl", "os", "time", "socket", "subprocess",
             "hyperqueue.protocol", "hyperqueue.server", "hyperqueue.worker",
             "hyperqueue.client", "hyperqueue.cli", "hyperqueue.transport",
             "hyperqueue.journal"},
    "protocol": {"trio", "anyio", "hyperqueue.server", "hyperqueue.worker",
                 "hyperqueue.client", "hyperqueue.cli", "hyperqueue.transport"},
    "server": {"hyperqueue.worker", "hyperqueue.client", "hyperqueue.cli"},
    "worker": {"hyperqueue.server", "hyperqueue.client", "hyperqueue.cli"},
    "client": {"trio", "hyperqueue.server", "hyperqueue.worker", "hyperqueue.cli"},
    "journal": {"hyperqueue.server", "hyperqueue.worker", "hyperqueue.client", "hyperqueue.cli"},
    "autoalloc": {"trio", "anyio", "cbor2", "nacl", "os", "time", "socket", "subprocess",
                  "hyperqueue.protocol", "hyperqueue.server", "hyperqueue.worker",
                  "hyperqueue.client", "hyperqueue.cli", "hyperqueue.transport",
                  "hyperqueue.journal"},
    "batch": {"trio", "anyio", "cbor2", "nacl", "os", "time", "socket", "subprocess",
              "hyperqueue.protocol", "hyperqueue.server", "hyperqueue.worker",
              "hyperqueue.client", "hyperqueue.cli", "hyperqueue.transport",
              "hyperqueue.journal", "hyperqueue.autoalloc"},
    "streaming": {"trio", "anyio", "hyperqueue.server", "hyperqueue.worker", "hyperqueue.client",
                  "hyperqueue.cli", "hyperqueue.transport"},
}


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
    for path in (ROOT / layer).rglob("*.py"):
        for mod in _imports(path):
            for f in FORBIDDEN[layer]:
                if mod == f or mod.startswith(f + "."):
                    bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "\n".join(bad)


def test_journal_format_is_pure():
    bad = [m for m in _imports(ROOT / "journal" / "format.py")
           if m.split(".")[0] in ("trio", "anyio", "os", "time", "socket")]
    assert not bad, bad
