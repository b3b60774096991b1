"""A bounded shape check of CBOR bytes before they are decoded (pure, stdlib only).

cbor2's decoder turns every byte into up to one Python object and holds the GIL while it does:
a 64 MiB frame of empty arrays (one byte each) takes ~25 s and ~4 GB to decode. `check_shape`
walks the encoding without building anything and refuses a message with more items or
containers than a legitimate one has, so the shells can run it (in a thread: it is plain
Python, so the event loop keeps running) on a large frame before decoding it.

`check_frame` is the guard every side runs on a received message before decoding it (the
server on what clients and workers send, the client and the worker on what the server sends):
small frames pass at once, and most large legitimate ones pass a C-speed bound (~1 ms per
2 MiB) that proves the limits without the item-by-item walk.
"""

from __future__ import annotations

from .errors import ProtocolError

# Frames up to this size are decoded directly (their worst case decodes in ~50 ms).
SCAN_THRESHOLD = 256 * 1024
# A legitimate message: a submit of MAX_LIST_LEN entries is ~1M items in a few containers;
# a batch of task updates is one small array per task.
MAX_ITEMS = 1 << 22
MAX_CONTAINERS = 1 << 18

_ARG_SIZES = {24: 1, 25: 2, 26: 4, 27: 8}
# Every byte that is not the head of an array or a map (major types 4 and 5).
_NOT_CONTAINER_HEADS = bytes(b for b in range(256) if not 0x80 <= b < 0xC0)


def check_frame(data: bytes, sender: str | None = None) -> None:
    """Refuses a received message whose decoding could take more memory or time than a
    legitimate one: `check_shape` with the default limits, skipped where it cannot fail.

    Frames up to SCAN_THRESHOLD bytes pass. Up to MAX_ITEMS bytes, each item starts with a
    byte of its own and each array or map with a byte in 0x80-0xbf, so counting those bytes
    (in C) proves both limits for a frame that has few of them; other frames are walked.

    Raises:
        ProtocolError: see `check_shape`; with `sender` (e.g. "the server at host:port") the
            message names it.
    """
    n = len(data)
    if n <= SCAN_THRESHOLD:
        return
    if n <= MAX_ITEMS and len(data.translate(None, _NOT_CONTAINER_HEADS)) <= MAX_CONTAINERS:
        return
    try:
        check_shape(data)
    except ProtocolError as e:
        if sender is None:
            raise
        raise ProtocolError(f"message from {sender} refused: {e}") from None


def check_shape(data: bytes, max_items: int = MAX_ITEMS,
                max_containers: int = MAX_CONTAINERS) -> None:
    """Checks that `data` is one well-formed CBOR item within the limits.

    Raises:
        ProtocolError: truncated or malformed CBOR, trailing bytes, or too many items or
            containers (arrays and maps) for a message.
    """
    n = len(data)
    pos = 0
    items = 0
    containers = 0
    # Items still expected by each open container: an int, or -1 for an indefinite one.
    stack = [1]
    while stack:
        if pos >= n:
            raise ProtocolError("truncated message")
        ib = data[pos]
        pos += 1
        major, info = ib >> 5, ib & 31
        if info < 24:
            arg = info
        elif info in _ARG_SIZES:
            size = _ARG_SIZES[info]
            if pos + size > n:
                raise ProtocolError("truncated message")
            arg = int.from_bytes(data[pos:pos + size], "big")
            pos += size
        elif info == 31 and major in (2, 3, 4, 5, 7):
            arg = -1  # indefinite length (or, for major 7, a break)
        else:
            raise ProtocolError("malformed CBOR")
        if major == 7 and info == 31:  # break: ends the innermost indefinite container
            if stack[-1] != -1:
                raise ProtocolError("malformed CBOR")
            stack.pop()
            _done(stack)
            continue
        items += 1
        if items > max_items:
            raise ProtocolError(f"message has more than {max_items} items")
        if major in (2, 3):
            if arg == -1:  # indefinite string: definite chunks until a break
                stack.append(-1)
                continue
            pos += arg
            if pos > n:
                raise ProtocolError("truncated message")
        elif major in (4, 5):
            containers += 1
            if containers > max_containers:
                raise ProtocolError(f"message has more than {max_containers} arrays and maps")
            if arg == -1:
                stack.append(-1)
                continue
            count = arg * 2 if major == 5 else arg
            if count:
                if count > n - pos:  # each item takes at least one byte
                    raise ProtocolError("truncated message")
                stack.append(count)
                continue
        elif major == 6:
            continue  # a tag: the tagged item follows and completes it
        _done(stack)
    if pos != n:
        raise ProtocolError("trailing bytes after the message")


def _done(stack: list) -> None:
    """One item completed: close every definite container it completes."""
    while stack:
        if stack[-1] == -1:
            return
        stack[-1] -= 1
        if stack[-1]:
            return
        stack.pop()
