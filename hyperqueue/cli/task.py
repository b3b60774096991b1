"""`hq task ...`"""

from __future__ import annotations


from ..client import calls
from .common import ID, RANGES, TASK_STATES, SelectorType, missing_text, states_option
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
    out = p.task_list(verbose)  # printed as the pages of tasks come (bounded memory)

    def start(found):
        for item in found.missing:  # log records on stderr, as upstream (F1)
            p.log("ERROR", missing_text(item, "Job", "Jobs", " not found"))
        out.start(found.jobs)

    with connect() as client:
        client.call(calls.job_info(job_selector.to_wire(), task_selector=task_sel,
                                   task_states=states, on_start=start, on_page=out.page))
    out.finish()


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
    p = printer()
    out = p.task_info(verbose)  # printed as the pages of tasks come (bounded memory)
    not_found = task_selector  # the ids asked for, less those found so far

    def page(d, tasks):
        nonlocal not_found
        out.page(d, tasks)
        not_found = not_found.without_members([t["id"] for t in tasks])

    with connect() as client:
        found = client.call(calls.job_info(job_selector.to_wire(), task_selector=task_sel,
                                           on_start=lambda found: out.start(found.jobs),
                                           on_page=page))
    if not found.jobs:
        # upstream: an error record, exit 0 (F40)
        p.log("ERROR", f"Cannot find job {job_selector.to_text()}")
        if p.mode == "json":
            p.ok()
        return
    out.finish()
    # The tasks found, then a warning per id that is not there (F40), in the order the ids
    # were given (ranges beyond MISSING_LINES ids).
    for item in calls.missing_of(not_found):
        p.log("WARN", missing_text(item, "Task", "Tasks", " not found"))


@task.command()
@click.argument("job_selector", type=SelectorType(allow_all=False))
@click.argument("task_id", type=ID)
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
