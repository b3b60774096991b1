import pytest

from hyperqueue.cli.table import horizontal_table, vertical_table


def test_horizontal_table_matches_contract():
    out = horizontal_table(
        ["ID", "Name", "State", "Tasks"],
        [["1", "sleep", "RUNNING", "1"], ["2", "echo", "WAITING", "10"]],
    )
    assert out == "\n".join([
        "+----+-------+---------+-------+",
        "| ID | Name  | State   | Tasks |",
        "+----+-------+---------+-------+",
        "| 1  | sleep | RUNNING | 1     |",
        "| 2  | echo  | WAITING | 10    |",
        "+----+-------+---------+-------+",
    ])


def test_vertical_table_matches_contract():
    out = vertical_table([
        ("Server UID", "aB3dE9"),
        ("Client host", "node1"),
        ("Client port", "40123"),
    ])
    assert out == "\n".join([
        "+-------------+--------+",
        "| Server UID  | aB3dE9 |",
        "| Client host | node1  |",
        "| Client port | 40123  |",
        "+-------------+--------+",
    ])


def test_vertical_multiline_cell():
    out = vertical_table([("Name", "x"), ("Environment", "A=1\nB=22")])
    assert out == "\n".join([
        "+-------------+------+",
        "| Name        | x    |",
        "| Environment | A=1  |",
        "|             | B=22 |",
        "+-------------+------+",
    ])


def test_horizontal_multiline_cells_in_several_columns():
    out = horizontal_table(["A", "B", "C"], [["x\ny\nz", "1", "p\nq"], ["w", "2", "r"]])
    assert out == "\n".join([
        "+---+---+---+",
        "| A | B | C |",
        "+---+---+---+",
        "| x | 1 | p |",
        "| y |   | q |",
        "| z |   |   |",
        "| w | 2 | r |",
        "+---+---+---+",
    ])


def test_empty_horizontal_table():
    out = horizontal_table(["Task ID", "Worker", "Error"], [])
    assert out == "\n".join([
        "+---------+--------+-------+",
        "| Task ID | Worker | Error |",
        "+---------+--------+-------+",
        "+---------+--------+-------+",
    ])


def test_empty_cells_and_wide_header():
    out = horizontal_table(["Identifier", ""], [["", ""]])
    assert out == "\n".join([
        "+------------+--+",
        "| Identifier |  |",
        "+------------+--+",
        "|            |  |",
        "+------------+--+",
    ])


def test_no_trailing_newline_and_divider_style():
    out = vertical_table([("a", "b")])
    assert not out.endswith("\n")
    for line in out.splitlines():
        assert line.startswith("+-") or line.startswith("| ")


def test_non_string_cells_are_converted():
    assert "| 5 |" in horizontal_table(["N"], [[5]])  # type: ignore[list-item]


def test_row_length_mismatch():
    with pytest.raises(ValueError):
        horizontal_table(["a", "b"], [["1"]])
    with pytest.raises(ValueError):
        vertical_table([("a", "b", "c")])  # type: ignore[list-item]
