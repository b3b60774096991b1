"""A framed, sealed connection over a trio stream: a thin shell over `protocol.session.Session`
(stream I/O, the handshake deadline and the send lock live here; everything else there)."""

from __future__ import annotations

import trio

from hyperqueue.protocol import messages as m
from hyperqueue.protocol.cborshape import SCAN_THRESHOLD, check_frame
from hyperqueue.protocol.errors import ConnectionClosed, HandshakeError
from hyperqueue.protocol.handshake import Handshake
from hyperqueue.protocol.secretbox import PlainChannel, SealedChannel
from hyperqueue.protocol.session import CLOSED, ESTABLISHED, NEED_DATA, OPEN_IN_THREAD, LargeFrame, Session

__all__ = ["ConnectionClosed", "Connection", "perform_handshake", "open_connection",
           "decode_message"]

RECEIVE_CHUNK = 256 * 1024


class Connection:
    """Sends and receives whole messages over a stream whose handshake has finished.

    Any number of tasks may send (a lock keeps frames whole and in nonce order); one task
    at a time may receive.

    Args:
        stream: the byte stream, owned by this connection from now on.
        session: the established session (holding bytes already read from `stream`), or the
            channel of a handshake finished elsewhere.
        peer: a description of the peer for log lines, e.g. "10.0.0.5:4321".
    """

    def __init__(self, stream: trio.abc.Stream, session: Session | SealedChannel | PlainChannel,
                 peer: str) -> None:
        self.peer = peer
        self._stream = stream
        self._session = session if isinstance(session, Session) else Session.established(session, peer)
        self._send_lock = trio.StrictFIFOLock()
        self._send_broken = False

    async def send(self, payload: bytes) -> None:
        """Send one message. See `send_many`."""
        await self.send_many([payload])

    async def send_many(self, payloads: list[bytes]) -> None:
        """Send several messages in order with a single write.

        Raises:
            ProtocolError: a message is too big (nothing was sent; the connection stays usable).
            trio.BrokenResourceError: an earlier send was interrupted, or the stream broke.

        Cancellation: if cancelled while writing, part of a frame may have been sent; the
        connection is then unusable for sending and should be closed.
        """
        async with self._send_lock:
            if self._send_broken:
                raise trio.BrokenResourceError(f"connection to {self.peer} broke during an earlier send")
            data = self._session.send_many(payloads)
            self._send_broken = True  # until send_all completes: a partial frame desyncs the peer
            await self._stream.send_all(data)
            self._send_broken = False

    async def receive(self) -> bytes:
        """Return the next message from the peer.

        Raises:
            ConnectionClosed: the peer closed the connection between two frames.
            ProtocolError: the peer closed mid-frame, sent an oversized frame, or a frame
                failed authentication (the connection is then unusable).

        Cancellation: safe; no received bytes are lost.
        """
        session = self._session
        while (event := session.next_event(OPEN_IN_THREAD)) is NEED_DATA:
            session.receive_data(await self._stream.receive_some(RECEIVE_CHUNK))
        if event is CLOSED:
            raise ConnectionClosed(f"connection to {self.peer} closed")
        if type(event) is LargeFrame:
            # Not abandoned on cancel: the frame is opened (and its nonce used) either way,
            # and the message is returned (no received bytes are lost).
            return await trio.to_thread.run_sync(event.open)
        return event  # type: ignore[return-value]

    async def aclose(self) -> None:
        """Close the stream.

        Cancellation: the stream is closed even if cancelled (see trio's `aclose`)."""
        await self._stream.aclose()


async def decode_message(data: bytes, direction: str, sender: str | None = None) -> m.Message:
    """`m.decode`, after `check_frame` of a large frame in a thread: decoding holds the event
    loop (and the GIL), and a frame of tiny containers decodes to ~60 bytes per byte.

    Raises:
        ProtocolError: the frame failed the shape check (naming `sender` if given) or is not
            a valid message for `direction`.
    """
    if len(data) > SCAN_THRESHOLD:
        await trio.to_thread.run_sync(check_frame, data, sender)
    return m.decode(data, direction)


async def perform_handshake(stream: trio.abc.Stream, handshake: Handshake, peer: str,
                            timeout: float = 15.0) -> Connection:
    """Run `handshake` over `stream` and return the connection it authenticates.

    The caller keeps ownership of `stream` if this raises.

    Raises:
        HandshakeError: the handshake failed, did not finish within `timeout` seconds, or
            the peer closed the connection during it.
        trio.BrokenResourceError: the stream broke.
    """
    session = Session(handshake, peer)
    try:
        with trio.fail_after(timeout):
            await stream.send_all(session.start())
            while (event := session.next_event()) is not ESTABLISHED:
                if event is NEED_DATA:
                    session.receive_data(await stream.receive_some(RECEIVE_CHUNK))
                else:
                    await stream.send_all(event.data)  # a handshake reply
    except trio.TooSlowError:
        raise HandshakeError("handshake timed out") from None
    return Connection(stream, session, peer)


async def open_connection(host: str, port: int, handshake: Handshake, timeout: float = 15.0) -> Connection:
    """Connect to `host`:`port` over TCP and run `handshake` (each step within `timeout` s).

    Raises:
        OSError: the connection could not be made (refused, unreachable, TimeoutError).
        HandshakeError: see `perform_handshake`; the socket is closed then.
    """
    peer = f"{host}:{port}"
    try:
        with trio.fail_after(timeout):
            # trio's SocketStream already sets TCP_NODELAY: small messages go out at once.
            stream = await trio.open_tcp_stream(host, port)
    except trio.TooSlowError:
        raise TimeoutError(f"connecting to {peer} timed out") from None
    try:
        return await perform_handshake(stream, handshake, peer, timeout)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
