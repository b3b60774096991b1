"""The streamed forms of long listings are byte for byte the whole-document forms: JsonStream
against `json.dumps(doc, indent=2, default=str) + "\\n"` (what `Printer.json` prints), and
SpooledTable against `horizontal_table(...) + "\\n"`, for many random shapes fed in random
page sizes."""

from __future__ import annotations

import io
import json
import random

import pytest

from hyperqueue.cli.jsonstream import JsonStream
from hyperqueue.cli.table import SpooledTable, horizontal_table

STRINGS = ["", "a", "line\nbreak", "tab\there", "quote \" and \\ back", "é ünïcode ✓",
           "  two spaces", "\u2028sep", "x" * 40]


def _scalar(rnd):
    return rnd.choice([None, True, False, 0, -7, 2 ** 40, 1.5, 1e-7, rnd.choice(STRINGS)])


def _value(rnd, depth=0):
    k = rnd.random()
    if depth > 3 or k < 0.5:
        return _scalar(rnd)
    if k < 0.75:
        return [_value(rnd, depth + 1) for _ in range(rnd.randint(0, 4))]
    return {rnd.choice(STRINGS) + str(i): _value(rnd, depth + 1) for i in range(rnd.randint(0, 4))}


def _stream(w, rnd, doc, key=None):
    """Writes `doc` through `w` with streamed containers where possible (random choices of
    head/items/value), returns nothing; the text must equal json.dumps."""
    if isinstance(doc, list) and rnd.random() < 0.8:
        w.open("[", key)
        i = 0
        while i < len(doc):
            n = rnd.randint(0, 3)
            if rnd.random() < 0.5:
                w.items(doc[i:i + n])
            else:
                for v in doc[i:i + n]:
                    _stream(w, rnd, v)
            i += n
        w.close()
    elif isinstance(doc, dict) and rnd.random() < 0.8:
        items = list(doc.items())
        n = rnd.randint(0, len(items))
        w.open("{", key, dict(items[:n]))
        for k, v in items[n:]:
            _stream(w, rnd, v, k)
        w.close()
    else:
        w.value(doc, key)


def test_json_stream_writes_what_json_dumps_writes():
    rnd = random.Random(10)
    for _ in range(2000):
        doc = _value(rnd)
        out = io.StringIO()
        w = JsonStream(out.write)
        _stream(w, rnd, doc)
        w.end()
        assert out.getvalue() == json.dumps(doc, indent=2, default=str) + "\n", doc


def test_json_stream_listing_shapes():
    """The three documents of the listings: job info, task list, task info, with empty
    jobs and pages (every job's first page may be empty)."""
    tasks = [{"id": i, "state": "waiting", "error": "a\nb" if i % 3 else None}
             for i in range(25)]
    jobs = [{"info": {"id": 1}, "submits": [{"array": {"x": [1, 2]}}], "tasks": tasks},
            {"info": {"id": 2}, "submits": [], "tasks": []}]
    for pages in ([], [0], [0, 10, 10, 5], [25, 0]):
        out = io.StringIO()
        w = JsonStream(out.write)
        w.open("[")
        for d in jobs:
            w.open("{", None, {k: v for k, v in d.items() if k != "tasks"})
            w.open("[", "tasks")
            i = 0
            for n in (pages or [len(d["tasks"])]) if d["tasks"] else [0]:
                w.items(d["tasks"][i:i + n])
                i += n
            w.items(d["tasks"][i:])
            w.close()
            w.close()
        w.close()
        w.end()
        assert out.getvalue() == json.dumps(jobs, indent=2) + "\n"
    for doc in ({}, [], {"7": []}, {"7": [1, 2], "8": []}):
        out = io.StringIO()
        w = JsonStream(out.write)
        w.open("{" if isinstance(doc, dict) else "[")
        for k, v in (doc.items() if isinstance(doc, dict) else []):
            w.open("[", k)
            w.items(v)
            w.close()
        w.close()
        w.end()
        assert out.getvalue() == json.dumps(doc, indent=2) + "\n"


def test_json_stream_refuses_malformed_use():
    w = JsonStream(io.StringIO().write)
    with pytest.raises(ValueError):
        w.value(1, "key")  # a top-level value has no key
    w.open("{")
    with pytest.raises(ValueError):
        w.value(1)  # an object member needs a key
    with pytest.raises(TypeError):
        w.value(1, 5)
    with pytest.raises(ValueError):
        w.items([1])  # items go into an array
    with pytest.raises(ValueError):
        w.end()  # still open


def _cell(rnd):
    return rnd.choice(["", "a", "abc\nde", "x" * rnd.randint(0, 20), "é\n\nq", "1", "WAITING"])


@pytest.mark.parametrize("memory", [16, 1 << 22])  # spilled to a file at once, or in memory
def test_spooled_table_writes_what_horizontal_table_writes(memory):
    rnd = random.Random(memory)
    for _ in range(300):
        ncols = rnd.randint(1, 5)
        header = [_cell(rnd) for _ in range(ncols)]
        rows = [[_cell(rnd) for _ in range(ncols)] for _ in range(rnd.randint(0, 30))]
        t = SpooledTable(header, memory=memory)
        i = 0
        while i < len(rows):
            n = rnd.randint(0, 7)
            t.add(rows[i:i + n])
            i += n
        out = io.StringIO()
        t.write(out.write)
        assert out.getvalue() == horizontal_table(header, rows) + "\n", (header, rows)


def test_spooled_table_of_many_rows_spills_and_keeps_every_row():
    header = ["Task ID", "State", "Worker", "Makespan", "Error"]
    rows = [[i, "FAILED" if i % 7 == 0 else "WAITING", "", "", "err\nx" if i == 9000 else ""]
            for i in range(12_345)]  # several write chunks, widths from the last rows
    t = SpooledTable(header, memory=1 << 16)
    for i in range(0, len(rows), 1000):
        t.add(rows[i:i + 1000])
    assert t._rows._rolled  # the rows wait in a file, not in memory
    out = io.StringIO()
    t.write(out.write)
    assert out.getvalue() == horizontal_table(header, [[str(c) for c in r] for r in rows]) + "\n"
    with pytest.raises(ValueError):
        SpooledTable(["a", "b"]).add([["only one"]])
