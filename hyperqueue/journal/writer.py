"""The journal file's single owner (trio): appends records, group-commits fsyncs.

Records are encoded into a memory buffer as reactions happen (cheap); a flusher task writes and
fsyncs the buffer in a worker thread when someone needs durability (`durable()`: an answer to a
client, a worker registration; `request_flush()`: a live event stream), and at least every flush
period (task results nobody has looked at yet). Everyone who asked while an fsync was running is
served by the next one: one fsync for a whole burst.
"""

from __future__ import annotations

import logging
import os

import trio

from .format import encode_header, encode_record

log = logging.getLogger("hq.journal")


class JournalWriter:
    def __init__(self, path: str, flush_period: float = 30.0):
        self.path = path
        self.flush_period = flush_period
        self.fd: int | None = None
        self.buffer = bytearray()
        self.appended = 0  # bytes appended since opening (buffered or written)
        self.durable_pos = 0  # bytes known to be on disk
        self._waiters: list[tuple[int, trio.Event]] = []
        self._wakeup = trio.Event()
        self._lock = trio.Lock()  # one file operation at a time (flush / rewrite)
        self.on_durable = None  # callback(pos) after each successful fsync

    def open(self) -> None:
        """Opens the file for appending, writing the header if it is new or empty."""
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                          0o600)
        if os.fstat(self.fd).st_size == 0:
            os.write(self.fd, encode_header())
            os.fsync(self.fd)
            _fsync_dir(self.path)

    def append(self, records) -> int:
        """Buffers `(time, kind, payload)` records; returns the position they end at."""
        buf = self.buffer
        before = len(buf)
        for time, kind, payload in records:
            buf += encode_record([time, kind, payload])
        self.appended += len(buf) - before
        return self.appended

    async def durable(self, pos: int | None = None) -> None:
        """Returns once everything appended up to `pos` (default: now) is fsynced.

        Cancellation: the records stay buffered and are flushed later anyway.
        """
        target = self.appended if pos is None else pos
        if self.durable_pos >= target:
            return
        event = trio.Event()
        self._waiters.append((target, event))
        self._wakeup.set()
        await event.wait()

    def request_flush(self) -> None:
        """Asks the flusher for an fsync soon (without waiting for it) if anything is pending;
        requests made while an fsync runs are served together by the next one."""
        if self.durable_pos < self.appended:
            self._wakeup.set()

    async def read_durable(self) -> tuple[bytes, int]:
        """Flushes, then returns the file's content together with the position it is durable
        up to: the content holds exactly the records appended up to that position (read under
        the lock, so no write is in progress)."""
        await self.flush()
        async with self._lock:
            def read():
                with open(self.path, "rb") as f:
                    return f.read()

            data = await trio.to_thread.run_sync(read)
            return data, self.durable_pos

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """The flusher: until cancelled; a final flush is done by `aclose`."""
        task_status.started()
        while True:
            with trio.move_on_after(self.flush_period):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            if not self.buffer:
                self._notify()
                return
            data = bytes(self.buffer)
            self.buffer.clear()
            target = self.durable_pos + len(data)
            await trio.to_thread.run_sync(_write_all_fsync, self.fd, data)
            self.durable_pos = target
            self._notify()
        if self.on_durable is not None:
            self.on_durable(self.durable_pos)

    def _notify(self) -> None:
        keep = []
        for pos, event in self._waiters:
            if pos <= self.durable_pos:
                event.set()
            else:
                keep.append((pos, event))
        self._waiters = keep

    async def rewrite(self, select) -> tuple[int, int]:
        """Rewrites the file with the records `select(records)` returns, atomically (temporary
        file + fsync + rename). Returns (records kept, records dropped)."""
        from .format import read_all

        await self.flush()
        async with self._lock:
            def work():
                with open(self.path, "rb") as f:
                    records, _tail = read_all(f.read())
                kept = select(records)
                tmp = self.path + ".tmp"
                with open(tmp, "wb") as f:
                    f.write(encode_header())
                    for r in kept:
                        f.write(encode_record(r))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
                _fsync_dir(self.path)
                return len(kept), len(records) - len(kept)

            result = await trio.to_thread.run_sync(work)
            os.close(self.fd)
            self.fd = None
            self.open()
            return result

    async def aclose(self) -> None:
        """Flushes what is buffered and closes the file. Shielded and bounded by the caller."""
        with trio.CancelScope(shield=True):
            if self.fd is not None:
                await self.flush()
                os.close(self.fd)
                self.fd = None


def _write_all_fsync(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    os.fsync(fd)


def _fsync_dir(path: str) -> None:
    try:
        dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
