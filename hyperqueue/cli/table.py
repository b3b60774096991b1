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

__all__ = ["vertical_table", "horizontal_table", "SpooledTable"]


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
    return [_split_row_lines(cells, widths) for cells in split], widths


def _split_row_lines(split_cells: list[list[str]], widths: list[int]) -> list[str]:
    """The lines of one row whose cells are given as their lines."""
    height = max(len(c) for c in split_cells)
    return ["| " + " | ".join((c[j] if j < len(c) else "").ljust(widths[i])
                              for i, c in enumerate(split_cells)) + " |"
            for j in range(height)]


class SpooledTable:
    """A horizontal table whose rows come a page at a time (a `task list` of millions of
    tasks), written at the end byte for byte as `horizontal_table(header, rows) + "\n"`.

    The column widths are kept up to date as rows are added; the rows wait serialized (one
    JSON line each) in memory up to `memory` bytes, beyond that in a temporary file: the
    client holds a page, never the table.
    """

    def __init__(self, header: Sequence[str], memory: int = 1 << 22):
        import tempfile

        self.header = [str(c) for c in header]
        self.widths = [_cell_width(c) for c in self.header]
        self._rows = tempfile.SpooledTemporaryFile(max_size=memory, mode="w+",
                                                   encoding="utf-8", newline="\n")

    def add(self, rows) -> None:
        import json

        ncols, widths, lines = len(self.header), self.widths, []
        for row in rows:
            cells = [str(c) for c in row]
            if len(cells) != ncols:
                raise ValueError(f"table row has {len(cells)} cells, expected {ncols}: {row!r}")
            for i, c in enumerate(cells):
                w = _cell_width(c)
                if w > widths[i]:
                    widths[i] = w
            lines.append(json.dumps(cells))
        if lines:
            lines.append("")
            self._rows.write("\n".join(lines))

    def write(self, write) -> None:
        """Writes the table (and a newline) through `write`, then drops the rows."""
        import json

        widths = self.widths
        divider = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        fmt = "| " + " | ".join(f"{{:{w}}}" if w else "{}" for w in widths) + " |"

        def lines(cells):
            if any("\n" in c for c in cells):
                return "\n".join(_split_row_lines([c.split("\n") for c in cells], widths))
            return fmt.format(*cells)

        write(divider + "\n" + lines(self.header) + "\n" + divider + "\n")
        self._rows.seek(0)
        chunk = []
        for text in self._rows:
            chunk.append(lines(json.loads(text)))
            if len(chunk) >= 4096:
                chunk.append("")
                write("\n".join(chunk))
                chunk = []
        chunk.append(divider + "\n")
        write("\n".join(chunk))
        self._rows.close()


def _cell_width(cell: str) -> int:
    return max(map(len, cell.split("\n"))) if "\n" in cell else len(cell)


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
