"""The request handlers answer long listings page by page and resolve selectors against what
exists (issue 10, item 2). In process, with the real handlers and a real core."""

import time

import trio

from core_testkit import Env, array_spec
from hyperqueue.core import views
from hyperqueue.core.ranges import MAX_ID
from hyperqueue.protocol import messages as m
from hyperqueue.server import requests as rq


def _ask(env, req):
    # no journal: the default `reported` returns at once (every answer is as durable as it gets)
    handler = rq.ClientRequests(rq.RequestContext(env.core, env.out))
    return trio.run(handler.handle, req)


def test_job_list_pages(monkeypatch):
    monkeypatch.setattr(rq, "JOB_PAGE", 3)
    monkeypatch.setattr(rq, "JOB_SCAN", 5)
    env = Env()
    jobs = [env.submit(array_spec("0-1")) for _ in range(10)]
    for j in jobs[::2]:
        env.cancel(j)
    assert [j["id"] for j in _ask(env, m.JobListRequest(None)).jobs] == [1, 2, 3]
    got, after, answers = [], -1, 0
    while after is not None:
        resp = _ask(env, m.JobListPageRequest(["waiting"], after))
        assert len(resp.items) <= 3
        got += [j["id"] for j in resp.items]
        after = resp.next
        answers += 1
    assert got == [2, 4, 6, 8, 10]
    assert answers >= 2  # no answer examined more than 5 jobs


def test_job_info_tasks_share_one_page_budget_and_continue():
    env = Env()
    a = env.submit(array_spec(f"0-{MAX_ID - 1}"))
    b = env.submit(array_spec("0-5"))
    t0 = time.perf_counter()
    resp = _ask(env, m.JobInfoRequest("all", True, None, None))
    assert time.perf_counter() - t0 < 2
    da, db = resp.jobs
    assert len(da["tasks"]) == views.TASK_PAGE and da["tasks_next"] == views.TASK_PAGE - 1
    assert db["tasks"] == [] and db["tasks_next"] == -1  # budget used up: starts over later
    page = _ask(env, m.TaskPageRequest(b.id, None, None, -1))
    assert [t["id"] for t in page.items] == list(range(6)) and page.next is None
    page = _ask(env, m.TaskPageRequest(a.id, [[0, MAX_ID, 1]], ["waiting"], MAX_ID - 3))
    assert [t["id"] for t in page.items] == [MAX_ID - 2, MAX_ID - 1] and page.next is None


def test_huge_selectors_resolved_against_existing_jobs():
    env = Env()
    env.submit(array_spec("0-1"))
    t0 = time.perf_counter()
    resp = _ask(env, m.JobInfoRequest([[0, MAX_ID, 1]], False))
    assert [d["info"]["id"] for d in resp.jobs] == [1]
    assert resp.missing == [[0, 0, 1], [2, MAX_ID, 1]]
    res = _ask(env, m.CancelJobsRequest([[0, MAX_ID, 1]], None)).results
    assert res == [[1, "canceled", 2, 0], [[0, 0, 1], "not-found", 0, 0],
                   [[2, MAX_ID, 1], "not-found", 0, 0]]
    assert _ask(env, m.ForgetJobsRequest([[0, MAX_ID, 1]], ["canceled"])).results == \
        [[1, MAX_ID]]
    res = _ask(env, m.StopWorkersRequest([[0, MAX_ID, 1]])).results
    assert res == [[[0, MAX_ID, 1], "worker not found"]]
    resp = _ask(env, m.WaitJobsRequest([[0, MAX_ID, 1]], False))
    assert resp.jobs == [] and resp.missing == [[0, MAX_ID, 1]]
    assert time.perf_counter() - t0 < 2


def test_failed_submit_changes_nothing():
    env = Env()
    bad = m.SubmitRequest("x", None, "/s", None,
                          [[array_spec().batches[0].template, "0-3", [b"a"], []]])
    assert isinstance(_ask(env, bad), m.ErrorResponse)
    bad = m.SubmitRequest("x", None, "/s", None,
                          [[array_spec().batches[0].template, "0-3", None, [9]]])
    assert "Invalid dependency" in _ask(env, bad).message
    assert not env.core.jobs and env.core.next_job_id == 1 and env.core.next_template_id == 1
