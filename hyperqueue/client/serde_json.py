"""JSON input read the way upstream reads it (`serde_json::from_reader` into a `Value`), with
serde_json's error texts: `expected value at line 1 column 1`, `trailing comma at line 1 column
6`, `EOF while parsing a string at line 3 column 0`, ...

`loads` parses with Python's C decoder first (fast); only when that fails, or when it accepted
something serde_json refuses (NaN/Infinity, numbers out of range, nesting beyond serde_json's
recursion limit of 128, lone surrogates), a small parser that follows serde_json's grammar and
its error positions runs over the bytes to word the error. Positions count bytes, as serde_json
does: the line starts at 1, the column is the number of bytes read on that line (a peeked byte
included).
"""

from __future__ import annotations

import json
import math

__all__ = ["SerdeJsonError", "loads"]

#: serde_json's default recursion limit (nested arrays/objects).
RECURSION_LIMIT = 128

EOF_VALUE = "EOF while parsing a value"
EOF_LIST = "EOF while parsing a list"
EOF_OBJECT = "EOF while parsing an object"
EOF_STRING = "EOF while parsing a string"
EXPECTED_VALUE = "expected value"
EXPECTED_IDENT = "expected ident"
EXPECTED_COLON = "expected `:`"
LIST_COMMA = "expected `,` or `]`"
OBJECT_COMMA = "expected `,` or `}`"
KEY_STRING = "key must be a string"
TRAILING_COMMA = "trailing comma"
TRAILING_CHARS = "trailing characters"
INVALID_NUMBER = "invalid number"
OUT_OF_RANGE = "number out of range"
INVALID_ESCAPE = "invalid escape"
CONTROL_CHAR = "control character (\\u0000-\\u001F) found while parsing a string"
INVALID_CODE_POINT = "invalid unicode code point"
LONE_SURROGATE = "lone leading surrogate in hex escape"
UNEXPECTED_HEX_END = "unexpected end of hex escape"
RECURSION = "recursion limit exceeded"

_WS = b" \t\n\r"
_HEX = b"0123456789abcdefABCDEF"


class SerdeJsonError(ValueError):
    """A JSON syntax error worded as serde_json's Display: `<reason> at line L column C`."""

    def __init__(self, reason: str, line: int, column: int):
        super().__init__(f"{reason} at line {line} column {column}")
        self.reason = reason
        self.line = line
        self.column = column


class _Refused(Exception):
    """Python's decoder accepted something serde_json refuses."""


def _no_constant(name):
    raise _Refused(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Refused(text)
    return value


def _serde_int(text: str):
    """An integer as serde_json keeps it: i64/u64, else an f64 (out of range if infinite)."""
    value = int(text)
    if -2**63 <= value < 2**64:
        return value
    return _finite_float(text)


def _depth_ok(value, depth: int = 1) -> bool:
    """Nesting below serde_json's limit (an explicit stack: no Python recursion)."""
    stack = [(value, depth)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            if d >= RECURSION_LIMIT:
                return False
            items = v.values() if isinstance(v, dict) else v
            stack.extend((x, d + 1) for x in items if isinstance(x, (list, dict)))
    return True


def loads(data: bytes):
    """The JSON value in `data`. Raises SerdeJsonError worded as serde_json."""
    try:
        text = data.decode("utf-8")
        if text.startswith("\ufeff"):
            raise _Refused("BOM")
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                           parse_int=_serde_int)
        if not _depth_ok(value):
            raise _Refused("depth")
        if _has_lone_surrogate(value):
            raise _Refused("surrogate")
        return value
    except (ValueError, RecursionError, _Refused):
        pass
    _Checker(data).check()
    # serde_json found nothing wrong where Python did: a generic error (not expected).
    raise SerdeJsonError(EXPECTED_VALUE, 1, 1)


def _has_lone_surrogate(value) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if any("\ud800" <= c <= "\udfff" for c in v):
                return True
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
    return False


class _Checker:
    """serde_json's deserializer over a reader, reduced to finding its first error."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0      # bytes consumed, the peeked byte included once peeked
        self.peeked = False
        self.depth = RECURSION_LIMIT

    # -- reading (IoRead with a LineColIterator) --------------------------------------------------
    def position(self) -> tuple[int, int]:
        consumed = self.data[:self.pos]
        line = consumed.count(b"\n") + 1
        return line, self.pos - (consumed.rfind(b"\n") + 1)

    def error(self, reason: str):
        line, column = self.position()
        return SerdeJsonError(reason, line, column)

    def peek(self) -> int | None:
        if self.peeked:
            return self.data[self.pos - 1]
        if self.pos >= len(self.data):
            return None
        self.pos += 1
        self.peeked = True
        return self.data[self.pos - 1]

    def eat(self) -> None:
        self.peeked = False

    def next(self) -> int | None:
        if self.peeked:
            self.peeked = False
            return self.data[self.pos - 1]
        if self.pos >= len(self.data):
            return None
        self.pos += 1
        return self.data[self.pos - 1]

    def whitespace(self) -> int | None:
        while True:
            b = self.peek()
            if b is None or b not in _WS:
                return b
            self.eat()

    # -- grammar -----------------------------------------------------------------------------------
    def check(self) -> None:
        self.value()
        if self.whitespace() is not None:
            raise self.error(TRAILING_CHARS)

    def value(self) -> None:
        b = self.whitespace()
        if b is None:
            raise self.error(EOF_VALUE)
        if b == ord("n"):
            self.eat()
            self.ident(b"ull")
        elif b == ord("t"):
            self.eat()
            self.ident(b"rue")
        elif b == ord("f"):
            self.eat()
            self.ident(b"alse")
        elif b == ord("-"):
            self.eat()
            self.number()
        elif ord("0") <= b <= ord("9"):
            self.number()
        elif b == ord('"'):
            self.eat()
            self.string()
        elif b == ord("["):
            self.nest()
            self.eat()
            self.seq()
            self.depth += 1
        elif b == ord("{"):
            self.nest()
            self.eat()
            self.map()
            self.depth += 1
        else:
            raise self.error(EXPECTED_VALUE)

    def nest(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            raise self.error(RECURSION)

    def ident(self, rest: bytes) -> None:
        for expected in rest:
            c = self.next()
            if c is None:
                raise self.error(EOF_VALUE)
            if c != expected:
                raise self.error(EXPECTED_IDENT)

    def number(self) -> None:
        start = self.pos - (1 if self.peeked else 0)
        c = self.next()
        if c is None:
            raise self.error(EOF_VALUE)
        if c == ord("0"):
            b = self.peek()
            if b is not None and ord("0") <= b <= ord("9"):
                raise self.error(INVALID_NUMBER)
        elif ord("1") <= c <= ord("9"):
            while (b := self.peek()) is not None and ord("0") <= b <= ord("9"):
                self.eat()
        else:
            raise self.error(INVALID_NUMBER)
        b = self.peek()
        if b == ord("."):
            self.eat()
            digits = False
            while (b := self.peek()) is not None and ord("0") <= b <= ord("9"):
                self.eat()
                digits = True
            if not digits:
                raise self.error(INVALID_NUMBER if b is not None else EOF_VALUE)
        if b in (ord("e"), ord("E")):
            self.eat()
            b = self.peek()
            if b in (ord("+"), ord("-")):
                self.eat()
            c = self.next()
            if c is None:
                raise self.error(EOF_VALUE)
            if not ord("0") <= c <= ord("9"):
                raise self.error(INVALID_NUMBER)
            while (b := self.peek()) is not None and ord("0") <= b <= ord("9"):
                self.eat()
        end = self.pos - (1 if self.peeked else 0)
        if math.isinf(float(self.data[start:end] or b"0")):
            raise self.error(OUT_OF_RANGE)

    def string(self) -> None:
        start = self.pos
        while True:
            c = self.next()
            if c is None:
                raise self.error(EOF_STRING)
            if c == ord('"'):
                try:
                    self.data[start:self.pos - 1].decode("utf-8")
                except UnicodeDecodeError:
                    raise self.error(INVALID_CODE_POINT) from None
                return
            if c == ord("\\"):
                self.escape()
            elif c < 0x20:
                raise self.error(CONTROL_CHAR)

    def hex4(self) -> int:
        value = 0
        for _ in range(4):
            c = self.next()
            if c is None:
                raise self.error(EOF_STRING)
            if c not in _HEX:
                raise self.error(INVALID_ESCAPE)
            value = value * 16 + int(chr(c), 16)
        return value

    def escape(self) -> None:
        c = self.next()
        if c is None:
            raise self.error(EOF_STRING)
        if c in b'"\\/bfnrt':
            return
        if c != ord("u"):
            raise self.error(INVALID_ESCAPE)
        n = self.hex4()
        if 0xDC00 <= n <= 0xDFFF:
            raise self.error(LONE_SURROGATE)  # (serde_json's wording for both halves)
        if 0xD800 <= n <= 0xDBFF:
            for expected in b"\\u":
                c = self.next()
                if c is None:
                    raise self.error(EOF_STRING)
                if c != expected:
                    raise self.error(UNEXPECTED_HEX_END)
            n2 = self.hex4()
            if not 0xDC00 <= n2 <= 0xDFFF:
                raise self.error(LONE_SURROGATE)

    def items(self, close: int, comma_error: str, eof_error: str):
        """Yields the first byte of each item of a list or map whose opening bracket was eaten,
        after serde_json's checks of the commas and of the end; returns at `close`."""
        first = True
        while True:
            b = self.whitespace()
            if b == close:
                self.eat()
                return
            if b == ord(",") and not first:
                self.eat()
                b = self.whitespace()
            elif b is not None:
                if not first:
                    raise self.error(comma_error)
                first = False
            else:
                raise self.error(eof_error)
            if b == close:
                raise self.error(TRAILING_COMMA)
            if b is None:
                raise self.error(EOF_VALUE)
            yield b

    def seq(self) -> None:
        for _ in self.items(ord("]"), LIST_COMMA, EOF_LIST):
            self.value()

    def map(self) -> None:
        for b in self.items(ord("}"), OBJECT_COMMA, EOF_OBJECT):
            if b != ord('"'):
                raise self.error(KEY_STRING)
            self.eat()
            self.string()
            b = self.whitespace()
            if b == ord(":"):
                self.eat()
            elif b is not None:
                raise self.error(EXPECTED_COLON)
            else:
                raise self.error(EOF_OBJECT)
            self.value()
