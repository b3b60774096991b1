"""Journals of the per-task record format (before `task-progress` batching) still restore, and
`journal export` prints the same events for a history whether the journal batched it or not.

`fixtures/old_format.journal` (with its export lines and restored views) was written by the hq
of that format (see `fixtures/make_old_format.py`)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from hyperqueue.cli.journal import event_json
from hyperqueue.core.events import expand_record
from hyperqueue.core import events as ev
from hyperqueue.core import views
from hyperqueue.core.model import TaskState
from hyperqueue.core.restore import restore
from hyperqueue.journal.format import encode_header, encode_records, read_all

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
sys.path[:0] = [FIXTURES, os.path.join(os.path.dirname(__file__), "..", "core")]


def _read(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def _views(core):
    return {"jobs": [views.job_detail(core, j, True)
                     for j in sorted(core.jobs.values(), key=lambda j: j.id)],
            "workers": [views.worker_view(w, 5000.0) for w in core.workers.values()]}


def _json(obj):
    return json.loads(json.dumps(obj, sort_keys=True))


@pytest.mark.timeout(30)
def test_an_old_journal_restores_to_the_same_views():
    records, tail = read_all(_read("old_format.journal"))
    assert tail.clean and not any(r[1] == "task-progress" for r in records)
    core = restore(records)
    core.sanity_check()
    assert _json(_views(core)) == json.loads(_read("old_format.views.json"))
    # Its finished tasks gave their records up like live ones do.
    assert len(core.jobs[1].done) == 31 and all(
        t.state != TaskState.FINISHED for t in core.jobs[1].tasks.values())


@pytest.mark.timeout(30)
def test_export_of_an_old_journal_is_unchanged():
    records, _ = read_all(_read("old_format.journal"))
    lines = [event_json(one) for r in records for one in expand_record(r)]
    assert lines == _read("old_format.export.jsonl").decode().splitlines()


@pytest.mark.timeout(30)
def test_the_same_history_in_the_batched_format_exports_and_restores_the_same(tmp_path):
    from make_old_format import history

    env = history()
    records = ev.journal_records(env.out.events)
    assert sum(r[1] == "task-progress" for r in records) > 0
    assert len(records) < 100  # the per-task format needed 100 records
    path = tmp_path / "new.journal"
    path.write_bytes(encode_header() + encode_records(records))
    back, tail = read_all(path.read_bytes())
    lines = [event_json(one) for r in back for one in expand_record(r)]
    assert lines == _read("old_format.export.jsonl").decode().splitlines()
    core = restore(back)
    core.sanity_check()
    assert _json(_views(core)) == json.loads(_read("old_format.views.json"))
