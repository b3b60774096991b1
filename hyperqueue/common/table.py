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
    split_rows: list[list[list[str]]] = []
    widths = [0] * ncols
    if header is not None:
        all_rows = [header, *rows]
    else:
        all_rows = list(rows)
    for row in all_rows:
        if len(row) != ncols:
            raise ValueError(f"table row has {len(row)} cells, expected {ncols}: {row!r}")
        cells = [str(c).split("\n") for c in row]
        for i, lines in enumerate(cells):
            w = max(map(len, lines))
            if w > widths[i]:
                widths[i] = w
        split_rows.append(cells)

    divider = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [divider]

    def emit(cells: list[list[str]]) -> None:
        height = max(map(len, cells))
        for j in range(height):
            out.append(
                "| "
                + " | ".join(
                    (c[j] if j < len(c) else "").ljust(widths[i]) for i, c in enumerate(cells)
                )
                + " |"
            )

    body = split_rows
    if header is not None:
        emit(split_rows[0])
        out.append(divider)
        body = split_rows[1:]
    for cells in body:
        emit(cells)
    out.append(divider)
    return "\n".join(out)


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
