"""An embedded server and worker in one process: `hq run` and the local benchmarks.

The worker still talks to the server over encrypted loopback TCP, exactly as on a cluster; only
the client side is in-process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile

import trio

from .core.model import WorkerConfig
from .core.resources import parse_resource_def
from .errors import RequestFailed
from .protocol import messages as m


def default_cpus_def():
    from .worker.hwdetect import detect_cpus

    groups = detect_cpus()
    flat = [c for g in groups for c in g]
    if len(groups) == 1 and flat == list(range(len(flat))):
        return parse_resource_def("cpus", str(len(flat)))
    return parse_resource_def("cpus", str(groups))


def run_local(request: m.SubmitRequest, *, worker_cpus: str | None = None, out=None,
              zero_spawn: bool = False) -> int:
    """Runs one job to completion on an embedded server + worker; returns the exit code."""
    root = tempfile.mkdtemp(prefix="hq-run-")
    try:
        return trio.run(_run, root, request, worker_cpus, out, zero_spawn)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _run(root, request, worker_cpus, out, zero_spawn) -> int:
    from .server.app import Server
    from .worker.app import Worker

    cpus = parse_resource_def("cpus", worker_cpus) if worker_cpus else default_cpus_def()
    work_dir = os.path.join(root, "worker")
    os.makedirs(work_dir)
    config = WorkerConfig(hostname=socket.gethostname(), resources=[cpus],
                          work_dir=work_dir, pid=os.getpid())
    server_dir = os.path.join(root, "server")
    server = Server(server_dir, host="127.0.0.1")
    interrupted = False
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        worker = Worker(server_dir, config, zero_spawn=zero_spawn)
        await nursery.start(worker.run)
        try:
            job_id = await server.submit(request)
        except RequestFailed as e:
            server.stop()
            if out is not None:
                out.error(e.prefix + e.message)
            return 1
        job = server.job(job_id)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
            async def on_signal():
                nonlocal interrupted
                async for _ in sigs:
                    interrupted = True
                    await server.request(
                        m.CancelJobsRequest([[job_id, job_id, 1]], "interrupted"))
                    return

            nursery.start_soon(on_signal)
            progress = _Progress(job) if (out is not None and out.shows_progress
                                          and sys.stdout.isatty()) else None
            try:
                while not job.is_terminated:
                    if progress:
                        progress.update()
                    with trio.move_on_after(0.1):
                        await server.wait([job_id])
            finally:
                if progress:
                    progress.close()
        # Let the worker confirm the kills of canceled tasks before everything stops.
        with trio.move_on_after(2.0):
            while worker.running:
                await trio.sleep(0.01)
        detail = await server.request(m.JobInfoRequest([[job_id, job_id, 1]], True,
                                                       None, ["failed"]))
        d = detail.jobs[0] if detail.jobs else None
        while d is not None and d.get("tasks_next") is not None:  # more than one page
            page = await server.request(m.TaskPageRequest(job_id, None, ["failed"],
                                                          d["tasks_next"]))
            d["tasks"].extend(page.items)
            d["tasks_next"] = page.next
        server.stop()
        nursery.cancel_scope.cancel()
    stats = job.task_stats()
    if out is not None:
        _summary(out, job, stats, detail.jobs[0]["tasks"] if detail.jobs else [])
    if interrupted:
        return 130
    return 0 if stats["finished"] == job.n_tasks else 1


class _Progress:
    def __init__(self, job):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.job = job
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
                            transient=True)
        self.bar.start()
        self.handle = self.bar.add_task(job.name, total=job.n_tasks, detail="")

    def update(self):
        s = self.job.task_stats()
        detail = ", ".join(f"{v} {k}" for k, v in s.items() if v)
        self.bar.update(self.handle, completed=self.job.n_completed, detail=detail)

    def close(self):
        self.update()
        self.bar.stop()


def _summary(out, job, stats, failed) -> None:
    out.run_summary(job.id, job.n_tasks, stats, failed)

