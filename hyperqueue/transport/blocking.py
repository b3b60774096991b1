"""A framed, sealed connection over a blocking socket, for the CLI client.

Deliberately free of trio (importing it costs ~170 ms of CLI start-up); stdlib sockets plus
the pure protocol modules only.
"""

from __future__ import annotations

import socket
import time
from types import TracebackType

from hyperqueue.protocol.errors import ConnectionClosed, HandshakeError, ProtocolError
from hyperqueue.protocol.framing import MAX_FRAME, FrameDecoder, encode_frames
from hyperqueue.protocol.handshake import MAX_HANDSHAKE_FRAME, Handshake
from hyperqueue.protocol.secretbox import PlainChannel, SealedChannel

__all__ = ["BlockingConnection", "ConnectionClosed"]

RECEIVE_CHUNK = 256 * 1024


class BlockingConnection:
    """Sends and receives whole messages over a connected socket whose handshake has finished.

    Not thread-safe. Use `connect` (or `from_socket`) to create one; it is a context manager
    that closes the socket on exit.
    """

    def __init__(self, sock: socket.socket, channel: SealedChannel | PlainChannel, peer: str,
                 decoder: FrameDecoder | None = None) -> None:
        self.peer = peer
        self._sock = sock
        self._channel = channel
        self._decoder = decoder if decoder is not None else FrameDecoder()

    @classmethod
    def connect(cls, host: str, port: int, handshake: Handshake, timeout: float = 15.0) -> BlockingConnection:
        """Connect to `host`:`port` over TCP and run `handshake` (each step within `timeout` s).

        The returned connection blocks without a timeout; see `settimeout`.

        Raises:
            OSError: the connection could not be made (refused, unreachable, TimeoutError).
            HandshakeError: see `from_socket`; the socket is closed then.
        """
        # An ASCII name as bytes: a str makes getaddrinfo load the idna codec (~1.5 ms of
        # start-up for every client call).
        addr = host.encode("ascii") if host.isascii() else host
        sock = socket.create_connection((addr, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # requests are small
            return cls.from_socket(sock, handshake, f"{host}:{port}", timeout)
        except BaseException:
            sock.close()
            raise

    @classmethod
    def from_socket(cls, sock: socket.socket, handshake: Handshake, peer: str,
                    timeout: float = 15.0) -> BlockingConnection:
        """Run `handshake` over the connected `sock` and return the connection it authenticates.

        On success the socket is left blocking without a timeout. The caller keeps ownership
        of `sock` if this raises.

        Raises:
            HandshakeError: the handshake failed, did not finish within `timeout` seconds, or
                the peer closed the connection during it.
            OSError: the socket broke.
        """
        deadline = time.monotonic() + timeout
        # Until the peer is authenticated, only accept frames the size of a handshake message.
        decoder = FrameDecoder(max_frame=MAX_HANDSHAKE_FRAME)
        try:
            sock.settimeout(timeout)
            sock.sendall(encode_frames(handshake.start()))
            while not handshake.done:
                payload = decoder.next_frame()
                if payload is None:
                    sock.settimeout(max(deadline - time.monotonic(), 1e-6))
                    data = sock.recv(RECEIVE_CHUNK)
                    if not data:
                        raise HandshakeError(f"connection closed by {peer} during the handshake")
                    decoder.feed(data)
                    continue
                reply = handshake.receive(payload)
                if reply:
                    sock.sendall(encode_frames(reply))
        except TimeoutError:
            raise HandshakeError("handshake timed out") from None
        except HandshakeError:
            raise
        except ProtocolError as e:  # an oversized frame
            raise HandshakeError(f"handshake failed: {e}") from None
        sock.settimeout(None)
        decoder.max_frame = MAX_FRAME
        return cls(sock, handshake.channel, peer, decoder)

    def settimeout(self, timeout: float | None) -> None:
        """Make `send` and `receive` raise TimeoutError after `timeout` seconds (None: never).

        A timed-out `receive` loses nothing and may be retried; a timed-out `send` leaves the
        connection unusable.
        """
        self._sock.settimeout(timeout)

    def send(self, payload: bytes) -> None:
        """Send one message.

        Raises:
            ProtocolError: the message is too big (nothing was sent).
            OSError: the socket broke or timed out.
        """
        self._sock.sendall(self._channel.seal_frames([payload]))

    def receive(self) -> bytes:
        """Return the next message from the peer.

        Raises:
            ConnectionClosed: the peer closed the connection between two frames.
            ProtocolError: the peer closed mid-frame, sent an oversized frame, or a frame
                failed authentication (the connection is then unusable).
            OSError: the socket broke or timed out.
        """
        while True:
            frame = self._decoder.next_frame()
            if frame is not None:
                return self._channel.open(frame)
            data = self._sock.recv(RECEIVE_CHUNK)
            if not data:
                if self._decoder.pending_bytes:
                    raise ProtocolError("connection closed mid-frame")
                raise ConnectionClosed(f"connection to {self.peer} closed")
            self._decoder.feed(data)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self._sock.close()

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
