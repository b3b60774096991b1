"""A framed, sealed connection over a trio stream (the L2 shell around the pure protocol)."""

from __future__ import annotations

import trio

from hyperqueue.protocol.errors import ConnectionClosed, HandshakeError, ProtocolError
from hyperqueue.protocol.framing import MAX_FRAME, FrameDecoder, encode_frames
from hyperqueue.protocol.handshake import MAX_HANDSHAKE_FRAME, Handshake
from hyperqueue.protocol.secretbox import PlainChannel, SealedChannel

__all__ = ["ConnectionClosed", "Connection", "perform_handshake", "open_connection"]

RECEIVE_CHUNK = 256 * 1024


class Connection:
    """Sends and receives whole messages over a stream whose handshake has finished.

    Any number of tasks may send (a lock keeps frames whole and in nonce order); one task
    at a time may receive.

    Args:
        stream: the byte stream, owned by this connection from now on.
        channel: the finished handshake's channel.
        peer: a description of the peer for log lines, e.g. "10.0.0.5:4321".
        decoder: a decoder holding bytes already read from `stream` (from the handshake).
    """

    def __init__(self, stream: trio.abc.Stream, channel: SealedChannel | PlainChannel, peer: str,
                 decoder: FrameDecoder | None = None) -> None:
        self.peer = peer
        self._stream = stream
        self._channel = channel
        self._decoder = decoder if decoder is not None else FrameDecoder()
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
            data = self._channel.seal_frames(payloads)
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
        while True:
            frame = self._decoder.next_frame()
            if frame is not None:
                return self._channel.open(frame)
            data = await self._stream.receive_some(RECEIVE_CHUNK)
            if not data:
                if self._decoder.pending_bytes:
                    raise ProtocolError("connection closed mid-frame")
                raise ConnectionClosed(f"connection to {self.peer} closed")
            self._decoder.feed(data)

    async def aclose(self) -> None:
        """Close the stream.

        Cancellation: the stream is closed even if cancelled (see trio's `aclose`)."""
        await self._stream.aclose()


async def perform_handshake(stream: trio.abc.Stream, handshake: Handshake, peer: str,
                            timeout: float = 15.0) -> Connection:
    """Run `handshake` over `stream` and return the connection it authenticates.

    The caller keeps ownership of `stream` if this raises.

    Raises:
        HandshakeError: the handshake failed, did not finish within `timeout` seconds, or
            the peer closed the connection during it.
        trio.BrokenResourceError: the stream broke.
    """
    # Until the peer is authenticated, only accept frames the size of a handshake message.
    decoder = FrameDecoder(max_frame=MAX_HANDSHAKE_FRAME)
    try:
        with trio.fail_after(timeout):
            await stream.send_all(encode_frames(handshake.start()))
            while not handshake.done:
                payload = decoder.next_frame()
                if payload is None:
                    data = await stream.receive_some(RECEIVE_CHUNK)
                    if not data:
                        raise HandshakeError(f"connection closed by {peer} during the handshake")
                    decoder.feed(data)
                    continue
                reply = handshake.receive(payload)
                if reply:
                    await stream.send_all(encode_frames(reply))
    except trio.TooSlowError:
        raise HandshakeError("handshake timed out") from None
    except HandshakeError:
        raise
    except ProtocolError as e:  # an oversized frame
        raise HandshakeError(f"handshake failed: {e}") from None
    decoder.max_frame = MAX_FRAME
    return Connection(stream, handshake.channel, peer, decoder)


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
