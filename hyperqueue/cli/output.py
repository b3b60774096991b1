"""Printers for the three output modes (cli / json / quiet) behind one small interface."""

from __future__ import annotations

import sys

from ..common.durations import format_duration
from ..common.table import horizontal_table, vertical_table


class Output:
    def __init__(self, mode: str = "cli", colors: str = "auto"):
        self.mode = mode
        self.colors = colors

    @property
    def is_json(self) -> bool:
        return self.mode == "json"

    @property
    def is_quiet(self) -> bool:
        return self.mode == "quiet"

    def json(self, value) -> None:
        import json

        sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def line(self, text: str = "") -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def vertical(self, rows) -> None:
        self.line(vertical_table([(k, "" if v is None else str(v)) for k, v in rows]))

    def horizontal(self, header, rows) -> None:
        self.line(horizontal_table(header, [[str(c) for c in r] for r in rows]))

    def note(self, text: str) -> None:
        """A per-item outcome ("Job 5 not found"): a line on stdout in cli mode only (it is a
        normal result, and callers often merge stderr into what they parse)."""
        if self.mode == "cli":
            self.line(text)

    def error(self, message: str) -> None:
        if self.is_json:
            self.json({"error": message})
        else:
            sys.stderr.write(f"Error: {message}\n")
            sys.stderr.flush()


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


def local_time(ts: float | None, fmt: str = "%d.%m.%Y %H:%M:%S") -> str:
    if ts is None:
        return ""
    from datetime import datetime

    return datetime.fromtimestamp(ts).strftime(fmt)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "None"
    return format_duration(round(seconds, 3))


def resources_text(variants: list[dict]) -> str:
    """The `Resources` cell of job/task info: `name: request` lines; with several resource
    variants, each block is headed by `# Variant N` (1-based)."""
    def lines(v):
        return [r["resource"] + ": " + r["text"] for r in v["resources"]]

    if len(variants) <= 1:
        return "\n".join(lines(variants[0])) if variants else ""
    out = []
    for i, v in enumerate(variants, 1):
        out.append(f"# Variant {i}")
        out.extend(lines(v))
    return "\n".join(out)


def jsonify_times(obj, keys=("started_at", "finished_at", "submission_date", "started", "at",
                             "time")):
    """Converts epoch floats under the given keys to ISO strings, recursively (JSON mode)."""
    if isinstance(obj, dict):
        return {k: (iso(v) if k in keys and isinstance(v, (int, float)) and not isinstance(v, bool)
                    else jsonify_times(v, keys)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [jsonify_times(v, keys) for v in obj]
    return obj
