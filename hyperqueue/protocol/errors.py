"""Errors raised by the wire protocol; their messages are shown to users as they are."""


class ProtocolError(Exception):
    """The peer sent bytes that break the protocol (bad frame, failed authentication, ...)."""


class HandshakeError(ProtocolError):
    """The connection handshake failed (wrong key, version or role, malformed hello, timeout)."""


class ConnectionClosed(Exception):
    """The peer closed the connection cleanly, at a frame boundary."""
