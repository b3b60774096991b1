"""One end of a connection as a sans-IO state machine: handshake, then framed sealed messages.

Pure (no sockets, no clock, no trio). Every transport (the blocking CLI socket, the trio
stream, the anyio client) is a thin shell that moves bytes between its stream and a
`Session`, in the style of h11:

* `start()` returns the first bytes to send (our hello);
* `receive_data(data)` feeds received bytes in any chunking; `receive_data(b"")` means EOF;
* `next_event()` returns the next event: a message (``bytes``); `NEED_DATA` (feed more bytes);
  `CLOSED` (the peer closed the connection at a frame boundary); and during the handshake a
  `SendData` (a reply to write before asking for the next event), then `ESTABLISHED` once;
* `send(payload)` / `send_many(payloads)` return the bytes of the sealed frames to write.

Phases: until the handshake has finished only frames of at most MAX_HANDSHAKE_FRAME bytes are
accepted (so an unauthenticated peer cannot make us buffer a big frame) and every failure is
a HandshakeError; afterwards frames of up to MAX_FRAME carry sealed messages and a bad frame
raises ProtocolError. Once `next_event()` has raised, every later call raises too: a stream
that disagreed once is never read again. Deadlines and locks belong to the shells.

A shell (anyio, as the Python API's AsyncClient would use it)::

    from hyperqueue.protocol.session import CLOSED, ESTABLISHED, NEED_DATA, Session

    async def receive_some(stream):             # anyio raises EndOfStream where we want b""
        try:
            return await stream.receive()
        except anyio.EndOfStream:
            return b""

    session = Session(handshake, peer=f"{host}:{port}")
    stream = await anyio.connect_tcp(host, port)
    with anyio.fail_after(timeout):              # the shell owns the deadline
        await stream.send(session.start())
        while (event := session.next_event()) is not ESTABLISHED:
            if event is NEED_DATA:
                session.receive_data(await receive_some(stream))
            else:
                await stream.send(event.data)    # a handshake reply (SendData)

    async with send_lock:                        # frames must go out in the order sealed
        await stream.send(session.send(payload))

    while (event := session.next_event()) is NEED_DATA:     # receive one message
        session.receive_data(await receive_some(stream))
    if event is CLOSED:
        raise ConnectionClosed(f"connection to {session.peer} closed")
    message = event
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from hyperqueue.protocol.errors import HandshakeError, ProtocolError
from hyperqueue.protocol.framing import MAX_FRAME, FrameDecoder, encode_frames
from hyperqueue.protocol.handshake import MAX_HANDSHAKE_FRAME, Handshake
from hyperqueue.protocol.secretbox import PlainChannel, SealedChannel

__all__ = ["Session", "SendData", "NEED_DATA", "ESTABLISHED", "CLOSED"]

_HEADER = struct.Struct("<I")


class SendData:
    """A handshake reply for the shell to write: `data` (framed bytes)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"SendData({len(self.data)} bytes)"


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA = _Sentinel("NEED_DATA")  # feed more bytes with receive_data()
ESTABLISHED = _Sentinel("ESTABLISHED")  # the handshake finished; returned once
CLOSED = _Sentinel("CLOSED")  # the peer closed the connection cleanly, between two frames

# What event-loop shells pass as `next_event(defer_over=...)`: a longer frame is opened in a
# worker thread (decrypting 64 MiB takes ~0.3 s; the loop must keep serving other peers).
OPEN_IN_THREAD = 1024 * 1024


class LargeFrame:
    """A received frame too big to open where an event loop waits (see `Session.next_event`).

    `open()` authenticates and decrypts it (libsodium releases the GIL, so a shell may call it
    in a worker thread) and returns the message; call it before the session's next
    `next_event`, since frames must be opened in the order they came."""

    __slots__ = ("_session", "frame")

    def __init__(self, session: Session, frame: bytes) -> None:
        self._session = session
        self.frame = frame

    def open(self) -> bytes:
        """The message (raises ProtocolError like `next_event`)."""
        return self._session._open(self.frame)


_HANDSHAKING = "handshaking"
_OPEN = "open"


class Session:
    """One end of one connection: the handshake, then sealed, length-framed messages.

    Args:
        handshake: this end's handshake (not started yet).
        peer: a description of the peer, used in error texts, e.g. "10.0.0.5:4321".

    Not thread-safe; a shell serialises `send` calls (their nonces must reach the peer in
    order) and lets one task at a time call `receive_data`/`next_event`.
    """

    __slots__ = ("peer", "_handshake", "_state", "_decoder", "_channel", "_eof",
                 "_error", "_limit")

    def __init__(self, handshake: Handshake | None, peer: str = "peer") -> None:
        self.peer = peer
        self._handshake = handshake
        self._state = _HANDSHAKING
        # Until the peer is authenticated, only accept frames the size of a handshake message.
        self._decoder = FrameDecoder(max_frame=MAX_HANDSHAKE_FRAME)
        self._channel: SealedChannel | PlainChannel | None = None
        self._eof = False
        self._error: ProtocolError | None = None
        self._limit = -1  # biggest payload `send` accepts (-1: not established)

    @classmethod
    def established(cls, channel: SealedChannel | PlainChannel, peer: str = "peer") -> Session:
        """A session over the `channel` of a handshake that has already finished elsewhere."""
        session = cls(None, peer)
        session._establish(channel)
        session._state = _OPEN
        return session

    @property
    def is_established(self) -> bool:
        """True once the handshake has finished (messages may be sent)."""
        return self._state is _OPEN

    def start(self) -> bytes:
        """Return the bytes to send first (our hello). Call it at most once, before anything else."""
        if self._handshake is None or self._state is not _HANDSHAKING:
            raise RuntimeError("session already started")
        return encode_frames(self._handshake.start())

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the peer; b"" means the peer closed its side (EOF).

        Raises:
            HandshakeError: (during the handshake) a frame header announces more than
                MAX_HANDSHAKE_FRAME bytes.
            ProtocolError: (afterwards) a frame header announces more than MAX_FRAME bytes.
            RuntimeError: data after EOF.
        """
        if not data:
            self._eof = True
            return
        if self._eof:
            raise RuntimeError("received data after EOF")
        try:
            self._decoder.feed(data)
        except ProtocolError as e:
            self._fail(e)

    def next_event(self, defer_over: int | None = None) -> bytes | _Sentinel | SendData | LargeFrame:
        """Return the next message from the peer, or NEED_DATA, CLOSED, or (during the handshake)
        a SendData to write, then ESTABLISHED once.

        With `defer_over`, a frame longer than that many bytes comes back as a `LargeFrame`
        for the caller to open (e.g. in a thread: opening 64 MiB takes ~0.3 s).

        Raises:
            HandshakeError: the handshake failed (wrong key, version or role, a malformed or
                oversized handshake frame, or the peer closed the connection during it).
            ProtocolError: the peer closed mid-frame, sent an oversized frame, or a frame
                failed authentication. The session is then unusable for receiving.
        """
        if self._state is _OPEN:
            # The hot path: one frame, one open.
            frame = self._decoder.next_frame()  # raises again after an oversized header
            if frame is not None:
                if defer_over is not None and len(frame) > defer_over:
                    return LargeFrame(self, frame)
                return self._open(frame)
            if not self._eof:
                return NEED_DATA
            if self._decoder.pending_bytes:
                self._fail(ProtocolError("connection closed mid-frame"))
            return CLOSED
        return self._handshake_event()

    def _open(self, frame: bytes) -> bytes:
        try:
            return self._channel.open(frame)  # type: ignore[union-attr]
        except ProtocolError as e:
            self._fail(e)

    def send(self, payload: bytes) -> bytes:
        """Return the bytes of `payload` sealed into one frame (write them before the next `send`).

        Raises:
            ProtocolError: the message is too big for a frame (nothing was sealed; the session
                stays usable), or the channel is unusable after a failed authentication.
            RuntimeError: the handshake has not finished.
        """
        if len(payload) > self._limit:
            self._refuse(payload)
        sealed = self._channel.seal(payload)  # type: ignore[union-attr]
        return _HEADER.pack(len(sealed)) + sealed

    def send_many(self, payloads: Sequence[bytes]) -> bytes:
        """Return the bytes of `payloads` sealed into frames, in order (one write for many).

        Raises:
            ProtocolError: some message is too big (nothing was sealed: the send counter stays
                in step with the peer), or as `send`.
            RuntimeError: the handshake has not finished.
        """
        if self._channel is None:
            raise RuntimeError("the handshake has not finished")
        limit = self._limit
        for payload in payloads:
            if len(payload) > limit:
                self._refuse(payload)
        seal, pack = self._channel.seal, _HEADER.pack  # type: ignore[union-attr]
        parts = []
        for payload in payloads:
            sealed = seal(payload)
            parts += (pack(len(sealed)), sealed)
        return b"".join(parts)

    # -- internals ------------------------------------------------------------------------------

    def _establish(self, channel: SealedChannel | PlainChannel) -> None:
        """Switch to the sealed phase's channel and frame limit (ESTABLISHED is returned next)."""
        self._channel = channel
        self._limit = MAX_FRAME - channel.overhead
        self._decoder.max_frame = MAX_FRAME

    def _handshake_event(self) -> _Sentinel | SendData:
        if self._error is not None:
            self._raise()
        handshake = self._handshake
        assert handshake is not None
        try:
            # One frame at a time: a reply goes out before the next frame is looked at, so
            # the peer sees our proof (and reports a wrong key) even if its proof fails here.
            while self._channel is None and (payload := self._decoder.next_frame()) is not None:
                reply = handshake.receive(payload)
                if handshake.done:
                    self._establish(handshake.channel)
                if reply:
                    return SendData(encode_frames(reply))
        except ProtocolError as e:
            self._fail(e)
        if self._channel is not None:
            self._state = _OPEN
            return ESTABLISHED
        if self._eof:
            self._fail(HandshakeError(f"connection closed by {self.peer} during the handshake"))
        return NEED_DATA

    def _refuse(self, payload: bytes) -> None:
        if self._channel is None:
            raise RuntimeError("the handshake has not finished")
        raise ProtocolError(f"message of {len(payload)} bytes exceeds the maximum of {self._limit}")

    def _fail(self, error: ProtocolError) -> None:
        """Remember `error` (as a HandshakeError during the handshake) and raise it."""
        if self._state is _HANDSHAKING and not isinstance(error, HandshakeError):
            error = HandshakeError(f"handshake failed: {error}")  # an oversized frame
        if self._error is None:
            self._error = error
        raise error from None

    def _raise(self) -> None:
        error = self._error
        assert error is not None
        raise type(error)(*error.args)
