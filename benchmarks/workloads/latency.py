"""latency: one task at a time (`hq submit --wait --stdout none --stderr none -- true`) on an
idle 2-CPU worker, K times; the server-side time from receiving the submit to the task's start,
read from the server's own events afterwards (no per-task logging, no extra measuring code on
the path): `job-created` is stamped when the server handles the submit, `task-started` when it
learns from the worker that the task runs. The median over K (target <= 5 ms); with and without
a journal. The CLI's start-up is not part of it."""

from __future__ import annotations

import statistics

from harness import Series, Workload, alternate
from workloads._hq import HqCluster

TARGET = ("value", "<=", 0.005, "<= 5 ms")


def server_events(c: HqCluster) -> list:
    """Every event the server recorded so far, as records [time, kind, payload]."""
    from hyperqueue.client.blocking import BlockingClient
    from hyperqueue.protocol import messages as m

    events = []
    with BlockingClient(str(c.sd)) as client:
        client.conn.send(m.encode(m.StreamEventsRequest(False)))
        while True:
            resp = m.decode(client.conn.receive(), m.TO_CLIENT)
            if isinstance(resp, m.ErrorResponse):
                raise RuntimeError(f"event stream: {resp.message}")
            events.extend(resp.events)
            if resp.done:
                return events


def submit_to_start(events: list) -> list[float]:
    """Per job: the first task-started time minus the job-created time (seconds)."""
    created, started = {}, {}
    for t, kind, payload in events:
        if kind == "job-created":
            created[payload["job"]] = t
        elif kind == "task-started":
            started.setdefault(payload["job"], t)
    return [started[j] - created[j] for j in sorted(created) if j in started]


def latency_run(ctx, k: int, journal: bool) -> tuple[dict, dict]:
    server_args = ("--journal", ctx.tmpdir("latency-journal") / "journal.bin") if journal else ()
    with HqCluster(ctx, "hq-latency", server_args=server_args) as c:
        for _ in range(k):
            c.hq("--output-mode", "quiet", "submit", "--wait", "--stdout", "none", "--stderr",
                 "none", "--", "true")
        lat = submit_to_start(server_events(c))
    if len(lat) != k:
        raise RuntimeError(f"found the start of {len(lat)} of {k} tasks in the server's events")
    return statistics.median(lat), {"latencies_s": lat, "max_s": max(lat)}


def run(ctx) -> None:
    k = ctx.size("latency")
    res = ctx.results
    off = res.add(Series("latency", "submit to start", "hq", role="primary",
                         target=TARGET))
    on = res.add(Series("latency", "submit to start", "hq --journal",
                        role="baseline", target=TARGET))
    alternate(ctx.reps, [([off], lambda _r: latency_run(ctx, k, False)),
                         ([on], lambda _r: latency_run(ctx, k, True))], "latency")
    res.note(f"latency: median of {k} one-task jobs per repetition, submit received -> task "
             "started, from the server's event timestamps")


WORKLOAD = Workload("latency", run, sizes={"latency": (10, 50)}, targets={"submit to start": TARGET})
