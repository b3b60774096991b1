"""ID selectors of the command line: `all`, `last`, or ranges such as `1,3,5-8` or `1-100:2`."""

from __future__ import annotations

from ..core.limits import MAX_RANGES
from ..core.ranges import IntRanges

__all__ = ["Selector", "parse_selector", "select_ids", "missing_to_wire", "missing_from_wire"]

_KINDS = ("all", "last", "ids")


class Selector:
    """Which jobs/workers/tasks a command targets.

    `kind` is "all", "last" or "ids"; `ids` is the `IntRanges` for kind "ids", else None.
    """

    __slots__ = ("kind", "ids")

    def __init__(self, kind: str, ids: IntRanges | None = None):
        if kind not in _KINDS:
            raise ValueError(f"Invalid selector kind {kind!r}")
        if (kind == "ids") != isinstance(ids, IntRanges):
            raise ValueError("a selector has ids exactly when its kind is 'ids'")
        self.kind = kind
        self.ids = ids

    @classmethod
    def of_ids(cls, ids: IntRanges) -> "Selector":
        return cls("ids", ids)

    def resolve(self, existing_ids: list[int]) -> list[int]:
        """The ids targeted, ascending.

        Args:
            existing_ids: the ids that exist, sorted ascending.

        Returns:
            all -> every existing id; last -> `[max(existing)]` or `[]`; ids -> every listed id
            ascending, including ids that do not exist (callers report those as not found).
        """
        if self.kind == "all":
            return list(existing_ids)
        if self.kind == "last":
            return [existing_ids[-1]] if existing_ids else []
        return sorted(self.ids)  # type: ignore[arg-type]

    def select(self, existing) -> tuple[list[int], IntRanges]:
        """The existing ids targeted (ascending) and the targeted ids that do not exist.

        Never expands the selector: see `select_ids`.

        Args:
            existing: the ids that exist (a dict, set or sorted list; `in` and iteration).
        """
        if self.kind == "all":
            return sorted(existing), IntRanges.from_ids(())
        if self.kind == "last":
            return ([max(existing)] if existing else []), IntRanges.from_ids(())
        return select_ids(self.ids, existing)  # type: ignore[arg-type]

    def to_text(self) -> str:
        """`all`, `last` or the ranges text (`1,3,5-8`)."""
        return self.kind if self.ids is None else self.ids.to_text()

    def to_wire(self):
        """`"all"`, `"last"` or a list of `[start, end, step]` lists."""
        if self.ids is None:
            return self.kind
        return [list(r) for r in self.ids.ranges]

    @classmethod
    def from_wire(cls, obj) -> "Selector":
        """Inverse of `to_wire`. Raises ValueError on anything else."""
        if obj == "all" or obj == "last":
            return cls(obj)
        if isinstance(obj, str):
            raise ValueError(f"Invalid selector {obj!r}")
        if not isinstance(obj, (list, tuple)):
            raise ValueError(f"Invalid selector: expected 'all', 'last' or a list of ranges, got {type(obj).__name__}")
        if len(obj) > MAX_RANGES:
            raise ValueError(f"Invalid selector: more than {MAX_RANGES} ranges")
        return cls("ids", IntRanges.from_ranges(obj))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selector):
            return NotImplemented
        return self.kind == other.kind and self.ids == other.ids

    def __hash__(self) -> int:
        return hash((self.kind, self.ids))

    def __repr__(self) -> str:
        return f"Selector({self.to_text()!r})"


def parse_selector(text: str, *, allow_all: bool = True, allow_last: bool = True) -> Selector:
    """Parses `all`, `last` or an id range list (see `IntRanges.parse`).

    Raises:
        ValueError: `'all' is not allowed here` / `'last' is not allowed here`, or the range
            syntax error.
    """
    if not isinstance(text, str):
        raise ValueError(f"Invalid selector {text!r}")
    word = text.strip()
    if word == "all":
        if not allow_all:
            raise ValueError("'all' is not allowed here")
        return Selector("all")
    if word == "last":
        if not allow_last:
            raise ValueError("'last' is not allowed here")
        return Selector("last")
    ids = IntRanges.parse(text)
    if len(ids.ranges) > MAX_RANGES:
        raise ValueError(f"Invalid selector: more than {MAX_RANGES} ranges")
    return Selector("ids", ids)


def select_ids(ids: IntRanges, existing) -> tuple[list[int], IntRanges]:
    """`(found, missing)`: the ids of `ids` that are in `existing`, ascending, and the rest.

    Iterates over whichever side is smaller: a selector `0-4294967295` against three existing
    ids costs three membership tests, a selector of three ids against a million existing ids
    three lookups. Never expands `ids` beyond the size of `existing`.
    """
    if len(ids) <= len(existing):
        found = sorted(x for x in ids if x in existing)
    else:
        found = sorted(x for x in existing if x in ids)
    missing = ids.without_members(found) if found else ids
    return found, missing


def missing_to_wire(missing: IntRanges) -> list:
    """The wire form of "ids that were not found": `[start, end, step]` triples sorted by start."""
    return [list(r) for r in missing.sorted_ranges()]


def missing_from_wire(obj) -> IntRanges:
    """Inverse of `missing_to_wire`. Raises ValueError on anything malformed."""
    return IntRanges.from_ranges(obj)
