"""The two plain ASCII table styles of the `hq` cli output.

```
+----+-------+          +-------------+--------+
| ID | Name  |          | Server UID  | aB3dE9 |
+----+-------+          | Client host | node1  |
| 1  | sleep |          +-------------+--------+
+----+-------+
```
Cells are left-aligned with one space of padding on each side; a cell containing newlines continues
on following lines where the other cells are blank. Widths are `len()` of the text (no ANSI).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["vertical_table", "horizontal_table"]


def _render(header: Sequence[str] | None, rows: Sequence[Sequence[str]], ncols: int) -> str:
    texts = []
    for row in ([header, *rows] if header is not None else rows):
        if len(row) != ncols:
            raise ValueError(f"table row has {len(row)} cells, expected {ncols}: {row!r}")
        texts.append([str(c) for c in row])
    if any("\n" in c for cells in texts for c in cells):
        lines, widths = _multiline_rows(texts, ncols)
    else:  # the common case (every table of `hq job list`): one format call per row
        widths = [max((len(cells[i]) for cells in texts), default=0) for i in range(ncols)]
        fmt = "| " + " | ".join(f"{{:{w}}}" if w else "{}" for w in widths) + " |"
        lines = [[fmt.format(*cells)] for cells in texts]
    divider = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [divider]
    for n, row_lines in enumerate(lines):
        out.extend(row_lines)
        if n == 0 and header is not None:
            out.append(divider)
    out.append(divider)
    return "\n".join(out)


def _multiline_rows(texts: list[list[str]], ncols: int) -> tuple[list[list[str]], list[int]]:
    """Rows whose cells may contain newlines: each row becomes as many lines as its tallest
    cell, the other cells blank below their last line."""
    split = [[c.split("\n") for c in cells] for cells in texts]
    widths = [max((len(line) for cells in split for line in cells[i]), default=0)
              for i in range(ncols)]
    lines = []
    for cells in split:
        height = max(len(c) for c in cells)
        lines.append(["| " + " | ".join((c[j] if j < len(c) else "").ljust(widths[i])
                                        for i, c in enumerate(cells)) + " |"
                      for j in range(height)])
    return lines, widths


def vertical_table(rows: Sequence[tuple[str, str]]) -> str:
    """A key/value table without header: top divider, one row per pair, bottom divider.

    Returns the text without a trailing newline. A value with newlines continues on following
    lines with an empty key cell.
    """
    return _render(None, rows, 2)


def horizontal_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table with a header row: divider, header, divider, data rows (no dividers between), divider.

    Every row must have as many cells as the header (ValueError otherwise). With no rows the result
    is the header between dividers followed by the final divider. No trailing newline.
    """
    return _render(header, rows, len(header))
