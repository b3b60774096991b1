"""Compact sets of non-negative integer ids (task ids, job ids, worker ids).

An `IntRanges` is an immutable sequence of arithmetic ranges `(start, end, step)` with `end`
inclusive. It is never expanded unless iterated: `len`, `in`, `min`, `max` and `to_text` work on
the ranges. The ranges never share an id, so the object is both a set (equality, `in`, `len`) and a
sequence (iteration follows the order of the ranges, i.e. the order in which they were written).

Normal form of one range (kept by every constructor): `end` is the last id actually in the range
(`start + k * step`), and a range of one id has `step == 1`. Code outside may therefore walk
`ranges` and stop at `id > end`.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from heapq import heappop, heappush, merge
from itertools import chain
from math import gcd

__all__ = ["IntRanges", "compress_ids", "MAX_ID", "MAX_INTERLEAVE"]

#: Largest accepted id (ids are u32 upstream).
MAX_ID = 2**32 - 1

#: At most this many ranges of one parsed/decoded set may cover the same point with their
#: [start, end] intervals (stepped ranges such as `0-99:2,1-99:2` interleave). It keeps the
#: overlap check and membership tests of outside input linear instead of quadratic.
MAX_INTERLEAVE = 64

# Compiled on first use (re caches it): importing this module stays cheap.
_ITEM_PAT = r"([0-9][0-9_]*)(?:\s*-\s*([0-9][0-9_]*)(?:\s*:\s*([0-9][0-9_]*))?)?\Z"

Range = tuple[int, int, int]


def _range_text(r: Range) -> str:
    start, end, step = r
    if start == end:
        return str(start)
    if step == 1:
        return f"{start}-{end}"
    return f"{start}-{end}:{step}"


def _normalize(start: int, end: int, step: int) -> Range:
    end = start + ((end - start) // step) * step
    if start == end:
        step = 1
    return (start, end, step)


def _meet(a: Range, b: Range) -> Range | None:
    """The ids the two arithmetic ranges have in common, as one normalized range, or None."""
    s1, e1, k1 = a
    s2, e2, k2 = b
    lo = s1 if s1 > s2 else s2
    hi = e1 if e1 < e2 else e2
    if lo > hi:
        return None
    if k1 == 1 and k2 == 1:
        return (lo, hi, 1)
    # Solve x = s1 (mod k1), x = s2 (mod k2), then look for such an x in [lo, hi].
    g = gcd(k1, k2)
    diff = s2 - s1
    if diff % g:
        return None
    m = k2 // g
    t = (diff // g) * pow(k1 // g, -1, m) % m if m > 1 else 0
    x0 = s1 + k1 * t
    lcm = k1 // g * k2
    x = lo + (x0 - lo) % lcm
    if x > hi:
        return None
    return _normalize(x, hi, lcm)


def _share_id(a: Range, b: Range) -> bool:
    """True when the two arithmetic ranges have an id in common."""
    return _meet(a, b) is not None


def _find_conflict(first: tuple[Range, ...], second: tuple[Range, ...] | None,
                   max_active: int | None = None):
    """A pair of ranges sharing an id, or None.

    With `second` None, looks for a conflict among the ranges of `first`; otherwise only for pairs
    with one range from each side. A sweep over the starts: O(r log r) unless stepped ranges
    interleave heavily. With `max_active`, more than that many ranges covering one point raise
    ValueError (bounds the sweep for outside input).
    """
    if second is None:
        if all(first[i][1] < first[i + 1][0] for i in range(len(first) - 1)):
            return None  # sorted, disjoint intervals: the common case, linear
        tagged = [(r, 0) for r in first]
    else:
        tagged = [(r, 0) for r in first] + [(r, 1) for r in second]
    tagged.sort()
    active: list[tuple[int, int, Range, int]] = []  # heap of (end, seq, range, side)
    for seq, (r, side) in enumerate(tagged):
        start = r[0]
        while active and active[0][0] < start:
            heappop(active)
        if max_active is not None and len(active) >= max_active:
            raise ValueError(f"Invalid ranges: more than {max_active} ranges interleave")
        for _end, _seq, other, other_side in active:
            if (second is None or other_side != side) and _share_id(other, r):
                return (other, r)
        heappush(active, (r[1], seq, r, side))
    return None


def _parse_number(text: str, item: str) -> int:
    value = int(text.replace("_", ""))
    if value > MAX_ID:
        raise ValueError(f"Invalid range '{item}': the number {value} is too large (maximum is {MAX_ID})")
    return value


class IntRanges:
    """An immutable, compact set of non-negative ids, iterated in the order of its ranges."""

    __slots__ = ("_ranges", "_len", "_starts", "_hash", "_layers")

    def __init__(self, ranges: tuple[Range, ...] = (), _length: int | None = None):
        # Internal: `ranges` must already be normalized and free of shared ids.
        # Use parse / from_ids / from_ranges / single / span from outside.
        self._ranges = ranges
        if _length is None:
            _length = sum((e - s) // k + 1 for s, e, k in ranges)
        self._len = _length
        self._starts: list[int] | bool | None = None
        self._hash: int | None = None
        self._layers: list | None = None

    # ----------------------------------------------------------------------------- constructors

    @classmethod
    def parse(cls, text: str) -> "IntRanges":
        """Parses `N`, `a-b`, `a-b:step` items separated by commas (`1,3,5-8`, `1-1_000:10`).

        Whitespace around items, dashes and colons is ignored; underscores may separate digits.
        Consecutive items that continue each other (`1,2,3`) are merged into one range.

        Raises:
            ValueError: with a message quoting the offending part, for syntax errors, `a > b`, a
                zero step, a number above `MAX_ID`, an empty input or ranges sharing an id.
        """
        if not isinstance(text, str):
            raise ValueError(f"Invalid range {text!r}: expected a string")
        if not text.strip():
            raise ValueError(f"Invalid range '{text}': it is empty")
        item_re = re.compile(_ITEM_PAT)
        out: list[Range] = []
        for raw in text.split(","):
            item = raw.strip()
            if item.isdigit() and item.isascii() and len(item) < 10:
                # Fast path for long lists of single ids (`--array=$(hq job task-ids ...)`).
                start = int(item)
                if out:
                    prev = out[-1]
                    if prev[2] == 1 and prev[1] + 1 == start:
                        out[-1] = (prev[0], start, 1)
                        continue
                out.append((start, start, 1))
                continue
            if not item:
                raise ValueError(f"Invalid range '{text}': it contains an empty item")
            m = item_re.match(item)
            if m is None:
                raise ValueError(
                    f"Invalid range '{item}': expected a number, 'a-b' or 'a-b:step'"
                )
            start = _parse_number(m.group(1), item)
            if m.group(2) is None:
                end, step = start, 1
            else:
                end = _parse_number(m.group(2), item)
                if end < start:
                    raise ValueError(f"Invalid range '{item}': the start is greater than the end")
                step = 1 if m.group(3) is None else _parse_number(m.group(3), item)
                if step <= 0:
                    raise ValueError(f"Invalid range '{item}': the step must be greater than 0")
            r = _normalize(start, end, step)
            if out:
                prev = out[-1]
                if prev[2] == 1 and r[2] == 1 and prev[1] + 1 == r[0]:
                    out[-1] = (prev[0], r[1], 1)
                    continue
            out.append(r)
        ranges = tuple(out)
        if len(ranges) > 1:
            try:
                conflict = _find_conflict(ranges, None, MAX_INTERLEAVE)
            except ValueError:
                raise ValueError(f"Invalid range '{text[:100]}': more than {MAX_INTERLEAVE} "
                                 "stepped ranges interleave") from None
            if conflict is not None:
                a, b = conflict
                raise ValueError(
                    f"Invalid range '{text}': the ranges {_range_text(a)} and {_range_text(b)} overlap"
                )
        return cls(ranges)

    @classmethod
    def from_ids(cls, ids: Iterable[int]) -> "IntRanges":
        """The set of `ids` (duplicates ignored), sorted, with consecutive runs as `a-b` ranges.

        Raises:
            ValueError: an id is negative, above `MAX_ID` or not an int.
        """
        try:
            values = sorted(set(ids))
        except TypeError:
            raise ValueError("ids must be integers") from None
        if not values:
            return _EMPTY
        first, last = values[0], values[-1]
        if type(first) is not int:
            raise ValueError("ids must be integers")
        if first < 0 or last > MAX_ID:
            raise ValueError(f"ids must be between 0 and {MAX_ID}")
        out: list[Range] = []
        start = prev = first
        for v in values:
            if type(v) is not int:
                raise ValueError("ids must be integers")
            if v == prev + 1:
                prev = v
            elif v != prev:
                out.append((start, prev, 1))
                start = prev = v
        out.append((start, prev, 1))
        return cls(tuple(out), len(values))

    @classmethod
    def from_ranges(cls, ranges: Iterable) -> "IntRanges":
        """Builds from `(start, end, step)` triples (lists also accepted), e.g. decoded from the wire.

        Triples are normalized; order is kept. Raises ValueError on anything malformed or on
        ranges sharing an id.
        """
        out: list[Range] = []
        try:
            items = list(ranges)
        except TypeError:
            raise ValueError("Invalid ranges: expected a list of [start, end, step]") from None
        for item in items:
            if not isinstance(item, (list, tuple)) or len(item) != 3 or not all(
                type(x) is int for x in item
            ):
                raise ValueError(f"Invalid range {item!r}: expected [start, end, step] integers")
            start, end, step = item
            if start < 0 or end > MAX_ID:
                raise ValueError(f"Invalid range {item!r}: ids must be between 0 and {MAX_ID}")
            if end < start:
                raise ValueError(f"Invalid range {item!r}: the start is greater than the end")
            if step <= 0:
                raise ValueError(f"Invalid range {item!r}: the step must be greater than 0")
            out.append(_normalize(start, end, step))
        ranges_t = tuple(out)
        if len(ranges_t) > 1 and _find_conflict(ranges_t, None, MAX_INTERLEAVE) is not None:
            raise ValueError("Invalid ranges: two ranges overlap")
        return cls(ranges_t)

    @classmethod
    def single(cls, n: int) -> "IntRanges":
        """The set `{n}`."""
        if type(n) is not int or n < 0 or n > MAX_ID:
            raise ValueError(f"Invalid id {n!r}")
        return cls(((n, n, 1),), 1)

    @classmethod
    def span(cls, start: int, count: int) -> "IntRanges":
        """The ids `start, start+1, ..., start+count-1` (empty when count == 0)."""
        if type(start) is not int or type(count) is not int or start < 0 or count < 0:
            raise ValueError(f"Invalid span start={start!r} count={count!r}")
        if count == 0:
            return _EMPTY
        if start + count - 1 > MAX_ID:
            raise ValueError(f"ids must be between 0 and {MAX_ID}")
        return cls(((start, start + count - 1, 1),), count)

    # ----------------------------------------------------------------------------- queries

    @property
    def ranges(self) -> tuple[Range, ...]:
        """The normalized `(start, end_inclusive, step)` triples, in iteration order."""
        return self._ranges

    @property
    def is_empty(self) -> bool:
        return self._len == 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len != 0

    def __iter__(self) -> Iterator[int]:
        rs = self._ranges
        if len(rs) == 1:
            s, e, k = rs[0]
            return iter(range(s, e + 1, k))
        return chain.from_iterable(range(s, e + 1, k) for s, e, k in rs)

    def _sorted_starts(self) -> list[int] | None:
        """Starts of the ranges when they are sorted and do not interleave (for bisect), else None."""
        starts = self._starts
        if starts is None:
            rs = self._ranges
            ok = all(rs[i][1] < rs[i + 1][0] for i in range(len(rs) - 1))
            starts = [r[0] for r in rs] if ok else False
            self._starts = starts
        return starts or None

    def _get_layers(self) -> list[tuple[list[int], list[int]]]:
        """The ranges split into chains of sorted, non-overlapping [start, end] intervals, as
        `(starts, range indices)` pairs (one chain unless stepped ranges interleave). Cached."""
        layers = self._layers
        if layers is None:
            rs = self._ranges
            if self._sorted_starts() is not None:
                layers = [([r[0] for r in rs], list(range(len(rs))))]
            else:
                layers = []
                ends: list[tuple[int, int]] = []  # heap of (last end, layer number)
                for i in sorted(range(len(rs)), key=lambda i: rs[i][0]):
                    s, e, _k = rs[i]
                    if ends and ends[0][0] < s:
                        _, n = heappop(ends)
                    else:
                        n = len(layers)
                        layers.append(([], []))
                    layers[n][0].append(s)
                    layers[n][1].append(i)
                    heappush(ends, (e, n))
            self._layers = layers
        return layers

    def locate(self, x: int) -> int | None:
        """Index in `ranges` of the range holding `x`, or None. O(layers * log ranges)."""
        rs = self._ranges
        if len(rs) <= 8:
            for i, (s, e, k) in enumerate(rs):
                if s <= x <= e and (x - s) % k == 0:
                    return i
            return None
        for starts, idxs in self._get_layers():
            j = bisect_right(starts, x) - 1
            if j >= 0:
                i = idxs[j]
                s, e, k = rs[i]
                if x <= e and (x - s) % k == 0:
                    return i
        return None

    def __contains__(self, x: object) -> bool:
        if type(x) is not int:
            return False
        return self.locate(x) is not None

    def sorted_ranges(self) -> tuple[Range, ...]:
        """The ranges ordered by start (iterating them in that order is ascending only when no
        stepped ranges interleave; see `iter_sorted`)."""
        if self._sorted_starts() is not None:
            return self._ranges
        return tuple(sorted(self._ranges))

    def iter_sorted(self, after: int = -1) -> Iterator[int]:
        """The ids greater than `after`, ascending, lazily (no expansion): costs
        O(layers * log ranges) to start, then O(log layers) per id."""
        rs = self._ranges
        chains = []
        for starts, idxs in self._get_layers():
            j = max(bisect_right(starts, after) - 1, 0)

            def chain_from(j=j, idxs=idxs):
                for i in idxs[j:]:
                    s, e, k = rs[i]
                    if e <= after:
                        continue
                    if s <= after:
                        s = s + ((after - s) // k + 1) * k
                    yield from range(s, e + 1, k)
            chains.append(chain_from())
        if len(chains) == 1:
            return chains[0]
        return merge(*chains)

    def intersection(self, other: "IntRanges") -> "IntRanges":
        """The ids in both sets, ranges sorted by start. O((r1 + r2) log) when neither side has
        interleaving stepped ranges; never expands the ranges."""
        if not self._ranges or not other._ranges:
            return _EMPTY
        tagged = sorted([(r, 0) for r in self._ranges] + [(r, 1) for r in other._ranges])
        active: list[tuple[int, int, Range, int]] = []
        out: list[Range] = []
        for seq, (r, side) in enumerate(tagged):
            while active and active[0][0] < r[0]:
                heappop(active)
            for _end, _seq, o, o_side in active:
                if o_side != side:
                    m = _meet(o, r)
                    if m is not None:
                        out.append(m)
            heappush(active, (r[1], seq, r, side))
        if not out:
            return _EMPTY
        out.sort()
        merged: list[Range] = [out[0]]
        for r in out[1:]:
            p = merged[-1]
            if p[2] == 1 and r[2] == 1 and p[1] + 1 == r[0]:
                merged[-1] = (p[0], r[1], 1)
            else:
                merged.append(r)
        return IntRanges(tuple(merged))

    def without_members(self, members: Iterable[int]) -> "IntRanges":
        """This set minus `members`, which must all be in it (e.g. the ids found among a
        selection). Ranges that lose an id are split; the others are kept as they are.
        O(len(members) * log ranges)."""
        by_range: dict[int, list[int]] = {}
        n = 0
        for x in members:
            i = self.locate(x)
            if i is None:
                raise ValueError(f"{x} is not in {self!r}")
            by_range.setdefault(i, []).append(x)
            n += 1
        if not by_range:
            return self
        out: list[Range] = []
        for i, r in enumerate(self._ranges):
            points = by_range.get(i)
            if points is None:
                out.append(r)
                continue
            s, e, k = r
            cur = s
            for p in sorted(set(points)):
                if p - k >= cur:
                    out.append(_normalize(cur, p - k, k))
                cur = p + k
            if cur <= e:
                out.append(_normalize(cur, e, k))
        return IntRanges(tuple(out))

    def after(self, x: int) -> "IntRanges":
        """The ids greater than `x`."""
        if x < 0:
            return self
        if x >= MAX_ID:
            return _EMPTY
        return self.intersection(IntRanges(((x + 1, MAX_ID, 1),)))

    def min(self) -> int:
        """The smallest id. Raises ValueError when empty."""
        if not self._ranges:
            raise ValueError("min() of an empty IntRanges")
        return min(r[0] for r in self._ranges)

    def max(self) -> int:
        """The largest id. Raises ValueError when empty."""
        if not self._ranges:
            raise ValueError("max() of an empty IntRanges")
        return max(r[1] for r in self._ranges)

    def to_text(self) -> str:
        """The ranges in order: singles as `a`, runs as `a-b`, stepped ranges as `a-b:s`; `""` if empty.

        `IntRanges.parse(x.to_text()) == x` for every non-empty x.
        """
        return ",".join(map(_range_text, self._ranges))

    def overlaps(self, other: "IntRanges") -> bool:
        """True when the two sets have an id in common."""
        if not self._ranges or not other._ranges:
            return False
        return _find_conflict(self._ranges, other._ranges) is not None

    def union(self, other: "IntRanges") -> "IntRanges":
        """The set union, with ranges sorted by start (adjacent runs merged)."""
        if not other._ranges:
            return self
        if not self._ranges:
            return other
        rs = sorted(self._ranges + other._ranges)
        if all(r[2] == 1 for r in rs):
            out: list[Range] = [rs[0]]
            for s, e, _k in rs[1:]:
                ps, pe, _ = out[-1]
                if s <= pe + 1:
                    if e > pe:
                        out[-1] = (ps, e, 1)
                else:
                    out.append((s, e, 1))
            return IntRanges(tuple(out))
        if _find_conflict(self._ranges, other._ranges) is None:
            out = [rs[0]]
            for r in rs[1:]:
                p = out[-1]
                if p[2] == 1 and r[2] == 1 and p[1] + 1 == r[0]:
                    out[-1] = (p[0], r[1], 1)
                else:
                    out.append(r)
            return IntRanges(tuple(out), self._len + other._len)
        # Overlapping stepped ranges: rare enough to expand.
        return IntRanges.from_ids(chain(self, other))

    # ----------------------------------------------------------------------------- protocol

    def _canonical_runs(self) -> tuple[Range, ...] | None:
        """Sorted, merged step-1 ranges when every range has step 1, else None."""
        rs = self._ranges
        if any(r[2] != 1 for r in rs):
            return None
        rs = sorted(rs)
        out: list[Range] = []
        for r in rs:
            if out and out[-1][1] + 1 == r[0]:
                out[-1] = (out[-1][0], r[1], 1)
            else:
                out.append(r)
        return tuple(out)

    def __eq__(self, other: object) -> bool:
        """Set equality: `parse("1,2,3") == parse("3,1-2") == from_ids([1, 2, 3])`."""
        if not isinstance(other, IntRanges):
            return NotImplemented
        if self._ranges == other._ranges:
            return True
        if self._len != other._len:
            return False
        a = self._canonical_runs()
        b = other._canonical_runs()
        if a is not None and b is not None:
            return a == b
        mine = merge(*(range(s, e + 1, k) for s, e, k in self._ranges))
        theirs = merge(*(range(s, e + 1, k) for s, e, k in other._ranges))
        return all(x == y for x, y in zip(mine, theirs))

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            if self._ranges:
                h = hash((self._len, self.min(), self.max()))
            else:
                h = hash(())
            self._hash = h
        return h

    def __repr__(self) -> str:
        return f"IntRanges('{self.to_text()}')"

    def __reduce__(self):
        return (IntRanges, (self._ranges, self._len))


_EMPTY = IntRanges((), 0)


def compress_ids(ids: Iterable[int]) -> str:
    """`IntRanges.from_ids(ids).to_text()`: e.g. `[2, 7, 9, 20, 21, ..., 30]` -> `"2,7,9,20-30"`."""
    return IntRanges.from_ids(ids).to_text()
