"""The warm Python runner: function tasks pay a fork instead of an interpreter start.

A function task's program is upstream's command ``python3 -c "from hyperqueue.task.function
import task_main as m; m()"`` with the cloudpickled ``(fn, args, kwargs)`` on stdin (see
hyperqueue.task.function). Started normally, every such task pays an interpreter start plus the
import of cloudpickle (tens of milliseconds). Instead, the worker keeps one fork server per
interpreter: a process of that same interpreter (the executable the task's ``python3`` resolves
to on its PATH, started under that path, with the task's ``PYTHON*``/``LD_*``/locale variables)
that has imported cloudpickle and hyperqueue.task.function, and forks one child per task. The
child becomes exactly what the task's process would have been, then calls `task_main`.

Which tasks: the program is exactly ``[<python>, "-c", FUNCTION_CODE]`` with stdin, where
``<python>``'s file name starts with ``python`` and resolves (on the task's PATH) to an ELF
executable, not a script (a pyenv shim picks its interpreter from the cwd, so it falls back). A
prologue (``bash -c ...``), any other command, an interpreter whose fork server cannot start
(e.g. it has upstream's package, not this one) and an environment too large for one message run
the normal way, a process per task. ``--pin taskset`` becomes ``sched_setaffinity`` in the child.

The protocol (private: a socketpair between one worker and its fork server)
--------------------------------------------------------------------------
* Worker -> runner, one SOCK_SEQPACKET message per task: ``pickle((cwd, env, cpus, stdin))``
  (``env``: the variables whose values in the task differ from the server's environment, which
  is the worker's with the task's start-up variables; ``cpus``: CPU ids to pin to, or None;
  ``stdin``: the task's stdin if at most 64 KiB, which the child puts in a memfd on its fd 0)
  with three or four descriptors (SCM_RIGHTS): the read end of the task's stdin pipe (when not
  inline; the worker feeds it), its stdout, its stderr, and one end of a *status socket* (a
  stream socketpair) made for this task alone. The server's idle children all wait in
  ``recvmsg`` on the server's end of that socketpair: the first one takes the request, so a
  task start wakes one child, not the server too. The server only watches it for the worker's
  hang-up.
* A child that took a request first sends ``T`` with the status socket to the server over its
  own socketpair with the server (the server reports the child's exit there), then ``P<pid>\n``
  on the status socket; the worker may signal it from then on.
* On the status socket, to the worker: the server writes ``X<returncode>\n`` when the child
  exited (negative: killed by that signal). The child writes ``E<message>\n`` if it cannot
  enter its cwd, and, once the task is done and its stdio flushed, either its own
  ``X<code>\n`` just before it exits, or ``R<code>\n`` (code 0) when it stays for another task
  (see "Warm children"; it sends ``D`` to the server first); the first ``X``/``R`` counts.
  The task's own code runs in the child and may write on this socket too: every line written
  once it ran starts with a newline (ending any partial line of the task's), the worker takes
  only the first ``P`` (the child's, written before the task runs) and well-formed numbers,
  and drops lines longer than MAX_STATUS_LINE. Until
  the child's ``setsid`` it is not a group leader: the worker signals the pid itself when the
  group does not exist yet (the child has no descendants then). To the child, the worker writes
  ``K`` before it closes its end when the child reported ``R`` and the worker never signaled
  it for this task: the child then takes its next request; a close without ``K`` makes it exit.
* The server keeps two idle children (*spares*, each in its own session and holding nothing
  but the request socket and its socketpair with the server) beyond those running tasks; it
  forks a replacement when a child takes a request, so the fork is off the tasks' critical
  path.
* The server does NOT reap a child when it exits: it reaps it when the worker has closed its end
  of the status socket (the server sees the hang-up). The worker does that only after it has
  killed the task's process group (`Runner._end_process`; not for a child that reported ``R``:
  nothing of its task is left to kill), so while the worker may still signal the group the pid
  cannot have been reused: the same guarantee as for its own children. If the worker closes
  the socket while the child still runs its task (no ``D``), the server kills the child's
  group.
* The child: its own session (setsid), stdin/stdout/stderr on fds 0-2, every other descriptor
  closed (but its status socket and its two sockets, all close-on-exec), the task's cwd and
  os.environ, ``sys.argv == ["-c"]``, the CPU affinity if pinned, PR_SET_PDEATHSIG=SIGKILL (it
  dies with the server), PR_SET_CHILD_SUBREAPER (the task's orphans stay its descendants). It
  runs `task_main`, then what an interpreter does at exit (joins non-daemon threads, atexit
  handlers, flushes stdio); SIGINT kills it by signal as it would a fresh ``python3``.
* A server crash: the worker notices on a pidfd of the server (or an EOF on the status socket)
  without an ``X``/``R``; it kills those tasks' process groups, fails them with
  RUNNER_CRASHED, and the next function task starts a new server. When the worker goes away,
  the server and the idle children see the hang-up and exit (the children running tasks die
  with the server); the tasks' groups are killed by the worker's reaper companion like any
  task's. Import caches are not invalidated in the child: a module file created within the
  file system's timestamp granularity of the runner's start in a directory the runner imported
  from may be missed (user code in the task's cwd is looked up afresh).

Warm children (a child runs many tasks in sequence)
---------------------------------------------------
A fresh fork pays its page faults and its exit (~2 ms of CPU per task on the benchmark
machine), so a child whose task left its process as it found it runs the next task instead of
exiting. Before its first task the child records its state (`_Baseline`). After a task it is
reused only if ALL of these hold, else it exits as before (and the server forks a fresh one):

* the task exited 0 (an exception, ``sys.exit``, a signal: the child exits);
* the worker never signaled it (cancel, time limit: the worker then kills its group and does
  not send ``K``), and its stdout/stderr were not pipes (a streamed task: the reader waits for
  the process's exit);
* no process of the task is left (no child at all, running or unreaped; as a subreaper the
  child also sees orphans of the task's children), and no thread;
* ``sys.modules`` has exactly the modules it had (a task that imported anything new, e.g. its
  own module or numpy, ends the child: a later task must not see a module loaded by another,
  and a module file changed between tasks is loaded afresh), the same ``sys.stdin/stdout/
  stderr`` objects, the same root logging handlers, Python signal handlers, signal mask and
  umask, and no descriptor besides 0-2 and its two sockets.

What every task changes by design is put back before the next: ``os.environ`` (variables set,
changed or removed by the task, and the task's own ``HQ_*``), ``sys.path``, ``sys.argv``,
the CPU affinity, the cwd (each task enters its own), fds 0-2 (pointed at /dev/null, releasing
the task's files), the root logger's level (``HQ_PYLOG`` of each task). NOT reset (a task that
changes these affects later tasks of the same child): attributes of modules the runner had
imported (monkeypatching the stdlib, cloudpickle or hyperqueue), ``random``'s state (continues
rather than being reseeded), resource limits, loggers other than the root, warnings filters,
``sys.setrecursionlimit`` and similar interpreter settings. The pid is the same for
consecutive tasks of one child, and so is the process group id; what the worker signals is
always exactly the running task's group (it signals only while the task runs, and the child
takes the next request only after the worker's ``K``). Which idle child takes a request is up
to the kernel (fresh spares and warm children alike); every child becomes warm after its first
task.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import sys

HELLO = b"hq-pyrunner 1"
START_TIMEOUT = 30.0  # for the server's hello (an interpreter start on a loaded machine)
REPLY_TIMEOUT = 30.0  # for the `P<pid>` reply to one spawn request
MAX_REQUEST = 1 << 17  # bytes of one request (the environment); larger ones spawn normally
SPARES = 2  # children forked ahead (a 2-CPU worker starts two tasks at once)
MAX_SERVERS = 4  # distinct interpreters/environments with a warm runner per worker
KEY_PREFIXES = ("PYTHON", "LD_", "LC_", "LANG")  # what shapes an interpreter at its start
RUNNER_CRASHED = ("The worker's Python function runner crashed while running this task "
                  "(it is restarted for the next function task)")
WRITE_TIMEOUT = 10.0  # for a status message on a socket the task filled (see `_write`)
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


# --------------------------------------------------------------------------------------------
# The server (runs in the task's interpreter; no trio, no worker imports)
# --------------------------------------------------------------------------------------------


def serve(fd: int) -> None:
    """The fork server's main loop; `fd` is its socket with the worker, which its children read
    the requests from. Returns when the worker closes it."""
    sock = socket.socket(fileno=fd)
    try:  # preloaded for the children (upstream's client pickles a CloudWrapper)
        import cloudpickle  # noqa: F401

        import hyperqueue.task.function.wrapper  # noqa: F401
    except ImportError:
        pass  # the children report it, as a fresh interpreter would
    import ctypes
    import gc
    import traceback  # noqa: F401 - preloaded for the children

    import hyperqueue.task.function

    # What every function task's `task_main` does first, done once here (it then only sets the
    # level the task's HQ_PYLOG names): the children start with the same logging set-up.
    hyperqueue.task.function._setup_logging()
    libc = ctypes.CDLL(None, use_errno=True)
    gc.collect()
    gc.freeze()  # fewer copy-on-write faults in the children
    me = os.getpid()
    sock.send(HELLO)
    poller = select.poll()
    sock_fd = sock.fileno()
    os.set_inheritable(sock_fd, False)
    poller.register(sock_fd, 0)  # only its hang-up: the requests are the children's to read
    kids: dict[int, _Kid] = {}  # pidfd -> every child not reaped yet
    by_sock: dict[int, _Kid] = {}  # a child's own socket -> the child (its T messages)
    by_status: dict[int, _Kid] = {}  # status socket -> the child running that task
    busy = 0  # children between a T and the worker's close of that task's status socket

    def fork_spare() -> bool:
        """A child that waits for a request (the fork is off the tasks' critical path)."""
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError:
            a.close()
            b.close()
            return False
        if pid == 0:
            _spare(sock_fd, b.fileno(), me, libc)
        b.close()
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # (cannot happen for our own unreaped child)
            _kill(pid)
            _reap(pid)
            a.close()
            return False
        a.setblocking(False)  # (recv_fds ignores its flags before Python 3.12)
        kid = _Kid(pid, a, pidfd)
        kids[pidfd] = kid
        by_sock[a.fileno()] = kid
        poller.register(pidfd, select.POLLIN)
        poller.register(a.fileno(), select.POLLIN)
        return True

    def drain(kid, closing) -> None:
        """Reads every message the child has sent (T: it took a request, with that task's
        status socket; D: its task is done and it waits for the worker's K)."""
        nonlocal busy
        while kid.sock is not None:
            try:
                msg, fds, _, _ = socket.recv_fds(kid.sock, 16, 1)  # (non-blocking)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                msg, fds = b"", []
            if not msg:  # the child is gone (its pidfd reports it)
                poller.unregister(kid.sock.fileno())
                del by_sock[kid.sock.fileno()]
                kid.sock.close()
                kid.sock = None
                return
            if msg == b"D":
                kid.done = True
            for status in fds:
                if kid.pidfd < 0:
                    _close(status)
                    continue
                if kid.status >= 0:  # its previous task: it got K, so the worker
                    old = kid.status  # closes that socket (and its close is done)
                    del by_status[old]
                    poller.unregister(old)
                    closing.append(old)
                    busy -= 1
                kid.done = False
                kid.status = status
                by_status[status] = kid
                busy += 1
                poller.register(status, 0)  # its hang-up: the worker is done with it

    while True:
        while len(kids) - busy < SPARES:
            if not fork_spare():
                break
        try:
            events = poller.poll()
        except InterruptedError:
            continue
        # Registered descriptors are closed only after the whole batch: no number is reused
        # within it, so a later event of the batch never lands on a new descriptor.
        # A child's D is read before the close of its task's status socket (it sent D first).
        closing: list[int] = []
        if len(events) > 1:
            events.sort(key=lambda event: event[0] not in by_sock)
        for fd, ev in events:
            if fd == sock_fd:
                return  # the worker closed its end (idle children see the EOF and exit)
            kid = by_sock.get(fd)
            if kid is not None:  # its messages, all of them (in order) before its other events
                drain(kid, closing)
            elif fd in kids:  # a child exited
                kid = kids.pop(fd)
                poller.unregister(fd)
                closing.append(fd)
                kid.pidfd = -1
                if kid.status < 0:  # idle, or its task is closed: reap it now
                    _reap(kid.pid)
                    continue
                try:  # report; keep the zombie until the worker closes the status socket
                    info = os.waitid(os.P_PID, kid.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                    if info is None:
                        code = 255
                    else:
                        code = (info.si_status if info.si_code == os.CLD_EXITED
                                else -info.si_status)
                except ChildProcessError:
                    code = 255
                _write(kid.status, b"\nX%d\n" % code)  # (see `_become`)
            elif fd in by_status:  # the worker is done with this task
                kid = by_status.pop(fd)
                poller.unregister(fd)
                closing.append(fd)
                kid.status = -1
                busy -= 1
                if kid.pidfd >= 0 and not kid.done:  # (its D precedes the worker's close,
                    drain(kid, closing)  # but may have come after this poll looked at it)
                if kid.pidfd < 0:  # a zombie already
                    _reap(kid.pid)
                elif not kid.done:  # still running (the worker gave up on it): kill its group;
                    _kill(kid.pid)  # it is reaped once its pidfd reports the exit
                # else it runs on: given back (K: it takes the next request), or it exits by
                # itself (no K)
        for fd in closing:
            _close(fd)


class _Kid:
    """A child of the fork server (in the server)."""

    __slots__ = ("pid", "sock", "pidfd", "status", "done")

    def __init__(self, pid: int, sock, pidfd: int):
        self.done = False  # it reported D for its current task
        self.pid = pid
        self.sock = sock  # its T messages (None once it closed it)
        self.pidfd = pidfd  # -1 once it exited
        self.status = -1  # the status socket of its task (-1: none)


def _kill(pid: int) -> None:
    if pid <= 1:  # (never from fork(): a guard against signalling every process)
        return
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _line(text: str) -> bytes:
    return text.replace("\n", " ").encode("utf-8", "replace")[:3000]


def _write(fd: int, data: bytes) -> None:
    """Writes a short status message. The task's code may have set O_NONBLOCK on the status
    socket (its file description is shared) and filled it: a full socket is waited for (the
    worker reads it to the end), up to WRITE_TIMEOUT."""
    import time

    deadline = None
    while data:
        try:
            data = data[os.write(fd, data):]
        except (BlockingIOError, InterruptedError):
            now = time.monotonic()
            deadline = deadline or now + WRITE_TIMEOUT
            if now >= deadline:
                return
            select.select([], [fd], [], deadline - now)
        except OSError:
            return  # the worker closed the socket: its hang-up reaps


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _spare(requests_fd, own_fd, server_pid, libc):
    """In a child: takes a request from the worker's socket (the first idle child gets it),
    becomes that task, and while each task leaves the process clean (see `_Baseline`) and the
    worker gives it back (K), takes the next one. Never returns."""
    code = 127
    try:
        os.setsid()
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # the task's orphans become our children, so "no child left" means none of its
        # processes is left (unless one escaped by its own setsid + a double fork)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
        if os.getppid() != server_pid:
            os._exit(code)
        low, high = sorted((requests_fd, own_fd))
        os.closerange(3, low)  # nothing of the server's: no other task's status socket
        os.closerange(low + 1, high)
        os.closerange(high + 1, 1 << 20)
        requests = socket.socket(fileno=requests_fd)
        own = socket.socket(fileno=own_fd)
        me = b"P%d\n" % os.getpid()
        baseline = None
        while True:
            try:
                msg, fds, flags, _ = socket.recv_fds(requests, MAX_REQUEST, 4)
            except (BlockingIOError, InterruptedError):
                # (a task's code may have set O_NONBLOCK on this shared socket: wait instead
                # of dying, or every idle child would exit and be forked again at once)
                select.select([requests], [], [])
                continue
            if not msg and not fds:
                code = 0  # the worker is gone
                break
            if len(fds) not in (3, 4) or flags & socket.MSG_TRUNC:
                for f in fds:
                    _close(f)
                continue
            status = fds[-1]
            # the server learns the task's status socket first (it reports our exit there),
            # then the worker our pid: it may signal us from then on
            socket.send_fds(own, [b"T"], [status])
            os.write(status, me)
            if baseline is None:
                baseline = _Baseline((requests_fd, own_fd))
            code, again = _become(msg, fds, baseline)
            if not again:
                break
            while True:  # K: the worker is done with the task and gives us back
                try:
                    answer = os.read(status, 16)
                    break
                except InterruptedError:
                    continue
            if answer[:1] != b"K":
                break
            os.close(status)
    except BaseException:  # noqa: BLE001 - the child must never return into the server loop
        pass
    os._exit(code)


class _Baseline:
    """What a warm child is before its first task: a task that leaves it otherwise ends it
    (it exits as a fresh child would, and the server forks another); what every task changes
    by design is put back. See the module docstring, "Warm children"."""

    __slots__ = ("keep", "environ", "path", "modules", "stdio", "handlers", "mask", "affinity",
                 "pinned", "umask", "log_handlers")

    def __init__(self, keep: tuple[int, int]):
        import logging

        self.keep = keep  # the child's two sockets (requests, its own to the server)
        self.environ = dict(os.environ._data)  # (bytes: compared without decoding)
        self.path = list(sys.path)
        self.modules = set(sys.modules)
        self.stdio = (sys.stdin, sys.stdout, sys.stderr)
        self.handlers = [(s, signal.getsignal(s)) for s in signal.valid_signals()
                         if s not in (signal.SIGKILL, signal.SIGSTOP)]
        self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        self.affinity = os.sched_getaffinity(0)
        self.pinned = False
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.log_handlers = list(logging.root.handlers)

    def clean(self) -> bool:
        """After a task that exited 0: is this process as it was (but what `restore` puts
        back)?"""
        import logging

        if (sys.modules.keys() != self.modules or (sys.stdin, sys.stdout, sys.stderr) != self.stdio
                or logging.root.handlers != self.log_handlers):
            return False
        if any(signal.getsignal(s) != h for s, h in self.handlers):
            return False
        if signal.pthread_sigmask(signal.SIG_BLOCK, []) != self.mask:
            return False
        mask = os.umask(self.umask)
        if mask != self.umask:
            return False
        try:  # a process the task left (running, or exited and not waited for)
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            return False
        except ChildProcessError:
            pass
        # descriptors: 0-2, the two sockets, the status socket (+ the listing's own)
        return len(os.listdir("/proc/self/fd")) == 7

    def restore(self) -> None:
        data, base = os.environ._data, self.environ
        if data != base:
            for name in [k for k in data if k not in base]:
                os.unsetenv(name)
                del data[name]
            for name, value in base.items():
                if data.get(name) != value:
                    os.putenv(name, value)
                    data[name] = value
        if sys.path != self.path:
            sys.path[:] = self.path
        if self.pinned:
            os.sched_setaffinity(0, self.affinity)
            self.pinned = False
        null = os.open(os.devnull, os.O_RDWR)  # the task's stdio is released
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.close(null)


def _become(msg, fds, baseline: _Baseline | None) -> tuple[int, bool]:
    """Turns this child into the task described by the request `msg` with `fds` ([stdin,]
    stdout, stderr, status) and runs it; returns the exit code and whether this process may
    run another task (only with a `baseline`: it then reported `R`, else `X`)."""
    status = fds[-1]
    code = 127
    try:
        cwd, env, cpus, data = pickle.loads(msg)
        if len(fds) == 4:
            stdin, out, err = fds[:3]
        else:  # a small stdin came inline: a memfd holds it (read to EOF like a pipe)
            out, err = fds[:2]
            stdin = os.memfd_create("stdin", 0)
            os.write(stdin, data)
            os.lseek(stdin, 0, os.SEEK_SET)
        os.dup2(stdin, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        try:
            os.chdir(cwd)
        except OSError as e:
            _write(status, b"E%s\n" % _line(
                f"Cannot execute the function task: cannot enter {cwd}: {e.strerror}"))
            os._exit(code)
        os.set_inheritable(status, False)  # kept (to report the exit), but not for execs
        if baseline is None:
            os.closerange(3, status)
            os.closerange(status + 1, 1 << 20)
        else:  # (and the child's two sockets)
            low, mid, high = sorted((status, *baseline.keep))
            os.closerange(3, low)
            os.closerange(low + 1, mid)
            os.closerange(mid + 1, high)
            os.closerange(high + 1, 1 << 20)
            # a streamed channel is a pipe whose reader waits for this process's exit
            if any(_is_pipe(f) for f in (1, 2)):
                baseline = None
        environ = os.environ
        for name, value in env.items():  # the server's environment + what the task changes
            environ[name] = value
        if cpus:
            os.sched_setaffinity(0, cpus)
            if baseline is not None:
                baseline.pinned = True
        sys.argv[:] = ["-c"]
        code, threads_left = _run_task()
        again = (baseline is not None and code == 0 and not threads_left
                 and baseline.clean())
        if again:
            baseline.restore()
            os.write(baseline.keep[1], b"D")  # to the server first: not to be killed at the close
            _write(status, b"\nR%d\n" % code)
            return code, True
        # the exit status, straight to the worker (its stdio is flushed: the task is done);
        # after a newline, as every status line written once the task's code ran: a partial
        # line the task itself wrote on this socket cannot swallow it
        _write(status, b"\nX%d\n" % code)
    except BaseException:  # noqa: BLE001 - the child must never return into the server loop
        pass
    return code, False


def _is_pipe(fd: int) -> bool:
    import stat

    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _run_task() -> tuple[int, bool]:
    """Runs `task_main` as `python3 -c` would: (exit code, whether threads were left)."""
    import traceback

    from hyperqueue.task.function import task_main

    code = 0
    try:
        task_main()
    except SystemExit as e:
        code = _exit_code(e.code)
    except KeyboardInterrupt:  # what a fresh interpreter does: traceback, then die by SIGINT
        traceback.print_exc()
        _at_exit()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130, True
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = 1
    return code, _at_exit()


def _exit_code(value) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    try:
        sys.stderr.write(f"{value}\n")
    except Exception:  # noqa: BLE001
        pass
    return 1


def _at_exit() -> bool:
    """What the interpreter does at exit, minus module teardown; True if the task had left
    threads (joined here if not daemons)."""
    threading = sys.modules.get("threading")
    threads_left = threading is not None and threading.active_count() > 1
    if threads_left:
        try:
            threading._shutdown()  # joins non-daemon threads
        except Exception:  # noqa: BLE001
            pass
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    return threads_left


# --------------------------------------------------------------------------------------------
# The worker side (called from spawner threads)
# --------------------------------------------------------------------------------------------


MAX_STATUS_LINE = 4096  # bytes of one line on a task's status socket (longer ones: dropped)


def _status_int(text: bytes) -> int | None:
    """The integer of a status line (`P`, `X`, `R`), or None if it is not one."""
    digits = text[1:] if text[:1] == b"-" else text
    if not digits or len(digits) > 12 or not digits.isdigit():
        return None
    return int(text)


class RunnerUnavailable(Exception):
    """The fork server cannot take this task: run it the normal way."""


class SpawnFailed(Exception):
    """The fork server could not start the task (the message is the task's error)."""


class WarmProcess:
    """A task's child of the fork server, as its spawner thread supervises it."""

    __slots__ = ("pid", "status_fd", "server_fd", "child_fd", "buf", "returncode", "error",
                 "eof", "reusable", "signaled", "kept")

    def __init__(self, status_fd: int, server_fd: int):
        self.status_fd = status_fd
        self.server_fd = server_fd  # a pidfd of the server: its death ends every wait
        self.child_fd = -1  # a pidfd of the child (opened while the server cannot reap it)
        self.pid = 0
        self.buf = b""
        self.returncode: int | None = None
        self.error: str | None = None  # E: the child could not set itself up
        self.eof = False
        self.reusable = False  # the child reported R: done, and clean for another task
        self.signaled = False  # the worker sent it a signal (then it is never reused)
        self.kept = False  # released to run another task (nothing was killed)

    def kill_group(self, pid: int, sig: int) -> None:
        """`TaskRun.kill_group` for this task (called under the run's lock while it is live):
        signals the task's group (the child itself before its setsid), and remembers it."""
        self.signaled = True
        if pid <= 1:  # (never: `wait_started` only gives a pid the runner reported)
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        except PermissionError:
            pass

    def release(self) -> bool:
        """At the task's end, instead of killing its group (under the run's lock): True if
        the child reported its task done with nothing left (`R`) and was never signaled; it
        then goes back to the runner for another task (`finish` tells the runner)."""
        self.kept = self.reusable and not self.signaled and not self.eof
        return self.kept

    def _read(self, timeout_ms: int) -> bool:
        """Reads what the status pipe has; False if nothing came within `timeout_ms`. The
        server's death counts as the pipe's end (a fork of the task may hold it open)."""
        poller = select.poll()
        poller.register(self.status_fd, select.POLLIN)
        poller.register(self.server_fd, select.POLLIN)
        events = poller.poll(timeout_ms)
        if not events:
            return False
        if not any(fd == self.status_fd for fd, _ in events):
            os.set_blocking(self.status_fd, False)
            while self.returncode is None and not self.eof and self._read_once():
                pass
            self.eof = True
            return True
        return self._read_once()

    def _read_once(self) -> bool:
        try:
            data = os.read(self.status_fd, 4096)
        except BlockingIOError:
            return False
        except InterruptedError:
            return True
        if not data:
            self.eof = True
            return True
        # The task's own code runs in the child and can write anything on this socket: only
        # well-formed lines count, the first `P` is the runner's (written before the task
        # runs), and a line longer than MAX_STATUS_LINE is dropped as it comes (bounded).
        if b"\n" not in data:
            if len(self.buf) + len(data) > MAX_STATUS_LINE:
                self.buf = b"\0"  # (the rest of an overlong line: dropped up to its end)
            else:
                self.buf += data
            return True
        *lines, rest = (self.buf + data).split(b"\n")
        self.buf = rest if len(rest) <= MAX_STATUS_LINE else b"\0"
        for line in lines:
            if len(line) > MAX_STATUS_LINE or line[:1] == b"\0":
                continue
            kind, rest = line[:1], line[1:]
            if kind == b"P":
                if not self.pid:  # the runner's; any later one is the task's
                    pid = _status_int(rest)
                    self.pid = pid if pid is not None and pid > 1 else -1
            elif kind == b"X" or kind == b"R":
                code = _status_int(rest)
                if self.returncode is None and code is not None:  # the first one counts
                    self.returncode = code
                    self.reusable = kind == b"R" and code == 0  # done; the child stays
            elif kind in (b"E", b"F"):
                self.error = rest[:3000].decode("utf-8", "replace")
        return True

    def wait_started(self) -> None:
        """Blocks until the server reported the pid.

        Raises:
            SpawnFailed: the server could not fork.
            RunnerUnavailable: the server died or did not answer.
        """
        import time

        deadline = time.monotonic() + REPLY_TIMEOUT
        while not self.pid:  # (the child's own X may come first: it can run before the P)
            if self.eof:
                if self.error is not None:
                    raise SpawnFailed(self.error)
                raise RunnerUnavailable("the runner closed the task's status pipe")
            left = deadline - time.monotonic()
            if left <= 0:
                raise RunnerUnavailable("the runner did not answer")
            self._read(max(1, int(left * 1000)))
        if self.pid < 0:
            raise RunnerUnavailable("the runner reported an invalid pid")
        try:
            self.child_fd = os.pidfd_open(self.pid)
        except OSError:
            pass  # (the server died and init reaped it: nothing to wait for)

    def wait_exit(self, timeout: float | None) -> bool:
        """Blocks until the child exited (or the server died); False if `timeout` passed first."""
        import time

        from ..common.waits import wait_slice_ms

        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None and not self.eof:
            if deadline is None:
                self._read(-1)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._read(max(1, wait_slice_ms(left)))
        return True

    def finish(self) -> int | None:
        """After the worker killed the task's group: waits until the child has exited (the
        child reports its code just before its exit), lets the server reap it, returns the
        code (None: the runner died before one was reported)."""
        try:
            while self.returncode is None and not self.eof:
                self._read(-1)
            if self.kept:  # it runs on: the runner takes it back for the next task
                _write(self.status_fd, b"K")
            elif self.child_fd >= 0:
                # (bounded once the server is gone: its orphan's pid may be reaped by init)
                poller = select.poll()
                poller.register(self.child_fd, select.POLLIN)
                while not poller.poll(5000 if self.eof else -1) and not self.eof:
                    pass
        finally:
            self.close()
        return self.returncode

    def close(self) -> None:
        """Gives the process up without waiting (the server kills and reaps it)."""
        for fd in (self.status_fd, self.server_fd, self.child_fd):
            _close(fd)
        self.status_fd = self.server_fd = self.child_fd = -1


class ForkServer:
    """One warm runner process (an interpreter and its start-up environment)."""

    def __init__(self, interpreter: str, env: dict[str, str]):
        self.interpreter = interpreter
        self.env = env
        self.proc = None
        self.sock: socket.socket | None = None
        self.pidfd = -1
        self.starts = 0

    def _start(self) -> None:
        import subprocess
        import time

        self.starts += 1
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            code = f"from hyperqueue.worker.pyrunner import serve; serve({child.fileno()})"
            try:
                proc = subprocess.Popen(
                    [self.interpreter, "-c", code], pass_fds=(child.fileno(),), env=self.env,
                    cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True)
            except OSError as e:
                parent.close()
                raise RunnerUnavailable(f"cannot start {self.interpreter}: {e}") from None
        finally:
            child.close()
        deadline = time.monotonic() + START_TIMEOUT
        parent.settimeout(1.0)
        hello = None
        while hello is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                hello = parent.recv(64)
            except socket.timeout:
                continue
            except OSError:
                break
        if hello != HELLO:
            parent.close()
            _stop(proc)
            raise RunnerUnavailable(f"{self.interpreter} cannot host the function runner")
        parent.settimeout(None)
        self.proc, self.sock, self.pidfd = proc, parent, os.pidfd_open(proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self, request: bytes, fds: list[int]) -> WarmProcess:
        """`fds`: [stdin (unless it is inline in the request),] stdout, stderr."""
        """Sends one task (starting the server first if it is not running).

        Raises:
            RunnerUnavailable: the server cannot be started or did not take the request.
        """
        if not self.alive():
            if self.sock is not None:
                self.close()
            self._start()
        # the status socket (see the protocol): a socket, so that the worker can answer K
        r, w = (s.detach() for s in socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM))
        try:
            try:
                socket.send_fds(self.sock, [request], [*fds, w])
            except OSError as e:
                _close(r)
                raise RunnerUnavailable(f"cannot reach the runner: {e}") from None
        finally:
            _close(w)
        return WarmProcess(r, os.dup(self.pidfd))

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.pidfd >= 0:
            _close(self.pidfd)
            self.pidfd = -1
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


def _stop(proc) -> None:
    try:
        proc.wait(timeout=2)
    except Exception:  # noqa: BLE001
        try:
            proc.kill()
            proc.wait(timeout=5)
        except Exception:  # noqa: BLE001
            pass


class PyRunners:
    """The worker's warm runners, by interpreter and start-up environment (thread-safe)."""

    def __init__(self, base_env: dict[str, str]):
        import threading

        self.base_env = base_env
        self.lock = threading.Lock()
        self.servers: dict[tuple, ForkServer | None] = {}  # None: that one cannot be used
        self._resolved: dict[tuple[str, str], str | None] = {}
        self._base_shaping = {k: v for k, v in base_env.items() if k.startswith(KEY_PREFIXES)}
        self._base_key = tuple(sorted(self._base_shaping.items()))

    @staticmethod
    def is_function_command(args: list[str]) -> bool:
        from ..task.function import FUNCTION_CODE

        return (len(args) == 3 and args[2] == FUNCTION_CODE and args[1] == "-c"
                and os.path.basename(args[0]).startswith("python"))

    def _resolve(self, program: str, path_value: str) -> str | None:
        key = (program, path_value)
        if key in self._resolved:
            return self._resolved[key]
        import shutil

        found = program if os.path.dirname(program) else shutil.which(program, path=path_value)
        if found is not None:
            found = os.path.abspath(found)
            try:
                with open(found, "rb") as f:
                    if f.read(4) != b"\x7fELF":
                        found = None  # a script (e.g. a pyenv shim): its choice may vary
            except OSError:
                found = None
        if len(self._resolved) > 256:
            self._resolved.clear()
        self._resolved[key] = found
        return found

    def _server_for(self, args, task_env, path_value):
        """(key, server) for this task (created, not started), or None: no warm runner.
        Called under the lock."""
        interpreter = self._resolve(args[0], path_value)
        if interpreter is None:
            return None
        own = [(k, v) for k, v in task_env.items() if k.startswith(KEY_PREFIXES)]
        if own:
            shaping = dict(self._base_shaping)
            shaping.update(own)
            key = (interpreter, tuple(sorted(shaping.items())))
        else:
            key = (interpreter, self._base_key)
        server = self.servers.get(key, False)
        if server is None:
            return None
        if server is False:
            if len(self.servers) >= MAX_SERVERS:
                return None
            start_env = dict(self.base_env)
            start_env.update(own)
            server = self.servers[key] = ForkServer(interpreter, start_env)
        return key, server

    def warm_up(self, args, task_env: dict[str, str], path_value: str) -> None:
        """Starts the task's runner if it does not run (an interpreter start), so that `spawn`,
        which the worker calls under the task's lock, only hands the task over."""
        with self.lock:
            found = self._server_for(args, task_env, path_value)
            if found is None:
                return
            key, server = found
            if server.alive():
                return
            if server.sock is not None:
                server.close()
            try:
                server._start()
            except RunnerUnavailable:
                self.servers[key] = None

    def spawn(self, args, task_env: dict[str, str], path_value: str, cwd: str,
              cpus: list[int] | None, stdin: bytes | None,
              fds: list[int]) -> WarmProcess | None:
        """Starts the task on a warm runner; None if it must run the normal way. `task_env`:
        what the task's environment sets on top of the worker's (`base_env`); `stdin`: the
        task's stdin when it is small enough to travel in the request, else None and `fds`
        starts with the read end of its stdin pipe (then stdout, stderr).

        Raises:
            SpawnFailed: the runner could not start the task (its error).
        """
        with self.lock:
            found = self._server_for(args, task_env, path_value)
            if found is None:
                return None
            key, server = found
            # The server's environment is the worker's with these variables of the task's, so
            # the task's whole environment is the server's plus what differs in `task_env`.
            start_env = server.env
            diff = {k: v for k, v in task_env.items() if start_env.get(k) != v}
            request = pickle.dumps((cwd, diff, cpus, stdin), protocol=pickle.HIGHEST_PROTOCOL)
            if len(request) > MAX_REQUEST - 64:
                return None
        for _attempt in (1, 2):  # a dead server is restarted once per task
            with self.lock:
                if self.servers.get(key) is not server:
                    return None  # closed meanwhile (the worker stops)
                try:
                    proc = server.spawn(request, fds)
                except RunnerUnavailable:
                    if server.proc is None:  # it does not start: not this interpreter
                        self.servers[key] = None
                        return None
                    server.close()
                    continue
                generation = server.starts
            try:  # (outside the lock: another task can be sent meanwhile)
                proc.wait_started()
            except RunnerUnavailable:
                proc.close()
                with self.lock:
                    if server.starts == generation:  # not restarted by another thread yet
                        server.close()
                continue
            except SpawnFailed:
                proc.close()
                raise
            return proc
        return None

    def close(self) -> None:
        with self.lock:
            servers, self.servers = list(self.servers.values()), {}
        for s in servers:
            if s is not None:
                s.close()
