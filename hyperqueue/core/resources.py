"""Resource pools of workers and resource requests of tasks: data types and parsing (no allocator).

Amounts are fixed-point integers of `UNIT` (1/10000): `2` CPUs = 20000 units, `0.5` = 5000.

Worker pools (`ResourceDef`), by kind:
* "range"  -- one group of numeric ids `start..end` (`--cpus 4` is ids 0..3; `range(2-5)`);
* "list"   -- one group of labels (`[a,b,c]`);
* "groups" -- several groups of labels (`2x4`, `[[0,1],[2,3]]`), e.g. NUMA sockets;
* "sum"    -- a divisible amount (`sum(1024)`, `sum(0.5)`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "UNIT",
    "ALL",
    "POLICIES",
    "KINDS",
    "CPUS",
    "parse_amount",
    "format_amount",
    "validate_resource_name",
    "ResourceDef",
    "parse_resource_def",
    "parse_resource_arg",
    "format_resources",
    "human_mem_amount",
    "ResourceRequestEntry",
    "parse_resource_request",
    "parse_request_arg",
    "ResourceRequest",
]

UNIT = 10_000
#: `amount` of a request entry asking for the whole pool (`all`).
ALL = -1
POLICIES = ("compact", "compact!", "tight", "tight!", "scatter")
KINDS = ("list", "range", "groups", "sum")
CPUS = "cpus"
#: Largest numeric index of a range pool (indices are u32 upstream).
MAX_INDEX = 2**32 - 1
#: Largest amount in units (sum sizes, requested amounts, weights): u64 upstream.
MAX_AMOUNT = 2**63 - 1
#: Entries/labels/groups accepted from the wire for one request or pool.
_MAX_WIRE_ITEMS = 1 << 20
_MAX_WIRE_NAME = 4096


def _wire_name(obj, what: str) -> str:
    name = obj
    if not isinstance(name, str) or len(name) > _MAX_WIRE_NAME:
        raise ValueError(f"Invalid {what}: the name must be a string of at most "
                         f"{_MAX_WIRE_NAME} characters")
    return name


def _wire_amount(v, what: str) -> int:
    if type(v) is not int or not 0 < v <= MAX_AMOUNT:
        raise ValueError(f"Invalid {what}: expected an integer between 1 and {MAX_AMOUNT}")
    return v

# Patterns are compiled on first use (re caches them): importing this module stays cheap.
_AMOUNT_PAT = r"([0-9][0-9_]*)?(?:\.([0-9]+))?\Z"
_INT_PAT = r"[0-9][0-9_]*\Z"
_GROUPS_PAT = r"([0-9][0-9_]*)\s*x\s*([0-9][0-9_]*)\Z"
_RANGE_PAT = r"range\s*\(\s*([0-9][0-9_]*)\s*-\s*([0-9][0-9_]*)\s*\)\Z"
_SUM_PAT = r"sum\s*\(\s*(.*?)\s*\)\Z"
_NEEDS_QUOTES = frozenset('[]," \t')


# --------------------------------------------------------------------------------- amounts


def parse_amount(text: str) -> int:
    """Parses a positive amount with at most 4 decimal places into units (`"0.5"` -> 5000).

    Underscores may separate digits (`1_000`).

    Raises:
        ValueError: `Invalid amount '<text>': ...` for syntax, zero/negative, too many decimals
            or more than MAX_AMOUNT units.
    """
    if not isinstance(text, str):
        raise ValueError(f"Invalid amount {text!r}: expected a number")
    s = text.strip()
    if s.startswith("-"):
        raise ValueError(f"Invalid amount '{text}': it must be greater than 0")
    m = re.match(_AMOUNT_PAT, s)
    if m is None or (m.group(1) is None and m.group(2) is None):
        raise ValueError(f"Invalid amount '{text}': expected a number such as 2 or 0.5")
    whole = int(m.group(1).replace("_", "")) if m.group(1) else 0
    frac = m.group(2) or ""
    if len(frac) > 4:
        frac = frac.rstrip("0")
        if len(frac) > 4:
            raise ValueError(f"Invalid amount '{text}': at most 4 decimal places are allowed")
    units = whole * UNIT + (int(frac.ljust(4, "0")) if frac else 0)
    if units <= 0:
        raise ValueError(f"Invalid amount '{text}': it must be greater than 0")
    if units > MAX_AMOUNT:
        raise ValueError(f"Invalid amount '{text}': it is too large")
    return units


def format_amount(units: int) -> str:
    """Units as the shortest decimal text: 20000 -> `2`, 5000 -> `0.5`, 12500 -> `1.25`."""
    whole, frac = divmod(units, UNIT)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:04d}".rstrip("0")


def _check_labels(name: str, labels: list) -> None:
    for label in labels:
        if isinstance(label, str) and len(label) > _MAX_WIRE_NAME:
            raise ValueError(f"Invalid resource definition of '{name}': a label is longer than "
                             f"{_MAX_WIRE_NAME} characters")


def validate_resource_name(name: str) -> str:
    """Returns `name` if it is an ASCII letter followed by letters, digits or `/`.

    Raises:
        ValueError: `Invalid resource name '<name>': ...`.
    """
    if not (
        isinstance(name, str)
        and name.isascii()
        and name[:1].isalpha()
        and all(c.isalnum() or c == "/" for c in name)
    ):
        raise ValueError(
            f"Invalid resource name '{name}': it must start with an ASCII letter and contain "
            f"only letters, digits and '/'"
        )
    return name


def _split_assignment(text: str, what: str, example: str) -> tuple[str, str]:
    if not isinstance(text, str) or "=" not in text:
        raise ValueError(f"Invalid {what} '{text}': expected NAME=VALUE, for example {example}")
    name, _, value = text.partition("=")
    return name.strip(), value


# --------------------------------------------------------------------------------- pools


def _quote(label: str) -> str:
    return f'"{label}"' if (not label or any(c in _NEEDS_QUOTES for c in label)) else label


def _group_sizes_text(sizes: list[int]) -> str:
    """`[2,2,2,2]` -> `4x2`; `[3,2,3]` -> `1x2 2x3` (sizes ascending); `[5]` -> `5`."""
    if len(sizes) == 1:
        return str(sizes[0])
    counts: dict[int, int] = {}
    for s in sorted(sizes):
        counts[s] = counts.get(s, 0) + 1
    return " ".join(f"{n}x{size}" for size, n in counts.items())


class ResourceDef:
    """One resource pool of a worker.

    Attributes:
        name: resource name (`cpus`, `mem`, `gpus/nvidia`, ...).
        kind: "list", "range", "groups" or "sum".
        groups: the index labels, as a tuple of groups (one group for "list" and "range", empty
            for "sum"). Computed lazily for "range" pools, which store only `start`/`end`.
        size: the amount of a "sum" pool in units (0 for indexed kinds).
        start, end: the inclusive id bounds of a "range" pool (0 / -1 otherwise).
    """

    __slots__ = ("name", "kind", "size", "start", "end", "_groups")

    def __init__(
        self,
        name: str,
        kind: str,
        groups: Iterable[Iterable[str]] | None = None,
        size: int = 0,
        *,
        start: int = 0,
        end: int = -1,
    ):
        """Validates and builds a pool; prefer `parse_resource_def` / `ResourceDef.range_of`.

        Raises:
            ValueError: bad name or kind, empty or duplicate labels, a non-positive sum,
                `cpus` as a sum.
        """
        validate_resource_name(name)
        if kind not in KINDS:
            raise ValueError(f"Invalid resource kind {kind!r}")
        self.name = name
        self.kind = kind
        self.size = 0
        self.start = 0
        self.end = -1
        self._groups: tuple[tuple[str, ...], ...] | None = None
        if kind == "sum":
            if name == CPUS:
                raise ValueError("cpus cannot be defined as a sum resource")
            if type(size) is not int or size <= 0:
                raise ValueError(f"Invalid resource '{name}': the size of a sum must be greater than 0")
            self.size = size
            self._groups = ()
        elif kind == "range":
            if type(start) is not int or type(end) is not int or start < 0 or end > MAX_INDEX:
                raise ValueError(f"Invalid resource '{name}': range bounds must be between 0 and {MAX_INDEX}")
            if start > end:
                raise ValueError(f"Invalid resource '{name}': range({start}-{end}) is empty")
            self.start = start
            self.end = end
        else:
            if groups is None:
                raise ValueError(f"Invalid resource '{name}': no labels given")
            gs = tuple(tuple(g) for g in groups)
            if not gs:
                raise ValueError(f"Invalid resource '{name}': it has no groups")
            if kind == "list" and len(gs) != 1:
                raise ValueError(f"Invalid resource '{name}': a list has exactly one group")
            seen: set[str] = set()
            for g in gs:
                if not g:
                    raise ValueError(f"Invalid resource '{name}': a group is empty")
                for label in g:
                    if not isinstance(label, str) or not label:
                        raise ValueError(f"Invalid resource '{name}': labels must be non-empty strings")
                    if label in seen:
                        raise ValueError(f"Invalid resource '{name}': duplicate label '{label}'")
                    seen.add(label)
            self._groups = gs

    @classmethod
    def range_of(cls, name: str, start: int, end: int) -> "ResourceDef":
        """A "range" pool of ids `start..end` inclusive."""
        return cls(name, "range", start=start, end=end)

    @property
    def groups(self) -> tuple[tuple[str, ...], ...]:
        g = self._groups
        if g is None:
            g = (tuple(str(i) for i in range(self.start, self.end + 1)),)
            self._groups = g
        return g

    @property
    def count(self) -> int:
        """Number of indices (0 for a sum pool)."""
        if self.kind == "range":
            return self.end - self.start + 1
        if self.kind == "sum":
            return 0
        return sum(len(g) for g in self._groups)  # type: ignore[union-attr]

    @property
    def amount(self) -> int:
        """Total capacity in units: indices * UNIT, or the size of a sum pool."""
        return self.size if self.kind == "sum" else self.count * UNIT

    @property
    def is_indexed(self) -> bool:
        return self.kind != "sum"

    def describe(self) -> str:
        """Short text for the `worker list` Resources column.

        range -> the count (`8`); list -> the labels (`[a,b,c]`, quoted where needed);
        groups -> `4x2` (4 groups of 2), `1x2 2x3` when sizes differ, `5` for one group;
        sum -> the amount (`10001000`, `0.5`).
        """
        kind = self.kind
        if kind == "sum":
            return format_amount(self.size)
        if kind == "range":
            return str(self.end - self.start + 1)
        if kind == "list":
            return "[" + ",".join(_quote(x) for x in self._groups[0]) + "]"  # type: ignore[index]
        return _group_sizes_text([len(g) for g in self._groups])  # type: ignore[union-attr]

    def summary(self) -> str:
        """Upstream's short text of a pool (`worker list` Resources column, `worker info`
        Resources row, `worker hwdetect` Summary): the number of indices of a list or range,
        `4x2` / `2x2 1x3` / `5` for groups, the amount of a sum (`mem` in MiB or GiB)."""
        kind = self.kind
        if kind == "sum":
            if self.name == "mem":
                return human_mem_amount(self.size / UNIT)
            return format_amount(self.size)
        if kind == "range" or kind == "list":
            return str(self.count)
        return _group_sizes_text([len(g) for g in self._groups])  # type: ignore[union-attr]

    def kind_text(self) -> str:
        """Upstream's kind of a pool (`worker hwdetect` Full Description): `[a,b,c]` (a list,
        no spaces), `[[0,1],[2,3]]` (groups), `[x]` (a range of one id), `range(a-b)`,
        `sum(<amount>)`."""
        kind = self.kind
        if kind == "sum":
            return f"sum({format_amount(self.size)})"
        if kind == "range":
            return f"[{self.start}]" if self.start == self.end else f"range({self.start}-{self.end})"
        if kind == "list":
            return "[" + ",".join(self._groups[0]) + "]"  # type: ignore[index]
        return "[" + ",".join("[" + ",".join(g) + "]"
                              for g in self._groups) + "]"  # type: ignore[union-attr]

    def describe_full(self) -> str:
        """One readable line with every index, for `worker info` and `worker hwdetect`.

        `cpus: 8 range(0-7)`, `gpus: 2 [a, b]`, `cpus: 2x4 [0, 1, 2, 3], [4, 5, 6, 7]`,
        `mem: sum(1024)`.
        """
        kind = self.kind
        if kind == "sum":
            return f"{self.name}: sum({format_amount(self.size)})"
        if kind == "range":
            return f"{self.name}: {self.count} range({self.start}-{self.end})"
        if kind == "list":
            labels = ", ".join(_quote(x) for x in self._groups[0])  # type: ignore[index]
            return f"{self.name}: {self.count} [{labels}]"
        groups = ", ".join(
            "[" + ", ".join(_quote(x) for x in g) + "]" for g in self._groups  # type: ignore[union-attr]
        )
        return f"{self.name}: {self.describe()} {groups}"

    def to_text(self) -> str:
        """A definition that `parse_resource_def` reads back to an equal pool."""
        kind = self.kind
        if kind == "sum":
            return f"sum({format_amount(self.size)})"
        if kind == "range":
            return str(self.end + 1) if self.start == 0 else f"range({self.start}-{self.end})"
        if kind == "list":
            return "[" + ",".join(_quote(x) for x in self._groups[0]) + "]"  # type: ignore[index]
        return "[" + ",".join(
            "[" + ",".join(_quote(x) for x in g) + "]" for g in self._groups  # type: ignore[union-attr]
        ) + "]"

    def to_wire(self) -> dict:
        """Plain data: `{"name", "kind", ...}` with `start`/`end` (range), `labels` (list),
        `groups` (groups) or `size` in units (sum)."""
        kind = self.kind
        if kind == "sum":
            return {"name": self.name, "kind": kind, "size": self.size}
        if kind == "range":
            return {"name": self.name, "kind": kind, "start": self.start, "end": self.end}
        if kind == "list":
            return {"name": self.name, "kind": kind, "labels": list(self._groups[0])}  # type: ignore[index]
        return {"name": self.name, "kind": kind, "groups": [list(g) for g in self._groups]}  # type: ignore[union-attr]

    @classmethod
    def from_wire(cls, obj) -> "ResourceDef":
        """Inverse of `to_wire`. Raises ValueError on anything malformed."""
        if not isinstance(obj, dict):
            raise ValueError("Invalid resource definition: expected a map")
        name = obj.get("name")
        kind = obj.get("kind")
        _wire_name(name, "resource definition")
        if not isinstance(kind, str) or kind not in KINDS:
            raise ValueError("Invalid resource definition: bad name or kind")
        expected = {"sum": {"size"}, "range": {"start", "end"}, "list": {"labels"},
                    "groups": {"groups"}}[kind] | {"name", "kind"}
        if set(obj) != expected:
            raise ValueError(f"Invalid resource definition of '{name}': unexpected fields")
        if kind == "sum":
            return cls(name, "sum", size=_wire_amount(obj["size"], f"size of '{name}'"))
        if kind == "range":
            return cls(name, "range", start=obj["start"], end=obj["end"])
        if kind == "list":
            labels = obj["labels"]
            if not isinstance(labels, list) or len(labels) > _MAX_WIRE_ITEMS:
                raise ValueError(f"Invalid resource definition of '{name}': labels must be a list")
            _check_labels(name, labels)
            return cls(name, "list", (labels,))
        groups = obj["groups"]
        if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups) or (
                sum(len(g) for g in groups) > _MAX_WIRE_ITEMS):
            raise ValueError(f"Invalid resource definition of '{name}': groups must be lists")
        for g in groups:
            _check_labels(name, g)
        return cls(name, "groups", groups)

    def _key(self):
        return (self.name, self.kind, self.size, self.start, self.end,
                self._groups if self.kind in ("list", "groups") else None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResourceDef):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"ResourceDef({self.name}={self.to_text()})"


def _parse_number(text: str, what: str, full: str) -> int:
    value = int(text.replace("_", ""))
    if value > MAX_INDEX:
        raise ValueError(f"Invalid resource definition '{full}': {what} {value} is too large")
    return value


def _parse_lists(text: str) -> tuple[bool, list[list[str]]]:
    """Parses `[a,b]` or `[[a,b],[c]]`. Returns `(is_groups, groups)`."""
    n = len(text)
    pos = 0

    def fail(msg: str):
        raise ValueError(f"Invalid resource definition '{text}': {msg}")

    def skip_ws():
        nonlocal pos
        while pos < n and text[pos].isspace():
            pos += 1

    def parse_labels() -> list[str]:
        # At '['; returns after the matching ']'.
        nonlocal pos
        pos += 1
        labels: list[str] = []
        skip_ws()
        if pos < n and text[pos] == "]":
            fail("a list of labels is empty")
        while True:
            skip_ws()
            if pos >= n:
                fail("missing ']'")
            c = text[pos]
            if c == '"':
                close = text.find('"', pos + 1)
                if close < 0:
                    fail("unterminated quote")
                label = text[pos + 1 : close]
                pos = close + 1
            else:
                begin = pos
                while pos < n and text[pos] not in ',[]"':
                    pos += 1
                label = text[begin:pos].strip()
                if pos < n and text[pos] in '["':
                    fail(f"unexpected '{text[pos]}' in a label")
            if not label:
                fail("empty label")
            labels.append(label)
            skip_ws()
            if pos >= n:
                fail("missing ']'")
            if text[pos] == "]":
                pos += 1
                return labels
            if text[pos] != ",":
                fail(f"expected ',' or ']' after label '{label}'")
            pos += 1

    skip_ws()
    if pos >= n or text[pos] != "[":
        fail("expected '['")
    look = pos + 1
    while look < n and text[look].isspace():
        look += 1
    if look < n and text[look] == "[":
        pos = look
        groups: list[list[str]] = []
        while True:
            skip_ws()
            if pos >= n or text[pos] != "[":
                fail("expected '[' to start a group")
            groups.append(parse_labels())
            skip_ws()
            if pos >= n:
                fail("missing ']'")
            if text[pos] == "]":
                pos += 1
                break
            if text[pos] != ",":
                fail("expected ',' or ']' after a group")
            pos += 1
        is_groups = True
    else:
        groups = [parse_labels()]
        is_groups = False
    skip_ws()
    if pos != n:
        fail(f"unexpected text after the list: '{text[pos:]}'")
    return is_groups, groups


def parse_resource_def(name: str, text: str) -> ResourceDef:
    """Parses the definition of a worker pool (`--cpus`, the value of `--resource name=...`).

    Syntax: `N` (range 0..N-1), `NxM` (N groups of M consecutive ids), `[a,b,c]` (labels, `"..."`
    quotes a label containing `[],` or spaces), `[[0,1],[2,3]]` (groups), `range(a-b)`, `sum(X)`
    (X may have up to 4 decimals). Underscores may separate digits.

    Raises:
        ValueError: with a message naming the problem (bad name, syntax, empty or duplicate labels,
            `cpus cannot be defined as a sum resource`).
    """
    validate_resource_name(name)
    if not isinstance(text, str):
        raise ValueError(f"Invalid resource definition {text!r}")
    s = text.strip()
    if not s:
        raise ValueError(f"Invalid resource definition of '{name}': it is empty")
    if re.match(_INT_PAT, s):
        n = _parse_number(s, "the count", text)
        if n == 0:
            raise ValueError(f"Invalid resource definition '{text}': the count must be greater than 0")
        return ResourceDef(name, "range", start=0, end=n - 1)
    m = re.match(_GROUPS_PAT, s)
    if m:
        n_groups = _parse_number(m.group(1), "the group count", text)
        size = _parse_number(m.group(2), "the group size", text)
        if n_groups == 0 or size == 0:
            raise ValueError(
                f"Invalid resource definition '{text}': the group count and size must be greater than 0"
            )
        if n_groups * size > MAX_INDEX:
            raise ValueError(f"Invalid resource definition '{text}': too many indices")
        return ResourceDef(
            name,
            "groups",
            [[str(g * size + i) for i in range(size)] for g in range(n_groups)],
        )
    if s.startswith("["):
        is_groups, groups = _parse_lists(s)
        return ResourceDef(name, "groups" if is_groups else "list", groups)
    m = re.match(_RANGE_PAT, s)
    if m:
        start = _parse_number(m.group(1), "the start", text)
        end = _parse_number(m.group(2), "the end", text)
        if start > end:
            raise ValueError(
                f"Invalid resource definition '{text}': the start is greater than the end"
            )
        return ResourceDef(name, "range", start=start, end=end)
    m = re.match(_SUM_PAT, s)
    if m:
        if name == CPUS:
            raise ValueError("cpus cannot be defined as a sum resource")
        return ResourceDef(name, "sum", size=parse_amount(m.group(1)))
    raise ValueError(
        f"Invalid resource definition '{text}': expected N, NxM, [a,b,...], [[a,b],[c,d]], "
        f"range(a-b) or sum(X)"
    )


def parse_resource_arg(text: str) -> ResourceDef:
    """Parses `name=definition` (the value of `worker start --resource`)."""
    name, value = _split_assignment(text, "resource definition", "gpus=[0,1] or mem=sum(1024)")
    return parse_resource_def(name, value)


def format_resources(defs: Iterable[ResourceDef], coupling=(), sep: str = "; ",
                     name_sep: str = " ") -> str:
    """`cpus 4x2; fairy 10001000; shark 4; small 0.5` -- name and `summary()` of each pool, in
    order; a pool named in `coupling` gets ` [coupled]`. (`worker info` puts one
    `name: summary` per line: `sep="\n", name_sep=": "`.)"""
    coupled = {c[0] for c in coupling} | {c[2] for c in coupling}
    return sep.join(f"{d.name}{name_sep}{d.summary()}"
                    f"{' [coupled]' if d.name in coupled else ''}" for d in defs)


def human_mem_amount(mib: float) -> str:
    """Upstream's memory amount: `100.00 MiB` below 512 MiB, else `23.54 GiB`."""
    if mib < 512:
        return f"{mib:.2f} MiB"
    return f"{mib / 1024:.2f} GiB"


# --------------------------------------------------------------------------------- requests


class ResourceRequestEntry:
    """`amount` units (or `ALL`) of resource `name`, allocated with `policy`."""

    __slots__ = ("name", "amount", "policy")

    def __init__(self, name: str, amount: int, policy: str = "compact"):
        validate_resource_name(name)
        if type(amount) is not int or (amount <= 0 and amount != ALL):
            raise ValueError(f"Invalid amount of '{name}': it must be greater than 0")
        if policy not in POLICIES:
            raise ValueError(f"Invalid policy '{policy}', expected one of: {', '.join(POLICIES)}")
        self.name = name
        self.amount = amount
        self.policy = policy

    @property
    def is_all(self) -> bool:
        return self.amount == ALL

    def to_text(self) -> str:
        """`all`, or `<amount> <policy>` (`1 compact`, `0.5 tight!`); the HQ_RESOURCE_REQUEST_* text."""
        if self.amount == ALL:
            return "all"
        return f"{format_amount(self.amount)} {self.policy}"

    def to_wire(self) -> list:
        """`[name, amount_units_or_-1, policy]`."""
        return [self.name, self.amount, self.policy]

    @classmethod
    def from_wire(cls, obj) -> "ResourceRequestEntry":
        if not isinstance(obj, (list, tuple)) or len(obj) != 3:
            raise ValueError("Invalid resource request entry: expected [name, amount, policy]")
        name, amount, policy = obj
        _wire_name(name, "resource request entry")
        if not isinstance(policy, str) or len(policy) > 16:
            raise ValueError("Invalid resource request entry: name and policy must be strings")
        if amount != ALL or type(amount) is not int:
            _wire_amount(amount, f"amount of '{name}'")
        return cls(name, amount, policy)

    def _key(self):
        return (self.name, self.amount, self.policy)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResourceRequestEntry):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"ResourceRequestEntry({self.name}={self.to_text()})"


def parse_resource_request(name: str, text: str) -> ResourceRequestEntry:
    """Parses `<amount> [policy]` (policy defaults to `compact`) or `all`.

    Raises:
        ValueError: bad name, amount (zero, negative, more than 4 decimals) or policy
            (`Invalid policy 'foo', expected one of: compact, compact!, tight, tight!, scatter`).
    """
    validate_resource_name(name)
    if not isinstance(text, str):
        raise ValueError(f"Invalid resource request {text!r}")
    parts = text.split()
    if not parts:
        raise ValueError(f"Invalid resource request of '{name}': it is empty")
    if parts[0] == "all":
        if len(parts) != 1:
            raise ValueError(f"Invalid resource request '{text}': 'all' takes no policy")
        return ResourceRequestEntry(name, ALL, "compact")
    if len(parts) > 2:
        raise ValueError(f"Invalid resource request '{text}': expected '<amount> [policy]' or 'all'")
    amount = parse_amount(parts[0])
    policy = parts[1] if len(parts) == 2 else "compact"
    if policy not in POLICIES:
        raise ValueError(f"Invalid policy '{policy}', expected one of: {', '.join(POLICIES)}")
    return ResourceRequestEntry(name, amount, policy)


def parse_request_arg(text: str) -> ResourceRequestEntry:
    """Parses `name=<amount> [policy]` or `name=all` (the value of `submit --resource`)."""
    name, value = _split_assignment(text, "resource request", "gpus=2 or mem=0.5")
    return parse_resource_request(name, value)


class ResourceRequest:
    """Everything a task asks for: resource entries (sorted by name), nodes, min time and weight.

    Hashable and comparable by value: the server groups tasks with equal requests.
    """

    __slots__ = ("entries", "n_nodes", "min_time", "weight", "_hash")

    def __init__(
        self,
        entries: Iterable[ResourceRequestEntry] = (),
        n_nodes: int = 0,
        min_time: float = 0.0,
        weight: int = UNIT,
    ):
        """Raises ValueError for a resource requested twice, negative nodes/min_time or weight <= 0."""
        es = tuple(entries)
        for e in es:
            if not isinstance(e, ResourceRequestEntry):
                raise ValueError(f"Invalid resource request entry {e!r}")
        es = tuple(sorted(es, key=lambda e: e.name))
        for a, b in zip(es, es[1:]):
            if a.name == b.name:
                raise ValueError(f"Resource '{a.name}' is requested more than once")
        if type(n_nodes) is not int or n_nodes < 0:
            raise ValueError("The number of nodes must be a non-negative integer")
        if isinstance(min_time, bool) or not isinstance(min_time, (int, float)) or not min_time >= 0:
            raise ValueError("The minimal time must be a non-negative number of seconds")
        if type(weight) is not int or weight <= 0:
            raise ValueError("The weight must be greater than 0")
        self.entries = es
        self.n_nodes = n_nodes
        self.min_time = float(min_time)
        self.weight = weight
        self._hash: int | None = None

    @classmethod
    def default(cls) -> "ResourceRequest":
        """`cpus = 1 compact`, the request of a task that asks for nothing."""
        return _DEFAULT

    @property
    def cpus(self) -> ResourceRequestEntry | None:
        """The `cpus` entry, or None."""
        for e in self.entries:
            if e.name == CPUS:
                return e
        return None

    def get(self, name: str) -> ResourceRequestEntry | None:
        """The entry for resource `name`, or None."""
        for e in self.entries:
            if e.name == name:
                return e
        return None

    def describe(self) -> str:
        """Lines `name: <to_text>` per entry (`cpus: 1 compact`), plus `nodes: N` for multi-node."""
        lines = [f"{e.name}: {e.to_text()}" for e in self.entries]
        if self.n_nodes:
            lines.insert(0, f"nodes: {self.n_nodes}")
        return "\n".join(lines)

    def to_wire(self) -> dict:
        """`{"entries": [[name, amount, policy], ...], "n_nodes", "min_time", "weight"}`."""
        return {
            "entries": [e.to_wire() for e in self.entries],
            "n_nodes": self.n_nodes,
            "min_time": self.min_time,
            "weight": self.weight,
        }

    @classmethod
    def from_wire(cls, obj) -> "ResourceRequest":
        """Inverse of `to_wire`. Raises ValueError on anything malformed."""
        if not isinstance(obj, dict) or set(obj) != {"entries", "n_nodes", "min_time", "weight"}:
            raise ValueError("Invalid resource request: expected {entries, n_nodes, min_time, weight}")
        entries = obj["entries"]
        if not isinstance(entries, list) or len(entries) > 1024:
            raise ValueError("Invalid resource request: entries must be a list")
        n_nodes, min_time, weight = obj["n_nodes"], obj["min_time"], obj["weight"]
        if type(n_nodes) is not int or not 0 <= n_nodes <= MAX_INDEX:
            raise ValueError(f"Invalid resource request: nodes must be between 0 and {MAX_INDEX}")
        from .limits import check_duration

        check_duration(min_time, "minimal time", allow_zero=True)
        _wire_amount(weight, "resource request weight")
        return cls(
            [ResourceRequestEntry.from_wire(e) for e in entries],
            obj["n_nodes"],
            obj["min_time"],
            obj["weight"],
        )

    def _key(self):
        return (self.entries, self.n_nodes, self.min_time, self.weight)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResourceRequest):
            return NotImplemented
        return self is other or self._key() == other._key()

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            h = self._hash = hash(self._key())
        return h

    def __repr__(self) -> str:
        extra = ""
        if self.n_nodes:
            extra += f", n_nodes={self.n_nodes}"
        if self.min_time:
            extra += f", min_time={self.min_time}"
        if self.weight != UNIT:
            extra += f", weight={format_amount(self.weight)}"
        entries = ", ".join(f"{e.name}={e.to_text()}" for e in self.entries)
        return f"ResourceRequest([{entries}]{extra})"


_DEFAULT = ResourceRequest((ResourceRequestEntry(CPUS, UNIT, "compact"),))


# ------------------------------------------------------------------------------- coupling

DEFAULT_COUPLING_WEIGHT = 256


def parse_coupling(text: str, defs) -> list[list]:
    """`--coupling`: which groups of different resources work well together (NUMA affinity).

    `cpus,gpus/nvidia` couples group i of each named resource with group i of the others
    (weight 256); `cpus[0]:gpus/nvidia[1]=512,...` names pairs of groups (weight optional).
    Returns `[[resource, group, resource, group, weight], ...]`.

    Raises:
        ValueError: unknown resource or group, bad syntax or weight.
    """
    groups = {d.name: len(d.groups) for d in defs if d.is_indexed}
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise ValueError("Invalid coupling: it is empty")
    out: list[list] = []
    if all("[" not in x and ":" not in x for x in items):
        if len(items) < 2:
            raise ValueError("Invalid coupling: name at least two resources")
        for name in items:
            if name not in groups:
                raise ValueError(f"Invalid coupling: unknown indexed resource '{name}'")
        n = min(groups[x] for x in items)
        for i, a in enumerate(items):
            for b in items[i + 1:]:
                out.extend([a, g, b, g, DEFAULT_COUPLING_WEIGHT] for g in range(n))
        return out
    pattern = re.compile(r"([A-Za-z][A-Za-z0-9/]*)\[(\d+)\]:([A-Za-z][A-Za-z0-9/]*)\[(\d+)\]"
                         r"(?:=(\d+))?\Z")
    for item in items:
        m = pattern.match(item)
        if m is None:
            raise ValueError(f"Invalid coupling item '{item}': expected "
                             "'res[group]:res2[group]' or 'res[group]:res2[group]=weight'")
        a, ga, b, gb, w = m.group(1), int(m.group(2)), m.group(3), int(m.group(4)), m.group(5)
        for name, g in ((a, ga), (b, gb)):
            if name not in groups:
                raise ValueError(f"Invalid coupling: unknown indexed resource '{name}'")
            if g >= groups[name]:
                raise ValueError(f"Invalid coupling: resource '{name}' has no group {g}")
        if a == b:
            raise ValueError(f"Invalid coupling item '{item}': couple two different resources")
        weight = DEFAULT_COUPLING_WEIGHT if w is None else int(w)
        if not 0 < weight < 65536:
            raise ValueError(f"Invalid coupling weight in '{item}': expected 1 to 65535")
        out.append([a, ga, b, gb, weight])
    return out
