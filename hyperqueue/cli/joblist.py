"""`hq job list` without click.

The body of the command lives here so that `hq job list`, the hottest read-only call, can run
from the click-free fast path in `main` (see `fast_command`) as well as from the click command
in `job.py`; both produce the same output because they call the same function.
"""

from __future__ import annotations

JOB_STATES = ("waiting", "running", "finished", "failed", "canceled", "aborted", "opened")


def parse_states(value: str | None, allowed: tuple[str, ...]) -> list[str] | None:
    """`--filter a,b` -> ["a", "b"]; raises ValueError naming the first unknown state."""
    if value is None:
        return None
    states = [s.strip().lower() for s in value.split(",") if s.strip()]
    for s in states:
        if s not in allowed:
            raise ValueError(f"'{s}' is not one of {', '.join(allowed)}")
    return states


def list_jobs(all_: bool, states: list[str] | None, verbose: bool) -> None:
    from ..client import calls
    from .context import connect, printer

    with connect() as client:
        jobs = client.call(calls.job_list())
    total = len(jobs)
    if states is not None:
        shown = [j for j in jobs if j["state"].lower() in states]
    elif all_:
        shown = jobs
    else:
        shown = [j for j in jobs if j["state"] in ("WAITING", "RUNNING", "OPENED")
                 or j["is_open"]]
    shown.sort(key=lambda j: j["id"])
    printer().job_list(shown, total, all_, verbose)


def parse_fast(args: list[str]) -> dict | None:
    """The arguments after `job list` when they are plain enough for the fast path: `--all`,
    `--verbose`, `--filter X` / `--filter=X` with valid states, each at most once. Anything else
    (help, typos, bad states, conflicts) returns None and goes through click, which owns every
    message and exit code of the slow path."""
    opts: dict = {"all_": False, "verbose": False, "filter_": None}
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--all", "--verbose"):
            key = a[2:] + ("_" if a == "--all" else "")
            if opts[key]:
                return None
            opts[key] = True
        elif a == "--filter" or a.startswith("--filter="):
            if opts["filter_"] is not None:
                return None
            if a == "--filter":
                if i + 1 >= len(args) or args[i + 1].startswith("-"):
                    return None
                i += 1
                opts["filter_"] = args[i]
            else:
                opts["filter_"] = a.partition("=")[2]
        else:
            return None
        i += 1
    try:
        states = parse_states(opts["filter_"], JOB_STATES)
    except ValueError:
        return None
    if opts["all_"] and states:
        return None
    return {"all_": opts["all_"], "states": states, "verbose": opts["verbose"]}
