"""`hq task ...`"""

from __future__ import annotations


from ._click import click
from .common import RANGES, SelectorType, connect
from .job import (TASK_STATES, _states_option, _stdio_text, fetch_tasks, missing_items,
                  missing_text)
from .main import output
from .output import duration, jsonify_times, local_time, resources_text


@click.group()
def task():
    """Inspect tasks."""


def _makespan(t: dict) -> str:
    import time

    start = t.get("started_at")
    if start is None:
        return ""
    end = t.get("finished_at") or time.time()
    return duration(end - start)


def _error(t: dict, verbose: bool, limit: int) -> str:
    err = t.get("error") or ""
    if not verbose and len(err) > limit:
        return err[:limit] + "…"
    return err


@task.command("list")
@click.argument("job_selector", type=SelectorType(allow_all=False))
@click.option("--tasks", type=RANGES, help="Only these task ids")
@click.option("--task-status", help="Only tasks in these states")
@click.option("-v", "--verbose", is_flag=True, help="Show whole error messages")
def list_(job_selector, tasks, task_status, verbose):
    """List the tasks of jobs."""
    from ..common.selectors import Selector
    from ..protocol import messages as m

    states = _states_option(task_status, TASK_STATES, "'--task-status'")
    task_sel = Selector.of_ids(tasks).to_wire() if tasks is not None else None
    out = output()
    with connect() as client:
        resp = client.request(m.JobInfoRequest(job_selector.to_wire(), True, task_sel, states))
        for item in missing_items(resp.missing):
            out.note(missing_text(item, "Job", "Jobs", " not found"))
        if out.is_quiet:
            # Printed page by page as the server sends them: bounded memory, and the first
            # lines of a huge array come at once.
            def print_page(tasks):
                for t in tasks:
                    out.line(f"{t['id']} {t['state'].upper()}")
            for d in resp.jobs:
                fetch_tasks(client, d, task_sel, states, on_page=print_page)
            return
        for d in resp.jobs:
            fetch_tasks(client, d, task_sel, states)
    if out.is_json:
        out.json({str(d["info"]["id"]): jsonify_times(d["tasks"]) for d in resp.jobs})
        return
    multi = len(resp.jobs) > 1
    rows = []
    for d in resp.jobs:
        for t in d["tasks"]:
            row = [t["id"], t["state"].upper(), t.get("worker_hostname", ""), _makespan(t),
                   _error(t, verbose, 16)]
            rows.append(([d["info"]["id"]] if multi else []) + row)
    header = (["Job ID"] if multi else []) + ["Task ID", "State", "Worker", "Makespan", "Error"]
    out.horizontal(header, rows)


@task.command()
@click.argument("job_selector", type=SelectorType(allow_all=False))
@click.argument("task_selector", type=RANGES)
@click.option("-v", "--verbose", is_flag=True, help="Show whole error messages")
def info(job_selector, task_selector, verbose):
    """Show details of tasks of one job."""
    from ..common.selectors import Selector
    from ..errors import HqError
    from ..protocol import messages as m

    if job_selector.kind == "ids" and len(job_selector.ids) != 1:
        raise click.BadParameter("expected a single job id or 'last'")
    task_sel = Selector.of_ids(task_selector).to_wire()
    with connect() as client:
        resp = client.request(m.JobInfoRequest(job_selector.to_wire(), True, task_sel))
        if not resp.jobs:
            raise HqError(f"Job {job_selector.to_text()} not found")
        d = resp.jobs[0]
        fetch_tasks(client, d, task_sel, None)
    found = [t["id"] for t in d["tasks"]]
    missing = task_selector.without_members(found)
    from .job import MISSING_LINES

    # In the order the ids were given, as before (ranges beyond MISSING_LINES ids).
    items = list(missing) if len(missing) <= MISSING_LINES else missing_items(
        [list(r) for r in missing.ranges])
    for item in items:
        output().note(missing_text(item, "Task", "Tasks", " not found"))
    out = output()
    if out.is_json:
        out.json(jsonify_times(d["tasks"]))
        return
    if out.is_quiet:
        return
    submits = [s["array"] for s in d["submits"]]
    from ..core.ranges import IntRanges

    def submit_of(tid):
        for s in submits:
            if tid in IntRanges.parse(s["ids"]):
                return s
        return submits[0]

    for t in d["tasks"]:
        s = submit_of(t["id"])
        p = s["program"]
        rows = [
            ("Task ID", t["id"]), ("State", t["state"].upper()),
            ("Command", " ".join(p["args"])),
            ("Environment", "\n".join(f"{k}={v}" for k, v in p["env"].items())),
            ("Worker", t.get("worker_hostname", "")),
            ("Start", local_time(t.get("started_at"))),
            ("End", local_time(t.get("finished_at"))),
            ("Makespan", _makespan(t)),
            ("Workdir", t.get("cwd", p["cwd"])),
            ("Stdout", t.get("stdout") or _stdio_text(p, "stdout")),
            ("Stderr", t.get("stderr") or _stdio_text(p, "stderr")),
            ("Time limit", duration(s["time_limit"])),
            ("Resources", resources_text(s["resources"])),
            ("Priority", s["priority"]),
            ("Pin", s["pin_mode"] or "none"),
            ("Task dir", "yes" if s["task_dir"] else "no"),
            ("Crash limit", s["crash_limit"]),
            ("Dependencies", ",".join(str(x) for x in s["deps"])),
            ("Error", _error(t, verbose, 237)),
        ]
        out.vertical(rows)


@task.command()
@click.argument("job_selector", type=SelectorType(allow_all=False))
@click.argument("task_id", type=int)
def explain(job_selector, task_id):
    """Explain why a task does (not) run on each worker."""
    from ..protocol import messages as m

    if job_selector.kind == "ids" and len(job_selector.ids) != 1:
        raise click.BadParameter("expected a single job id or 'last'")
    with connect() as client:
        ex = client.request(m.TaskExplainRequest(job_selector.to_wire(), task_id)).explanation
    out = output()
    if out.is_json:
        out.json({"task_id": task_id, "explanation": ex})
        return
    deps = ex["dependencies"]
    if deps["total"]:
        if deps["pending"]:
            out.line(f"Task is waiting for {deps['pending']}/{deps['total']} dependencies.")
        else:
            out.line("All dependencies of the task are finished.")
    else:
        out.line("The task has no dependencies.")
    runnable = []
    rows = []
    n_var = ex["n_variants"]
    for w in ex["workers"]:
        ok = [v for v in w["variants"] if v["runnable"]]
        if ok:
            runnable.append(str(w["worker_id"]))
        if n_var > 1:
            verdict = f"Yes ({len(ok)}/{n_var} variants)" if ok else "No"
        else:
            verdict = "Yes" if ok else "No"
        first = True
        for v in w["variants"]:
            for item in v["items"] or [{"type": "", "provides": "", "request": "",
                                        "ok": True}]:
                rows.append([w["worker_id"] if first else "", verdict if first else "",
                             v["variant"] if n_var > 1 else "", item["type"],
                             item["provides"], item["request"] + ("" if item["ok"]
                                                                  else "  (blocking)")])
                first = False
    if runnable:
        out.line(f"The task can run on workers: {', '.join(runnable)}")
    else:
        out.line("The task cannot run on any connected worker.")
    out.horizontal(["Worker Id", "Runnable", "Variant", "Type", "Provides", "Request"], rows)
