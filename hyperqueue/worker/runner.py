"""Running one task as a process in its own process group: paths, environment, limits, kill."""

from __future__ import annotations

import errno
import functools
import os
import signal
import threading
import time

from ..core.placeholders import resolve_task_paths
from ..core.resources import ALL
from ..streaming.format import STDERR, STDOUT
from .fastspawn import encode_env, reap, spawn, wait_exit
from .pyrunner import RUNNER_CRASHED, PyRunners, SpawnFailed
from .taskdirs import TaskDirs

PER_TASK_PLACEHOLDERS = ("JOB_ID", "TASK_ID", "INSTANCE_ID")
KILL_GRACE = 1.0  # SIGINT first, SIGKILL after this many seconds
STDIN_INLINE = 65536  # stdin up to a pipe's capacity is written inline (never blocks)
ERROR_FILE_LIMIT = 2048
TRUNCATED_MARK = "\n[The message was truncated]"


class TaskSpec:
    """One assigned task as the worker sees it."""

    __slots__ = ("job_id", "task_id", "instance", "template", "submit_dir", "entry", "variant",
                 "nodes")

    def __init__(self, job_id, task_id, instance, template, submit_dir, entry, variant=0,
                 nodes=None):
        self.job_id = job_id
        self.task_id = task_id
        self.instance = instance
        self.template = template
        self.submit_dir = submit_dir
        self.entry = entry
        self.variant = variant
        self.nodes = nodes  # multi-node task: hostnames of all its workers, this one first

    @property
    def request(self):
        return self.template.requests[self.variant]

    @property
    def key(self):
        return (self.job_id, self.task_id)


class TaskOutcome(Exception):
    """How a task ended when it did not finish successfully; the message is the task error."""


@functools.cache
def _env_name(resource: str) -> str:
    """`gpus/nvidia` -> `gpus_nvidia` (the suffix of HQ_RESOURCE_* variables)."""
    return "".join(c if c.isalnum() else "_" for c in resource)


def build_env(spec: TaskSpec, allocation, hq_path: str, task_dir: str | None) -> dict:
    """The variables a task gets on top of the worker's environment: the program's own
    `--env` values and the HQ_* / resource variables."""
    program = spec.template.program
    env = dict(program.env)
    env["HQ_JOB_ID"] = str(spec.job_id)
    env["HQ_TASK_ID"] = str(spec.task_id)
    env["HQ_INSTANCE_ID"] = str(spec.instance)
    env["HQ_SUBMIT_DIR"] = spec.submit_dir
    env["HQ"] = hq_path
    if spec.entry is not None:
        env["HQ_ENTRY"] = spec.entry.decode("utf-8", "surrogateescape")
    if spec.nodes is not None:
        # Multi-node tasks get the node files instead of resource variables.
        env["HQ_NUM_NODES"] = str(len(spec.nodes))
        env["HQ_NODE_FILE"] = os.path.join(task_dir, "hq-nodefile")
        env["HQ_HOST_FILE"] = os.path.join(task_dir, "hq-hostfile")
        return _with_task_dir(env, task_dir)
    if len(spec.template.requests) > 1:
        env["HQ_RESOURCE_VARIANT"] = str(spec.variant)
    for e in spec.request.entries:
        name = _env_name(e.name)
        env[f"HQ_RESOURCE_REQUEST_{name}"] = e.to_text()
        labels = allocation.labels(e.name) if allocation is not None else []
        if labels:
            env[f"HQ_RESOURCE_VALUES_{name}"] = ",".join(labels)
    if allocation is not None:
        cpus = allocation.labels("cpus")
        if cpus:
            env["HQ_CPUS"] = ",".join(cpus)
            cpu_entry = spec.request.get("cpus")
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
    return _with_task_dir(env, task_dir)


def _with_task_dir(env: dict, task_dir: str | None) -> dict:
    if task_dir is not None:
        env["HQ_TASK_DIR"] = task_dir
        env["HQ_ERROR_FILENAME"] = os.path.join(task_dir, "hq-error")
    return env


def _debug_str(text: str) -> str:
    """`text` as a Rust Debug string: in double quotes, `"` `\\` and control characters
    escaped (`\\n`, `\\t`, ...), `'` kept."""
    out = []
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\0":
            out.append("\\0")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _io_display(e: OSError) -> str:
    """An OS error as Rust's `std::io::Error` Display: `Permission denied (os error 13)`."""
    if e.errno:
        return f"{os.strerror(e.errno)} (os error {e.errno})"
    return str(e)


_IO_KINDS = {errno.ENOENT: "NotFound", errno.EACCES: "PermissionDenied",
             errno.EPERM: "PermissionDenied", errno.EEXIST: "AlreadyExists",
             errno.ENOTDIR: "NotADirectory", errno.EISDIR: "IsADirectory",
             errno.EROFS: "ReadOnlyFilesystem", errno.ENOSPC: "StorageFull",
             errno.ENAMETOOLONG: "InvalidFilename"}


def _io_debug(e: OSError) -> str:
    """An OS error as Rust's `std::io::Error` Debug form:
    `Os { code: 13, kind: PermissionDenied, message: "Permission denied" }`."""
    code = e.errno or 0
    return (f"Os {{ code: {code}, kind: {_IO_KINDS.get(code, 'Uncategorized')}, "
            f"message: {_debug_str(os.strerror(code))} }}")


def _stdio_debug(stdio, path: str | None) -> str:
    """A task's output channel as upstream's `StdioDef` Debug form (F27)."""
    if stdio.streamed:
        return "Pipe"
    if path is None:
        return "Null"
    on_close = "RmIfFinished" if stdio.rm_if_finished else "Nothing"
    return f"File {{ path: {_debug_str(path)}, on_close: {on_close} }}"


def _spawn_error(args: list[str], err: OSError, cwd: str | None = None) -> str:
    """Upstream's text of a failed spawn (F26): `Cannot execute "<args>": <error> (os error N)`
    and, for a missing program or a non-executable `.sh` script, its hint lines."""
    program = args[0]
    msg = f"Cannot execute {_debug_str(' '.join(args))}: {err.strerror} (os error {err.errno})"
    if err.errno == errno.ENOENT:
        msg += f"\nThe program that you have tried to execute (`{program}`) was not found."
        implicit = not os.path.isabs(program) and program.split("/", 1)[0] not in (".", "..")
        if implicit and cwd is not None:
            candidate = os.path.join(cwd, program)
            if os.path.isfile(candidate):
                msg += (f"\nThe file `{candidate}` exists, maybe you have meant `./{program}` "
                        "instead?")
    elif err.errno == errno.EACCES and os.path.splitext(program)[1] == ".sh":
        msg += (f"\nThe script that you have tried to execute (`{program}`) is not executable."
                "\nTry making it executable or add a shebang line to it.")
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


#: Upstream's signal names (F28); any other number is `unknown`.
SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
                7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV",
                12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 17: "SIGCHLD",
                18: "SIGCONT", 19: "SIGSTOP"}


def exit_error(returncode: int) -> str:
    """F28: `Program terminated with exit code <c>.`; a child killed by a signal reports -1 and
    ` Received signal <n> (<NAME>).`."""
    if returncode < 0:
        sig = -returncode
        return (f"Program terminated with exit code -1. "
                f"Received signal {sig} ({SIGNAL_NAMES.get(sig, 'unknown')}).")
    return f"Program terminated with exit code {returncode}."


def _close(fd: int) -> None:
    """Closes one of our descriptors; never raises (it runs between a spawn and the reap)."""
    try:
        os.close(fd)
    except OSError:
        pass


def _killpg(pgid: int, sig: int) -> None:
    if pgid <= 1:  # never ours: killpg(0) is the worker's own group, killpg(1) every process
        return
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class TaskRun:
    """One task execution, run to completion by `execute` in a spawner thread.

    The trio side may call `cancel()` at any time (thread-safe): before the spawn it prevents
    it; after, it sends SIGINT to the task's process group (the caller escalates with `kill()`).

    `live` is True from the spawn until the runner has killed the task's process group at its
    end; signals are only sent under `lock` while it is True. The runner kills the group before
    it reaps the leader, so while `live` the group id (the leader's pid) cannot have been reused.
    """

    __slots__ = ("spec", "allocation", "lock", "canceled", "pid", "live", "error", "runner",
                 "kill_group")

    def __init__(self, runner: "Runner", spec: TaskSpec, allocation):
        self.runner = runner
        self.spec = spec
        self.allocation = allocation
        self.lock = threading.Lock()
        self.canceled = False
        self.pid: int | None = None
        self.live = False
        self.error: str | None = None  # None = finished successfully
        self.kill_group = _killpg  # how to signal the task's process group

    def cancel(self) -> int | None:
        """Marks the run canceled; returns the process group to escalate on, if started."""
        with self.lock:
            self.canceled = True
            if not self.live:
                return None
            self.kill_group(self.pid, signal.SIGINT)
            return self.pid

    def signal(self, sig: int) -> None:
        """Sends `sig` to the task's process group if it still runs (thread-safe)."""
        with self.lock:
            if self.live:
                self.kill_group(self.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def execute(self) -> None:
        """Blocking: prepares, spawns and waits for the task; sets `error` if it failed."""
        try:
            self.runner.execute(self)
        except TaskOutcome as e:
            self.error = str(e)
        except Exception as e:  # never let a bug kill the spawner thread
            self.error = f"Worker error while running the task: {e!r}"


class Runner:
    """What a worker needs to start tasks; `execute` runs in spawner threads (no trio)."""

    def __init__(self, *, work_dir: str, hq_path: str, server_uid: str, worker_id: int = 0):
        self.work_dir = work_dir
        self.hq_path = hq_path
        self.server_uid = server_uid
        self.worker_id = worker_id  # stream file headers name it
        self.access_key: str | None = None  # HQ_ACCESS_KEY of every task (`hq task notify`)
        self.base_env = dict(os.environ)
        # The worker's environment, pre-encoded once: (name, b"NAME=value").
        self.base_items = [(k, os.fsencode(k) + b"=" + os.fsencode(v))
                           for k, v in self.base_env.items()]
        self.made_dirs: set[str] = set()
        # Per-task work that is the same for every task of a template, computed once:
        # the worker's variables a task's own names do not override (by the task's env names),
        # and the paths of templates whose paths have no per-task placeholder.
        self._base_for: dict[tuple, list[bytes]] = {}
        self._static_paths: dict[tuple, tuple] = {}
        self.stream_writers: dict[str, object] = {}
        self._streams_lock = threading.Lock()
        self.devnull_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.devnull_w = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        self.reaper = None
        self.reaper_fd = -1
        self.pyrunners = PyRunners(self.base_env)  # warm runners for function tasks (lazy)
        self.task_dirs = TaskDirs(work_dir)  # (emptied ones are kept for later tasks)

    def close_pyrunners(self) -> None:
        self.pyrunners.close()
        self.task_dirs.close()

    def start_reaper(self) -> None:
        """Starts the companion that kills our tasks should this worker die (see reaper.py)."""
        import subprocess
        import sys

        try:
            self.reaper = subprocess.Popen(
                [sys.executable, "-m", "hyperqueue.worker.reaper", str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                close_fds=True)
        except OSError:
            return
        self.reaper_fd = self.reaper.stdin.fileno()
        try:  # room for a burst of start/end lines between the reaper's reads
            import fcntl

            fcntl.fcntl(self.reaper_fd, 1031, 1 << 20)  # F_SETPIPE_SZ
        except OSError:
            pass

    def stop_reaper(self) -> None:
        if self.reaper is None:
            return
        try:
            self.reaper.stdin.close()
            self.reaper.wait(timeout=2)
        except Exception:
            pass
        self.reaper = None
        self.reaper_fd = -1

    def _tell_reaper(self, line: bytes) -> None:
        if self.reaper_fd >= 0:
            try:
                os.write(self.reaper_fd, line)  # < PIPE_BUF: atomic across spawner threads
            except OSError:
                pass

    def _makedirs(self, path: str) -> None:
        if path not in self.made_dirs:
            os.makedirs(path, exist_ok=True)
            self.made_dirs.add(path)

    def execute(self, run: TaskRun) -> None:
        spec = run.spec
        template = spec.template
        program = template.program
        cwd, stdout, stderr = self._paths(spec, program)
        multi_node = spec.nodes is not None
        try:
            task_dir = self.task_dirs.take() if program.task_dir or multi_node else None
        except OSError as e:  # upstream's texts (F27)
            raise TaskOutcome(f"Cannot create task_dir in worker's workdir at {self.work_dir}: "
                              f"{_io_debug(e)}") from None
        try:
            if multi_node:
                _write_node_files(task_dir, spec.nodes)
            try:
                self._makedirs(cwd)
            except OSError as e:
                raise TaskOutcome(f"Could not create working directory: {_io_debug(e)}") from None
            for what, path in (("stdout", stdout), ("stderr", stderr)):
                if path is not None:
                    try:
                        self._makedirs(os.path.dirname(path))
                    except OSError as e:  # (the stderr text shows the stdout def, as upstream)
                        raise TaskOutcome(
                            f"Cannot create {what} directory at "
                            f"{_stdio_debug(program.stdout, stdout)}: {_io_debug(e)}") from None
            env = build_env(spec, run.allocation, self.hq_path, task_dir)
            if self.access_key is not None:
                env["HQ_ACCESS_KEY"] = self.access_key
            args = program.args
            # a Python function task (upstream's command): may run on a warm runner
            warm = program.stdin is not None and PyRunners.is_function_command(args)
            pin_cpus = None
            cpus = run.allocation.labels("cpus") if run.allocation is not None else []
            if template.pin == "taskset":
                if not cpus:
                    raise TaskOutcome("Pinning failed, no CPU ids allocated for task")
                if warm:
                    pin_cpus = [int(c) for c in cpus]
                args = ["taskset", "-c", ",".join(cpus), *args]
                env["HQ_PIN"] = "taskset"
            elif template.pin == "omp":
                if not cpus:
                    raise TaskOutcome("Pinning failed, no CPU ids allocated for task")
                env.setdefault("OMP_PROC_BIND", "close")
                env.setdefault("OMP_PLACES", "{" + ",".join(cpus) + "}")
                env["HQ_PIN"] = "omp"
            env_list = self._env_list(env)
            path_value = env.get("PATH") or self.base_env.get("PATH") or os.defpath
            writer = None
            read_fds: dict[int, int] = {}  # streamed channels: our end of the pipe -> channel
            if program.stdout.streamed or program.stderr.streamed:
                try:
                    writer = self._stream_writer(spec, program.stream)
                except OSError as e:
                    raise TaskOutcome(f"Creating stream file failed: {_io_display(e)}") from None
            out_fd = err_fd = -1
            stdin_w = None
            proc = None  # the task's process when it runs on a warm runner
            try:
                out_fd = (self._stream_pipe(read_fds, STDOUT) if program.stdout.streamed
                          else self._open_output(stdout))
                err_fd = (self._stream_pipe(read_fds, STDERR) if program.stderr.streamed
                          else self._open_output(stderr))
                if warm:  # (its runner's start, if any, outside the task's lock)
                    self.pyrunners.warm_up(program.args, env, path_value)
                with run.lock:
                    if run.canceled:
                        return
                    if warm:
                        proc, stdin_w = self._spawn_warm(program.args, env, path_value, cwd,
                                                         pin_cpus, program.stdin, out_fd,
                                                         err_fd)
                    if proc is not None:
                        pid = proc.pid
                        run.kill_group = proc.kill_group
                    elif program.stdin:  # (empty stdin: /dev/null, as upstream: F30)
                        pid, stdin_w = self._spawn_with_stdin(args, cwd, env_list, path_value,
                                                              out_fd, err_fd)
                    else:
                        try:
                            pid = spawn(args, cwd, env_list, path_value, self.devnull_r,
                                        out_fd, err_fd)
                        except OSError as e:
                            raise TaskOutcome(_spawn_error(args, e, cwd)) from None
                    run.pid = pid
                    run.live = True
            except OSError as e:
                raise TaskOutcome(f"Cannot open task output: {e}") from None
            finally:
                for fd in (out_fd, err_fd):
                    if fd >= 0 and fd != self.devnull_w:
                        _close(fd)
                if not run.live:  # not started: nobody reads the pipes
                    for fd in read_fds:
                        _close(fd)
            # The process runs. Whatever happens from here on (the task ends, its time limit,
            # a cancel, or an exception of ours), the finally below kills its process group and
            # reaps it before this method returns; only then is the task reported and its
            # resources freed (by the caller).
            returncode = None
            timed_out = False
            try:
                self._tell_reaper(b"+%d\n" % pid)
                if stdin_w is not None:
                    fd, data = stdin_w, program.stdin
                    if read_fds or len(data) > STDIN_INLINE or template.time_limit is not None:
                        # the task may not read it all before it writes, or at all: feed it on
                        # the side (the time limit and the output keep being served)
                        threading.Thread(target=_feed, args=(fd, data), daemon=True).start()
                        stdin_w = None
                    else:
                        stdin_w = None
                        _feed(fd, data)  # fits in the pipe: does not block
                time_limit = template.time_limit
                if read_fds:
                    from .streamer import pump

                    deadline = None if time_limit is None else time.monotonic() + time_limit
                    fds, read_fds = read_fds, {}  # pump closes them
                    # the task ends with its main process: then whatever still holds a pipe
                    # open is killed (as below for unstreamed tasks) and the pipes drain
                    pidfd = os.pidfd_open(pid)  # (also for a warm runner's child)
                    try:
                        pump(writer, spec.job_id, spec.task_id, spec.instance, fds, deadline,
                             pidfd, run.kill)
                    finally:
                        _close(pidfd)
                    if deadline is not None:
                        time_limit = max(0.0, deadline - time.monotonic())
                wait = wait_exit if proc is None else (lambda _pid, t: proc.wait_exit(t))
                if not wait(pid, time_limit):
                    timed_out = True
                    run.signal(signal.SIGINT)
                    wait(pid, KILL_GRACE)
            finally:
                returncode = self._end_process(run, pid, proc)
                for fd in read_fds:  # left open only if pump was not reached
                    _close(fd)
                if stdin_w is not None:
                    _close(stdin_w)
                stream_error = None
                if writer is not None:
                    try:
                        writer.flush()  # in the file before the result is reported
                    except OSError as e:
                        stream_error = e
            if timed_out:
                raise TaskOutcome("Time limit reached")
            if stream_error is not None:
                raise TaskOutcome(f"Streaming: {_debug_str(_io_display(stream_error))}")
            if run.canceled:
                return
            if proc is not None:
                if returncode is None:
                    raise TaskOutcome(RUNNER_CRASHED)
                if proc.error is not None:
                    raise TaskOutcome(proc.error)
            if returncode != 0:
                error = None
                if task_dir is not None:
                    error = read_error_file(os.path.join(task_dir, "hq-error"))
                raise TaskOutcome(error or exit_error(returncode))
            for stdio, path in ((program.stdout, stdout), (program.stderr, stderr)):
                if stdio.rm_if_finished and path is not None:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
        finally:
            if task_dir is not None:
                self.task_dirs.give_back(task_dir)

    def _end_process(self, run: TaskRun, pid: int, proc=None) -> int | None:
        """The end of every started task: SIGKILL to its process group (what it left running
        in the background dies with it; one syscall, a no-op when nothing is left), then the
        leader is reaped (waiting for it if it still runs, e.g. after an exception of ours).
        The group is killed before the reap, while the leader's pid is still taken. A warm
        runner's child is reaped by the runner once `proc.finish` closes its status pipe
        (None: the runner died before it reported the exit)."""
        with run.lock:
            if proc is None or not proc.release():  # (a warm child with nothing left runs on)
                run.kill_group(pid, signal.SIGKILL)
            run.live = False
        self._tell_reaper(b"-%d\n" % pid)
        return reap(pid) if proc is None else proc.finish()

    def _paths(self, spec: TaskSpec, program) -> tuple[str, str | None, str | None]:
        key = (program, spec.submit_dir)
        paths = self._static_paths.get(key)
        if paths is not None:
            return paths
        paths = resolve_task_paths(
            program.cwd, program.stdout.path, program.stderr.path, job_id=spec.job_id,
            task_id=spec.task_id, instance=spec.instance, submit_dir=spec.submit_dir,
            server_uid=self.server_uid)
        if not any(p is not None and any(f"%{{{n}}}" in p for n in PER_TASK_PLACEHOLDERS)
                   for p in (program.cwd, program.stdout.path, program.stderr.path)):
            if len(self._static_paths) > 1024:
                self._static_paths.clear()
            self._static_paths[key] = paths
        return paths

    def _env_list(self, env: dict[str, str]) -> list[bytes]:
        """The task's full environment as `NAME=value` bytes: the worker's variables that
        `env` does not override, then `env`."""
        keys = tuple(env)
        base = self._base_for.get(keys)
        if base is None:
            base = [b for k, b in self.base_items if k not in env]
            if len(self._base_for) > 256:
                self._base_for.clear()
            self._base_for[keys] = base
        return base + encode_env(env)

    def _stream_writer(self, spec: TaskSpec, stream: str):
        from ..core.placeholders import fill
        from .streamer import StreamWriter

        values = {"JOB_ID": str(spec.job_id), "SUBMIT_DIR": spec.submit_dir,
                  "SERVER_UID": self.server_uid}
        directory = os.path.normpath(os.path.join(spec.submit_dir, fill(stream, values)))
        with self._streams_lock:
            writer = self.stream_writers.get(directory)
            if writer is None:
                writer = self.stream_writers[directory] = StreamWriter(
                    directory, self.server_uid, self.worker_id)
        return writer

    @staticmethod
    def _stream_pipe(read_fds: dict, channel: int) -> int:
        """A pipe for a streamed channel: returns the task's end, keeps ours in `read_fds`."""
        r, w = os.pipe2(os.O_CLOEXEC)
        read_fds[r] = channel
        return w

    def close_streams(self) -> None:
        with self._streams_lock:
            writers, self.stream_writers = list(self.stream_writers.values()), {}
        for w in writers:
            w.close()

    def _open_output(self, path: str | None) -> int:
        if path is None:
            return self.devnull_w
        self._makedirs(os.path.dirname(path))
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)

    def _spawn_warm(self, args, env, path_value, cwd, pin_cpus, stdin, out_fd, err_fd):
        """Starts a function task on a warm runner: (process, our end of its stdin pipe or
        None when the stdin went inline), or (None, None) when it must be spawned the normal
        way."""
        if len(stdin) <= STDIN_INLINE:
            try:
                proc = self.pyrunners.spawn(args, env, path_value, cwd, pin_cpus, stdin,
                                            [out_fd, err_fd])
            except SpawnFailed as e:
                raise TaskOutcome(str(e)) from None
            return proc, None
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            proc = self.pyrunners.spawn(args, env, path_value, cwd, pin_cpus, None,
                                        [r, out_fd, err_fd])
        except SpawnFailed as e:
            _close(w)
            raise TaskOutcome(str(e)) from None
        except BaseException:
            _close(w)
            raise
        finally:
            _close(r)
        if proc is None:
            _close(w)
            return None, None
        return proc, w

    @staticmethod
    def _spawn_with_stdin(args, cwd, env_list, path_value, out_fd, err_fd):
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = spawn(args, cwd, env_list, path_value, r, out_fd, err_fd)
        except OSError as e:
            os.close(w)
            raise TaskOutcome(_spawn_error(args, e, cwd)) from None
        finally:
            _close(r)
        return pid, w

def _feed(fd: int, data: bytes) -> None:
    """Writes a task's stdin and closes it (a task that exits early just ends the write)."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_node_files(task_dir: str, hostnames: list[str]) -> None:
    """`hq-nodefile` (short names, IP addresses kept) and `hq-hostfile` (full names)."""
    def short(h: str) -> str:
        return h if h.replace(".", "").isdigit() else h.split(".", 1)[0]

    with open(os.path.join(task_dir, "hq-nodefile"), "w") as f:
        f.write("".join(short(h) + "\n" for h in hostnames))
    with open(os.path.join(task_dir, "hq-hostfile"), "w") as f:
        f.write("".join(h + "\n" for h in hostnames))
