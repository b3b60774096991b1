"""The client library's spec builder, calls and waiting, without click (and without a server:
the calls are sans-IO generators, driven here with real response messages)."""

import os

import pytest

from hyperqueue.client import calls, spec
from hyperqueue.client.jobfile import load_job_file
from hyperqueue.client.wait import poll_jobs, progress
from hyperqueue.core.model import CRASH_LIMIT_NEVER_RESTART, StdioDef
from hyperqueue.core.ranges import IntRanges
from hyperqueue.errors import SpecError
from hyperqueue.protocol import messages as m


def test_a_job_from_plain_python_values():
    """What the Python API will do: TaskSpecs with explicit ids and deps -> one SubmitRequest."""
    a = spec.TaskSpec(["echo", "a"], env={"X": "1"}, priority=3,
                      requests=[spec.resource_request([spec.resource_entry("gpus", 1)])])
    b = spec.TaskSpec(["echo", "b"], stdout=spec.stdio(None), crash_limit=spec.crash_limit(
        "never-restart"))
    job = spec.JobSpec([spec.Batch(a, IntRanges.from_ids([0])),
                        spec.Batch(b, IntRanges.from_ids([1]), deps=[0, 0])],
                       name="PyAPI job", max_fails=1, submit_dir="/work")
    req = job.request()
    assert isinstance(req, m.SubmitRequest)
    assert (req.name, req.max_fails, req.submit_dir, req.job_id) == ("PyAPI job", 1, "/work",
                                                                     None)
    (ta, ids_a, _, deps_a), (tb, ids_b, _, deps_b) = req.batches
    assert (ids_a, deps_a, ids_b, deps_b) == ("0", [], "1", [0])
    assert ta.priority == 3 and ta.program.env == {"X": "1"}
    assert [e.name for e in ta.requests[0].entries] == ["cpus", "gpus"]  # cpus = 1 added
    assert tb.program.stdout == StdioDef(None) and tb.crash_limit == CRASH_LIMIT_NEVER_RESTART
    assert tb.program.stderr.path == spec.DEFAULT_STDERR
    m.encode(req)  # it is a valid message


@pytest.mark.parametrize("task, field, message", [
    (dict(command=[]), "command", "expected a non-empty list of strings"),
    (dict(command=["x"], cwd="%{CWD}/a"), "cwd", "%{CWD} cannot be used in cwd"),
    (dict(command=["x"], priority=2**31), "priority", "2147483648 is not in the range"),
    (dict(command=["x"], pin="bad"), "pin", "expected \"none\""),
])
def test_invalid_tasks_raise_spec_errors_naming_the_field(task, field, message):
    with pytest.raises(SpecError) as e:
        spec.TaskSpec(**task).template()
    assert e.value.field == field and e.value.message.startswith(message)


def test_value_parsers():
    assert spec.crash_limit(None) == 5 and spec.crash_limit("7") == 7
    for bad in ("0", "-1", "x", str(2**32), True):
        with pytest.raises(SpecError, match="expected a positive number") as e:
            spec.crash_limit(bad)
        assert e.value.field == "crash_limit"
    assert spec.stream_dir("out", "/sub") == "/sub/out"
    assert spec.stream_dir("%{SUBMIT_DIR}/o") == "%{SUBMIT_DIR}/o"
    with pytest.raises(SpecError, match=r"placeholder %\{TASK_ID\} cannot be used"):
        spec.stream_dir("%{TASK_ID}")
    assert spec.env_from_items(["A=1", "B=", "A=2"]) == {"A": "2", "B": ""}
    with pytest.raises(SpecError, match="invalid environment variable '=x'"):
        spec.env_from_items(["=x"])
    assert spec.stdio_from_text("p:rm-if-finished", "d") == StdioDef("p", True)
    assert spec.stdio_from_text(":rm-if-finished", "d") == StdioDef("d", True)
    assert spec.stdio_from_text(None, "d", streamed=True).streamed


def test_array_ids():
    e = [b"a", b"b", b"c"]
    assert spec.array_ids(None, e, False) == (IntRanges.from_ids([0, 1, 2]), e)
    assert spec.array_ids(IntRanges.parse("1,2,7"), e, False) == (IntRanges.parse("1-2"),
                                                                  [b"b", b"c"])
    assert spec.array_ids(None, e, True) == (None, e)
    assert spec.array_ids(None, None, False)[0] == IntRanges.from_ids([0])
    with pytest.raises(SpecError, match="would create no tasks"):
        spec.array_ids(IntRanges.parse("5-9"), e, False)


@pytest.mark.parametrize("ids, deps, kind", [
    ([1, 2, 1], [[], [], []], "duplicate"),
    ([1, 2], [[], [2]], "self"),
    ([1, 2], [[], [3]], "unknown"),
    ([1, 2, 3], [[3], [1], [2]], "cycle"),
])
def test_graph_errors_are_typed(ids, deps, kind):
    with pytest.raises(spec.GraphError) as e:
        spec.check_graph(ids, deps)
    assert e.value.kind == kind
    if kind == "cycle":
        assert e.value.cycle == [1, 3, 2, 1]
    spec.check_graph([1, 2, 3], [[], [1], [1, 2]])  # a diamond-ish DAG is fine


def test_cli_options_and_a_job_file_build_the_same_request(tmp_path, monkeypatch):
    """One builder: `hq submit` options and the equivalent job file give equal templates."""
    from hyperqueue.cli.submit import build_request

    monkeypatch.chdir(tmp_path)
    cli = build_request({"name": "j", "env": ("A=1",), "cpus": "2", "resource": ("mem=100",),
                         "priority": 4, "crash_limit": "3", "time_limit": 60.0,
                         "stream": "s", "task_dir": True}, ("sleep", "1"))
    (tmp_path / "j.toml").write_text(
        'name = "j"\nstream = "s"\n[array]\nids = "0"\ncommand = ["sleep", "1"]\n'
        'env = { A = "1" }\npriority = 4\ncrash_limit = 3\ntime_limit = "1m"\n'
        'task_dir = true\ncwd = "%{SUBMIT_DIR}"\n'
        '[[array.request]]\nresources = { cpus = "2", mem = 100 }\n')
    jf = load_job_file(str(tmp_path / "j.toml"))
    assert cli.batches[0][0].to_wire() == jf.batches[0][0].to_wire()
    assert cli.batches[0][1:] == jf.batches[0][1:]
    assert (cli.name, cli.max_fails, cli.submit_dir) == (jf.name, jf.max_fails, str(tmp_path))
    assert cli.batches[0][0].program.stream == os.path.join(str(tmp_path), "s")


def _drive(call, answers):
    """Runs a sans-IO call against canned answers; returns (requests sent, result)."""
    sent = []
    try:
        request = next(call)
        while True:
            sent.append(request)
            request = call.send(answers.pop(0))
    except StopIteration as stop:
        return sent, stop.value


def test_job_list_asks_page_by_page():
    j = lambda i: {"id": i}  # noqa: E731
    sent, jobs = _drive(calls.job_list(), [m.PageResponse([j(1), j(2)], 2),
                                           m.PageResponse([j(3)], None)])
    assert [r.after for r in sent] == [-1, 2]
    assert jobs == [j(1), j(2), j(3)]


def test_job_info_streams_task_pages_and_lists_missing_ids():
    d = {"info": {"id": 4}, "tasks": [{"id": 0}], "tasks_next": 0}
    pages = []
    sent, found = _drive(
        calls.job_info([[4, 5, 1]], on_page=lambda job, page: pages.append(
            (job["info"]["id"], [t["id"] for t in page]))),
        [m.JobsResponse([d], [[5, 5, 1]]), m.PageResponse([{"id": 1}], None)])
    assert type(sent[1]).__name__ == "TaskPageRequest"
    assert pages == [(4, [0]), (4, [1])]
    assert found.missing == [5] and found.jobs[0]["tasks"] == [] and "tasks_next" not in d


def test_progress_counts_and_finishes():
    def info(waiting, running, finished, is_open=False):
        return {"task_count": waiting + running + finished, "is_open": is_open,
                "task_stats": {"waiting": waiting, "running": running, "finished": finished,
                               "failed": 0, "canceled": 0, "aborted": 0}}

    p = progress([info(1, 1, 2), info(0, 0, 3)])
    assert (p.total, p.done, p.finished, p.stats["finished"]) == (7, 5, False, 5)
    assert progress([info(0, 0, 3, is_open=True)]).finished is False
    assert progress([info(0, 0, 3, is_open=True)], without_close=True).finished is True

    class Client:  # answers the polls from a script of snapshots
        def __init__(self, snapshots):
            self.snapshots = snapshots

        def call(self, call, timeout=60.0):
            return _drive(call, [m.JobsResponse(
                [{"info": i} for i in self.snapshots.pop(0)], [])])[1]

    polls = list(poll_jobs(Client([[info(1, 0, 0)], [info(0, 1, 0)], [info(0, 0, 1)]]), [1],
                           sleep=lambda s: None))
    assert [p.done for p in polls] == [0, 0, 1] and polls[-1].finished


def test_printers_implement_the_same_results():
    from hyperqueue.cli.output import PRINTERS, Printer

    def results(cls):
        return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}

    base = results(Printer)
    cli = results(PRINTERS["cli"])
    assert cli - base, "the cli printer has result methods"
    for mode, cls in PRINTERS.items():
        own = {n for n in cli - base if n in vars(cls) or any(
            n in vars(k) for k in cls.__mro__ if k is not Printer and k is not object)}
        assert own == cli - base, (mode, (cli - base) - own)
