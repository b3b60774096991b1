"""A framed, sealed connection over a blocking socket, for the CLI client: a thin shell over
`protocol.session.Session` (socket I/O and the handshake deadline live here).

Deliberately free of trio (importing it costs ~170 ms of CLI start-up); stdlib sockets plus
the pure protocol modules only.
"""

from __future__ import annotations

import socket
import time
from types import TracebackType

from hyperqueue.protocol.errors import ConnectionClosed, HandshakeError
from hyperqueue.protocol.handshake import Handshake
from hyperqueue.protocol.secretbox import PlainChannel, SealedChannel
from hyperqueue.protocol.session import CLOSED, ESTABLISHED, NEED_DATA, Session

__all__ = ["BlockingConnection", "ConnectionClosed"]

RECEIVE_CHUNK = 256 * 1024


class BlockingConnection:
    """Sends and receives whole messages over a connected socket whose handshake has finished.

    Not thread-safe. Use `connect` (or `from_socket`) to create one; it is a context manager
    that closes the socket on exit. `session` may also be the channel of a handshake finished
    elsewhere.
    """

    def __init__(self, sock: socket.socket, session: Session | SealedChannel | PlainChannel,
                 peer: str) -> None:
        self.peer = peer
        self._sock = sock
        self._session = session if isinstance(session, Session) else Session.established(session, peer)

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
        session = Session(handshake, peer)
        try:
            sock.settimeout(timeout)
            sock.sendall(session.start())
            while (event := session.next_event()) is not ESTABLISHED:
                sock.settimeout(max(deadline - time.monotonic(), 1e-6))
                if event is NEED_DATA:
                    session.receive_data(sock.recv(RECEIVE_CHUNK))
                else:
                    sock.sendall(event.data)  # a handshake reply
        except TimeoutError:
            raise HandshakeError("handshake timed out") from None
        sock.settimeout(None)
        return cls(sock, session, peer)

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
        self._sock.sendall(self._session.send(payload))

    def receive(self) -> bytes:
        """Return the next message from the peer.

        Raises:
            ConnectionClosed: the peer closed the connection between two frames.
            ProtocolError: the peer closed mid-frame, sent an oversized frame, or a frame
                failed authentication (the connection is then unusable).
            OSError: the socket broke or timed out.
        """
        session = self._session
        while (event := session.next_event()) is NEED_DATA:
            session.receive_data(self._sock.recv(RECEIVE_CHUNK))
        if event is CLOSED:
            raise ConnectionClosed(f"connection to {self.peer} closed")
        return event  # type: ignore[return-value]

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self._sock.close()

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
