"""A tiny companion process that kills a worker's tasks if the worker itself dies.

Tasks run in their own sessions (so that cancel can signal a whole process group) and are
spawned without a pre-exec hook (a hook would force a full fork instead of vfork), so nothing
ties their lifetime to the worker. The reaper does: the worker writes `+PGID` / `-PGID` lines
to its stdin as tasks start and end; when the worker goes away (its end of the pipe closes, or
the parent-death signal arrives) the reaper sends SIGTERM to every group still listed, then
SIGKILL to whatever survives a short grace period.

Run as `python -m hyperqueue.worker.reaper <worker pid>`.
"""

from __future__ import annotations

import os
import signal
import sys
import time

GRACE = 1.0
PR_SET_PDEATHSIG = 1
POLL_PERIOD = 0.25  # read the pipe in batches: waking up per task would cost the worker CPU


def _kill_all(groups: set[int]) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + GRACE
    alive = set(groups)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        for pgid in list(alive):
            try:
                os.killpg(pgid, 0)
            except OSError:
                alive.discard(pgid)
    for pgid in alive:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass


def main() -> None:
    parent = int(sys.argv[1])
    groups: set[int] = set()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the worker's job
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)
    pending = bytearray()

    def drain() -> bool:
        """Applies every complete line available now; False once the worker's end closed."""
        open_ = True
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                open_ = False
                break
            pending.extend(data)
        *lines, rest = bytes(pending).split(b"\n")
        pending[:] = rest
        for line in lines:
            try:
                op, pgid = line[:1], int(line[1:])
            except ValueError:
                continue
            if op == b"+" and pgid > 1:  # (0 or 1 would mean this group or every process)
                groups.add(pgid)
            elif op == b"-":
                groups.discard(pgid)
        return open_

    def on_term(_sig, _frame):
        drain()
        _kill_all(groups)
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # no prctl: the closed pipe still tells us
    if os.getppid() != parent:  # the worker died before the signal was armed
        return
    while drain():
        time.sleep(POLL_PERIOD)
    _kill_all(groups)


if __name__ == "__main__":
    main()
