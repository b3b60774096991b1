import pytest

from hyperqueue.common.selectors import Selector, parse_selector
from hyperqueue.core.ranges import IntRanges


def test_parse_all_and_last():
    assert parse_selector("all").kind == "all"
    assert parse_selector(" last ").kind == "last"
    assert parse_selector("all").ids is None
    assert parse_selector("all") == Selector("all")


def test_parse_ids():
    s = parse_selector("1,3,5-8")
    assert s.kind == "ids"
    assert s.ids == IntRanges.parse("1,3,5-8")
    assert s.to_text() == "1,3,5-8"
    assert parse_selector("1-1_000:100").resolve([]) == list(range(1, 1001, 100))


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("all", {"allow_all": False}, "'all' is not allowed here"),
        ("last", {"allow_last": False}, "'last' is not allowed here"),
        ("5-3", {}, "Invalid range '5-3': the start is greater than the end"),
        ("ALL", {}, "Invalid range 'ALL': expected a number, 'a-b' or 'a-b:step'"),
        ("", {}, "Invalid range '': it is empty"),
    ],
)
def test_parse_errors(text, kwargs, message):
    with pytest.raises(ValueError) as exc:
        parse_selector(text, **kwargs)
    assert str(exc.value) == message


def test_last_allowed_when_only_all_is_forbidden():
    assert parse_selector("last", allow_all=False).kind == "last"
    assert parse_selector("all", allow_last=False).kind == "all"


def test_resolve():
    existing = [1, 2, 5, 9]
    assert parse_selector("all").resolve(existing) == [1, 2, 5, 9]
    assert parse_selector("last").resolve(existing) == [9]
    assert parse_selector("last").resolve([]) == []
    assert parse_selector("all").resolve([]) == []
    # listed ids ascending, including those that do not exist
    assert parse_selector("9,3,1-2").resolve(existing) == [1, 2, 3, 9]
    assert parse_selector("0-10:5").resolve(existing) == [0, 5, 10]


def test_resolve_returns_a_copy():
    existing = [1, 2]
    out = parse_selector("all").resolve(existing)
    out.append(3)
    assert existing == [1, 2]


@pytest.mark.parametrize("text", ["all", "last", "1,3,5-8", "0-100:7,200"])
def test_wire_roundtrip(text):
    s = parse_selector(text)
    w = s.to_wire()
    assert Selector.from_wire(w) == s
    assert isinstance(w, (str, list))


def test_wire_shapes():
    assert parse_selector("all").to_wire() == "all"
    assert parse_selector("last").to_wire() == "last"
    assert parse_selector("1,3-5").to_wire() == [[1, 1, 1], [3, 5, 1]]


@pytest.mark.parametrize(
    "garbage",
    ["first", "", 5, None, {"a": 1}, [[1, 2]], [[3, 1, 1]], [[0, 5, 0]], [["1", 2, 3]],
     [[0, 5, 1], [3, 4, 1]], [[-1, 2, 1]], [1, 2, 3]],
)
def test_from_wire_rejects_garbage(garbage):
    with pytest.raises(ValueError):
        Selector.from_wire(garbage)


def test_constructor_validation():
    with pytest.raises(ValueError):
        Selector("some")
    with pytest.raises(ValueError):
        Selector("ids")
    with pytest.raises(ValueError):
        Selector("all", IntRanges.single(1))
    assert Selector.of_ids(IntRanges.single(1)).resolve([]) == [1]


def test_eq_hash_repr():
    assert parse_selector("1,2") == parse_selector("1-2")
    assert hash(parse_selector("1,2")) == hash(parse_selector("1-2"))
    assert parse_selector("all") != parse_selector("last")
    assert repr(parse_selector("1-2")) == "Selector('1-2')"


# -- bounded resolution (issue 10, item 2) ------------------------------------------------------
import time as _time

from hyperqueue.common.selectors import missing_from_wire, missing_to_wire, select_ids
from hyperqueue.core.ranges import MAX_ID


def test_select_huge_range_against_few_existing_is_instant():
    existing = {1: "a", 7: "b", 4_000_000_000: "c"}
    t0 = _time.perf_counter()
    found, missing = parse_selector(f"0-{MAX_ID}").select(existing)
    assert _time.perf_counter() - t0 < 0.1
    assert found == [1, 7, 4_000_000_000]
    assert len(missing) == MAX_ID + 1 - 3
    assert missing_to_wire(missing) == [[0, 0, 1], [2, 6, 1], [8, 3_999_999_999, 1],
                                         [4_000_000_001, MAX_ID, 1]]
    assert missing_from_wire(missing_to_wire(missing)) == missing


def test_select_small_selector_against_many_existing():
    existing = dict.fromkeys(range(0, 1_000_000, 2))
    t0 = _time.perf_counter()
    found, missing = parse_selector("5,10,999998,2000000").select(existing)
    assert _time.perf_counter() - t0 < 0.1
    assert found == [10, 999998]
    assert sorted(missing) == [5, 2000000]


def test_select_stepped_and_interleaved_ranges():
    sel = parse_selector("0-99:2,1-99:4")  # interleaving, no shared id
    existing = set(range(0, 100, 5))
    found, missing = sel.select(existing)
    ids = set(sel.ids)
    assert found == sorted(ids & existing)
    assert set(missing) == ids - existing


def test_select_all_and_last_report_nothing_missing():
    assert parse_selector("all").select({3: 0, 1: 0}) == ([1, 3], IntRanges.from_ids(()))
    assert parse_selector("last").select({3: 0, 1: 0})[0] == [3]
    assert parse_selector("last").select({})[0] == []


def test_select_ids_matches_expansion_on_random_inputs():
    import random

    rnd = random.Random(7)
    for _ in range(200):
        parts = []
        start = rnd.randrange(0, 5)
        for _ in range(rnd.randrange(1, 4)):
            end = start + rnd.randrange(0, 20)
            step = rnd.randrange(1, 4)
            parts.append(f"{start}-{end}:{step}")
            start = end + rnd.randrange(1, 5)
        ids = IntRanges.parse(",".join(parts))
        existing = set(rnd.sample(range(0, 120), rnd.randrange(0, 40)))
        found, missing = select_ids(ids, existing)
        assert found == sorted(set(ids) & existing)
        assert sorted(missing) == sorted(set(ids) - existing)


def test_selector_with_too_many_ranges_is_refused():
    wire = [[i * 2, i * 2, 1] for i in range(70_000)]
    with pytest.raises(ValueError, match="more than 65536 ranges"):
        Selector.from_wire(wire)


def test_selector_with_heavily_interleaved_stepped_ranges_is_refused_quickly():
    # 200 ranges over the whole id space, pairwise without a shared id: the overlap sweep
    # would be quadratic; it is refused after MAX_INTERLEAVE active ranges.
    wire = [[i, MAX_ID - (MAX_ID - i) % 1000, 1000] for i in range(200)]
    t0 = _time.perf_counter()
    with pytest.raises(ValueError, match="interleave"):
        Selector.from_wire(wire)
    assert _time.perf_counter() - t0 < 0.5
