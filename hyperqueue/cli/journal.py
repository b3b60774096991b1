"""`hq journal ...`: the event history of a server, offline or live."""

from __future__ import annotations

import json
import sys

from .common import DURATION
from .context import connect, printer
from .flavour import click


@click.group()
def journal():
    """Inspect and maintain the server's journal."""


def event_json(record) -> str:
    """One JSON line `{"time": ISO, "event": {"type": ..., ...}}` for a journal record (the
    event's public shape: `core.events.to_public`)."""
    from ..core.events import to_public

    event = _jsonable(to_public(record))
    return json.dumps({"time": utc_z(record[0]), "event": event}, separators=(",", ":"))


def utc_z(ts: float) -> str:
    """chrono's RFC 3339 form of a UTC time (F5): `Z` suffix, sub-second digits 0/3/6/9."""
    from datetime import datetime, timezone

    try:
        dt = datetime.fromtimestamp(ts, timezone.utc)
    except (OverflowError, OSError, ValueError, TypeError):
        return str(ts)
    us = dt.microsecond
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if us == 0:
        return base + "Z"
    if us % 1000 == 0:
        return f"{base}.{us // 1000:03d}Z"
    return f"{base}.{us:06d}Z"


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _read_journal(path: str):
    from ..journal.format import read_file

    records, tail = read_file(path, expand=True)  # batched records as per-task events
    if not tail.clean:
        sys.stderr.write(f"Warning: {tail.warning(path)}\n")
    return records


@journal.command()
@click.argument("file", type=click.Path(dir_okay=False))
def export(file):
    """Print every event of a journal file as JSON lines."""
    write = sys.stdout.write
    for record in _read_journal(file):
        write(event_json(record) + "\n")
    sys.stdout.flush()


def _stream(live: bool) -> None:
    from ..protocol import messages as m

    with connect() as client:
        client.conn.settimeout(None)
        client.conn.send(m.encode(m.StreamEventsRequest(live)))
        while True:
            resp = client.receive()
            if isinstance(resp, m.ErrorResponse):
                from ..errors import RequestFailed

                raise RequestFailed(resp.message)
            for record in resp.events:
                sys.stdout.write(event_json(record) + "\n")
            sys.stdout.flush()
            if resp.done:
                return


@journal.command()
def replay():
    """Print the events of the running server so far, then exit."""
    _stream(live=False)


@journal.command()
def stream():
    """Print the events of the running server so far, then follow new ones."""
    try:
        _stream(live=True)
    except KeyboardInterrupt:
        pass


@journal.command()
def flush():
    """Make the server write its journal to disk now."""
    from ..protocol import messages as m

    with connect() as client:
        msg = client.request(m.JournalRequest("flush")).message
    printer().ok(msg)


@journal.command()
def prune():
    """Drop completed jobs and gone workers from the server's journal."""
    from ..protocol import messages as m

    with connect() as client:
        msg = client.request(m.JournalRequest("prune"), timeout=None).message
    printer().ok(msg)


@journal.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--start-time", type=DURATION, help="Start of the window (from server start)")
@click.option("--end-time", type=DURATION, help="End of the window (from server start)")
def report(file, out, start_time, end_time):
    """Write a self-contained HTML report (tasks and workers over time) of a journal file."""
    from ..report.html import render_report

    records = _read_journal(file)
    html = render_report(records, start_time=start_time, end_time=end_time)
    with open(out, "w") as f:
        f.write(html)
    printer().note(f"Report written to {out}")
