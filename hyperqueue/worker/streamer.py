"""The worker's side of `--stream`: one file per stream directory, shared by all its tasks.

Spawner threads append records (see `hyperqueue.streaming.format`) under a lock; records are
buffered and written out in large writes, and a task's data is written out before its result
is reported (`flush`). Reading the task's pipes happens in the spawner thread that runs it
(`pump`), so no extra thread or trio task exists per task.
"""

from __future__ import annotations

import os
import secrets
import select
import threading
import time

from ..common.waits import wait_slice_ms
from ..streaming.format import SUFFIX, encode_header, encode_record

FLUSH_AT = 1 << 16
FLUSH_EVERY = 1.0  # seconds: output of long-running tasks becomes readable while they run
READ_SIZE = 1 << 16
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class StreamWriter:
    def __init__(self, directory: str, server_uid: str, worker_id: int):
        os.makedirs(directory, exist_ok=True)
        while True:
            name = "".join(secrets.choice(_ALNUM) for _ in range(12)) + SUFFIX
            self.path = os.path.join(directory, name)
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                  0o644)
                break
            except FileExistsError:
                continue
        self.lock = threading.Lock()
        self.buf = bytearray(encode_header(server_uid, worker_id))
        self.failed: OSError | None = None
        self.flushed_at = time.monotonic()
        self._write_out()  # the header at once: a file is never left without one

    def write(self, job: int, task: int, instance: int, channel: int, data: bytes) -> None:
        record = encode_record(int(time.time() * 1000), job, task, instance, channel, data)
        with self.lock:
            self.buf += record
            if len(self.buf) >= FLUSH_AT or time.monotonic() - self.flushed_at >= FLUSH_EVERY:
                self._write_out()

    def flush(self) -> None:
        """Writes out everything buffered; raises the OSError of a failed write."""
        with self.lock:
            self._write_out()
            if self.failed is not None:
                raise self.failed

    def _write_out(self) -> None:
        view = memoryview(self.buf)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as e:
            self.failed = e
        finally:
            view.release()
        self.buf.clear()
        self.flushed_at = time.monotonic()

    def close(self) -> None:
        try:
            self.flush()
        except OSError:
            pass
        os.close(self.fd)


def pump(writer: StreamWriter, job: int, task: int, instance: int, fds: dict[int, int],
         deadline: float | None, exit_fd: int | None = None, on_exit=None) -> bool:
    """Copies the task's pipes (`fd -> channel`) into the stream until every pipe is closed
    (then each channel gets its end record) or `deadline` (monotonic) passes. Closes the fds.
    Returns False when the deadline cut it short.

    `exit_fd` (a pidfd of the task's main process) becoming readable calls `on_exit()` once,
    which kills what is left of the task (background children holding a pipe open), so the
    pipes reach their end when the task does."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    if exit_fd is not None:
        poller.register(exit_fd, select.POLLIN)
    open_fds = dict(fds)
    try:
        while open_fds:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                events = poller.poll(wait_slice_ms(left))  # bounded: loops to the deadline
            else:
                events = poller.poll()
            for fd, _ev in events:
                if fd == exit_fd:
                    poller.unregister(exit_fd)
                    exit_fd = None
                    on_exit()
                    continue
                if fd not in open_fds:
                    continue
                try:
                    data = os.read(fd, READ_SIZE)
                except InterruptedError:
                    continue
                channel = open_fds[fd]
                if data:
                    writer.write(job, task, instance, channel, data)
                else:
                    writer.write(job, task, instance, channel, b"")  # end of this channel
                    poller.unregister(fd)
                    del open_fds[fd]
        return True
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
