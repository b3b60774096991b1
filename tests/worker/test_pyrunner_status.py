"""The worker's reading of a warm task's status socket (`pyrunner.WarmProcess`): the task's own
code runs in the child and may write anything there. Only the runner's first `P` is the pid
(a forged `P-1`, `P0` or `P1` once made the worker SIGKILL every process it could, or the
init's group); malformed numbers and overlong lines are ignored instead of raising in the
worker, and the buffer stays bounded."""

from __future__ import annotations

import os
import socket

import pytest

from hyperqueue.worker.pyrunner import MAX_STATUS_LINE, RunnerUnavailable, WarmProcess


@pytest.fixture
def status():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    proc = WarmProcess(ours.detach(), os.pidfd_open(os.getpid()))  # (a pidfd that stays quiet)
    yield proc, theirs
    proc.close()
    theirs.close()


def _feed(proc, sock, data: bytes) -> None:
    sock.sendall(data)
    while proc._read(50):
        pass


def test_only_the_runners_first_pid_counts(status):
    proc, sock = status
    me = os.getpid()
    _feed(proc, sock, b"P%d\nP-1\nP0\nP1\nP%d\nPxyz\n" % (me, me + 1))
    assert proc.pid == me
    proc.wait_started()
    assert proc.child_fd >= 0


@pytest.mark.parametrize("first", [b"P-1\n", b"P0\n", b"P1\n", b"Pabc\n", b"P" + b"9" * 30 + b"\n"])
def test_an_invalid_first_pid_is_refused(status, first):
    proc, sock = status
    _feed(proc, sock, first)
    with pytest.raises(RunnerUnavailable):
        proc.wait_started()
    proc.kill_group(1, 0)  # (and never signals pid 1 or -1 if asked)
    proc.kill_group(-1, 0)


def test_garbage_exit_lines_are_ignored_and_the_first_valid_one_counts(status):
    proc, sock = status
    _feed(proc, sock, b"P%d\nXgarbage\nX\nR\xff\nX" % os.getpid() + b"9" * 5000
          + b"\n\n\n\x00\nX-9\nX0\nR0\n")
    assert proc.returncode == -9 and not proc.reusable and not proc.eof


def test_a_forged_reuse_line_with_an_error_code_is_not_reusable(status):
    proc, sock = status
    _feed(proc, sock, b"P%d\nR3\n" % os.getpid())
    assert proc.returncode == 3 and not proc.reusable


def test_an_endless_line_is_dropped_and_memory_stays_bounded(status):
    proc, sock = status
    _feed(proc, sock, b"P%d\n" % os.getpid())
    chunk = b"E" + b"x" * 65535
    for _ in range(200):  # 12.5 MiB without a newline (quadratic before: minutes of CPU)
        sock.sendall(chunk)
        while proc._read(0):
            assert len(proc.buf) <= MAX_STATUS_LINE + 1
    _feed(proc, sock, b"tail\nE" + b"y" * 5000 + b"\nEshort\nX0\n")
    assert proc.error == "short" and proc.returncode == 0


@pytest.mark.parametrize("partial", [b"Ejunk", b"E" + b"x" * 100_000])
def test_a_partial_line_of_the_task_does_not_swallow_the_exit(status, partial):
    """The runner writes its X/R after a newline: whatever line the task left unfinished."""
    proc, sock = status
    _feed(proc, sock, b"P%d\n" % os.getpid() + partial)
    _feed(proc, sock, b"\nX0\n")
    assert proc.returncode == 0
