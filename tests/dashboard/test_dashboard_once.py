"""`hq dashboard ... --once` (a static text snapshot of the main screens) and the command's
packaging: a clear message without textual, no textual import for other commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dash_fixture import records, write_journal

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).parent / "snapshots" / "once_replay.txt"


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TZ="UTC", COLUMNS="120")
    env.pop("HQ_SERVER_DIR", None)
    env.update(extra)
    return env


def _hq(*args, env=None, pre: str = ""):
    code = (f"import sys\n{pre}\nfrom hyperqueue.cli.main import main\n"
            f"main(sys.argv[1:])\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env or _env(), timeout=60)


@pytest.mark.timeout(60)
def test_once_prints_every_main_screen_as_the_snapshot(tmp_path):
    journal = tmp_path / "journal.bin"
    write_journal(journal, records("/work/sub"))
    r = _hq("dashboard", "replay", str(journal), "--once")
    assert r.returncode == 0, r.stderr
    if os.environ.get("HQ_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(r.stdout)
    assert r.stdout == SNAPSHOT.read_text()
    # the group option is accepted before the subcommand too
    r2 = _hq("dashboard", "--once", "replay", str(journal))
    assert r2.returncode == 0 and r2.stdout == r.stdout


@pytest.mark.timeout(60)
def test_a_journal_with_batched_task_records_replays_the_same(tmp_path):
    """The server journals plain starts/finishes as `task-progress` range records: the replay
    shows the same screens as from the per-task records."""
    from hyperqueue.core.events import from_record, journal_records

    recs = records("/work/sub")
    batched = journal_records([from_record(r) for r in recs])
    assert any(r[1] == "task-progress" for r in batched)
    journal = tmp_path / "journal.bin"
    write_journal(journal, batched)
    r = _hq("dashboard", "replay", str(journal), "--once")
    assert r.returncode == 0, r.stderr
    assert r.stdout == SNAPSHOT.read_text()


@pytest.mark.timeout(60)
def test_without_textual_the_dashboard_names_the_extra_and_exits_1(tmp_path):
    journal = tmp_path / "journal.bin"
    write_journal(journal, records())
    r = _hq("dashboard", "replay", str(journal), pre="sys.modules['textual'] = None")
    assert r.returncode == 1
    assert "pip install 'hyperqueue[dashboard]'" in r.stderr and r.stdout == ""
    # --once needs no textual
    r = _hq("dashboard", "replay", str(journal), "--once", pre="sys.modules['textual'] = None")
    assert r.returncode == 0 and "== Workers ==" in r.stdout


@pytest.mark.timeout(60)
def test_other_commands_do_not_import_textual_or_the_dashboard(tmp_path):
    journal = tmp_path / "journal.bin"
    write_journal(journal, records())
    code = ("import sys\nfrom hyperqueue.cli.main import main\n"
            "try:\n    main(['journal', 'export', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in sys.modules if m.split('.')[0] == 'textual'"
            " or m.startswith('hyperqueue.dashboard')]\n"
            "sys.stderr.write(repr(bad))\n")
    r = subprocess.run([sys.executable, "-c", code, str(journal)], capture_output=True,
                       text=True, env=_env(), timeout=60)
    assert r.returncode == 0 and r.stderr.endswith("[]"), r.stderr[-500:]
    assert '"type":"worker-connected"' in r.stdout


def test_textual_is_imported_by_the_dashboard_app_only():
    """(and by the command's check that it is installed, inside the function)"""
    import ast

    pkg = ROOT / "hyperqueue"
    users = set()
    for path in pkg.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(n.split(".")[0] == "textual" for n in names):
                users.add(str(path.relative_to(pkg)))
    assert users == {"dashboard/app.py", "cli/dashboard.py"}


@pytest.mark.timeout(60)
def test_a_missing_journal_is_a_clear_error(tmp_path):
    r = _hq("dashboard", "replay", str(tmp_path / "nope.bin"), "--once")
    assert r.returncode == 1 and "Cannot read journal" in r.stderr
