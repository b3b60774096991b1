"""Errors raised by the wire protocol; their messages are shown to users as they are."""


class ProtocolError(Exception):
    """The peer sent bytes that break the protocol (bad frame, failed authentication, ...)."""


class HandshakeError(ProtocolError):
    """The connection handshake failed (wrong key, version or role, malformed hello, timeout)."""


class ConnectionClosed(Exception):
    """The peer closed the connection cleanly, at a frame boundary."""


SHOWN_LIMIT = 200  # characters of a peer-supplied value shown in an error or a log line


def shown(value: object, limit: int = SHOWN_LIMIT) -> str:
    """`repr` of a peer-supplied value, cut to about `limit` characters (never raises).

    Strings and bytes are cut before `repr` so a huge value costs nothing; newlines and control
    characters come out escaped, so a peer cannot forge log lines.
    """
    try:
        if isinstance(value, (str, bytes)):
            if len(value) > limit:
                return f"{value[:limit]!r}... ({len(value)} in all)"
            return repr(value)
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
            return f"<an integer of {value.bit_length()} bits>"
        text = repr(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
    if len(text) > limit:
        text = text[:limit] + "..."
    return text


def describe(e: BaseException, with_type: bool = True) -> str:
    """One bounded line about an exception for an error message or a log line (never raises):
    "TypeName: text" (or the text alone when `with_type` is false and there is text)."""
    try:
        text = str(e)
    except Exception:
        text = ""
    if len(text) > SHOWN_LIMIT:
        text = text[:SHOWN_LIMIT] + "..."
    text = " ".join(text.split("\n"))
    if with_type or not text:
        return f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text
