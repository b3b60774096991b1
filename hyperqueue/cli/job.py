"""`hq job ...`"""

from __future__ import annotations

import os
import sys
import time

from ._click import click
from .common import RANGES, SELECTOR, SelectorType, connect
from .joblist import JOB_STATES, all_jobs, list_jobs, parse_states
from .main import output
from .output import duration, jsonify_times, local_time, resources_text

TASK_STATES = ("waiting", "running", "finished", "failed", "canceled", "aborted")


#: Up to this many ids not found, each gets its own line (`Job 5 not found`), as always; a
#: larger set (e.g. `job info 0-4294967295`) is reported per range (`Jobs 10-4294967295 not
#: found`) instead of billions of lines.
MISSING_LINES = 10_000


def missing_items(wire) -> list:
    """The ids of a "not found" answer (`[start, end, step]` triples) as what to print: every
    id ascending when there are at most MISSING_LINES, else the ranges as texts (`5-100`)."""
    from ..core.ranges import IntRanges

    ids = IntRanges.from_ranges(wire)
    if len(ids) <= MISSING_LINES:
        return sorted(ids)
    return [r[0] if r[0] == r[1] else IntRanges((r,)).to_text() for r in ids.sorted_ranges()]


def missing_text(item, singular: str, plural: str, rest: str) -> str:
    """`<Singular> 5<rest>` for one id, `<Plural> 5-9<rest>` for a range text."""
    return f"{singular if isinstance(item, int) else plural} {item}{rest}"


def item_results(results) -> list:
    """ItemResultsResponse rows, with the "not found" rows (`[[start, end, step], status, ...]`)
    turned into one row per id, ascending, as before (or one row per range text when there
    are more than MISSING_LINES ids)."""
    found = [r for r in results if not isinstance(r[0], list)]
    missing = [r for r in results if isinstance(r[0], list)]
    if not missing:
        return found
    rest = missing[0][1:]
    return found + [[item, *rest] for item in missing_items([r[0] for r in missing])]


def fetch_tasks(client, d: dict, task_sel, states, *, on_page=None) -> None:
    """Completes the job detail `d` (from a JobInfoRequest with tasks): asks the server for the
    remaining pages of tasks. With `on_page`, each page (including the first) is handed to it
    and not kept (bounded memory); otherwise `d["tasks"]` ends up holding every task.
    `d["tasks_next"]` is removed either way."""
    from ..protocol import messages as m

    nxt = d.pop("tasks_next", None)
    if on_page is not None:
        on_page(d["tasks"])
        d["tasks"] = []
    while nxt is not None:
        resp = client.request(m.TaskPageRequest(d["info"]["id"], task_sel, states, nxt))
        if on_page is not None:
            on_page(resp.items)
        else:
            d["tasks"].extend(resp.items)
        nxt = resp.next


def _states_option(value, allowed, hint):
    try:
        return parse_states(value, allowed)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=hint)


@click.group()
def job():
    """Manage jobs."""


@job.command("list")
@click.option("--all", "all_", is_flag=True, help="Show also completed jobs")
@click.option("--filter", "filter_", help="Comma-separated job states to show")
@click.option("--verbose", is_flag=True, help="Show the cancel reason")
def list_(all_, filter_, verbose):
    """List jobs (by default the waiting, running and open ones)."""
    states = _states_option(filter_, JOB_STATES, "'--filter'")
    if all_ and states:
        raise click.UsageError("--all and --filter cannot be used together")
    list_jobs(all_, states, verbose)


@job.command()
def summary():
    """Count jobs in each state."""
    from ..protocol import messages as m

    with connect() as client:
        jobs = all_jobs(client)
    order = ["RUNNING", "WAITING", "FINISHED", "FAILED", "ABORTED", "CANCELED"]
    counts = dict.fromkeys(order, 0)
    for j in jobs:
        if j["state"] in counts:
            counts[j["state"]] += 1
    out = output()
    if out.is_json:
        out.json({s.capitalize(): n for s, n in counts.items()})
    elif out.is_quiet:
        for s, n in counts.items():
            out.line(f"{s} {n}")
    else:
        out.horizontal(["Status", "Count"], [[s, n] for s, n in counts.items()])


def _state_text(info: dict) -> str:
    stats = info["task_stats"]
    if info["task_count"] == 1:
        return info["state"]
    lines = []
    for key in ("running", "waiting", "finished", "failed", "canceled", "aborted"):
        if stats[key]:
            lines.append(f"{key.upper()} ({stats[key]})")
    return "\n".join(lines) or info["state"]


def _stdio_text(program: dict, channel: str) -> str:
    """Where `channel` ("stdout"/"stderr") of a submit's program goes, as job/task info show it."""
    if program.get(f"{channel}_streamed"):
        return f"<stream: {program['stream']}>"
    path = program[channel]
    if path is None:
        return "None"
    return path + (" (rm-if-finished)" if program[f"{channel}_rm_if_finished"] else "")


def _job_detail_rows(d: dict) -> list:
    info = d["info"]
    submits = [s["array"] for s in d["submits"]]
    all_ids = ",".join(s["ids"] for s in submits)
    from ..core.ranges import IntRanges

    try:
        ids_text = IntRanges.parse(all_ids).to_text() if all_ids else ""
    except ValueError:
        ids_text = all_ids
    workers = d["workers"]
    workers_text = ", ".join(workers[:2]) + (f", ... ({len(workers)} total)"
                                             if len(workers) > 2 else "")
    rows = [("ID", info["id"]), ("Name", info["name"]), ("State", _state_text(info)),
            ("Cancel Reason", info["cancel_reason"] or ""),
            ("Session", "open" if info["is_open"] else "closed"),
            ("Tasks", f"{info['task_count']}; Ids: {ids_text}"), ("Workers", workers_text)]
    if len(submits) == 1:
        s = submits[0]
        p = s["program"]
        rows += [
            ("Resources", resources_text(s["resources"])),
            ("Pin", s["pin_mode"] or "none"),
            ("Priority", s["priority"]),
            ("Command", " ".join(p["args"])),
            ("Stdout", _stdio_text(p, "stdout")),
            ("Stderr", _stdio_text(p, "stderr")),
            ("Environment", "\n".join(f"{k}={v}" for k, v in p["env"].items())),
            ("Working directory", p["cwd"]),
            ("Task time limit", duration(s["time_limit"])),
            ("Crash limit", s["crash_limit"]),
        ]
    rows.append(("Submission date", local_time(d["submission_date"], "%Y-%m-%d %H:%M:%S")))
    if len(submits) == 1:
        rows.append(("Submission directory", d["submit_dir"]))
    start = d["started_at"]
    end = d["finished_at"] or (time.time() if start else None)
    rows.append(("Makespan", duration(end - start) if start else "0s"))
    return rows


@job.command()
@click.argument("selector", type=SELECTOR)
def info(selector):
    """Show details of jobs."""
    from ..protocol import messages as m

    out = output()
    states = None if out.is_json else ["failed"]  # the cli table shows only failed tasks
    with connect() as client:
        resp = client.request(m.JobInfoRequest(selector.to_wire(), True, None, states))
        for d in resp.jobs:
            fetch_tasks(client, d, None, states)
    for item in missing_items(resp.missing):
        output().note(missing_text(item, "Job", "Jobs", " not found"))
    if out.is_json:
        out.json(jsonify_times(resp.jobs))
        return
    if out.is_quiet:
        return
    for d in resp.jobs:
        out.vertical(_job_detail_rows(d))
        failed = d["tasks"]
        if failed:
            shown = failed[:5]
            out.horizontal(["Task ID", "Worker", "Error"],
                           [[t["id"], t.get("worker_hostname", ""), t.get("error", "")]
                            for t in shown])
            extra = f" ({len(shown)} shown)" if len(shown) < len(failed) else ""
            out.line(f"{len(failed)} task{'s' if len(failed) != 1 else ''} failed.{extra}")


@job.command()
@click.argument("selector", type=SELECTOR)
@click.option("--reason", help="Why the job was canceled (shown in `job list --verbose`)")
def cancel(selector, reason):
    """Cancel jobs (running tasks are killed)."""
    from ..protocol import messages as m

    if reason is not None and len(reason) > 200:
        raise click.BadParameter("the reason can have at most 200 characters",
                                 param_hint="'--reason'")
    with connect() as client:
        results = item_results(client.request(m.CancelJobsRequest(selector.to_wire(),
                                                                  reason)).results)
    out = output()
    if out.is_json:
        out.json([{"id": r[0], "result": r[1]} for r in results])
        return
    if out.is_quiet:
        return
    for jid, status, n, finished in results:
        if status == "canceled":
            out.line(f"Job {jid} canceled ({n} tasks canceled, {finished} tasks already "
                     "finished)")
        elif status == "not-found":
            out.line(f"Canceling job {jid} failed: job not found")
        else:
            out.line(f"Canceling job {jid} failed: all tasks are already finished")


def wait_for_jobs(client, job_ids_or_selector, *, progress: bool = False,
                  without_close: bool = False) -> list[dict]:
    """Waits until the jobs complete; returns their final infos. Prints a summary line."""
    from ..common.selectors import Selector
    from ..core.ranges import IntRanges
    from ..protocol import messages as m

    if isinstance(job_ids_or_selector, Selector):
        sel = job_ids_or_selector
    else:
        sel = Selector.of_ids(IntRanges.from_ids(job_ids_or_selector))
    start = time.monotonic()
    if progress:
        jobs = _progress_loop(client, sel, without_close)
    else:
        jobs = client.request(m.WaitJobsRequest(sel.to_wire(), without_close), timeout=None).jobs
    out = output()
    if not out.is_json and not out.is_quiet:
        counts = {}
        for j in jobs:
            counts[j["state"].lower()] = counts.get(j["state"].lower(), 0) + 1
        parts = ", ".join(f"{n} job{'s' if n != 1 else ''} {s}" for s, n in sorted(counts.items()))
        out.line(f"Wait finished in {duration(time.monotonic() - start)}: {parts or 'no jobs'}")
    return jobs


def _progress_loop(client, sel, without_close):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..protocol import messages as m

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                  transient=False) as bar:
        handle = bar.add_task("tasks", total=None, detail="")
        while True:
            jobs = client.request(m.JobInfoRequest(sel.to_wire(), False)).jobs
            infos = [d["info"] for d in jobs]
            total = sum(i["task_count"] for i in infos)
            stats = {}
            for i in infos:
                for k, v in i["task_stats"].items():
                    stats[k] = stats.get(k, 0) + v
            done = sum(stats.get(k, 0) for k in ("finished", "failed", "canceled", "aborted"))
            detail = ", ".join(f"{v} {k}" for k, v in stats.items() if v)
            bar.update(handle, total=total, completed=done, detail=detail)
            finished = all((not i["is_open"] or without_close) and
                           i["task_stats"]["waiting"] + i["task_stats"]["running"] == 0
                           for i in infos)
            if finished:
                return infos
            time.sleep(0.2)


@job.command()
@click.argument("selector", type=SELECTOR)
@click.option("--without-close", is_flag=True, help="Do not wait for open jobs to be closed")
def wait(selector, without_close):
    """Wait until jobs complete."""
    with connect() as client:
        wait_for_jobs(client, selector, without_close=without_close)
    if output().is_json:
        output().json({})


@job.command()
@click.argument("selector", type=SELECTOR)
def progress(selector):
    """Show a live progress bar of jobs."""
    with connect() as client:
        wait_for_jobs(client, selector, progress=True)


@job.command("open")
@click.option("--name", default="job", help="Job name")
@click.option("--max-fails", type=click.IntRange(0))
def open_(name, max_fails):
    """Open a job that accepts tasks until it is closed."""
    from ..protocol import messages as m

    from .submit import print_job_id

    with connect() as client:
        jid = client.request(m.OpenJobRequest(name, max_fails, os.getcwd())).job_id
    print_job_id(jid, f"Job {jid} is open.")


@job.command()
@click.argument("selector", type=SELECTOR)
def close(selector):
    """Close open jobs."""
    from ..protocol import messages as m

    with connect() as client:
        results = item_results(client.request(m.CloseJobsRequest(selector.to_wire())).results)
    out = output()
    if out.is_json:
        out.json([{"id": r[0], "result": r[1]} for r in results])
        return
    for jid, status in results:
        if status == "closed":
            out.line(f"Job {jid} closed")
        elif status == "not-found":
            out.line(f"Closing job {jid} failed: job not found")
        else:
            out.line(f"Closing job {jid} failed: job is already closed")


@job.command()
@click.argument("selector", type=SELECTOR)
@click.option("--filter", "filter_", help="States of jobs to forget (default: all completed)")
def forget(selector, filter_):
    """Remove completed jobs from the server's memory."""
    from ..protocol import messages as m

    states = _states_option(filter_, ("finished", "failed", "canceled", "aborted"),
                            "'--filter'") or ["finished", "failed", "canceled", "aborted"]
    with connect() as client:
        (forgotten, ignored), = client.request(m.ForgetJobsRequest(selector.to_wire(),
                                                                   states)).results
    out = output()
    if out.is_json:
        out.json({"forgotten": forgotten, "ignored": ignored})
        return
    text = f"{forgotten} job(s) were forgotten"
    if ignored:
        text += f", {ignored} were ignored due to wrong state or invalid ID"
    out.line(text)


@job.command("task-ids")
@click.argument("selector", type=SELECTOR)
@click.option("--filter", "filter_", help="Comma-separated task states")
def task_ids(selector, filter_):
    """Print the task ids of jobs, compressed (`0-3,7`)."""
    from ..core.ranges import compress_ids
    from ..protocol import messages as m

    states = _states_option(filter_, TASK_STATES, "'--filter'")
    out = output()
    with connect() as client:
        jobs = client.request(m.JobInfoRequest(selector.to_wire(), True, None, states)).jobs
        ids: dict[int, list[int]] = {}
        for d in jobs:
            acc = ids.setdefault(d["info"]["id"], [])
            fetch_tasks(client, d, None, states,
                        on_page=lambda page, acc=acc: acc.extend(t["id"] for t in page))
    if out.is_json:
        out.json({str(jid): tids for jid, tids in ids.items()})
        return
    if len(jobs) == 1:
        out.line(compress_ids(ids[jobs[0]["info"]["id"]]))
    else:
        for d in jobs:
            out.line(f"{d['info']['id']}: {compress_ids(ids[d['info']['id']])}")


@job.command()
@click.argument("selector", type=SelectorType(allow_all=False))
@click.argument("stream", type=click.Choice(["stdout", "stderr"]))
@click.option("--tasks", type=RANGES, help="Only these task ids")
@click.option("--task-status", help="Only tasks in these states")
@click.option("--print-task-header", is_flag=True, help="Print `# Job J, task T` before each")
def cat(selector, stream, tasks, task_status, print_task_header):
    """Print the stdout or stderr of tasks, ordered by task id."""
    from ..common.selectors import Selector
    from ..errors import HqError
    from ..protocol import messages as m

    if output().is_json:
        raise HqError("`job cat` does not support the JSON output mode")
    states = _states_option(task_status, TASK_STATES, "'--task-status'")
    task_sel = Selector.of_ids(tasks).to_wire() if tasks is not None else None
    write = sys.stdout.buffer.write

    def print_tasks(d, tasks):
        for t in tasks:
            path = t.get(stream)
            if print_task_header:
                write(f"# Job {d['info']['id']}, task {t['id']}\n".encode())
            if not path:
                sys.stderr.write(f"Warning: task {t['id']} has no {stream} file\n")
                continue
            try:
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 16):
                        write(chunk)
            except OSError:
                sys.stderr.write(f"Warning: cannot read {stream} of task {t['id']}: {path}\n")

    with connect() as client:
        jobs = client.request(m.JobInfoRequest(selector.to_wire(), True, task_sel, states)).jobs
        for d in jobs:
            streamed = [s["array"]["program"] for s in d["submits"]
                        if s["array"]["program"].get(f"{stream}_streamed")]
            if streamed:
                raise HqError(f"The {stream} of job {d['info']['id']} is streamed into "
                              f"{streamed[0]['stream']}; read it with `hq output-log "
                              f"{streamed[0]['stream']} cat {d['info']['id']} {stream}`")
            # Page by page: a huge array is printed as it comes, never held whole.
            fetch_tasks(client, d, task_sel, states,
                        on_page=lambda tasks, d=d: print_tasks(d, tasks))
    sys.stdout.flush()


@job.command("submit-file")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--job", "job_id", type=int, help="Add the tasks to this open job")
def submit_file(file, job_id):
    """Submit a job definition file (TOML)."""
    from .jobfile import load_job_file
    from .submit import print_submitted

    request = load_job_file(file, job_id)
    with connect() as client:
        print_submitted(client.request(request).job_id)


from .submit import submit as _submit  # noqa: E402  (hq job submit = hq submit)

job.add_command(_submit, "submit")
