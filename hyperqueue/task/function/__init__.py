"""Python function tasks: the entry point that runs inside the task, and the interpreter choice.

A function task is an ordinary task whose program is (upstream's protocol, unchanged)::

    python3 -c "from hyperqueue.task.function import task_main as m; m()"

or, with a prologue, ``bash -c '<prologue>\\n\\npython3 -c "from ... m()"'`` (see `PythonEnv`
and `function_task_args`). Its stdin is ``cloudpickle.dumps((fn, args, kwargs))`` and it has a task
directory (so ``HQ_ERROR_FILENAME`` is set). `task_main` reads the pickle, calls
``fn(*args, **kwargs)`` and exits 0. If that raises, the traceback is written to
``$HQ_ERROR_FILENAME`` (the task's error; trimmed from the front to fit the worker's 2 KiB so
the exception itself is kept) and printed to stderr, and the task exits 1; like upstream's, any
exception counts (also ``sys.exit`` and KeyboardInterrupt). `logging` is configured first at
INFO, or at the level ``HQ_PYLOG`` names (DEBUG, INFO, WARNING, ERROR). Upstream's client
pickles ``(CloudWrapper(fn), args, kwargs)`` with `pickle` (see ``wrapper.py``: the wrapper
carries the cloudpickle of ``fn``); a plain ``cloudpickle.dumps((fn, args, kwargs))`` works too.

Workers run this command in a warm runner (``hyperqueue.worker.pyrunner``) when ``python3``
resolves to an interpreter binary that can host it, forking one child per task instead of
starting an interpreter; the task sees the same stdin, environment, cwd, stdio, exit status and
error file either way.

Return values (beyond upstream; opt-in, so upstream scripts see no change)
--------------------------------------------------------------------------
When the task's environment has ``HQ_RESULT_DIR`` (set by the client's spec builder; an absolute
directory, or one relative to ``HQ_SUBMIT_DIR``; the proposed default for the Python client
is ``<submit dir>/.hq-results``, next to the tasks' default output files), the return value is
stored after ``fn`` returns as::

    $HQ_RESULT_DIR/<HQ_JOB_ID>/<HQ_TASK_ID>.pickle     (cloudpickle.dumps(value))

written to a temporary name in the same directory and renamed into place, so the file exists
only complete, and only for a task instance that returned (a failed or killed one writes
nothing; a restarted task's later instance replaces it). A pickled value larger than
`MAX_RESULT_SIZE` (64 MiB), or one that cannot be pickled, fails the task with an error that
says so. A client implements ``get_results(job)`` by loading, for each finished task of the job,
``<dir>/<job id>/<task id>.pickle`` with ``pickle.loads`` (cloudpickle must be importable), and
may delete ``<dir>/<job id>/`` afterwards (e.g. in ``forget``).

Importing this module imports neither trio nor the CLI (it runs in every function task).
"""

from __future__ import annotations

import os
import sys

__all__ = ["PythonEnv", "task_main", "function_task_args", "FUNCTION_CODE", "RESULT_DIR_ENV"]

# The `-c` program of a function task, exactly as upstream's client builds it.
FUNCTION_CODE = "from hyperqueue.task.function import task_main as m; m()"
RESULT_DIR_ENV = "HQ_RESULT_DIR"
ERROR_FILE_KEEP = 2000  # the worker reads 2048 bytes of an error file: keep the traceback's end


class PythonEnv:
    """How function tasks start Python: ``python_bin`` (a name looked up on the worker's PATH,
    or a path), an optional shell ``prologue`` run first (e.g. ``module load``), and the
    ``shell`` that runs the prologue. ``args`` is the resulting program (as upstream's)."""

    __slots__ = ("python_bin", "prologue", "shell", "args")

    def __init__(self, python_bin: str = "python3", prologue: str | None = None,
                 shell: str = "bash"):
        self.python_bin = python_bin
        self.prologue = prologue
        self.shell = shell
        if prologue:
            self.args = [shell, "-c", f'{prologue}\n\n{python_bin} -c "{FUNCTION_CODE}"']
        else:
            self.args = [python_bin, "-c", FUNCTION_CODE]

    def __repr__(self) -> str:
        return (f"PythonEnv(python_bin={self.python_bin!r}, prologue={self.prologue!r}, "
                f"shell={self.shell!r})")

    def __eq__(self, other) -> bool:
        if not isinstance(other, PythonEnv):
            return NotImplemented
        return ((self.python_bin, self.prologue, self.shell)
                == (other.python_bin, other.prologue, other.shell))

    def __hash__(self) -> int:
        return hash((self.python_bin, self.prologue, self.shell))


def function_task_args(python_env: PythonEnv | None = None) -> list[str]:
    """The program of a function task for `python_env` (upstream's command, byte for byte)."""
    return list((python_env or PythonEnv()).args)


LOG_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}  # upstream's HQ_PYLOG names


def _setup_logging() -> None:
    """As upstream: INFO unless HQ_PYLOG names another level, with a timestamped format."""
    import logging

    level = LOG_LEVELS.get(os.environ.get("HQ_PYLOG"), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s:%(levelname)-4s %(message)s",
                        datefmt="%d-%m-%Y %H:%M:%S")
    # (a no-op after basicConfig; in a warm runner's child, configured once by the runner,
    # it is what sets this task's level)
    logging.root.setLevel(level)


def _fail(message: str) -> None:
    """The task's error: into the error file (its end, if long) and to stderr; exits 1."""
    path = os.environ.get("HQ_ERROR_FILENAME")
    if path:
        data = message.encode("utf-8", "replace")
        if len(data) > ERROR_FILE_KEEP:
            tail = data[-(ERROR_FILE_KEEP - 64):].decode("utf-8", "ignore").split("\n", 1)[-1]
            head = ("Traceback (most recent call last):\n" if message.startswith("Traceback")
                    else "")
            data = f"{head}  [...]\n{tail}".encode("utf-8", "replace")
        try:
            with open(path, "wb") as f:
                f.write(data)
        except OSError as e:
            print(f"hyperqueue: cannot write the error file {path}: {e}", file=sys.stderr)
    sys.stderr.write(message if message.endswith("\n") else message + "\n")
    sys.stderr.flush()
    sys.exit(1)


def _result_path(directory: str) -> str:
    base = os.environ.get("HQ_SUBMIT_DIR") or os.getcwd()
    job = os.environ.get("HQ_JOB_ID", "0")
    task = os.environ.get("HQ_TASK_ID", "0")
    return os.path.join(base, directory, job, f"{task}.pickle")


def store_result(value, directory: str, pickler) -> None:
    """Writes `value` where the client finds it (see the module docstring).

    Raises:
        ValueError: the pickled value exceeds MAX_RESULT_SIZE.
    """
    from ...core.limits import MAX_RESULT_SIZE

    data = pickler.dumps(value)
    if len(data) > MAX_RESULT_SIZE:
        raise ValueError(
            f"The return value of the function is too large: {len(data)} bytes pickled, the "
            f"limit is {MAX_RESULT_SIZE >> 20} MiB; write large results to a file instead")
    path = _result_path(directory)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def task_main() -> None:
    """Runs the function task whose pickled `(fn, args, kwargs)` is on stdin (upstream's
    entry point; any exception, also SystemExit or KeyboardInterrupt, fails the task)."""
    import pickle

    try:
        _setup_logging()
        fn, args, kwargs = pickle.loads(sys.stdin.buffer.read())
        result = fn(*args, **(kwargs if kwargs is not None else {}))
    except BaseException:
        import traceback

        _fail(traceback.format_exc())
        return
    directory = os.environ.get(RESULT_DIR_ENV)
    if directory:
        import traceback

        try:
            import cloudpickle

            store_result(result, directory, cloudpickle)
        except ValueError as e:
            _fail(str(e))
        except Exception:
            _fail("Cannot store the return value of the function:\n" + traceback.format_exc())
