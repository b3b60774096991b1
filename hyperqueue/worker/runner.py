"""Running one task as a process in its own process group: paths, environment, limits, kill."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import tempfile

import trio

from ..core.placeholders import resolve_task_paths
from ..core.resources import ALL, format_amount

KILL_GRACE = 1.0  # SIGINT first, SIGKILL after this many seconds
ERROR_FILE_LIMIT = 2048
TRUNCATED_MARK = "\n[The message was truncated]"


class TaskSpec:
    """One assigned task as the worker sees it."""

    __slots__ = ("job_id", "task_id", "instance", "template", "submit_dir", "entry")

    def __init__(self, job_id, task_id, instance, template, submit_dir, entry):
        self.job_id = job_id
        self.task_id = task_id
        self.instance = instance
        self.template = template
        self.submit_dir = submit_dir
        self.entry = entry

    @property
    def key(self):
        return (self.job_id, self.task_id)


class TaskOutcome(Exception):
    """How a task ended when it did not finish successfully; the message is the task error."""


def _env_name(resource: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in resource)


def build_env(spec: TaskSpec, allocation, base_env: dict, hq_path: str,
              task_dir: str | None) -> dict:
    program = spec.template.program
    env = dict(base_env)
    env.update(program.env)
    env["HQ_JOB_ID"] = str(spec.job_id)
    env["HQ_TASK_ID"] = str(spec.task_id)
    env["HQ_INSTANCE_ID"] = str(spec.instance)
    env["HQ_SUBMIT_DIR"] = spec.submit_dir
    env["HQ"] = hq_path
    if spec.entry is not None:
        env["HQ_ENTRY"] = spec.entry.decode("utf-8", "surrogateescape")
    for e in spec.template.request.entries:
        name = _env_name(e.name)
        env[f"HQ_RESOURCE_REQUEST_{name}"] = e.to_text()
        labels = allocation.labels(e.name) if allocation is not None else []
        if labels:
            env[f"HQ_RESOURCE_VALUES_{name}"] = ",".join(labels)
    if allocation is not None:
        cpus = allocation.labels("cpus")
        if cpus:
            env["HQ_CPUS"] = ",".join(cpus)
            cpu_entry = spec.template.request.get("cpus")
            if ("OMP_NUM_THREADS" not in program.env and cpu_entry is not None
                    and (cpu_entry.amount == ALL or cpu_entry.amount % 10000 == 0)):
                env["OMP_NUM_THREADS"] = str(len(cpus))
        gpus = allocation.labels("gpus/nvidia")
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        amd = allocation.labels("gpus/amd")
        if amd:
            env["ROCR_VISIBLE_DEVICES"] = ",".join(amd)
    if task_dir is not None:
        env["HQ_TASK_DIR"] = task_dir
        env["HQ_ERROR_FILENAME"] = os.path.join(task_dir, "hq-error")
    return env


def _open_output(path: str | None, made_dirs: set[str]) -> int:
    if path is None:
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    parent = os.path.dirname(path)
    if parent not in made_dirs:
        os.makedirs(parent, exist_ok=True)
        made_dirs.add(parent)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)


def _spawn_error(args: list[str], err: OSError) -> str:
    program = args[0]
    msg = f'Cannot execute "{" ".join(args)}": {err.strerror}'
    if err.errno == errno.ENOENT:
        if "/" not in program and os.path.exists(program):
            msg += f"\nHint: did you mean ./{program}?"
    elif err.errno == errno.EACCES and program.endswith(".sh"):
        msg += "\nHint: the script is not executable; use `chmod +x` or run it with `bash`"
    return msg


def read_error_file(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read(ERROR_FILE_LIMIT + 1)
    except OSError:
        return None
    if not data:
        return "Task created an error file, but it is empty"
    text = data[:ERROR_FILE_LIMIT].decode("utf-8", "replace")
    if len(data) > ERROR_FILE_LIMIT:
        text += TRUNCATED_MARK
    return text


def exit_error(returncode: int) -> str:
    if returncode < 0:
        sig = -returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "unknown"
        return (f"Program terminated with exit code {128 + sig}. "
                f"Received signal {sig} ({name}).")
    return f"Program terminated with exit code {returncode}."


async def kill_group(proc) -> None:
    """SIGINT to the task's process group, SIGKILL after the grace period. Cancellation-safe."""
    with trio.CancelScope(shield=True):
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        with trio.move_on_after(KILL_GRACE):
            await proc.wait()
            _killpg(proc.pid, signal.SIGKILL)  # leftovers in the group
            return
        _killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Runner:
    """Everything a worker needs to start tasks; one instance per worker."""

    def __init__(self, *, work_dir: str, hq_path: str, server_uid: str):
        self.work_dir = work_dir
        self.hq_path = hq_path
        self.server_uid = server_uid
        self.base_env = dict(os.environ)
        self.made_dirs: set[str] = set()
        self.processes: dict = {}  # task key -> trio Process (for kill on worker exit)

    async def run(self, spec: TaskSpec, allocation) -> None:
        """Runs the task to completion.

        Raises:
            TaskOutcome: the task failed (the message is its error).
        Cancellation: the process group is killed (SIGINT, then SIGKILL) before this returns.
        """
        template = spec.template
        program = template.program
        cwd, stdout, stderr = resolve_task_paths(
            program.cwd, program.stdout.path, program.stderr.path, job_id=spec.job_id,
            task_id=spec.task_id, instance=spec.instance, submit_dir=spec.submit_dir,
            server_uid=self.server_uid)
        task_dir = None
        if program.task_dir:
            task_dir = tempfile.mkdtemp(prefix="t", dir=self.work_dir)
        try:
            if cwd not in self.made_dirs:
                os.makedirs(cwd, exist_ok=True)
                self.made_dirs.add(cwd)
            env = build_env(spec, allocation, self.base_env, self.hq_path, task_dir)
            args = program.args
            if template.pin == "taskset" and allocation is not None:
                cpus = allocation.labels("cpus")
                if not cpus:
                    raise TaskOutcome("Pinning requested, but the task has no CPUs allocated")
                args = ["taskset", "-c", ",".join(cpus), *args]
                env["HQ_PIN"] = "taskset"
            elif template.pin == "omp" and allocation is not None:
                cpus = allocation.labels("cpus")
                env.setdefault("OMP_PROC_BIND", "close")
                env.setdefault("OMP_PLACES", "{" + "},{".join(cpus) + "}")
                env["HQ_PIN"] = "omp"
            out_fd = err_fd = -1
            try:
                out_fd = _open_output(stdout, self.made_dirs)
                err_fd = _open_output(stderr, self.made_dirs)
            except OSError as e:
                for fd in (out_fd, err_fd):
                    if fd >= 0:
                        os.close(fd)
                raise TaskOutcome(f"Cannot open task output: {e}") from None
            try:
                proc = await trio.lowlevel.open_process(
                    args, stdin=subprocess.PIPE if program.stdin is not None else subprocess.DEVNULL,
                    stdout=out_fd, stderr=err_fd, cwd=cwd, env=env, start_new_session=True)
            except OSError as e:
                raise TaskOutcome(_spawn_error(args, e)) from None
            finally:
                os.close(out_fd)
                os.close(err_fd)
            self.processes[spec.key] = proc
            try:
                await self._wait(proc, program.stdin, template.time_limit)
            finally:
                del self.processes[spec.key]
            if proc.returncode != 0:
                error = None
                if task_dir is not None:
                    error = read_error_file(os.path.join(task_dir, "hq-error"))
                raise TaskOutcome(error or exit_error(proc.returncode))
            for stdio, path in ((program.stdout, stdout), (program.stderr, stderr)):
                if stdio.rm_if_finished and path is not None:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
        finally:
            if task_dir is not None:
                shutil.rmtree(task_dir, ignore_errors=True)

    async def _wait(self, proc, stdin: bytes | None, time_limit: float | None) -> None:
        try:
            with trio.fail_after(time_limit) if time_limit else _nullcontext():
                if stdin is not None:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(_feed_stdin, proc, stdin)
                        await proc.wait()
                else:
                    await proc.wait()
        except trio.TooSlowError:
            await kill_group(proc)
            raise TaskOutcome("Time limit reached") from None
        except BaseException:
            await kill_group(proc)
            raise

    def kill_all_now(self) -> None:
        """Last-resort SIGKILL of every task group (the worker is going away)."""
        for proc in list(self.processes.values()):
            _killpg(proc.pid, signal.SIGKILL)


async def _feed_stdin(proc, data: bytes) -> None:
    try:
        await proc.stdin.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await proc.stdin.aclose()


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


__all__ = ["Runner", "TaskSpec", "TaskOutcome", "format_amount"]
