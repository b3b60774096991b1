"""Typed calls to the server, written once for every client (sans-IO).

Each call is a generator: it yields the request messages it needs (several for paged answers:
`JobListPageRequest`, `TaskPageRequest`), receives each response, and returns a typed result. A
client drives it: `BlockingClient.call(calls.job_list())` for the CLI, and (next) the anyio client
with `await client.call(...)`; neither repeats the paging or the answer's shape.

Views of jobs, tasks and workers stay the server's dicts (the JSON output prints them as they
are); the per-item outcomes are small named tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, NamedTuple

from ..core.ranges import IntRanges
from ..protocol import messages as m

Call = Generator[m.Message, m.Message, Any]

#: Up to this many ids not found, each is listed on its own (`Job 5 not found`); a larger set
#: (e.g. `job info 0-4294967295`) is listed per range (`5-4294967295`) instead of billions of ids.
MISSING_LINES = 10_000


class JobInfos(NamedTuple):
    jobs: list[dict]  # job details: {"info", "submits", "tasks", "workers", ...}
    missing: list     # ids not found: ints, or range texts ("5-100") beyond MISSING_LINES


class WorkerInfos(NamedTuple):
    workers: list[dict]
    missing: list


class ForgetResult(NamedTuple):
    forgotten: int
    ignored: int


def missing_items(wire) -> list:
    """The ids of a "not found" answer (`[start, end, step]` triples) as what to list: every id
    ascending when there are at most MISSING_LINES, else the ranges as texts (`5-100`)."""
    ids = IntRanges.from_ranges(wire)
    if len(ids) <= MISSING_LINES:
        return sorted(ids)
    return [r[0] if r[0] == r[1] else IntRanges((r,)).to_text() for r in ids.sorted_ranges()]


def missing_of(ids: IntRanges) -> list:
    """Ids asked for but not found, in the order given (ranges beyond MISSING_LINES ids)."""
    if len(ids) <= MISSING_LINES:
        return list(ids)
    return missing_items([list(r) for r in ids.ranges])


def item_results(results) -> list:
    """ItemResultsResponse rows, with the "not found" rows (`[[start, end, step], status, ...]`)
    turned into one row per id, ascending (or one per range text beyond MISSING_LINES ids)."""
    found = [r for r in results if not isinstance(r[0], list)]
    missing = [r for r in results if isinstance(r[0], list)]
    if not missing:
        return found
    rest = missing[0][1:]
    return found + [[item, *rest] for item in missing_items([r[0] for r in missing])]


# -- jobs ---------------------------------------------------------------------------------------


#: The server's answers to a submit that upstream's client words itself (F7): printed as the
#: bare message, not as a server error (`Error: ...`). Texts of `server.requests._check_submit`.
SUBMIT_ANSWER = (r"(Job \d+ not found\.|Job \d+ is not opened\.|"
                 r"Task \d+ already exists in job \d+\.|Task \d+ is defined more than once\.|"
                 r"Invalid dependency on \d+)\Z")


def submit(request: m.SubmitRequest) -> Call:
    """Submits a job (or tasks into an open job); returns the job id."""
    return (yield request).job_id


def send_submit(client, request: m.SubmitRequest) -> int:
    """Submits through a blocking `client`; the answers of SUBMIT_ANSWER raise CommandError
    (printed bare, as upstream), any other error as it is."""
    import re

    from ..errors import CommandError, RequestFailed

    try:
        return client.call(submit(request))
    except RequestFailed as e:
        if re.match(SUBMIT_ANSWER, e.message):
            raise CommandError(e.message) from None
        raise


def job_list(states: list[str] | None = None) -> Call:
    """Every job (or those in `states`) as list items, asked page by page."""
    out: list[dict] = []
    after = -1
    while after is not None:
        resp = yield m.JobListPageRequest(states, after)
        out.extend(resp.items)
        after = resp.next
    return out


def job_tasks(d: dict, task_selector=None, states=None,
              on_page: Callable[[list], None] | None = None) -> Call:
    """Completes the job detail `d` (from a JobInfoRequest with tasks): asks for the remaining
    pages of tasks. With `on_page`, each page (including the first) is handed to it and not kept
    (bounded memory); otherwise `d["tasks"]` ends up holding every task. `d["tasks_next"]` is
    removed either way."""
    nxt = d.pop("tasks_next", None)
    if on_page is not None:
        on_page(d["tasks"])
        d["tasks"] = []
    while nxt is not None:
        resp = yield m.TaskPageRequest(d["info"]["id"], task_selector, states, nxt)
        if on_page is not None:
            on_page(resp.items)
        else:
            d["tasks"].extend(resp.items)
        nxt = resp.next


def job_info(selector, *, tasks: bool = True, task_selector=None, task_states=None,
             on_page: Callable[[dict, list], None] | None = None,
             on_start: Callable[[JobInfos], None] | None = None) -> Call:
    """Details of the selected jobs (`selector`, `task_selector`: wire selectors) with all their
    tasks (or those in `task_states`); with `on_page(job, tasks)` the tasks are streamed page
    by page instead of kept (each job's pages in a row, its first page even when empty).
    `on_start(found)` is called once the jobs are known, before any page (their `tasks` still
    hold the first page)."""
    resp = yield m.JobInfoRequest(selector, tasks, task_selector, task_states)
    found = JobInfos(resp.jobs, missing_items(resp.missing))
    if on_start is not None:
        on_start(found)
    if tasks:
        for d in resp.jobs:
            cb = None if on_page is None else (lambda page, d=d: on_page(d, page))
            yield from job_tasks(d, task_selector, task_states, on_page=cb)
    return found


def job_counts(selector) -> Call:
    """The infos (counts, no tasks) of the selected jobs."""
    resp = yield m.JobInfoRequest(selector, False)
    return [d["info"] for d in resp.jobs]


def cancel_jobs(selector, reason: str | None = None) -> Call:
    """[[job, status, n_canceled, n_already_finished], ...]"""
    return item_results((yield m.CancelJobsRequest(selector, reason)).results)


def close_jobs(selector) -> Call:
    """[[job, status], ...]"""
    return item_results((yield m.CloseJobsRequest(selector)).results)


def forget_jobs(selector, states: list[str]) -> Call:
    (forgotten, ignored), = (yield m.ForgetJobsRequest(selector, states)).results
    return ForgetResult(forgotten, ignored)


def open_job(name: str, max_fails: int | None, submit_dir: str) -> Call:
    return (yield m.OpenJobRequest(name, max_fails, submit_dir)).job_id


def wait_jobs(selector, without_close: bool = False) -> Call:
    """Blocks until the jobs complete (the driver must not time out); their final infos."""
    return (yield m.WaitJobsRequest(selector, without_close)).jobs


def wait_jobs_counted(selector, without_close: bool = False) -> Call:
    """`wait_jobs`, and the number of selected ids that name no job."""
    resp = yield m.WaitJobsRequest(selector, without_close)
    return resp.jobs, len(IntRanges.from_ranges(resp.missing))


def task_explain(job_selector, task_id: int) -> Call:
    return (yield m.TaskExplainRequest(job_selector, task_id)).explanation


# -- workers and server -----------------------------------------------------------------------


def worker_list(include_offline: bool = False) -> Call:
    return (yield m.WorkerListRequest(include_offline)).workers


def worker_info(selector) -> Call:
    resp = yield m.WorkerInfoRequest(selector)
    return WorkerInfos(resp.workers, missing_items(resp.missing))


def stop_workers(selector) -> Call:
    """[[worker, outcome text], ...]"""
    return item_results((yield m.StopWorkersRequest(selector)).results)


def server_info() -> Call:
    return (yield m.ServerInfoRequest()).info


def stop_server() -> Call:
    yield m.StopServerRequest()


def debug_dump(path: str) -> Call:
    """The server writes its scheduler state as JSON to `path` (resolved by the server)."""
    yield m.DebugDumpRequest(path)


def journal(action: str) -> Call:
    """`flush` or `prune` the server's journal; the server's message."""
    return (yield m.JournalRequest(action)).message



# -- automatic allocation -----------------------------------------------------------------------


def alloc_add(params: dict, dry_run: bool = True) -> Call:
    """Creates an allocation queue (`params`: `QueueParams.to_wire()`): {queue_id, warnings}."""
    return (yield m.AllocAddRequest(params, dry_run)).data


def alloc_dry_run(params: dict) -> Call:
    """Submits a trial allocation and cancels it: {job_id, script}."""
    return (yield m.AllocDryRunRequest(params)).data


def alloc_list() -> Call:
    """Every allocation queue (views)."""
    return (yield m.AllocListRequest()).data["queues"]


def alloc_info(queue_id: int, states: list[str] | None = None) -> Call:
    """{queue, allocations, decision} of one queue (allocations in `states` only)."""
    return (yield m.AllocInfoRequest(queue_id, states)).data


def alloc_queue_action(queue_id: int, action: str, force: bool = False) -> Call:
    """`pause`, `resume` or `remove` a queue; the server's message."""
    return (yield m.AllocQueueRequest(queue_id, action, force)).data["message"]


def alloc_workdir(allocation_id: str) -> Call:
    """The directory of an allocation (its stdout/stderr files are there)."""
    return (yield m.AllocLogRequest(allocation_id)).data["workdir"]
