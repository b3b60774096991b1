"""A small blocking client for the CLI: no event loop, so `hq job list` starts fast."""

from __future__ import annotations

import socket

from ..common import serverdir
from ..errors import HqError, RequestFailed, ServerUnreachable
from ..protocol import messages as m
from ..protocol.cborshape import check_frame
from ..protocol.errors import ConnectionClosed, HandshakeError, ProtocolError, describe
from ..protocol.handshake import Handshake
from ..transport.blocking import BlockingConnection
from ..version import __version__


class BlockingClient:
    """One connection to the server of a server directory; requests are answered in order."""

    def __init__(self, root: str, timeout: float = 15.0):
        self.root = root
        record, section = serverdir.load_access(root, "client")
        self.record = record
        host, port = section["host"], section["port"]
        hs = Handshake(role="hq-client", peer_role="hq-server",
                       key=serverdir.key_bytes(section), hq_version=__version__)
        try:
            self.conn = _connect(host, port, hs, timeout)
        except HandshakeError as e:
            raise HqError(f"Cannot connect to the server at {host}:{port}: {e}") from None
        except (OSError, ConnectionClosed, ProtocolError):
            raise ServerUnreachable(
                f"Access token found but HQ server {host}:{port} is unreachable",
                "Is the server running? Start it with `hq server start`.") from None
        except Exception as e:  # whatever a rogue peer causes: an error, not a traceback
            raise HqError(f"Cannot connect to the server at {host}:{port}: "
                          f"unexpected {describe(e)}") from None

    def request(self, msg: m.Message, timeout: float | None = 60.0) -> m.Message:
        """Sends one request and returns the response.

        Raises:
            RequestFailed: the server answered with an error.
            HqError: the connection broke or the server sent garbage.
        """
        try:
            self.conn.settimeout(timeout)
            self.conn.send(m.encode(msg))
            response = self.receive()
        except (ConnectionClosed, OSError) as e:
            raise HqError(f"Connection to the server was lost: {e or 'closed'}") from None
        except ProtocolError as e:
            raise HqError(f"Protocol error: {e}") from None
        except Exception as e:  # whatever a rogue peer causes: an error, not a traceback
            raise HqError(f"Protocol error: unexpected {describe(e)}") from None
        if isinstance(response, m.ErrorResponse):
            raise RequestFailed(response.message)
        return response

    def receive(self) -> m.Message:
        """The server's next message, decoded once `check_frame` passed it.

        Raises:
            ConnectionClosed, OSError: see `BlockingConnection.receive`.
            ProtocolError: a bad frame, a message refused by the shape check (naming the
                server's address) or an invalid message.
        """
        data = self.conn.receive()
        check_frame(data, f"the server at {self.conn.peer}")
        return m.decode(data, m.TO_CLIENT)

    def call(self, call, timeout: float | None = 60.0):
        """Drives a `client.calls` call: sends each request it yields, in order, and returns
        its result (`timeout`: per request; None for calls that wait for jobs)."""
        try:
            request = next(call)
            while True:
                request = call.send(self.request(request, timeout))
        except StopIteration as stop:
            return stop.value

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _connect(host: str, port: int, hs: Handshake, timeout: float) -> BlockingConnection:
    try:
        return BlockingConnection.connect(host, port, hs, timeout=timeout)
    except socket.gaierror:
        # The recorded host may be this machine's name without DNS; try the loopback.
        if host != socket.gethostname():
            raise
        return BlockingConnection.connect("localhost", port, hs, timeout=timeout)
