"""Length-prefixed framing: a frame is a u32 little-endian length followed by that many bytes.

Pure (stdlib only). The length is checked against the maximum as soon as the header is
known, so a hostile or confused peer cannot make us buffer an oversized body.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from hyperqueue.protocol.errors import ProtocolError

MAX_FRAME = 64 * 1024 * 1024

_HEADER = struct.Struct("<I")


def _too_big(size: int, maximum: int) -> ProtocolError:
    return ProtocolError(f"frame of {size} bytes exceeds the maximum of {maximum}")


def encode_frame(payload: bytes) -> bytes:
    """Return `payload` prefixed with its length.

    Raises:
        ProtocolError: the payload is longer than MAX_FRAME.
    """
    if len(payload) > MAX_FRAME:
        raise _too_big(len(payload), MAX_FRAME)
    return _HEADER.pack(len(payload)) + payload


def encode_frames(payloads: Iterable[bytes]) -> bytes:
    """Return all `payloads` framed and concatenated into one buffer (one send for many frames).

    Raises:
        ProtocolError: some payload is longer than MAX_FRAME; nothing is encoded then.
    """
    parts = []
    for payload in payloads:
        if len(payload) > MAX_FRAME:
            raise _too_big(len(payload), MAX_FRAME)
        parts.append(_HEADER.pack(len(payload)))
        parts.append(payload)
    return b"".join(parts)


class FrameDecoder:
    """Incremental decoder: feed it received bytes in any chunking, take out whole frames.

    Consumed bytes are only dropped when they make up at least half of the buffer, so each
    byte is copied O(1) times on average, for many small frames as for big ones.

    `max_frame` may be changed at any time (e.g. raised once a handshake has finished);
    it applies to every header not yet decoded.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._pos = 0  # start of the first byte not yet returned in a frame

    @property
    def pending_bytes(self) -> int:
        """Bytes buffered that are not part of a returned frame (non-zero at EOF = truncated)."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        """Append received bytes.

        Raises:
            ProtocolError: the next frame's header announces more than `max_frame` bytes.
        """
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        # Check the next header at once (inlined: this runs once per receive).
        if len(self._buf) - self._pos >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buf, self._pos)
            if size > self.max_frame:
                raise _too_big(size, self.max_frame)

    def next_frame(self) -> bytes | None:
        """Return the next complete frame's payload, or None if more bytes are needed.

        Raises:
            ProtocolError: the next frame's header announces more than `max_frame` bytes
                (raised again on every later call: the stream cannot be resynchronised).
        """
        pos = self._pos
        if len(self._buf) - pos < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._buf, pos)
        if size > self.max_frame:
            raise _too_big(size, self.max_frame)
        start = pos + _HEADER.size
        end = start + size
        if end > len(self._buf):
            return None
        with memoryview(self._buf) as view:
            frame = view[start:end].tobytes()
        if end == len(self._buf):
            self._buf.clear()
            self._pos = 0
        else:
            self._pos = end
        return frame

    def frames(self) -> Iterator[bytes]:
        """Yield every complete frame currently buffered (may raise like `next_frame`)."""
        while (frame := self.next_frame()) is not None:
            yield frame
