"""Tasks of a Python API `Job` (upstream's `hyperqueue.task.task` / `.program` / `.function`
classes): each describes itself as a `client.spec.TaskSpec`, the one builder under the CLI, job
files and this API."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from ..output import Stdio, StdioDef, build_stdio, default_output

EnvType = Dict[str, str]
ProgramArgs = Union[List[str], str]


def _requests(resources):
    """`resources=` (one ResourceRequest or a list: variants) as domain requests, or None."""
    from ..errors import SpecError
    from ..ffi.protocol import ResourceRequest

    if resources is None:
        return None
    items = [resources] if isinstance(resources, ResourceRequest) else list(resources)
    if not items:
        return None
    for r in items:
        if not isinstance(r, ResourceRequest):
            raise SpecError(f"expected a ResourceRequest or a list of them, got {type(r)}",
                            "resources")
    return [r.to_spec() for r in items]


def _stdio_spec(stdio: Optional[StdioDef], ext: str):
    from ..client import spec

    if stdio is None:
        return spec.stdio(None)
    path = default_output(ext) if stdio.path is None else str(stdio.path)
    return spec.stdio(path, stdio.on_close == "rm-if-finished")


class Task:
    """A task of a job: `task_id` (0, 1, 2, ... in creation order), its `dependencies` (tasks of
    the same job), `label` (its name, or its id as text)."""

    def __init__(self, task_id: int, dependencies: Sequence["Task"] = (), priority: int = 0,
                 resources=None, env: Optional[EnvType] = None, cwd=None,
                 stdout: Optional[Stdio] = None, stderr: Optional[Stdio] = None,
                 name: Optional[str] = None, crash_limit: Optional[int] = None):
        if dependencies is None:
            raise ValueError("`deps` must be a sequence of tasks")
        self.task_id = task_id
        self.dependencies = list(dependencies)
        for dep in self.dependencies:
            if not isinstance(dep, Task):
                raise ValueError(f"Invalid dependency {dep!r}: expected a task of the job")
        self.priority = priority
        self.resources = resources
        self.env = env or {}
        self.cwd = str(cwd) if cwd else None
        self.stdout = build_stdio(stdout, "stdout")
        self.stderr = build_stdio(stderr, "stderr")
        self.name = name
        self.crash_limit = crash_limit

    @property
    def label(self) -> str:
        """The task's name, or its id converted to a string."""
        return self.name if self.name is not None else str(self.task_id)

    def _command(self, client) -> list:
        raise NotImplementedError

    def _stdin(self, cache: dict) -> Optional[bytes]:
        return None

    def _task_dir(self) -> bool:
        return False

    def _env(self, client) -> EnvType:
        return self.env

    def _spec(self, client, cache: dict):
        """The TaskSpec (raises hyperqueue.errors.SpecError)."""
        from ..client import spec
        from ..errors import SpecError

        env = self._env(client)
        if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in env.items())):
            raise SpecError("expected a dict of strings to strings", "env")
        if self.name is not None:
            if not isinstance(self.name, str):
                raise SpecError("expected a string", "name")
            spec.check_name(self.name)
        return spec.TaskSpec(
            command=self._command(client), env=env,
            cwd=self.cwd if self.cwd is not None else spec.DEFAULT_CWD,
            stdout=_stdio_spec(self.stdout, "stdout"), stderr=_stdio_spec(self.stderr, "stderr"),
            stdin=self._stdin(cache), task_dir=self._task_dir(),
            requests=_requests(self.resources), priority=self.priority,
            crash_limit=spec.crash_limit(self.crash_limit))


class ExternalProgram(Task):
    """A task that runs a program (`args`: a list of strings, or one string)."""

    def __init__(self, task_id: int, *, args: ProgramArgs, env=None, cwd=None, stdout=None,
                 stderr=None, stdin: Optional[Union[str, bytes]] = None, name=None,
                 dependencies=(), task_dir: bool = False, priority: int = 0, resources=None,
                 crash_limit=None):
        super().__init__(task_id, dependencies, priority, resources, env=env, cwd=cwd,
                         stdout=stdout, stderr=stderr, name=name, crash_limit=crash_limit)
        args = [args] if isinstance(args, str) else args
        if not isinstance(args, (list, tuple)) or not all(
                isinstance(a, (str, Path)) for a in args):
            bad = next((a for a in (args if isinstance(args, (list, tuple)) else [args])
                        if not isinstance(a, (str, Path))), args)
            raise ValueError("Each program argument must be a string. "
                             f"Argument `{bad}` has type `{type(bad)}`.")
        self.args = [str(a) for a in args]
        self.task_dir = task_dir
        if stdin is None or isinstance(stdin, bytes):
            self.stdin = stdin
        elif isinstance(stdin, str):
            self.stdin = stdin.encode()
        else:
            raise ValueError("stdin has to be str, bytes, or None")

    def _command(self, client) -> list:
        return self.args

    def _stdin(self, cache: dict) -> Optional[bytes]:
        return self.stdin

    def _task_dir(self) -> bool:
        return bool(self.task_dir)

    def __repr__(self):
        return f"Task(args={self.args}, env={self.env}, cwd={self.cwd})"


class _Pickled:
    """A function pickled once (cloudpickle) and unpickled in the task by `pickle.loads` alone,
    so a job of many tasks of one function pickles that function once."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def __reduce__(self):
        return pickle.loads, (self.data,)


class PythonFunction(Task):
    """A task that calls a Python function: `fn(*args, **kwargs)` in the task's process (see
    `hyperqueue.task.function`)."""

    def __init__(self, task_id: int, fn, *, args=(), kwargs=None, env=None, cwd=None,
                 stdout=None, stderr=None, name=None, dependencies=(), priority: int = 0,
                 resources=None, crash_limit=None):
        if not callable(fn):
            raise ValueError(f"Expected a callable, got {type(fn)}")
        if name is None and hasattr(fn, "__name__"):
            name = f"{fn.__name__}/{task_id}"
        super().__init__(task_id, dependencies, priority, resources, env=env, cwd=cwd,
                         stdout=stdout, stderr=stderr, name=name, crash_limit=crash_limit)
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.keep_result = False  # set by the job (Job(keep_results=True))

    def _command(self, client) -> list:
        from .function import function_task_args

        return function_task_args(client.python_env)

    def _env(self, client) -> EnvType:
        if not self.keep_result:
            return self.env
        from .function import RESULT_DIR_ENV

        return {**self.env, RESULT_DIR_ENV: RESULTS_DIR}

    def _stdin(self, cache: dict) -> bytes:
        import cloudpickle

        key = id(self.fn)
        hit = cache.get(key)
        if hit is None or hit[0] is not self.fn:
            hit = (self.fn, _Pickled(cloudpickle.dumps(self.fn)), {})
            cache[key] = hit
        if not self.args and (self.kwargs is None or (type(self.kwargs) is dict
                                                      and not self.kwargs)):
            # a call without arguments: the same bytes for every task of this function
            empty = self.kwargs is None
            data = hit[2].get(empty)
            if data is None:
                data = hit[2][empty] = cloudpickle.dumps((hit[1], (), self.kwargs))
            return data
        return cloudpickle.dumps((hit[1], tuple(self.args), self.kwargs))

    def _task_dir(self) -> bool:
        return True  # forced: the error file of a failed call lives there

    def __repr__(self):
        return f"<PyFunction fn={getattr(self.fn, '__name__', self.fn)}>"


#: Where function tasks of a `Job(keep_results=True)` store their return values (relative to
#: the submit directory; `hyperqueue.task.function` documents the layout).
RESULTS_DIR = ".hq-results"


def results_path(submit_dir: str, job_id: int, task_id: int | None = None) -> str:
    base = os.path.join(submit_dir, RESULTS_DIR, str(job_id))
    return base if task_id is None else os.path.join(base, f"{task_id}.pickle")
