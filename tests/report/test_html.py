"""`hq journal report`: the HTML report of a journal (well-formed, escaped, windowed, fast)."""

import re
import time
from html import unescape
from html.parser import HTMLParser

import pytest

from hyperqueue.report.html import MAX_BUCKETS, render_report

T0 = 1_700_000_000.0

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class _Checker(HTMLParser):
    """Checks that every element is closed in order; collects the text and the tags."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []
        self.tags: dict[str, int] = {}
        self.doctype = False
        self.in_style = False
        self.attrs: list[tuple[str, str, str | None]] = []

    def handle_decl(self, decl):
        if decl.lower() == "doctype html":
            self.doctype = True

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs.extend((tag, k, v) for k, v in attrs)
        if tag not in VOID:
            self.stack.append(tag)
        self.in_style = tag == "style"

    def handle_startendtag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs.extend((tag, k, v) for k, v in attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack[-3:]}")
            return
        self.stack.pop()
        self.in_style = False

    def handle_data(self, data):
        if not self.in_style:
            self.text.append(data)
            self.text.append(" ")


def check_html(doc: str) -> _Checker:
    c = _Checker()
    c.feed(doc)
    c.close()
    assert c.doctype
    assert not c.errors, c.errors
    assert not c.stack, f"unclosed: {c.stack}"
    for tag in ("html", "head", "body", "style"):
        assert c.tags.get(tag) == 1, tag
    assert re.search(r"<head>.*<title>[^<]+</title>.*</head>", doc, re.S)
    # Self-contained: nothing loaded from elsewhere.
    assert "script" not in c.tags and "link" not in c.tags and "img" not in c.tags
    for tag, attr, value in c.attrs:
        if attr in ("src", "href") or (value and "http" in value and attr != "xmlns"):
            pytest.fail(f"external reference {tag} {attr}={value}")
    return c


def text_of(doc: str) -> str:
    return re.sub(r"\s+", " ", "".join(check_html(doc).text))


def row_value(doc: str, label: str) -> str:
    """The value of a summary table row."""
    m = re.search(rf"<tr><th>{re.escape(label)}</th><td[^>]*>([^<]*)</td></tr>", doc)
    assert m, label
    return unescape(m.group(1))


def request(*entries, n_nodes=0):
    return {"entries": [list(e) for e in entries], "n_nodes": n_nodes, "min_time": 0.0,
            "weight": 1.0}


def template(req):
    program = [["sleep", "1"], {}, "%{SUBMIT_DIR}", [None, False], [None, False], None, False]
    return [program, req, None, 0, 5, None]


def config(hostname, *resources):
    return [hostname, list(resources), "default", None, 8.0, None, "/tmp", "stop", None, None,
            123, None, 0.0, "", None]


CPUS4 = {"name": "cpus", "kind": "range", "start": 0, "end": 3}
MEM = {"name": "mem", "kind": "sum", "size": 240_000_000}
GPUS = {"name": "gpus", "kind": "list", "labels": ["0", "1"]}


def synthetic():
    """2 workers, 2 task types (job 1: 10 tasks of cpus 1, job 2: 4 tasks of gpus 1 + cpus 2).

    Worker 2 is lost at +50 while running task 2@3 (requeued, rerun on worker 1).
    Job 1: tasks 1-10 finish except 4 and 7 that fail. Job 2: 1, 2 finish, 3 fails after the
    rerun, 4 finishes.
    """
    r = []
    ev = r.append
    ev([T0, "server-start", {"server_uid": "abc123"}])
    ev([T0 + 1, "worker-connected", {"id": 1, "configuration": config("node-a", CPUS4, MEM)}])
    ev([T0 + 2, "worker-connected", {"id": 2, "configuration": config("node-b", CPUS4, GPUS)}])
    ev([T0 + 5, "job-created", {
        "job": 1, "closed_job": True, "job_desc": {"name": "<b>x</b>", "max_fails": None},
        "submit_desc": {"submit_dir": "/home", "batches": [
            [template(request(("cpus", 10000, "compact"))), "1-10", None, []]]}}])
    ev([T0 + 6, "job-created", {
        "job": 2, "closed_job": True, "job_desc": {"name": "gpu-job", "max_fails": None},
        "submit_desc": {"submit_dir": "/home", "batches": [
            [template(request(("cpus", 20000, "compact"), ("gpus", 10000, "compact"))),
             "1-3", None, []],
            [template(request(("cpus", 20000, "compact"), ("gpus", 10000, "compact"))),
             "4", None, []]]}}])
    t = T0 + 10
    for task in range(1, 11):
        ev([t, "task-started", {"job": 1, "task": task, "instance": 0, "worker": 1}])
        t += 1
        if task in (4, 7):
            ev([t, "task-failed", {"job": 1, "task": task, "instance": 0,
                                   "error": "Error: <oops> & exit code 1"}])
        else:
            ev([t, "task-finished", {"job": 1, "task": task, "instance": 0}])
        t += 1
    # t == T0 + 30
    ev([T0 + 30, "task-started", {"job": 2, "task": 1, "instance": 0, "worker": 2}])
    ev([T0 + 31, "task-started", {"job": 2, "task": 2, "instance": 0, "worker": 2}])
    ev([T0 + 40, "task-finished", {"job": 2, "task": 1, "instance": 0}])
    ev([T0 + 42, "task-finished", {"job": 2, "task": 2, "instance": 0}])
    ev([T0 + 45, "task-started", {"job": 2, "task": 3, "instance": 0, "worker": 2}])
    ev([T0 + 50, "worker-lost", {"id": 2, "reason": "CONNECTION LOST", "count_crash": True}])
    ev([T0 + 51, "task-started", {"job": 2, "task": 3, "instance": 1, "worker": 1}])
    ev([T0 + 55, "task-failed", {"job": 2, "task": 3, "instance": 1, "error": "boom"}])
    ev([T0 + 56, "task-started", {"job": 2, "task": 4, "instance": 0, "worker": 1}])
    ev([T0 + 60, "task-finished", {"job": 2, "task": 4, "instance": 0}])
    ev([T0 + 60, "job-completed", {"job": 1}])
    ev([T0 + 60, "job-completed", {"job": 2}])
    ev([T0 + 61, "some-future-event", {"whatever": [1, 2]}])
    ev([T0 + 70, "worker-lost", {"id": 1, "reason": "STOPPED", "count_crash": False}])
    ev([T0 + 71, "server-stop", {}])
    return r


def test_full_report():
    doc = render_report(synthetic())
    text = text_of(doc)
    assert doc.startswith("<!DOCTYPE html>")
    assert "<svg" in doc and doc.count("<svg") == 4
    # Summary counts.
    assert row_value(doc, "Jobs") == "2"
    assert row_value(doc, "Tasks started") == "15"
    assert row_value(doc, "Tasks finished") == "11"
    assert row_value(doc, "Tasks failed") == "3"
    assert row_value(doc, "Workers seen") == "2"
    assert row_value(doc, "Max concurrent workers") == "2"
    assert row_value(doc, "Max concurrent running tasks") == "2"
    assert row_value(doc, "Total time") == "1m 11s"
    assert row_value(doc, "Task types") == "2"
    # Server start, UTC ISO.
    assert "Server start time: 2023-11-14T22:13:20.000+00:00" in text
    assert "abc123" in text
    # Task types with their legend.
    assert "cpus 1 compact" in text
    assert "cpus 2 compact, gpus 1 compact" in text
    assert re.search(r"T1 cpus 1 compact 10 8 2 ", text)
    assert re.search(r"T2 cpus 2 compact, gpus 1 compact 5 3 1 ", text)
    assert "Global worker statistics" in text and "Task counts" in text
    assert "Task durations" in text
    # Workers table: hostnames, shapes, loss reasons.
    assert "node-a" in text and "node-b" in text
    assert "cpus 4, mem 24000" in text and "cpus 4, gpus 2" in text
    assert "CONNECTION LOST" in text and "STOPPED" in text
    # Job names and errors are escaped.
    assert "<b>x</b>" not in doc and "&lt;b&gt;x&lt;/b&gt;" in doc
    assert "<b>x</b>" in text
    assert "<oops>" not in doc and "Error: &lt;oops&gt; &amp; exit code 1" in doc
    assert "boom" in text
    # Durations: job 1 tasks take 1s; job 2 finished tasks 10s, 11s, 4s.
    assert re.search(r"T2 .* 3 1 4s 10s 8\.33s 11s", text)


def test_time_series_buckets_are_bounded():
    doc = render_report(synthetic())
    for m in re.finditer(r'points="([^"]*)"', doc):
        assert len(m.group(1).split()) <= 4 * MAX_BUCKETS + 4


def test_worker_lost_drops_its_running_task():
    # Task 2@3 was running on worker 2 when it was lost; it reran on worker 1.
    doc = render_report(synthetic(), end_time=50.9)
    assert row_value(doc, "Tasks started") == "13"
    assert row_value(doc, "Tasks failed") == "2"
    # After the loss nothing runs: the last bucket of the running tasks is empty.
    last = re.findall(r'<polygon points="([^"]*)" fill="#4e79a7"', doc)[-1]
    ys = [float(p.split(",")[1]) for p in last.split()]
    assert ys[MAX_BUCKETS * 2 - 1] == max(ys)  # the baseline (SVG y grows downwards)


def test_window_cuts_events():
    full = render_report(synthetic())
    early = render_report(synthetic(), end_time=29.5)
    assert row_value(early, "Tasks started") == "10"
    assert row_value(early, "Tasks finished") == "8"
    assert row_value(early, "Tasks failed") == "2"
    assert row_value(early, "Jobs") == "2"
    assert row_value(early, "Total time") == "29.5s"
    assert "gpu-job" in text_of(early)

    late = render_report(synthetic(), start_time=35, end_time=58)
    text = text_of(late)
    assert row_value(late, "Tasks started") == "3"       # 3 twice, 4
    assert row_value(late, "Tasks finished") == "2"      # 1 at +40, 2 at +42
    assert row_value(late, "Tasks failed") == "1"
    assert row_value(late, "Jobs") == "0"                # created before the window
    assert row_value(late, "Workers seen") == "2"
    # Tasks running when the window starts count.
    assert row_value(late, "Max concurrent running tasks") == "2"
    assert "window +35s to +58s" in text
    # Durations of tasks started before the window are kept.
    assert re.search(r"T2 .* 3 2 1 10s 10.5s 10.5s 11s", text)
    assert "<b>x</b>" not in text  # job 1 is not in the window's jobs
    assert "Error: <oops>" not in text and "boom" in text
    assert full != late

    nothing = render_report(synthetic(), start_time=1000, end_time=2000)
    assert "no events in the selected time window" in text_of(nothing)
    assert row_value(nothing, "Tasks started") == "0"

    inverted = render_report(synthetic(), start_time=50, end_time=10)
    assert "no events in the selected time window" in text_of(inverted)


def test_empty_journal():
    doc = render_report([])
    text = text_of(doc)
    assert "contains no events" in text
    doc = render_report([], start_time=1, end_time=2)
    assert "contains no events" in text_of(doc)


def test_single_event_and_no_server_start():
    doc = render_report([[T0, "job-open", {"job_id": 3, "name": "open & shut", "max_fails": None,
                                           "submit_dir": "/"}]])
    text = text_of(doc)
    assert row_value(doc, "Jobs") == "1"
    assert "open & shut" in text and "no server start" in text


def test_malformed_records_and_payloads():
    records = synthetic()
    records.insert(3, [T0 + 3, "worker-connected", {"id": 9, "configuration": {"odd": True}}])
    records.insert(3, [T0 + 3, "worker-connected", {"id": 8, "configuration": ["h", [{"x": 1}]]}])
    records.insert(3, [T0 + 3, "worker-connected", {"id": 7, "configuration": None}])
    records.insert(3, [T0 + 3, "job-created", {"job": 5, "submit_desc": {"batches": [
        ["not a template", "1-3", None, []], [template(request()), "bad ids", None, []]]}}])
    records.insert(3, [T0 + 3, "task-started", {"job": [1], "task": {}, "worker": 1}])
    records.insert(3, ["not a time", "server-start", {}])
    records.insert(3, [T0 + 3, "task-finished", "not a dict"])
    records.insert(3, "garbage")
    records.insert(3, [T0 + 3])
    doc = render_report(records)
    text = text_of(doc)
    assert row_value(doc, "Tasks finished") == "11"
    assert row_value(doc, "Workers seen") == "5"
    assert "unknown" in text


def test_task_types_in_large_and_stepped_batches():
    batches = [[template(request(("cpus", 10000, "compact"))), "1-100000:2", None, []],
               [template(request(("cpus", -1, "compact"))), "2-100000:2", None, []],
               [template(request(("mem", 5000, "tight"), n_nodes=2)), "200000", None, []]]
    records = [[T0, "server-start", {"server_uid": "u"}],
               [T0, "worker-connected", {"id": 1, "configuration": config("h", CPUS4)}],
               [T0, "job-created", {"job": 1, "closed_job": True,
                                    "job_desc": {"name": "j", "max_fails": None},
                                    "submit_desc": {"submit_dir": "/", "batches": batches}}]]
    for i, task in enumerate((1, 3, 2, 200000, 99999, 424242)):
        records.append([T0 + i, "task-started", {"job": 1, "task": task, "instance": 0,
                                                 "worker": 1}])
        records.append([T0 + i + 0.5, "task-finished", {"job": 1, "task": task, "instance": 0}])
    text = text_of(render_report(records))
    assert re.search(r"T1 cpus 1 compact 3 3 0 ", text)
    assert re.search(r"T2 cpus all compact 1 1 0 ", text)
    assert re.search(r"T3 nodes 2, mem 0.5 tight 1 1 0 ", text)
    assert re.search(r"T4 unknown 1 1 0 ", text)  # 424242 is in no batch


def test_worker_reconnect_keeps_reported_tasks():
    records = [[T0, "server-start", {"server_uid": "a"}],
               [T0, "worker-connected", {"id": 1, "configuration": config("h", CPUS4)}],
               [T0, "job-created", {"job": 1, "closed_job": True,
                                    "job_desc": {"name": "j", "max_fails": None},
                                    "submit_desc": {"submit_dir": "/", "batches": [
                                        [template(request(("cpus", 10000, "compact"))), "1-2",
                                         None, []]]}}],
               [T0 + 1, "task-started", {"job": 1, "task": 1, "instance": 0, "worker": 1}],
               [T0 + 1, "task-started", {"job": 1, "task": 2, "instance": 0, "worker": 1}],
               [T0 + 2, "server-stop", {}],
               [T0 + 10, "server-start", {"server_uid": "b"}],
               [T0 + 11, "worker-reconnected", {"id": 1, "configuration": config("h", CPUS4),
                                                "previous": ["a", 1], "running": [[1, 1, 0]],
                                                "results": []}],
               [T0 + 20, "task-finished", {"job": 1, "task": 1, "instance": 0}]]
    doc = render_report(records)
    text = text_of(doc)
    assert "Server start times: 2023-11-14T22:13:20.000+00:00, 2023-11-14T22:13:30.000+00:00" \
        in text
    assert row_value(doc, "Server starts") == "2"
    assert row_value(doc, "Workers seen") == "1"
    # Task 1 ran 19 s across the restart.
    assert re.search(r"T1 cpus 1 compact 2 1 0 19s 19s 19s 19s", text)
    # Task 2 (not reported) stopped running at the reconnect: 1 task runs afterwards.
    late = render_report(records, start_time=12, end_time=19)
    assert row_value(late, "Max concurrent running tasks") == "1"


def _big_journal(n_tasks: int):
    records = [[T0, "server-start", {"server_uid": "big"}]]
    for w in range(1, 5):
        records.append([T0, "worker-connected", {"id": w, "configuration": config(
            f"n{w}", CPUS4)}])
    records.append([T0, "job-created", {"job": 1, "closed_job": True,
                                        "job_desc": {"name": "big", "max_fails": None},
                                        "submit_desc": {"submit_dir": "/", "batches": [
                                            [template(request(("cpus", 10000, "compact"))),
                                             f"0-{n_tasks // 2 - 1}", None, []],
                                            [template(request(("cpus", 20000, "compact"))),
                                             f"{n_tasks // 2}-{n_tasks - 1}", None, []]]}}])
    t = T0 + 1
    for task in range(n_tasks):
        records.append([t, "task-started", {"job": 1, "task": task, "instance": 0,
                                            "worker": task % 4 + 1}])
        t += 0.001
        if task % 100 == 0:
            records.append([t, "task-failed", {"job": 1, "task": task, "instance": 0,
                                               "error": "x"}])
        else:
            records.append([t, "task-finished", {"job": 1, "task": task, "instance": 0}])
    return records


def test_200k_task_events_are_fast():
    records = _big_journal(100_000)  # 200k task events
    start = time.perf_counter()
    doc = render_report(records)
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0, elapsed
    assert row_value(doc, "Tasks started") == "100000"
    assert row_value(doc, "Tasks failed") == "1000"
    assert row_value(doc, "Tasks finished") == "99000"
    assert len(doc) < 1_000_000
    check_html(doc)


def test_the_collector_pause_is_scoped_to_the_render():
    import gc

    assert gc.isenabled()
    render_report([])
    assert gc.isenabled()
    with pytest.raises(TypeError):
        render_report(42)  # not a list of records: the collector is still switched back on
    assert gc.isenabled()
    gc.disable()
    try:
        render_report([])
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()


def test_long_tables_show_the_first_rows_and_say_so():
    r = [[T0, "server-start", {"server_uid": "abc123"}]]
    for i in range(1, 1003):
        r.append([T0 + 1, "worker-connected", {"id": i, "configuration": config(f"n{i}", CPUS4)}])
        r.append([T0 + 2, "job-created", {
            "job": i, "closed_job": True, "job_desc": {"name": f"j{i}", "max_fails": None},
            "submit_desc": {"submit_dir": "/home", "batches": [
                [template(request(("cpus", 10000, "compact"))), "0", None, []]]}}])
    doc = render_report(r)
    check_html(doc)
    text = text_of(doc)
    notices = [n for n in ("Showing the first 1000 of 1002 workers.",
                           "Showing the first 1000 of 1002 jobs.") if n in text]
    assert len(notices) == 2, notices
    hosts = sum(f">n{i}<" in doc for i in range(1, 1003))
    assert hosts == 1000, hosts
    assert "Showing the first" not in text_of(render_report(synthetic()))
