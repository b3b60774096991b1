"""`hq task ...`"""

from __future__ import annotations


from ..client import calls
from .common import RANGES, TASK_STATES, SelectorType, missing_text, states_option
from .context import connect, printer
from .flavour import click


@click.group()
def task():
    """Inspect tasks."""


@task.command("list")
@click.argument("job_selector", type=SelectorType(allow_all=False))
@click.option("--tasks", type=RANGES, help="Only these task ids")
@click.option("--task-status", help="Only tasks in these states")
@click.option("-v", "--verbose", is_flag=True, help="Show whole error messages")
def list_(job_selector, tasks, task_status, verbose):
    """List the tasks of jobs."""
    from ..common.selectors import Selector

    states = states_option(task_status, TASK_STATES, "'--task-status'")
    task_sel = Selector.of_ids(tasks).to_wire() if tasks is not None else None
    p = printer()
    page_printer = p.task_page_printer()
    with connect() as client:
        # (Notes of jobs not found are for cli mode, which prints at the end: no interleaving
        # with pages streamed by quiet mode.)
        found = client.call(calls.job_info(
            job_selector.to_wire(), task_selector=task_sel, task_states=states,
            on_page=None if page_printer is None else lambda d, page: page_printer(page)))
    for item in found.missing:  # log records on stderr, as upstream (F1)
        p.log("ERROR", missing_text(item, "Job", "Jobs", " not found"))
    if page_printer is None:
        p.task_list(found.jobs, verbose)


@task.command()
@click.argument("job_selector", type=SelectorType(allow_all=False))
@click.argument("task_selector", type=RANGES)
@click.option("-v", "--verbose", is_flag=True, help="Show whole error messages")
def info(job_selector, task_selector, verbose):
    """Show details of tasks of one job."""
    from ..common.selectors import Selector

    if job_selector.kind == "ids" and len(job_selector.ids) != 1:
        raise click.BadParameter("expected a single job id or 'last'")
    task_sel = Selector.of_ids(task_selector).to_wire()
    with connect() as client:
        found = client.call(calls.job_info(job_selector.to_wire(), task_selector=task_sel))
    p = printer()
    if not found.jobs:
        # upstream: an error record, exit 0 (F40)
        p.log("ERROR", f"Cannot find job {job_selector.to_text()}")
        if p.mode == "json":
            p.ok()
        return
    d = found.jobs[0]
    # In the order the ids were given, as before (ranges beyond MISSING_LINES ids).
    # The tasks found, then a warning per id that is not there (F40).
    p.task_info(d, verbose)
    for item in calls.missing_of(task_selector.without_members([t["id"] for t in d["tasks"]])):
        p.log("WARN", missing_text(item, "Task", "Tasks", " not found"))


@task.command()
@click.argument("job_selector", type=SelectorType(allow_all=False))
@click.argument("task_id", type=int)
def explain(job_selector, task_id):
    """Explain why a task does (not) run on each worker."""
    if job_selector.kind == "ids" and len(job_selector.ids) != 1:
        raise click.BadParameter("expected a single job id or 'last'")
    with connect() as client:
        ex = client.call(calls.task_explain(job_selector.to_wire(), task_id))
    printer().task_explain(task_id, ex)


@task.command()
@click.argument("message")
def notify(message):
    """Send a notification from inside a running task to the clients waiting for its job
    (`hq submit --wait --on-notify CMD`); at most 1024 bytes."""
    from ..client.notify import send_notification

    send_notification(message)
