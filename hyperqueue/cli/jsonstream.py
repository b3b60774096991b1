"""A JSON document written piece by piece, byte for byte as `json.dumps(doc, indent=2,
default=str)` writes it whole (the form of every JSON output, `Printer.json`).

Long listings (`job info`, `task list`, `task info`, `job task-ids` of a huge array) hand their
items to it page by page as the server sends them: the client holds one page, never the whole
document, and the first tasks are printed at once.

    w = JsonStream(sys.stdout.write)
    w.open("[")                       # [
    w.open("{", head={"id": 1})       #   {  "id": 1,
    w.open("[", key="tasks")          #     "tasks": [
    w.items(page)                     #       {...}, {...}  (as many calls as pages)
    w.close(); w.close(); w.close()   #   ]}]  (an empty container closes as `[]` / `{}`)
    w.end()                           # the trailing newline

Indentation is two spaces per level; items are separated by `,` + newline; `key: value` by `: `
(the separators of `json.dumps` with an indent). Strings never contain a raw newline in JSON
text (they are escaped), so re-indenting a dumped value is a plain replace.
"""

from __future__ import annotations

import json
from collections.abc import Callable

__all__ = ["JsonStream"]


def _dumps(value) -> str:
    return json.dumps(value, indent=2, default=str)


class JsonStream:
    """Writes one JSON document through `write` (see the module doc)."""

    __slots__ = ("_write", "_counts", "_closers")

    def __init__(self, write: Callable[[str], object]):
        self._write = write
        self._counts: list[int] = []   # members written so far, per open container
        self._closers: list[str] = []  # "]" or "}", per open container

    def _start_member(self, key: str | None) -> None:
        """The separator, indentation and `"key": ` before a new member of the innermost open
        container (nothing at the top level)."""
        if not self._counts:
            if key is not None:
                raise ValueError("a top-level value has no key")
            return
        in_dict = self._closers[-1] == "}"
        if in_dict != (key is not None):
            raise ValueError("members of an object need a key, items of an array none")
        sep = ",\n" if self._counts[-1] else "\n"
        self._counts[-1] += 1
        text = sep + "  " * len(self._counts)
        if key is not None:
            if type(key) is not str:
                raise TypeError("object keys must be strings")
            text += json.dumps(key) + ": "
        self._write(text)

    def open(self, kind: str, key: str | None = None, head: dict | None = None) -> None:
        """Opens an array (`"["`) or an object (`"{"`), as an item of the innermost open array,
        the member `key` of the innermost open object, or the document itself. `head`: the first
        members of an object (written at once, in its order)."""
        if kind not in ("[", "{"):
            raise ValueError(f"unknown container {kind!r}")
        self._start_member(key)
        self._write(kind)
        self._counts.append(0)
        self._closers.append("]" if kind == "[" else "}")
        if head:
            if kind != "{":
                raise ValueError("only an object has a head")
            # `{\n  "a": 1,\n  "b": 2\n}`: its members, re-indented, without the braces
            self._write_body(_dumps(head), len(head))

    def value(self, value, key: str | None = None) -> None:
        """One whole value: the next item of an array, member `key` of an object, or the
        document."""
        self._start_member(key)
        text = _dumps(value)
        if self._counts:
            text = text.replace("\n", "\n" + "  " * len(self._counts))
        self._write(text)

    def items(self, values: list) -> None:
        """The next items of the innermost open array, all at once (one `dumps` per page)."""
        if self._closers[-1] != "]":
            raise ValueError("items go into an array")
        if values:
            self._write_body(_dumps(values), len(values))

    def _write_body(self, text: str, n: int) -> None:
        # `text` is a dumped non-empty container at level 0: `[\n  a,\n  b\n]`; its body
        # (`  a,\n  b`) goes into the innermost open container, one level deeper per open one.
        body = text[2:-2]
        depth = len(self._counts)
        if depth > 1:
            pad = "  " * (depth - 1)
            body = pad + body.replace("\n", "\n" + pad)
        self._write((",\n" if self._counts[-1] else "\n") + body)
        self._counts[-1] += n

    def close(self) -> None:
        """Closes the innermost open container (`[]` / `{}` when it got nothing)."""
        n = self._counts.pop()
        closer = self._closers.pop()
        self._write("\n" + "  " * len(self._counts) + closer if n else closer)

    @property
    def depth(self) -> int:
        """The number of open containers."""
        return len(self._counts)

    def end(self) -> None:
        """The document is complete: its trailing newline."""
        if self._counts:
            raise ValueError("the document has open containers")
        self._write("\n")
