"""The append-only journal file format: a fixed header, then checksummed CBOR records.

Pure (stdlib + cbor2): bytes in, bytes out; no file I/O and no clock.

Layout::

    header  = MAGIC (8 bytes) + u16 major + u16 minor           (little-endian, HEADER_SIZE bytes)
    record  = u32 body length + u32 zlib.crc32(body) + body      (little-endian; body = CBOR)

Reading tells two kinds of damage apart, because they call for opposite reactions:

* a **torn tail** -- the file ends inside a record, or in zeros (preallocated or never-written
  blocks), or in a record whose checksum fails with no valid record anywhere after it. This is
  what a crash during an append leaves behind; the records before it are intact and the tail
  may be cut (`TailReport`).
* **damage in the middle** -- a record that fails its checksum (or whose length is impossible)
  with at least one complete, checksum-valid record after it, or a checksum-valid record that
  does not decode. Cutting here would silently lose durable events, so `JournalCorrupted` is
  raised instead, with the offset to truncate to if the user chooses to. (So is a bad record
  followed by so much garbage that searching it for valid records exceeds a work bound:
  when in doubt, refuse.)
"""

from __future__ import annotations

import heapq
import re
import shlex
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cbor2

from hyperqueue.errors import HqError

MAGIC = b"hqpyjl\x00\x01"
FORMAT_VERSION = (1, 0)
MAX_RECORD = 256 * 1024 * 1024

_HEADER = struct.Struct("<8sHH")
HEADER_SIZE = _HEADER.size  # 12
_RECORD = struct.Struct("<II")

_NONZERO = re.compile(rb"[^\x00]")
# Work allowed for deciding whether valid records follow a bad one: bytes checksummed, plus
# _CANDIDATE_COST per candidate record start examined. About a second; enough for MiBs of garbage.
_SEARCH_BUDGET = 1 << 30
_CANDIDATE_COST = 256
_FILE_PLACEHOLDER = "<file>"


class JournalError(HqError):
    """The journal cannot be read or written as asked (message for the user, optional hint)."""


class JournalCorrupted(JournalError):
    """Damage that is not a torn tail; cutting it could lose durable events, so reading stops.

    Attributes:
        offset: file offset of the first damaged record (the size to truncate to, to keep
            everything before the damage).
        record: 1-based number of the damaged record (``record - 1`` records precede it).
        reason: what is wrong with that record.
        valid_after: file offset of a complete, checksum-valid record after the damage, or
            None when the damaged record itself has a valid checksum but does not decode, or
            when the data after the damage was too large to search (`unsearchable`).
    """

    def __init__(self, offset: int, record: int, reason: str, valid_after: int | None = None, *,
                 unsearchable: bool = False, path: str | None = None):
        message = f"journal is damaged at byte {offset} (record {record}: {reason})"
        if valid_after is not None:
            message += f", and valid records follow the damage (at byte {valid_after})"
        elif unsearchable:
            message += ", and the data after it is too large to search for further valid records"
        message += "; refusing to read past it"
        target = _FILE_PLACEHOLDER if path is None else shlex.quote(path)
        hint = (f"To keep the {record - 1} records before the damage and discard everything from byte "
                f"{offset} on, truncate the file to {offset} bytes: `truncate -s {offset} {target}`")
        super().__init__(message, hint)
        self.offset = offset
        self.record = record
        self.reason = reason
        self.valid_after = valid_after


@dataclass(frozen=True, slots=True)
class TailReport:
    """How a journal ended.

    Attributes:
        offset: file offset where the good prefix ends: the size to truncate the file to before
            appending (equal to the data's length when the journal ended cleanly).
        dropped: bytes after `offset` that are not part of any good record (0 when clean).
        records: number of good records read.
        reason: what the dropped tail looked like (None when clean).
    """

    offset: int
    dropped: int
    records: int
    reason: str | None = None

    @property
    def clean(self) -> bool:
        return self.dropped == 0

    def warning(self, path: str = _FILE_PLACEHOLDER) -> str | None:
        """Return the warning to log when the tail is cut, or None for a clean end."""
        if self.clean:
            return None
        return (f"journal {path} ends with {self.dropped} bytes of a torn write ({self.reason}) after "
                f"byte {self.offset}; they are dropped and the {self.records} records before them are kept")


def encode_header() -> bytes:
    """Return the file header: MAGIC + format major + format minor."""
    return _HEADER.pack(MAGIC, *FORMAT_VERSION)


def parse_header(data: bytes) -> tuple[int, int]:
    """Check the file header at the start of `data` (extra bytes after it are ignored).

    Returns:
        The file's (major, minor) format version; readable by this module.

    Raises:
        JournalError: `data` does not start with MAGIC ("not an hq journal"), the header is
            cut short, or the version is of another major or a newer minor than FORMAT_VERSION.
    """
    if len(data) < HEADER_SIZE:
        if bytes(data[:len(MAGIC)]) == MAGIC[:min(len(data), len(MAGIC))]:
            raise JournalError(f"journal header is incomplete ({len(data)} of {HEADER_SIZE} bytes)",
                               "The file was cut while it was being created; it holds no events.")
        raise JournalError("not an hq journal (the file does not start with the journal header)")
    magic, major, minor = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise JournalError("not an hq journal (the file does not start with the journal header)")
    our_major, our_minor = FORMAT_VERSION
    if major != our_major:
        raise JournalError(f"journal format {major}.{minor} is not supported by this hq (it reads {our_major}.x)",
                           "Use the hq version that wrote this journal, or start with a new journal file.")
    if minor > our_minor:
        raise JournalError(f"journal format {major}.{minor} is newer than this hq supports "
                           f"(it reads {our_major}.0 to {our_major}.{our_minor})",
                           "Upgrade hq to read this journal.")
    return major, minor


def encode_record(obj: Any) -> bytes:
    """Return one record: length + crc32 + the CBOR encoding of `obj`.

    Raises:
        JournalError: the encoded body is longer than MAX_RECORD.
        cbor2.CBOREncodeError: `obj` is not CBOR-encodable.
    """
    body = cbor2.dumps(obj)
    if len(body) > MAX_RECORD:
        raise JournalError(f"journal record of {len(body)} bytes exceeds the maximum of {MAX_RECORD}")
    return _RECORD.pack(len(body), zlib.crc32(body)) + body


def encode_records(objs: Iterable[Any]) -> bytes:
    """Return the records of all `objs` concatenated (one write for a group commit)."""
    return b"".join([encode_record(obj) for obj in objs])


class JournalReader:
    """Incremental, sans-IO journal reader for the bytes after the header.

    Feed the file in any chunking, take decoded records out of `records()` as they become
    complete, and call `finish()` at end of file to learn how the journal ended::

        reader = JournalReader(HEADER_SIZE, path=path)
        for chunk in chunks:
            reader.feed(chunk)
            for record in reader.records():
                apply(record)
        report = reader.finish()   # then truncate to report.offset if not report.clean

    Once a record fails its checksum, later data is only searched for valid records (to tell
    a torn tail from damage in the middle); no record after a bad one is ever yielded. A header
    announcing more than `max_record` bytes is treated as damage as soon as it is seen, so no
    buffer is ever grown to wait for such a body.
    """

    def __init__(self, start_offset: int = 0, *, max_record: int = MAX_RECORD, path: str | None = None):
        """Args:
            start_offset: file offset of the first byte that will be fed (HEADER_SIZE when the
                header was consumed separately); all offsets reported are file offsets.
            max_record: longest body accepted.
            path: file name used in the truncate hint of `JournalCorrupted` (else ``<file>``).
        """
        self._buf = bytearray()
        self._pos = 0  # index in _buf of the next record
        self._base = start_offset  # file offset of _buf[0]
        self._count = 0  # good records yielded
        self._max = max_record
        self._path = path
        self._bad = False  # a bad record sits at _buf[0]; only scanning for valid records goes on
        self._scan = 1  # when bad: next index in _buf to examine as a record start
        self._waiting: list[tuple[int, int, int]] = []  # when bad: heap of candidates (end, start, crc)
        self._error: JournalCorrupted | None = None
        self._budget = _SEARCH_BUDGET
        self._finished = False
        # A plausible length's top byte is at most max_record's: skip other offsets in C.
        top = min(max_record >> 24, 0xFF)
        self._candidate = re.compile(rb"(?=[\x00-\xff]{3}[\x00-\x%02x])" % top)

    def feed(self, data: bytes) -> None:
        """Append the next bytes of the file (any length, including empty)."""
        if self._finished:
            raise RuntimeError("JournalReader.feed() after finish()")
        if self._pos and self._pos * 2 >= len(self._buf):
            # Drop consumed bytes only when they are half the buffer: O(1) copies per byte.
            del self._buf[:self._pos]
            self._base += self._pos
            self._pos = 0
        self._buf += data

    def records(self) -> Iterator[Any]:
        """Yield every record that is complete in the data fed so far, in file order.

        Raises:
            JournalCorrupted: damage with valid records after it, a checksum-valid record that
                does not decode, or damage followed by more garbage than the search bound
                allows (raised again by every later call).
        """
        if self._error is not None:
            raise self._error
        if self._bad:
            self._search()
            return
        buf, pos, limit = self._buf, self._pos, self._max
        unpack, crc32, loads = _RECORD.unpack_from, zlib.crc32, cbor2.loads
        while len(buf) - pos >= 8:
            size, crc = unpack(buf, pos)
            if size == 0 or size > limit:
                self._mark_bad()
                self._search()
                return
            end = pos + 8 + size
            if end > len(buf):
                return
            body = buf[pos + 8:end]
            if crc32(body) != crc:
                self._mark_bad()
                self._search()
                return
            try:
                obj = loads(body)
            except Exception as exc:  # any decoder failure is damage, never a crash
                self._error = JournalCorrupted(self._base + pos, self._count + 1,
                                               f"its checksum is valid but it does not decode: {exc}",
                                               path=self._path)
                raise self._error from exc
            self._pos = end
            self._count += 1
            yield obj
            pos = self._pos  # feed() may have compacted the buffer while we were suspended

    def finish(self) -> TailReport:
        """Declare end of file and report how the journal ended.

        Returns:
            A clean report, or one for a torn tail (incomplete last record, zero-filled tail,
            or a failed checksum with no valid record after it) that the caller may cut.

        Raises:
            JournalCorrupted: like `records()`.
            RuntimeError: `records()` was not drained before.
        """
        if self._error is not None:
            raise self._error
        if not self._finished:
            for _ in self.records():
                raise RuntimeError("JournalReader.finish() called before records() was drained")
            self._finished = True
            if not self._bad and self._pos < len(self._buf):
                # A cut record: its length field may itself be the damage, so search the rest.
                self._mark_bad()
                self._search()
        rest = len(self._buf) - self._pos
        reason = None if rest == 0 else self._describe(at_eof=True)
        return TailReport(self._base + self._pos, rest, self._count, reason)

    def _mark_bad(self) -> None:
        del self._buf[:self._pos]
        self._base += self._pos
        self._pos = 0
        self._bad = True
        self._scan = 1

    def _search(self) -> None:
        """Look for a complete, checksum-valid record after the bad one; raise if one exists.

        Every offset after the bad record is a candidate record start (its length field may
        be what was damaged). Candidates are checked in order of their end, interleaved with
        the scan, so the search stops right after the first valid record -- normally the one
        that followed the damaged record -- instead of checksumming long bogus candidates.

        Searching megabytes of random garbage costs time cubic in its size, so the work is
        bounded (`_SEARCH_BUDGET`); when it runs out, the damage is reported as unsearchable
        (refused like damage in the middle) rather than cut as a torn tail.
        """
        buf, size, limit = self._buf, len(self._buf), self._max
        heap, unpack, crc32 = self._waiting, _RECORD.unpack_from, zlib.crc32
        search, last_start = self._candidate.search, size - 8
        o, found = self._scan, None
        with memoryview(buf) as view:
            while True:
                m = search(buf, o) if o <= last_start else None
                if m is None or m.start() > last_start:
                    # No further candidate header is complete; resume here when data arrives.
                    o = max(o, size - 7) if m is None else m.start()
                    nxt, horizon = None, size + 1
                else:
                    nxt = m.start()
                    horizon = nxt + 9  # no candidate from nxt on can end before this
                while heap and heap[0][0] < horizon:
                    end, start, crc = heapq.heappop(heap)
                    if _one_cbor_item(buf, start + 8, end):
                        self._budget -= end - start
                        if crc32(view[start + 8:end]) == crc:
                            found = start
                            break
                if found is not None or nxt is None or self._budget < 0:
                    break
                length, crc = unpack(buf, nxt)
                if length == 0:
                    # Inside zeros: the next candidate needs a non-zero byte in its length field.
                    nz = _NONZERO.search(buf, nxt + 4)
                    o = size - 3 if nz is None else nz.start() - 3
                    continue
                if length <= limit:
                    heapq.heappush(heap, (nxt + 8 + length, nxt, crc))
                    self._budget -= _CANDIDATE_COST
                o = nxt + 1
        self._scan = max(o, self._scan)
        if found is not None:
            self._error = JournalCorrupted(self._base, self._count + 1, self._describe(at_eof=False),
                                           self._base + found, path=self._path)
            raise self._error
        if self._budget < 0:
            self._error = JournalCorrupted(self._base, self._count + 1, self._describe(at_eof=False),
                                           unsearchable=True, path=self._path)
            raise self._error

    def _describe(self, at_eof: bool) -> str:
        """Say what is wrong with the bytes from `_pos` on (the first bad record)."""
        buf, pos = self._buf, self._pos
        rest = len(buf) - pos
        if at_eof and _NONZERO.search(buf, pos) is None:
            return "zero-filled tail"
        if rest < 8:
            return f"incomplete record header ({rest} of 8 bytes)"
        length, _ = _RECORD.unpack_from(buf, pos)
        if length == 0 or length > self._max:
            return f"invalid record length {length} (maximum {self._max})"
        if 8 + length > rest:
            return (f"incomplete record ({rest - 8} of {length} bytes)" if at_eof
                    else f"record length {length} runs past the end of the data")
        return "checksum mismatch"


def _one_cbor_item(buf: bytearray, pos: int, end: int) -> bool:
    """Cheap necessary condition for buf[pos:end] being exactly one CBOR item (as dumps() writes).

    Looks at the first item head only (after any tags): scalars and definite strings must end
    exactly at `end`, definite arrays and maps must have room for their elements. Rejects most
    random candidates without checksumming them.
    """
    while pos < end:
        b = buf[pos]
        major, info = b >> 5, b & 31
        if info < 24:
            arg, head = info, 1
        elif info < 28:
            head = 1 + (1 << (info - 24))
            if pos + head > end:
                return False
            arg = int.from_bytes(buf[pos + 1:pos + head], "big")
        elif info == 31:
            return 2 <= major <= 5  # indefinite strings and containers; anything else is malformed
        else:
            return False
        if major == 6:  # tag: the tagged item follows
            pos += head
            continue
        rest = end - pos - head
        if major in (0, 1, 7):
            return rest == 0
        if major in (2, 3):
            return rest == arg
        return rest >= arg * (1 if major == 4 else 2)
    return False


def read_all(data: bytes, *, max_record: int = MAX_RECORD, path: str | None = None) -> tuple[list, TailReport]:
    """Parse a whole journal file held in memory: header, then every record.

    Returns:
        The decoded records of the good prefix and the `TailReport` (file offsets).

    Raises:
        JournalError: bad header (see `parse_header`).
        JournalCorrupted: damage in the middle (see `JournalReader`).
    """
    parse_header(data)
    reader = JournalReader(HEADER_SIZE, max_record=max_record, path=path)
    with memoryview(data) as view:
        reader.feed(view[HEADER_SIZE:])
    records = list(reader.records())
    return records, reader.finish()


def read_file(path: str, expand: bool = False) -> tuple[list, TailReport]:
    """`read_all` of the journal file at `path` (for the tools that read a journal offline);
    with `expand`, batched records are given as the per-task records they stand for
    (`core.events.expand_record`), as users see events.

    Raises:
        HqError: the file cannot be read ("Cannot read journal ...").
        JournalError, JournalCorrupted: as `read_all`; JournalError also for a batched
            record of tasks its job does not have (`core.events.expand_records`).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise HqError(f"Cannot read journal {path}: {e.strerror}") from None
    records, tail = read_all(data, path=path)
    if expand:
        from ..core.events import EventError, expand_records

        try:
            records = expand_records(records)
        except EventError as e:
            raise JournalError(f"Cannot read journal {path}: {e}") from None
    return records, tail
