"""The journal file's single owner (trio): appends records, group-commits fsyncs.

Records are encoded into a memory buffer as reactions happen (cheap); a flusher task writes and
fsyncs the buffer in a worker thread when someone needs durability (`durable()`: an answer to a
client, a worker registration; `request_flush()`: a live event stream), and at least every flush
period (task results nobody has looked at yet). Everyone who asked while an fsync was running is
served by the next one: one fsync for a whole burst.

A write that fails (disk full, quota, EIO, the file-size limit) is final: it is logged with the
path, `failed` keeps the error, `on_failure` tells the owner (the server stops), and nothing
appended after it is ever reported durable.

Readers of the whole file (event subscribers: `read_durable`) are served from an in-memory copy
of it while it is at most `TAIL_BYTES` long (kept as bytes: no per-record objects), so a
subscription needs no file read; a longer journal is read from the file.

Closing is bounded: `aclose(timeout)` returns within `timeout` even when the disk hangs (the
stuck write is abandoned in its thread; its descriptor is then left to it, never reused).
"""

from __future__ import annotations

import errno
import logging
import os
import secrets

import trio

from .format import JournalError, encode_header, encode_record

log = logging.getLogger("hq.journal")

TAIL_BYTES = 16 << 20  # a journal up to this size is kept in memory for readers
CLOSE_TIMEOUT = 5.0  # seconds `aclose` may take by default


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
        self.failed: OSError | None = None  # the write error that ended this journal
        self.on_failure = None  # callback(error), once, when a write fails
        # The whole file's durable content while it fits in TAIL_BYTES (None: read the file).
        self._copy: bytearray | None = None
        # A write was abandoned in its thread (cancelled): the descriptor is its until the
        # process ends; nothing else is written to it or closes it.
        self._abandoned = False

    def open(self) -> None:
        """Opens the file for appending, writing the header if it is new or empty."""
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                          0o600)
        size = os.fstat(self.fd).st_size
        if size == 0:
            header = encode_header()
            os.write(self.fd, header)
            os.fsync(self.fd)
            _fsync_dir(self.path)
            self._copy = bytearray(header)

    def append(self, records) -> int:
        """Buffers `[time, kind, payload]` records (`Event.to_record()`); returns the
        position they end at."""
        buf = self.buffer
        before = len(buf)
        for record in records:
            buf += encode_record(record)
        self.appended += len(buf) - before
        return self.appended

    async def durable(self, pos: int | None = None) -> None:
        """Returns once everything appended up to `pos` (default: now) is fsynced.

        Cancellation: the records stay buffered and are flushed later anyway. After a write
        failure this never returns (the owner stops, which cancels the caller).
        """
        if self.failed is not None:
            await trio.sleep_forever()
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
        the lock, so no write is in progress). Served from memory while the file is at most
        TAIL_BYTES long; the file is read otherwise (and then kept in memory if it fits)."""
        await self.flush()
        async with self._lock:
            if self._copy is not None:
                return bytes(self._copy), self.durable_pos

            def read():
                with open(self.path, "rb") as f:
                    return f.read()

            data = await trio.to_thread.run_sync(read)
            if len(data) <= TAIL_BYTES and not self._abandoned and self.failed is None:
                self._copy = bytearray(data)
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
        """Writes and fsyncs what is buffered (a failure is reported through `on_failure`)."""
        async with self._lock:
            await self._flush_locked()
        if self.on_durable is not None and self.failed is None:
            self.on_durable(self.durable_pos)

    async def _flush_locked(self) -> None:
        # The buffer is taken before the first checkpoint: exactly what was appended up to
        # the call is written; later appends wait for the next flush.
        if self.failed is not None or self._abandoned:
            return
        if not self.buffer:
            self._notify()
            return
        data = bytes(self.buffer)
        self.buffer.clear()
        target = self.durable_pos + len(data)
        try:
            # Cancellable (a stop must not wait for a hung disk): on cancellation the thread
            # keeps the descriptor, and this journal writes nothing more.
            await trio.to_thread.run_sync(_write_all_fsync, self.fd, data,
                                          abandon_on_cancel=True)
        except OSError as e:
            self._copy = None
            self._fail(e)
            return
        except trio.Cancelled:
            self._abandoned = True
            self._copy = None
            raise
        self.durable_pos = target
        copy = self._copy
        if copy is not None:
            if len(copy) + len(data) <= TAIL_BYTES:
                copy += data
            else:
                self._copy = None
        self._notify()

    def _fail(self, error: OSError) -> None:
        if self.failed is not None:
            return
        self.failed = error
        log.error("Cannot write the journal %s: %s", self.path, _describe(error))
        if self.on_failure is not None:
            self.on_failure(error)

    def _check_usable(self) -> None:
        if self.failed is not None:
            raise JournalError(f"the journal {self.path} cannot be written: "
                               f"{_describe(self.failed)}")

    def _notify(self) -> None:
        keep = []
        for pos, event in self._waiters:
            if pos <= self.durable_pos:
                event.set()
            else:
                keep.append((pos, event))
        self._waiters = keep

    async def rewrite(self, snapshot) -> tuple[int, int]:
        """Rewrites the file with a subset of its records, atomically; returns (kept, dropped).

        `snapshot()` is called on the caller's (trio) thread with the journal locked; whatever
        it appends is part of the rewritten file. It returns `select(records) -> kept`, a pure
        function run in a worker thread on every record appended before that moment. Records
        appended later (while the rewrite runs) stay buffered and are written to the new file.

        The new file is created beside the old one under an unpredictable name with
        O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600, fsynced, renamed over the old one, and then
        becomes the file appended to. On failure the old file stays as it was and the
        temporary file is removed.

        Raises:
            OSError, JournalError: the rewrite failed (the journal itself is unharmed).
        """
        async with self._lock:
            self._check_usable()
            select = snapshot()
            await self._flush_locked()  # no checkpoint before it takes the buffer
            self._check_usable()
            fd, kept, dropped = await trio.to_thread.run_sync(_rewrite_file, self.path, select)
            old, self.fd = self.fd, fd
            os.close(old)
            self._copy = None  # read again (once) by the next reader
        if self.on_durable is not None:
            self.on_durable(self.durable_pos)
        return kept, dropped

    async def aclose(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Flushes what is buffered and closes the file, within `timeout` seconds whatever
        happens: shielded from the caller's cancellation, bounded by its own deadline. Returns
        False (after logging a warning) when the deadline passed first: what was not fsynced
        then is not reported durable, and a write stuck in its thread keeps the descriptor."""
        with trio.move_on_after(timeout, shield=True) as scope:
            if self.fd is not None:
                await self.flush()
                if not self._abandoned:
                    os.close(self.fd)
                self.fd = None
        if scope.cancelled_caught:
            log.warning("The journal %s was not closed within %g s (the disk does not "
                        "answer); its last records may be missing", self.path, timeout)
            return False
        return True


_CHUNK = 1 << 20


def _rewrite_file(path: str, select) -> tuple[int, int, int]:
    """Blocking part of `rewrite`: returns (descriptor of the new file, kept, dropped)."""
    from .format import read_all

    # A journal path that is a symlink stays one: the file it points to is replaced.
    path = os.path.realpath(path)
    with open(path, "rb") as f:
        records, _tail = read_all(f.read(), path=path)
    kept = select(records)
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_APPEND
                 | os.O_CLOEXEC, 0o600)
    try:
        chunk = bytearray(encode_header())
        for r in kept:
            chunk += encode_record(r)
            if len(chunk) >= _CHUNK:
                _write_all(fd, bytes(chunk))
                chunk.clear()
        _write_all(fd, bytes(chunk))
        os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path)
    events = _count_events(kept)
    return fd, events, _count_events(records) - events


def _count_events(records) -> int:
    """The records that are events: not the `id-floor` bookkeeping record of a prune (which
    replaces the earlier one), so a prune reports the events it kept and dropped."""
    return sum(1 for r in records if not (type(r) in (list, tuple) and len(r) == 3
                                          and r[1] == "id-floor"))


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _describe(error: OSError) -> str:
    name = errno.errorcode.get(error.errno, "") if error.errno else ""
    text = error.strerror or str(error)
    return f"{text} ({name})" if name else text


def _write_all_fsync(fd: int, data: bytes) -> None:
    _write_all(fd, data)
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
