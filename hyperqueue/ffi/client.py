"""The connection under `hyperqueue.Client` (upstream's `hyperqueue.ffi.client`): a blocking,
encrypted connection to the server of a server directory, driving the typed calls of
`hyperqueue.client.calls` (the same calls the `hq` CLI makes)."""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence

from . import JobId, TaskId


@dataclasses.dataclass(frozen=True)
class FailedTaskContext:
    """Why and where a task failed: its `error` text, working directory and stdio paths."""

    error: str
    cwd: Optional[str]
    stdout: Optional[str]
    stderr: Optional[str]


TaskFailureMap = Dict[JobId, Dict[TaskId, FailedTaskContext]]
COMPLETED_STATES = ["finished", "failed", "canceled", "aborted"]


def forget_error(job_id: int) -> str:
    return (f"Cannot forget job {job_id}. It either hasn't been completed yet, or it does not "
            "exist")


def failure_map(infos) -> TaskFailureMap:
    """The failed tasks of `calls.job_info(...)` results (asked with task_states=["failed"])."""
    out: TaskFailureMap = {}
    for d in infos.jobs:
        out[d["info"]["id"]] = {
            t["id"]: FailedTaskContext(t.get("error") or "", t.get("cwd"), t.get("stdout"),
                                       t.get("stderr"))
            for t in d["tasks"] if t["state"] == "failed"}
    return out


def failed_job_ids(infos: list) -> List[JobId]:
    """Ids of the jobs (list items) with a failed, canceled or aborted task."""
    return [i["id"] for i in infos
            if any(i["task_stats"].get(s, 0) for s in ("failed", "canceled", "aborted"))]


def ids_selector(job_ids: Sequence[int]):
    from ..client.wait import selector_of

    return selector_of(job_ids).to_wire()


class ClientConnection:
    """A connection to the server whose server directory is `directory` (default:
    `$HQ_SERVER_DIR`, else `~/.hq-server`), through its `hq-current/access.json` (encrypted and
    authenticated like the CLI)."""

    def __init__(self, directory: Optional[str] = None):
        from ..client.blocking import BlockingClient
        from ..common.serverdir import resolve_server_dir

        self.server_dir = resolve_server_dir(None if directory is None else str(directory))
        self._client = BlockingClient(self.server_dir)

    def call(self, call, timeout: Optional[float] = 60.0):
        """Drives a `hyperqueue.client.calls` call (raises HqError / RequestFailed)."""
        return self._client.call(call, timeout)

    def submit_job(self, request) -> JobId:
        from ..client import calls

        return self.call(calls.submit(request))

    def job_infos(self, job_ids: Sequence[JobId]) -> list:
        from ..client import calls

        return self.call(calls.job_counts(ids_selector(job_ids)))

    def wait_for_jobs(self, job_ids: Sequence[JobId],
                      callback: Optional[Callable] = None) -> List[JobId]:
        """Blocks until the jobs end; returns the ids of those with a failed, canceled or
        aborted task. With `callback`, polls and hands it each `client.wait.Progress`."""
        from ..client import wait

        if callback is None:
            infos = wait.wait_for_jobs(self._client, list(job_ids))
        else:
            infos = []
            for p in wait.poll_jobs(self._client, list(job_ids)):
                callback(p)
                infos = p.infos
        return failed_job_ids(infos)

    def get_failed_tasks(self, job_ids: Sequence[JobId]) -> TaskFailureMap:
        from ..client import calls

        infos = self.call(calls.job_info(ids_selector(job_ids), task_states=["failed"]))
        return failure_map(infos)

    def forget_job(self, job_id: JobId) -> None:
        from ..client import calls
        from ..errors import HqError

        result = self.call(calls.forget_jobs(ids_selector([job_id]), COMPLETED_STATES))
        if result.forgotten != 1:
            raise HqError(forget_error(job_id))

    def stop_server(self) -> None:
        """Asks the server to stop (it stops its workers too)."""
        from ..client import calls

        self.call(calls.stop_server())

    def close(self) -> None:
        self._client.close()
