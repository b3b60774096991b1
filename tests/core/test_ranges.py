import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperqueue.core.ranges import MAX_ID, IntRanges, compress_ids


# ----------------------------------------------------------------------------- parse


@pytest.mark.parametrize(
    "text, ids",
    [
        ("7", [7]),
        ("0", [0]),
        ("1-3", [1, 2, 3]),
        ("5-5", [5]),
        ("1-10:3", [1, 4, 7, 10]),
        ("1-11:3", [1, 4, 7, 10]),
        ("1-2:5", [1]),
        ("1,3,5-8", [1, 3, 5, 6, 7, 8]),
        ("1-1_000", list(range(1, 1001))),
        ("1_0", [10]),
        (" 1 , 2 ,3 ", [1, 2, 3]),
        ("1 - 3", [1, 2, 3]),
        ("1-9 : 4", [1, 5, 9]),
        ("4294967295", [MAX_ID]),
    ],
)
def test_parse_syntax(text, ids):
    r = IntRanges.parse(text)
    assert list(r) == ids
    assert len(r) == len(ids)


def test_iteration_follows_text_order():
    r = IntRanges.parse("10,1-3,7")
    assert list(r) == [10, 1, 2, 3, 7]
    assert r.to_text() == "10,1-3,7"
    assert r.min() == 1
    assert r.max() == 10


def test_adjacent_items_are_merged():
    r = IntRanges.parse("1,2,3,5")
    assert r.ranges == ((1, 3, 1), (5, 5, 1))
    assert r.to_text() == "1-3,5"


def test_stepped_ranges_are_normalized():
    r = IntRanges.parse("1-11:3")
    assert r.ranges == ((1, 10, 3),)
    assert r.to_text() == "1-10:3"
    assert r.max() == 10
    assert IntRanges.parse("4-6:5").ranges == ((4, 4, 1),)


def test_interleaved_stepped_ranges_do_not_overlap():
    r = IntRanges.parse("0-10:2,1-11:2")
    assert len(r) == 12
    assert sorted(r) == list(range(12))
    assert 5 in r and 4 in r and 12 not in r


@pytest.mark.parametrize(
    "text, message",
    [
        ("5-3", "Invalid range '5-3': the start is greater than the end"),
        ("1,5-3", "Invalid range '5-3': the start is greater than the end"),
        ("1-10:0", "Invalid range '1-10:0': the step must be greater than 0"),
        ("abc", "Invalid range 'abc': expected a number, 'a-b' or 'a-b:step'"),
        ("1,x", "Invalid range 'x': expected a number, 'a-b' or 'a-b:step'"),
        ("-1", "Invalid range '-1': expected a number, 'a-b' or 'a-b:step'"),
        ("1-", "Invalid range '1-': expected a number, 'a-b' or 'a-b:step'"),
        ("1:2", "Invalid range '1:2': expected a number, 'a-b' or 'a-b:step'"),
        ("_1", "Invalid range '_1': expected a number, 'a-b' or 'a-b:step'"),
        ("1.5", "Invalid range '1.5': expected a number, 'a-b' or 'a-b:step'"),
        ("", "Invalid range '': it is empty"),
        ("  ", "Invalid range '  ': it is empty"),
        ("1,,2", "Invalid range '1,,2': it contains an empty item"),
        ("1,", "Invalid range '1,': it contains an empty item"),
        ("1-5,3-8", "Invalid range '1-5,3-8': the ranges 1-5 and 3-8 overlap"),
        ("3,3", "Invalid range '3,3': the ranges 3 and 3 overlap"),
        ("1,2,2", "Invalid range '1,2,2': the ranges 1-2 and 2 overlap"),
        ("0-10:2,4", "Invalid range '0-10:2,4': the ranges 0-10:2 and 4 overlap"),
        ("0-30:3,0-30:5", "Invalid range '0-30:3,0-30:5': the ranges 0-30:3 and 0-30:5 overlap"),
        ("1-30:3,2-30:3", None),  # disjoint residues: valid
        ("4294967296", "Invalid range '4294967296': the number 4294967296 is too large (maximum is 4294967295)"),
    ],
)
def test_parse_errors(text, message):
    if message is None:
        IntRanges.parse(text)
        return
    with pytest.raises(ValueError) as exc:
        IntRanges.parse(text)
    assert str(exc.value) == message


def test_parse_rejects_non_string():
    with pytest.raises(ValueError):
        IntRanges.parse(5)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- constructors


def test_from_ids_sorts_dedups_and_compresses():
    r = IntRanges.from_ids([30, 2, 9, 7, *range(20, 30), 9])
    assert r.to_text() == "2,7,9,20-30"
    assert list(r) == [2, 7, 9, *range(20, 31)]
    assert len(r) == 14


def test_from_ids_empty():
    r = IntRanges.from_ids([])
    assert r.is_empty and not r and len(r) == 0
    assert list(r) == [] and r.to_text() == "" and r.ranges == ()
    with pytest.raises(ValueError):
        r.min()
    with pytest.raises(ValueError):
        r.max()


@pytest.mark.parametrize("bad", [[-1], [1, -5], [MAX_ID + 1], ["a"], [1.5], [1, "x"]])
def test_from_ids_rejects(bad):
    with pytest.raises(ValueError):
        IntRanges.from_ids(bad)


def test_single_and_span():
    assert list(IntRanges.single(4)) == [4]
    assert list(IntRanges.span(3, 4)) == [3, 4, 5, 6]
    assert IntRanges.span(3, 0).is_empty
    assert IntRanges.span(0, 1) == IntRanges.single(0)
    for bad in [(-1, 2), (1, -1)]:
        with pytest.raises(ValueError):
            IntRanges.span(*bad)
    with pytest.raises(ValueError):
        IntRanges.single(-1)


def test_from_ranges():
    r = IntRanges.from_ranges([[5, 9, 2], (0, 1, 1)])
    assert list(r) == [5, 7, 9, 0, 1]
    for bad in [[[1, 0, 1]], [[0, 5, 0]], [[0, 5]], [["a", 1, 1]], [[-1, 2, 1]], 5, [[0, 5, 1], [5, 6, 1]]]:
        with pytest.raises(ValueError):
            IntRanges.from_ranges(bad)


# ----------------------------------------------------------------------------- queries


def test_contains():
    r = IntRanges.parse("1-10:3,20-25,100")
    for x in [1, 4, 7, 10, 20, 25, 100]:
        assert x in r
    for x in [0, 2, 11, 19, 26, 99, 101, -1, "1", 1.0]:
        assert x not in r


def test_contains_many_ranges_uses_sorted_path():
    ids = list(range(0, 1000, 3))
    r = IntRanges.from_ids(ids)
    assert all(x in r for x in ids)
    assert not any(x in r for x in range(1, 1000, 3))
    # unsorted text order with many ranges falls back to the linear scan
    r2 = IntRanges.parse(",".join(str(x) for x in reversed(ids)))
    assert all(x in r2 for x in ids) and 1 not in r2


def test_len_of_huge_range_is_not_expanded():
    r = IntRanges.parse("0-4294967295")
    assert len(r) == 2**32
    assert 123456789 in r
    assert r.max() == MAX_ID


def test_equality_is_set_equality():
    assert IntRanges.parse("1,2,3") == IntRanges.parse("1-3")
    assert IntRanges.parse("3,1-2") == IntRanges.from_ids([1, 2, 3])
    assert IntRanges.parse("1-3:2") == IntRanges.parse("3,1")
    assert IntRanges.parse("0-10:2,1-11:2") == IntRanges.parse("0-11")
    assert IntRanges.parse("1-3") != IntRanges.parse("1-4")
    assert IntRanges.parse("1-3:2") != IntRanges.parse("1-2")
    assert IntRanges.parse("1") != 1
    assert hash(IntRanges.parse("1-3:2")) == hash(IntRanges.parse("3,1"))
    assert len({IntRanges.parse("1,2"), IntRanges.parse("1-2")}) == 1


def test_repr_and_pickle():
    r = IntRanges.parse("1-3,7")
    assert repr(r) == "IntRanges('1-3,7')"
    assert pickle.loads(pickle.dumps(r)) == r


def test_overlaps():
    a = IntRanges.parse("1-10")
    assert a.overlaps(IntRanges.parse("10-20"))
    assert not a.overlaps(IntRanges.parse("11-20"))
    assert not IntRanges.parse("0-10:2").overlaps(IntRanges.parse("1-11:2"))
    assert IntRanges.parse("0-30:3").overlaps(IntRanges.parse("5-30:5"))
    assert not IntRanges.parse("1-30:3").overlaps(IntRanges.parse("0-30:6"))
    assert not a.overlaps(IntRanges.from_ids([]))


def test_union():
    a = IntRanges.parse("5-10")
    assert a.union(IntRanges.parse("1-3")).to_text() == "1-3,5-10"
    assert a.union(IntRanges.parse("11-12")).to_text() == "5-12"
    assert a.union(IntRanges.parse("8-20,1")).to_text() == "1,5-20"
    assert a.union(IntRanges.from_ids([])) is a
    assert IntRanges.from_ids([]).union(a) is a
    s = IntRanges.parse("0-10:2").union(IntRanges.parse("1-11:2"))
    assert sorted(s) == list(range(12)) and len(s) == 12
    o = IntRanges.parse("0-30:3").union(IntRanges.parse("0-30:5"))
    assert list(o) == sorted(set(range(0, 31, 3)) | set(range(0, 31, 5)))


def test_union_accumulation_stays_compact():
    acc = IntRanges.from_ids([])
    for i in range(100):
        acc = acc.union(IntRanges.span(i * 10, 10))
    assert acc.ranges == ((0, 999, 1),)


def test_compress_ids():
    assert compress_ids([2, 7, 9, *range(20, 31)]) == "2,7,9,20-30"
    assert compress_ids([]) == ""
    assert compress_ids([5]) == "5"
    assert compress_ids([1, 2]) == "1-2"


# ----------------------------------------------------------------------------- properties


@settings(max_examples=300)
@given(st.sets(st.integers(min_value=0, max_value=2000)))
def test_roundtrip_from_ids_text_parse(s):
    r = IntRanges.from_ids(s)
    assert list(r) == sorted(s)
    assert len(r) == len(s)
    if s:
        back = IntRanges.parse(r.to_text())
        assert list(back) == sorted(s)
        assert len(back) == len(s)
        assert back == r
        assert back.min() == min(s) and back.max() == max(s)
    for x in range(0, 2002, 7):
        assert (x in r) == (x in s)


@st.composite
def _ap(draw):
    start = draw(st.integers(0, 200))
    end = draw(st.integers(start, start + 200))
    step = draw(st.integers(1, 12))
    return (start, end, step)


@settings(max_examples=300)
@given(st.lists(_ap(), max_size=5), st.lists(_ap(), max_size=5))
def test_overlaps_and_union_match_sets(xs, ys):
    def build(rs):
        try:
            return IntRanges.from_ranges(rs)
        except ValueError:
            return None

    a, b = build(xs), build(ys)
    if a is None or b is None:
        return
    sa, sb = set(a), set(b)
    assert len(sa) == len(a) and len(sb) == len(b)
    assert a.overlaps(b) == bool(sa & sb)
    u = a.union(b)
    assert sorted(u) == sorted(sa | sb)
    assert len(u) == len(sa | sb)
    assert (a == b) == (sa == sb)


@settings(max_examples=200)
@given(st.lists(_ap(), max_size=5))
def test_parse_overlap_check_matches_sets(rs):
    text = ",".join(f"{s}-{e}:{k}" for s, e, k in rs)
    ids = [x for s, e, k in rs for x in range(s, e + 1, k)]
    if not rs:
        return
    if len(ids) == len(set(ids)):
        r = IntRanges.parse(text)
        assert list(r) == ids
        assert IntRanges.parse(r.to_text()) == r
    else:
        with pytest.raises(ValueError, match="overlap"):
            IntRanges.parse(text)
