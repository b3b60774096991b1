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
