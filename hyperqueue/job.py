"""A job of the Python API: a graph of program and function tasks (upstream's `hyperqueue.job`).

`Job._build(client)` turns it into a `client.spec.JobSpec` (one batch per task, dependencies by
id) whose `request()` is the same `SubmitRequest` a job file with the same tasks produces.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from .ffi import JobId, TaskId
from .output import GenericPath, Stdio, default_stderr, default_stdout
from .task.task import EnvType, ExternalProgram, ProgramArgs, PythonFunction, Task

#: The name of a job submitted without one.
DEFAULT_JOB_NAME = "PyAPI job"
EMPTY_JOB = "Submitted job must have at least a single task"


class Job:
    """A HyperQueue job: a directed acyclic graph of tasks, submitted with `Client.submit`.

    `default_workdir`: the working directory of tasks without `cwd` (default: the directory
    the job is submitted from); `max_fails`: failed tasks after which the rest of the job is
    canceled (None: never); `default_env`: variables every task gets (a task's own `env`
    wins); `name`: the job's name (default "PyAPI job"). Beyond upstream: `keep_results=True`
    keeps the return values of function tasks for `Client.get_results`.
    """

    def __init__(self, default_workdir: Optional[GenericPath] = None,
                 max_fails: Optional[int] = 1, default_env: Optional[EnvType] = None,
                 name: Optional[str] = None, *, keep_results: bool = False):
        self.tasks: List[Task] = []
        self.task_map: Dict[TaskId, Task] = {}
        self.max_fails = max_fails
        self.default_workdir = (Path(default_workdir).resolve() if default_workdir is not None
                                else default_workdir)
        self.default_env = default_env or {}
        self.name = name
        self.keep_results = keep_results

    def task_by_id(self, id: TaskId) -> Optional[Task]:
        """The task with this id (None: no such task)."""
        return self.task_map.get(id)

    def program(self, args: ProgramArgs, *, env: Optional[EnvType] = None,
                cwd: Optional[GenericPath] = None, stdout: Optional[Stdio] = default_stdout(),
                stderr: Optional[Stdio] = default_stderr(),
                stdin: Optional[Union[str, bytes]] = None, deps: Sequence[Task] = (),
                name: Optional[str] = None, task_dir: bool = False, priority: int = 0,
                resources=None, crash_limit: Optional[int] = None) -> ExternalProgram:
        """A task that runs the program `args` (a list of strings, or one string).

        `stdout`/`stderr`: a path, a `StdioDef` or None (no file); `stdin`: bytes or text
        given to the program; `deps`: tasks of this job that must finish first; `task_dir`: a
        temporary directory for the task (`HQ_TASK_DIR`); `resources`: a `ResourceRequest` or a
        list of them (variants); `crash_limit`: how many worker crashes the task survives.
        """
        task = ExternalProgram(
            len(self.tasks), args=args, env=merge_envs(self.default_env, env),
            cwd=cwd or self.default_workdir, dependencies=deps, stdout=stdout, stderr=stderr,
            stdin=stdin, name=name, task_dir=task_dir, priority=priority, resources=resources,
            crash_limit=crash_limit)
        self._add_task(task)
        return task

    def function(self, fn, *, args=(), kwargs=None, env: Optional[EnvType] = None,
                 cwd: Optional[GenericPath] = None, stdout: Optional[Stdio] = default_stdout(),
                 stderr: Optional[Stdio] = default_stderr(), deps: Sequence[Task] = (),
                 name: Optional[str] = None, priority: int = 0, resources=None,
                 crash_limit: Optional[int] = None) -> PythonFunction:
        """A task that calls `fn(*args, **kwargs)` on a worker (`fn` is sent with cloudpickle;
        an exception fails the task with its traceback as the error). Its default name is
        `<fn.__name__>/<task id>`; the other keywords are those of `program`."""
        task = PythonFunction(
            len(self.tasks), fn, args=args, kwargs=kwargs,
            env=merge_envs(self.default_env, env), cwd=cwd or self.default_workdir,
            stdout=stdout, stderr=stderr, name=name, dependencies=deps, priority=priority,
            resources=resources, crash_limit=crash_limit)
        self._add_task(task)
        return task

    def _add_task(self, task: Task) -> None:
        self.tasks.append(task)
        self.task_map[task.task_id] = task

    def _build(self, client, submit_dir: Optional[str] = None):
        """The JobSpec of this job for `client` (its PythonEnv).

        Raises:
            hyperqueue.errors.SpecError: an invalid task (naming the field and the task), an
                empty job, non-unique ids or a dependency outside the job.
        """
        from .client import spec
        from .errors import SpecError
        from .core.ranges import IntRanges

        if not self.tasks:
            raise SpecError(EMPTY_JOB)
        batches, ids, deps = [], [], []
        cache: dict = {}
        for task in self.tasks:
            dep_ids = []
            for dep in task.dependencies:
                if self.task_map.get(dep.task_id) is not dep:
                    raise SpecError(f"Invalid dependency id {dep.task_id}: task {task.label} "
                                    "depends on a task that is not in this job", "deps")
                dep_ids.append(dep.task_id)
            if isinstance(task, PythonFunction):
                task.keep_result = self.keep_results
            try:
                ts = task._spec(client, cache)
            except SpecError as e:
                raise SpecError(f"Invalid task {task.label} (id={task.task_id}): "
                                f"{e.field + ': ' if e.field else ''}{e}", e.field) from None
            ids.append(task.task_id)
            deps.append(dep_ids)
            batches.append(spec.Batch(ts, IntRanges.from_ids([task.task_id]), None, dep_ids))
        try:
            spec.check_graph(ids, deps)
        except spec.GraphError as e:
            if e.kind == "duplicate":
                raise SpecError(f"Non unique IDs in submitted task graph: {e.ids}",
                                "deps") from None
            if e.kind in ("unknown", "self"):
                raise SpecError(f"Invalid dependency id {e.dep} (task {e.task})", "deps") \
                    from None
            raise
        max_fails = self.max_fails
        name = DEFAULT_JOB_NAME if self.name is None else self.name
        return spec.JobSpec(batches, name, max_fails, submit_dir or os.getcwd())


@dataclasses.dataclass
class SubmittedJob:
    """A submitted job: the `Job` and the `id` the server gave it."""

    job: Job
    id: JobId
    submit_dir: Optional[str] = dataclasses.field(default=None, repr=False, compare=False)


HasJobId = Union[JobId, SubmittedJob]


def get_job_id(job: HasJobId) -> JobId:
    if isinstance(job, SubmittedJob):
        return job.id
    if isinstance(job, int) and not isinstance(job, bool):
        return job
    raise ValueError(f"Invalid value of type {type(job)} passed to `get_job_id`")


def merge_envs(default: EnvType, env: Optional[EnvType]) -> EnvType:
    environment = dict(default)
    if env:
        environment.update(env)
    return environment
