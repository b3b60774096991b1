"""Starting a task process with as little Python work as possible.

`subprocess.Popen` costs ~200 µs of interpreter time per spawn on top of the vfork + exec
itself, which on a 2-core worker running thousands of tiny tasks is most of the worker's CPU.
`spawn` calls the same `_posixsubprocess.fork_exec` that Popen uses (so still vfork-based, with
close_fds, a new session, and exec errors reported through a CLOEXEC pipe), but with the
environment pre-encoded and the executable search path cached. If the private call's signature
does not match this Python, it falls back to Popen for good.
"""

from __future__ import annotations

import errno as _errno
import os
import subprocess

try:
    from _posixsubprocess import fork_exec as _fork_exec
except ImportError:  # pragma: no cover - not CPython/POSIX
    _fork_exec = None

_USE_VFORK = getattr(subprocess, "_USE_VFORK", True)
_fast_ok = _fork_exec is not None
_exec_cache: dict[tuple[bytes, str], tuple[bytes, ...]] = {}


def encode_env(env: dict[str, str]) -> list[bytes]:
    # What os.fsencode does on POSIX (UTF-8, surrogateescape), without a call per string.
    return [f"{k}={v}".encode("utf-8", "surrogateescape") for k, v in env.items()]


def _executable_list(program: str, path_value: str) -> tuple[bytes, ...]:
    exe = os.fsencode(program)
    key = (exe, path_value)
    found = _exec_cache.get(key)
    if found is None:
        if os.path.dirname(exe):
            found = (exe,)
        else:
            found = tuple(os.path.join(os.fsencode(d), exe)
                          for d in path_value.split(os.pathsep))
        if len(_exec_cache) > 1024:
            _exec_cache.clear()
        _exec_cache[key] = found
    return found


def spawn(args: list[str], cwd: str, env_list: list[bytes], path_value: str, stdin: int,
          stdout: int, stderr: int) -> int:
    """Starts `args` in its own session with the given fds; returns the pid.

    Raises:
        OSError: the program could not be executed (errno and filename set, as Popen does).
    """
    global _fast_ok
    if _fast_ok:
        errpipe_read, errpipe_write = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                pid = _fork_exec(
                    [a.encode("utf-8", "surrogateescape") for a in args],
                    _executable_list(args[0], path_value),
                    True, (errpipe_write,), os.fsencode(cwd), env_list,
                    stdin, -1, -1, stdout, -1, stderr,
                    errpipe_read, errpipe_write,
                    True, True, -1, None, None, None, -1, None, _USE_VFORK)
            except TypeError:
                _fast_ok = False  # another signature: use Popen from now on
                pid = None
            finally:
                os.close(errpipe_write)
            if pid is not None:
                data = bytearray()
                while True:
                    part = os.read(errpipe_read, 50000)
                    if not part:
                        break
                    data += part
                if data:
                    try:
                        os.waitpid(pid, 0)
                    except ChildProcessError:
                        pass
                    raise _child_error(bytes(data), args[0])
                return pid
        finally:
            os.close(errpipe_read)
    env = dict(e.decode("utf-8", "surrogateescape").split("=", 1) for e in
               (x for x in env_list if b"=" in x))
    proc = subprocess.Popen(args, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd, env=env,
                            start_new_session=True)
    proc.returncode = 0  # reaped by the caller with os.waitpid; keep Popen from touching it
    return proc.pid


def _child_error(data: bytes, program: str) -> OSError:
    try:
        name, hex_errno, msg = data.split(b":", 2)
        code = int(hex_errno, 16)
    except ValueError:
        return OSError(_errno.EIO, f"bad exec error report from the child: {data!r}")
    if name != b"OSError" or not code:
        return OSError(_errno.EIO, msg.decode(errors="replace"))
    filename = program if msg.decode(errors="replace") != "noexec:chdir" else None
    return OSError(code, os.strerror(code), filename)


def wait_exit(pid: int, timeout: float | None) -> bool:
    """Blocks until the process has exited, WITHOUT reaping it (it stays a zombie, so its pid,
    which is also its process group id, cannot be reused until `reap`). Returns False if
    `timeout` seconds passed first. Long timeouts wait in bounded slices (common.waits), so any
    duration up to MAX_DURATION is honoured exactly.

    Raises:
        OSError: the pidfd could not be opened (for example no descriptor left).
    """
    if timeout is None:
        while True:
            try:
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:  # already reaped elsewhere
                return True
            except InterruptedError:
                continue
            return True
    import select
    import time

    from ..common.waits import wait_slice_ms

    deadline = time.monotonic() + timeout
    fd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll(wait_slice_ms(deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                return False
        return True
    finally:
        os.close(fd)


def reap(pid: int) -> int:
    """Reaps the process (blocking until it exits); returns its returncode (negative: signal)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        return os.waitstatus_to_exitcode(status)
