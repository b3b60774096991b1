"""`hyperqueue.Client`: submit `Job`s, wait for them, inspect failures (upstream's Python API,
over the blocking client of the CLI)."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import sys
from typing import Dict, Optional, Sequence

from ..ffi.client import ClientConnection, FailedTaskContext, TaskFailureMap
from ..job import HasJobId, Job, SubmittedJob, get_job_id
from ..task.function import PythonEnv

MAX_PRINTED_TASKS = 5
log = logging.getLogger("hyperqueue")


def pluralize(text: str, count: int) -> str:
    return text if count == 1 else f"{text}s"


class FailedJobsException(Exception):
    """Some tasks of the waited-for jobs failed (or were canceled). `failed_tasks`: job id ->
    task id -> FailedTaskContext; `job_map`: job id -> Job."""

    def __init__(self, failed_tasks: TaskFailureMap, job_map: Dict[int, Job]):
        super().__init__(failed_tasks, job_map)
        self.failed_tasks = failed_tasks
        self.job_map = job_map

    def task_label(self, job_id: int, task_id: int) -> str:
        job = self.job_map.get(job_id)
        task = job.task_by_id(task_id) if job is not None else None
        return task.label if task is not None else str(task_id)

    def __str__(self):
        error = ""
        for job_id, tasks in self.failed_tasks.items():
            error += f"The following tasks of job `{job_id}` have failed:\n"
            for task_id, ctx in itertools.islice(tasks.items(), MAX_PRINTED_TASKS):
                error += f"Task {self.task_label(job_id, task_id)} (id={task_id}):\n{ctx.error}\n"
                if ctx.cwd or ctx.stdout or ctx.stderr:
                    error += "You can find more information here:\n"
                    if ctx.cwd:
                        error += f"Working directory: {ctx.cwd}\n"
                    if ctx.stdout:
                        error += f"Stdout: {ctx.stdout}\n"
                    if ctx.stderr:
                        error += f"Stderr: {ctx.stderr}\n"
            if len(tasks) > MAX_PRINTED_TASKS:
                rest = len(tasks) - MAX_PRINTED_TASKS
                error += f"... and {rest} more failed {pluralize('task', rest)}\n"
            if not tasks:
                error += "(no task failed; some were canceled)\n"
        return f"{error}\n"


def submit_request(job: Job, client, submit_dir: Optional[str] = None):
    """The SubmitRequest of `job` for `client` (its PythonEnv), or HqError/SpecError."""
    if not isinstance(job, Job):
        raise TypeError(f"Expected a hyperqueue.Job, got {type(job)}")
    return job._build(client, submit_dir).request()


def load_results(submitted: SubmittedJob, finished: Sequence[int]) -> dict:
    """{task id: return value} of the finished function tasks of a `Job(keep_results=True)`."""
    import pickle

    from ..errors import HqError
    from ..task.task import PythonFunction, results_path

    job = submitted.job
    if not job.keep_results:
        raise HqError(f"Job {submitted.id} was not submitted with `Job(keep_results=True)`; "
                      "its return values were not kept")
    out = {}
    for task_id in finished:
        if not isinstance(job.task_by_id(task_id), PythonFunction):
            continue
        path = results_path(submitted.submit_dir, submitted.id, task_id)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise HqError(f"Cannot read the return value of task {task_id} of job "
                          f"{submitted.id} ({path}): {e.strerror}") from None
        try:
            out[task_id] = pickle.loads(data)
        except Exception as e:
            raise HqError(f"Cannot unpickle the return value of task {task_id} of job "
                          f"{submitted.id}: {type(e).__name__}: {e}") from None
    return out


def drop_results(job) -> None:
    if isinstance(job, SubmittedJob) and job.job.keep_results and job.submit_dir:
        from ..task.task import results_path

        shutil.rmtree(results_path(job.submit_dir, job.id), ignore_errors=True)


class Client:
    """A connection to a running HyperQueue server for submitting jobs and querying them.

    `server_dir`: the server directory (default: `$HQ_SERVER_DIR`, else `~/.hq-server`);
    `python_env`: how function tasks start Python (`PythonEnv`).
    """

    def __init__(self, server_dir=None, python_env: Optional[PythonEnv] = None):
        server_dir = str(server_dir) if server_dir else None
        self.connection = ClientConnection(server_dir)
        self.python_env = python_env if python_env is not None else PythonEnv()

    def submit(self, job: Job) -> SubmittedJob:
        """Submits `job` (all its tasks in one submission); the submit directory is the
        current directory."""
        submit_dir = os.getcwd()
        request = submit_request(job, self, submit_dir)
        job_id = self.connection.submit_job(request)
        n = len(job.tasks)
        log.info(f"Submitted job {job_id} with {n} {pluralize('task', n)}")
        return SubmittedJob(job=job, id=job_id, submit_dir=submit_dir)

    def wait_for_jobs(self, jobs: Sequence[SubmittedJob], raise_on_error: bool = True) -> bool:
        """Waits until every job ends (a progress bar on a terminal). True: every task
        finished. Otherwise raises FailedJobsException, or returns False with
        `raise_on_error=False`."""
        jobs = list(jobs)
        job_ids = tuple(job.id for job in jobs)
        ids_text = ",".join(str(i) for i in job_ids)
        if len(jobs) > 1:
            ids_text = "{" + ids_text + "}"
        log.info(f"Waiting for {pluralize('job', len(jobs))} {ids_text} to finish")
        bar = _progress_bar()
        try:
            failed = self.connection.wait_for_jobs(job_ids, bar)
        finally:
            if bar is not None:
                bar.close()
        if failed and raise_on_error:
            failed_tasks = self.connection.get_failed_tasks(failed)
            raise FailedJobsException(failed_tasks, {job.id: job.job for job in jobs})
        return not failed

    def get_failed_tasks(self, job: SubmittedJob) -> Dict[int, FailedTaskContext]:
        """The failed tasks of `job`: task id -> FailedTaskContext."""
        job_id = get_job_id(job)
        return self.connection.get_failed_tasks([job_id]).get(job_id, {})

    def forget(self, job: HasJobId) -> None:
        """Removes a completed job from the server's memory (and its kept return values)."""
        job_id = get_job_id(job)
        self.connection.forget_job(job_id)
        drop_results(job)
        log.info(f"Forgotten job {job_id}")

    def get_results(self, job: SubmittedJob) -> dict:
        """{task id: return value} of the finished function tasks of a job submitted with
        `Job(keep_results=True)` (beyond upstream)."""
        from . import calls
        from ..ffi.client import ids_selector

        infos = self.connection.call(calls.job_info(ids_selector([job.id]),
                                                    task_states=["finished"]))
        finished = [t["id"] for d in infos.jobs for t in d["tasks"]]
        return load_results(job, finished)


def _progress_bar():
    """The wait's progress renderer on a terminal (hyperqueue.progress), else None."""
    try:
        if not sys.stderr.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    from ..progress import ProgressBar

    return ProgressBar()
