"""Durations as upstream `hq` reads and prints them.

Parsing is "hms-or-human": text containing a letter is a humantime string (`1h 30m`, `500ms`,
`15days 2min 2s`), anything else is `HH:MM:SS`, `MM:SS` or bare seconds (`90`, `1.5`).
Printing follows Rust humantime's `format_duration` (`1h 30m`, `1s 2ms`, `2days 3h`).

Every parsed duration is finite and at most `core.limits.MAX_DURATION` (10 years): a longer one
could not be waited for, so it is refused where it enters instead of failing later on a worker.
"""

from __future__ import annotations

import re

from ..core.limits import MAX_DURATION

__all__ = ["parse_duration", "format_duration"]

_MONTH = 2_630_016  # 30.44 days, as humantime
_YEAR = 31_557_600  # 365.25 days, as humantime

_UNITS: dict[str, float] = {}
for _names, _secs in (
    (("nanos", "nsec", "ns"), 1e-9),
    (("usec", "us", "µs"), 1e-6),
    (("millis", "msec", "ms"), 1e-3),
    (("seconds", "second", "secs", "sec", "s"), 1),
    (("minutes", "minute", "mins", "min", "m"), 60),
    (("hours", "hour", "hrs", "hr", "h"), 3600),
    (("days", "day", "d"), 86400),
    (("weeks", "week", "w"), 7 * 86400),
    (("months", "month", "M"), _MONTH),
    (("years", "year", "y"), _YEAR),
):
    for _n in _names:
        _UNITS[_n] = _secs

# Exact integer factors for the sub-second units, to avoid 0.001 * 3 style float noise.
_NANOS = {"nanos": 1, "nsec": 1, "ns": 1, "usec": 1000, "us": 1000, "µs": 1000,
          "millis": 10**6, "msec": 10**6, "ms": 10**6}

# Patterns are compiled on first use (re caches them): importing this module stays cheap.
_ITEM_PAT = r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-zµ]*)"
_HMS_PART_PAT = r"[0-9]+\Z"
_SECONDS_PAT = r"[0-9]+(?:\.[0-9]+)?\Z"

# More integer digits than this in one number is more than MAX_DURATION in any unit (10 years is
# ~3.2e17 ns); such numbers are refused before int() (which limits digit strings) sees them.
_MAX_DIGITS = 30

_UNIT_HELP = "ns, us, ms, s, m (minutes), h, d, w, M (months), y"


def parse_duration(text: str) -> float:
    """Parses a duration into seconds.

    Accepts `HH:MM:SS`, `MM:SS`, `SS` (seconds may have a fraction: `1.5`, `01:00:02.5`), or a
    humantime sequence of `<number><unit>` items optionally separated by spaces (`1h30m`, `1h 30m`,
    `15days 2min 2s`, `500ms`). Units are case-sensitive (`m` = minutes, `M` = months).

    The result is finite and at most MAX_DURATION (10 years).

    Raises:
        ValueError: `Invalid duration '<text>': <reason>` (also for a duration longer than
            10 years: `... too long (maximum is 10 years)`).
    """
    if not isinstance(text, str):
        raise ValueError(f"Invalid duration {text!r}: expected a string")
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"Invalid duration '{text}': it is empty")
    try:
        if any(c.isalpha() for c in stripped):
            seconds = _parse_human(text, stripped)
        else:
            seconds = _parse_hms(text, stripped)
    except OverflowError:  # digits beyond a float (the sum of parts)
        seconds = float("inf")
    if not seconds <= MAX_DURATION:  # also inf (and NaN, which the grammar cannot produce)
        raise ValueError(f"Invalid duration '{text}': too long (maximum is 10 years)")
    return seconds


def _parse_hms(text: str, stripped: str) -> float:
    parts = [p.strip() for p in stripped.split(":")]
    if len(parts) > 3 or not re.match(_SECONDS_PAT, parts[-1]) or not all(
        re.match(_HMS_PART_PAT, p) for p in parts[:-1]
    ):
        raise ValueError(
            f"Invalid duration '{text}': expected HH:MM:SS, MM:SS, seconds or a duration "
            f"such as 1h 30m"
        )
    if any(len(p.split(".", 1)[0].lstrip("0")) > _MAX_DIGITS for p in parts):
        raise OverflowError  # far beyond MAX_DURATION whatever the digits
    total = 0
    for p in parts[:-1]:
        total = total * 60 + int(p)
    return total * 60 + float(parts[-1])


def _parse_human(text: str, stripped: str) -> float:
    item_re = re.compile(_ITEM_PAT)
    pos = 0
    n = len(stripped)
    whole_secs = 0.0
    nanos = 0
    while pos < n:
        m = item_re.match(stripped, pos)
        if m is None:
            rest = stripped[pos:].strip()
            raise ValueError(f"Invalid duration '{text}': expected a number at '{rest}'")
        number, unit = m.group(1), m.group(2)
        if not unit:
            raise ValueError(
                f"Invalid duration '{text}': time unit needed after {number}, "
                f"for example {number}s or {number}m"
            )
        if unit not in _UNITS:
            raise ValueError(
                f"Invalid duration '{text}': unknown time unit '{unit}', "
                f"supported units: {_UNIT_HELP}"
            )
        if len(number.split(".", 1)[0].lstrip("0")) > _MAX_DIGITS:
            raise OverflowError  # far beyond MAX_DURATION, even in nanoseconds
        factor = _NANOS.get(unit)
        if factor is not None and "." not in number:
            nanos += int(number) * factor
        else:
            whole_secs += float(number) * _UNITS[unit]
        pos = m.end()
        while pos < n and stripped[pos].isspace():
            pos += 1
    return whole_secs + nanos / 1e9


def _item(parts: list[str], value: int, unit: str) -> None:
    if value:
        parts.append(f"{value}{unit}")


def _item_plural(parts: list[str], value: int, unit: str) -> None:
    if value:
        parts.append(f"{value}{unit}s" if value > 1 else f"{value}{unit}")


def format_duration(seconds: float) -> str:
    """Formats seconds like Rust humantime: `0s`, `500ms`, `1s 2ms`, `1h 30m`, `1day 1h 1m 1s`.

    Components (years, months, days, h, m, s, ms, us, ns) are separated by one space, zero
    components are left out. Rounds to whole nanoseconds; negative or NaN input prints `0s`
    (a clock step must not crash a printer) and infinity prints `inf`.
    """
    try:
        total = round(seconds * 1_000_000_000)
    except (OverflowError, ValueError):  # inf / nan
        return "inf" if seconds > 0 else "0s"
    if total <= 0:
        return "0s"
    secs, nanos = divmod(total, 1_000_000_000)
    years, ydays = divmod(secs, _YEAR)
    months, mdays = divmod(ydays, _MONTH)
    days, day_secs = divmod(mdays, 86400)
    parts: list[str] = []
    _item_plural(parts, years, "year")
    _item_plural(parts, months, "month")
    _item_plural(parts, days, "day")
    _item(parts, day_secs // 3600, "h")
    _item(parts, day_secs % 3600 // 60, "m")
    _item(parts, day_secs % 60, "s")
    _item(parts, nanos // 1_000_000, "ms")
    _item(parts, nanos // 1000 % 1000, "us")
    _item(parts, nanos % 1000, "ns")
    return " ".join(parts)
