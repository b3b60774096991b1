"""`hq job ...`"""

from __future__ import annotations

import os
import sys

from ..client import calls
from .common import COUNT, ID, RANGES, SELECTOR, TASK_STATES, SelectorType, missing_text, states_option
from .context import connect, printer
from .flavour import click
from .joblist import JOB_STATES, list_jobs
from .submit import submit as submit_command
from .waiting import wait_for_jobs


@click.group()
def job():
    """Manage jobs."""


@job.command("list")
@click.option("--all", "all_", is_flag=True, help="Show also completed jobs")
@click.option("--filter", "filter_", help="Comma-separated job states to show")
@click.option("--verbose", is_flag=True, help="Show the cancel reason")
def list_(all_, filter_, verbose):
    """List jobs (by default the waiting, running and open ones)."""
    states = states_option(filter_, JOB_STATES, "'--filter'")
    if all_ and states:
        raise click.UsageError("--all and --filter cannot be used together")
    list_jobs(all_, states, verbose)


@job.command()
def summary():
    """Count jobs in each state."""
    with connect() as client:
        jobs = client.call(calls.job_list())
    order = ["RUNNING", "WAITING", "FINISHED", "FAILED", "ABORTED", "CANCELED"]
    counts = dict.fromkeys(order, 0)
    for j in jobs:
        if j["state"] in counts:
            counts[j["state"]] += 1
    printer().job_summary(counts)


@job.command()
@click.argument("selector", type=SELECTOR)
def info(selector):
    """Show details of jobs."""
    p = printer()
    out = p.job_info()  # printed as the pages of tasks come (bounded memory)

    def start(found):
        for item in found.missing:  # log records on stderr, as upstream (F1)
            p.log("ERROR", missing_text(item, "Job", "Jobs", " not found"))
        out.start(found.jobs)

    with connect() as client:
        client.call(calls.job_info(selector.to_wire(), task_states=p.job_info_task_states,
                                   on_start=start, on_page=out.page))
    out.finish()


@job.command()
@click.argument("selector", type=SELECTOR)
@click.option("--reason", help="Why the job was canceled (shown in `job list --verbose`)")
def cancel(selector, reason):
    """Cancel jobs (running tasks are killed)."""
    if reason is not None and len(reason) > 200:
        raise click.BadParameter("the reason can have at most 200 characters",
                                 param_hint="'--reason'")
    with connect() as client:
        results = client.call(calls.cancel_jobs(selector.to_wire(), reason))
    printer().cancel_results(results)


@job.command()
@click.argument("selector", type=SELECTOR)
@click.option("--without-close", is_flag=True, help="Do not wait for open jobs to be closed")
def wait(selector, without_close):
    """Wait until jobs complete."""
    with connect() as client:
        wait_for_jobs(client, selector, without_close=without_close)


@job.command()
@click.argument("selector", type=SELECTOR)
def progress(selector):
    """Show a live progress bar of jobs."""
    with connect() as client:
        wait_for_jobs(client, selector, progress=True)


@job.command("open")
@click.option("--name", default="job", help="Job name")
@click.option("--max-fails", type=COUNT)
def open_(name, max_fails):
    """Open a job that accepts tasks until it is closed."""
    with connect() as client:
        jid = client.call(calls.open_job(name, max_fails, os.getcwd()))
    printer().job_id(jid, f"Job {jid} is open.")


@job.command()
@click.argument("selector", type=SELECTOR)
def close(selector):
    """Close open jobs."""
    with connect() as client:
        results = client.call(calls.close_jobs(selector.to_wire()))
    printer().close_results(results)


@job.command()
@click.argument("selector", type=SELECTOR)
@click.option("--filter", "filter_", help="States of jobs to forget (default: all completed)")
def forget(selector, filter_):
    """Remove completed jobs from the server's memory."""
    states = states_option(filter_, ("finished", "failed", "canceled", "aborted"),
                           "'--filter'") or ["finished", "failed", "canceled", "aborted"]
    with connect() as client:
        result = client.call(calls.forget_jobs(selector.to_wire(), states))
    printer().forget_result(*result)


@job.command("task-ids")
@click.argument("selector", type=SELECTOR)
@click.option("--filter", "filter_", help="Comma-separated task states")
def task_ids(selector, filter_):
    """Print the task ids of jobs, compressed (`0-3,7`)."""
    states = states_option(filter_, TASK_STATES, "'--filter'")
    out = printer().task_ids()
    with connect() as client:
        client.call(calls.job_info(selector.to_wire(), task_states=states,
                                   on_start=lambda found: out.start(found.jobs),
                                   on_page=out.page))
    out.finish()


@job.command()
@click.argument("selector", type=SelectorType(allow_all=False))
@click.argument("stream", type=click.Choice(["stdout", "stderr"]))
@click.option("--tasks", type=RANGES, help="Only these task ids")
@click.option("--task-status", help="Only tasks in these states")
@click.option("--print-task-header", is_flag=True, help="Print `# Job J, task T` before each")
def cat(selector, stream, tasks, task_status, print_task_header):
    """Print the stdout or stderr of tasks, ordered by task id."""
    from itertools import islice

    from ..client.calls import missing_of
    from ..common.selectors import Selector
    from ..core.ranges import IntRanges
    from ..errors import CommandError

    p = printer()
    if p.mode == "json":
        raise CommandError("JSON output mode doesn't support job output")
    states = states_option(task_status, TASK_STATES, "'--task-status'")
    task_sel = Selector.of_ids(tasks).to_wire() if tasks is not None else None
    write = sys.stdout.buffer.write
    n_found = 0

    def print_tasks(d, page):
        nonlocal n_found
        n_found += len(page)
        jid = d["info"]["id"]
        streamed = [IntRanges.parse(s["array"]["ids"]) for s in d["submits"]
                    if s["array"]["program"].get(f"{stream}_streamed")]
        for t in page:
            path = t.get(stream)
            if print_task_header:
                write(f"# Job {jid}, task {t['id']}\n".encode())
            if not path or any(t["id"] in r for r in streamed):
                sys.stdout.flush()
                p.log("WARN", f"Task {t['id']} has no `{stream}` stream associated with it")
                continue
            try:
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 16):
                        write(chunk)
            except OSError as e:
                sys.stdout.flush()
                p.log("WARN", f"File at `{path}` cannot be opened: {io_error_debug(e)}")

    with connect() as client:
        # Page by page: a huge array is printed as it comes, never held whole.
        found = client.call(calls.job_info(selector.to_wire(), task_selector=task_sel,
                                           task_states=states, on_page=print_tasks))
    sys.stdout.flush()
    if not found.jobs:
        if found.missing:
            p.log("ERROR", f"Job {found.missing[0]} was not found")
        else:
            p.log("ERROR", "No jobs were found")
        return
    jid = found.jobs[0]["info"]["id"]
    if tasks is not None:
        job_ids = None
        for sub in found.jobs[0]["submits"]:
            r = IntRanges.parse(sub["array"]["ids"])
            job_ids = r if job_ids is None else job_ids.union(r)
        present = tasks.intersection(job_ids) if job_ids is not None else IntRanges.from_ids(())
        # less the present ids a chunk at a time (bounded memory for a huge array)
        missing, ids = tasks, present.iter_sorted()
        while chunk := list(islice(ids, 65536)):
            missing = missing.without_members(chunk)
        for item in missing_of(missing):
            p.log("WARN", f"Task {item} of job {jid} not found")
    if not n_found:
        p.log("WARN", f"No tasks were selected for job {jid}, there is nothing to print")


def io_error_debug(e: OSError) -> str:
    """An OS error as Rust's `std::io::Error` Debug form shows it."""
    import errno

    kinds = {errno.ENOENT: "NotFound", errno.EACCES: "PermissionDenied",
             errno.EPERM: "PermissionDenied", errno.EISDIR: "IsADirectory"}
    code = e.errno or 0
    return (f'Os {{ code: {code}, kind: {kinds.get(code, "Uncategorized")}, '
            f'message: "{os.strerror(code)}" }}')


@job.command("submit-file")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--job", "job_id", type=ID, help="Add the tasks to this open job")
def submit_file(file, job_id):
    """Submit a job definition file (TOML)."""
    from ..client.jobfile import load_job_file

    request = load_job_file(file, job_id)
    with connect() as client:
        printer().submitted(calls.send_submit(client, request))


job.add_command(submit_command, "submit")  # hq job submit = hq submit
