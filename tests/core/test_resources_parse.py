import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperqueue.core.resources import (
    ALL,
    POLICIES,
    UNIT,
    ResourceDef,
    ResourceRequest,
    ResourceRequestEntry,
    format_amount,
    format_resources,
    parse_amount,
    parse_request_arg,
    parse_resource_arg,
    parse_resource_def,
    parse_resource_request,
    validate_resource_name,
)

# ----------------------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    "text, units",
    [
        ("2", 20000),
        ("0.5", 5000),
        ("1.25", 12500),
        ("0.0001", 1),
        ("1.5000", 15000),
        ("1.50000", 15000),  # trailing zeros beyond 4 decimals are harmless
        (".5", 5000),
        ("1_000", 1000 * UNIT),
        (" 3 ", 30000),
    ],
)
def test_parse_amount(text, units):
    assert parse_amount(text) == units


@pytest.mark.parametrize(
    "text, reason",
    [
        ("0", "it must be greater than 0"),
        ("0.0", "it must be greater than 0"),
        ("-1", "it must be greater than 0"),
        ("0.12345", "at most 4 decimal places are allowed"),
        ("abc", "expected a number such as 2 or 0.5"),
        ("", "expected a number such as 2 or 0.5"),
        (".", "expected a number such as 2 or 0.5"),
        ("1.", "expected a number such as 2 or 0.5"),
        ("1e3", "expected a number such as 2 or 0.5"),
    ],
)
def test_parse_amount_errors(text, reason):
    with pytest.raises(ValueError) as exc:
        parse_amount(text)
    assert str(exc.value) == f"Invalid amount '{text}': {reason}"


@pytest.mark.parametrize(
    "units, text", [(20000, "2"), (5000, "0.5"), (12500, "1.25"), (1, "0.0001"), (100010000000, "10001000"), (0, "0")]
)
def test_format_amount(units, text):
    assert format_amount(units) == text


@given(st.integers(min_value=1, max_value=10**12))
def test_amount_roundtrip(units):
    assert parse_amount(format_amount(units)) == units


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["cpus", "mem", "gpus/nvidia", "a", "A1/b2"])
def test_valid_names(name):
    assert validate_resource_name(name) == name


@pytest.mark.parametrize("name", ["", "1gpu", "/x", "my_res", "a-b", "a b", "é", "gpus.x"])
def test_invalid_names(name):
    with pytest.raises(ValueError) as exc:
        validate_resource_name(name)
    assert str(exc.value) == (
        f"Invalid resource name '{name}': it must start with an ASCII letter and contain "
        f"only letters, digits and '/'"
    )
    with pytest.raises(ValueError):
        parse_resource_def(name, "4")
    with pytest.raises(ValueError):
        parse_resource_request(name, "1")


# ----------------------------------------------------------------------------- pool definitions


def test_count_form():
    d = parse_resource_def("cpus", "4")
    assert (d.kind, d.start, d.end) == ("range", 0, 3)
    assert d.groups == (("0", "1", "2", "3"),)
    assert d.count == 4 and d.amount == 4 * UNIT
    assert d.describe() == "4"
    assert d.describe_full() == "cpus: 4 range(0-3)"
    assert parse_resource_def("cpus", "1_0").count == 10


def test_groups_form():
    d = parse_resource_def("cpus", "4x2")
    assert d.kind == "groups"
    assert d.groups == (("0", "1"), ("2", "3"), ("4", "5"), ("6", "7"))
    assert d.amount == 8 * UNIT
    assert d.describe() == "4x2"
    assert d.describe_full() == "cpus: 4x2 [0, 1], [2, 3], [4, 5], [6, 7]"
    assert parse_resource_def("cpus", "2 x 3").groups == (("0", "1", "2"), ("3", "4", "5"))
    assert parse_resource_def("cpus", "1x3").describe() == "3"


def test_label_list_form():
    d = parse_resource_def("gpus", "[a, b,c]")
    assert d.kind == "list"
    assert d.groups == (("a", "b", "c"),)
    assert d.count == 3 and d.amount == 3 * UNIT
    assert d.describe() == "[a,b,c]"
    assert d.describe_full() == "gpus: 3 [a, b, c]"


def test_quoted_labels():
    d = parse_resource_def("res", '["a b", "x,y", "[z]", plain]')
    assert d.groups == (("a b", "x,y", "[z]", "plain"),)
    assert d.describe() == '["a b","x,y","[z]",plain]'
    assert parse_resource_def("res", d.to_text()) == d


def test_uuid_labels():
    d = parse_resource_def("gpus/nvidia", "[GPU-1a2b-3c, GPU-4d5e-6f]")
    assert d.groups == (("GPU-1a2b-3c", "GPU-4d5e-6f"),)


def test_nested_groups_form():
    d = parse_resource_def("cpus", "[[0,1],[2,3]]")
    assert d.kind == "groups"
    assert d.groups == (("0", "1"), ("2", "3"))
    assert d.describe() == "2x2"
    d2 = parse_resource_def("cpus", " [ [0, 1, 2] , [3,4] , [5,6,7] ] ")
    assert d2.groups == (("0", "1", "2"), ("3", "4"), ("5", "6", "7"))
    assert d2.describe() == "1x2 2x3"
    assert d2.describe_full() == "cpus: 1x2 2x3 [0, 1, 2], [3, 4], [5, 6, 7]"
    assert parse_resource_def("cpus", "[[0,1,2,3]]").describe() == "4"


def test_range_form():
    d = parse_resource_def("shark", "range(1-1000)")
    assert (d.kind, d.start, d.end, d.count) == ("range", 1, 1000, 1000)
    assert d.describe() == "1000"
    assert d.describe_full() == "shark: 1000 range(1-1000)"
    assert parse_resource_def("x", "range( 3 - 3 )").groups == (("3",),)


def test_big_range_is_lazy():
    d = parse_resource_def("x", "range(0-4000000000)")
    assert d.count == 4_000_000_001
    assert d.to_wire() == {"name": "x", "kind": "range", "start": 0, "end": 4000000000}


def test_sum_form():
    d = parse_resource_def("fairy", "sum(1000_1000)")
    assert d.kind == "sum" and d.size == 10001000 * UNIT and d.amount == d.size
    assert d.groups == () and d.count == 0
    assert d.describe() == "10001000"
    assert d.describe_full() == "fairy: sum(10001000)"
    small = parse_resource_def("small", "sum(0.5)")
    assert small.size == 5000 and small.describe() == "0.5"


def test_format_resources_matches_contract():
    defs = [
        parse_resource_def("cpus", "4x2"),
        parse_resource_def("fairy", "sum(1000_1000)"),
        parse_resource_def("small", "sum(0.5)"),
    ]
    assert format_resources(defs) == "cpus 4x2; fairy 10001000; small 0.5"
    assert format_resources([]) == ""


def test_parse_resource_arg():
    d = parse_resource_arg("gpus=[0,1]")
    assert d.name == "gpus" and d.groups == (("0", "1"),)
    assert parse_resource_arg("mem=sum(1024)").size == 1024 * UNIT
    assert parse_resource_arg(" gpus = [0,1]").groups == (("0", "1"),)


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("cpus", "sum(4)", "cpus cannot be defined as a sum resource"),
        ("x", "0", "Invalid resource definition '0': the count must be greater than 0"),
        ("x", "0x4", "Invalid resource definition '0x4': the group count and size must be greater than 0"),
        ("x", "4x0", "Invalid resource definition '4x0': the group count and size must be greater than 0"),
        ("x", "range(5-3)", "Invalid resource definition 'range(5-3)': the start is greater than the end"),
        ("x", "sum(0)", "Invalid amount '0': it must be greater than 0"),
        ("x", "sum(0.12345)", "Invalid amount '0.12345': at most 4 decimal places are allowed"),
        ("x", "sum(abc)", "Invalid amount 'abc': expected a number such as 2 or 0.5"),
        ("x", "[a,a]", "Invalid resource 'x': duplicate label 'a'"),
        ("x", "[[0,1],[1,2]]", "Invalid resource 'x': duplicate label '1'"),
        ("x", "[]", "Invalid resource definition '[]': a list of labels is empty"),
        ("x", "[[0],[]]", "Invalid resource definition '[[0],[]]': a list of labels is empty"),
        ("x", "[a,,b]", "Invalid resource definition '[a,,b]': empty label"),
        ("x", "[a,b,]", "Invalid resource definition '[a,b,]': empty label"),
        ("x", '[""]', "Invalid resource definition '[\"\"]': empty label"),
        ("x", "[a,b", "Invalid resource definition '[a,b': missing ']'"),
        ("x", '["a,b]', "Invalid resource definition '[\"a,b]': unterminated quote"),
        ("x", '["a"b]', "Invalid resource definition '[\"a\"b]': expected ',' or ']' after label 'a'"),
        ("x", "[a]x", "Invalid resource definition '[a]x': unexpected text after the list: 'x'"),
        ("x", "[[a],b]", "Invalid resource definition '[[a],b]': expected '[' to start a group"),
        ("x", "[[a] [b]]", "Invalid resource definition '[[a] [b]]': expected ',' or ']' after a group"),
        ("x", "[a[b]]", "Invalid resource definition '[a[b]]': unexpected '[' in a label"),
        ("x", "[[[a]]]", "Invalid resource definition '[[[a]]]': unexpected '[' in a label"),
        ("x", "", "Invalid resource definition of 'x': it is empty"),
        (
            "x",
            "lots",
            "Invalid resource definition 'lots': expected N, NxM, [a,b,...], [[a,b],[c,d]], "
            "range(a-b) or sum(X)",
        ),
        (
            "x",
            "-4",
            "Invalid resource definition '-4': expected N, NxM, [a,b,...], [[a,b],[c,d]], "
            "range(a-b) or sum(X)",
        ),
        ("x", "5000000000", "Invalid resource definition '5000000000': the count 5000000000 is too large"),
    ],
)
def test_parse_resource_def_errors(name, text, message):
    with pytest.raises(ValueError) as exc:
        parse_resource_def(name, text)
    assert str(exc.value) == message


def test_parse_resource_arg_errors():
    with pytest.raises(ValueError) as exc:
        parse_resource_arg("gpus")
    assert str(exc.value) == (
        "Invalid resource definition 'gpus': expected NAME=VALUE, for example gpus=[0,1] or mem=sum(1024)"
    )
    with pytest.raises(ValueError, match="Invalid resource name ''"):
        parse_resource_arg("=4")


@pytest.mark.parametrize(
    "name, text",
    [
        ("cpus", "4"),
        ("cpus", "4x2"),
        ("gpus", '[a,"b c",d]'),
        ("cpus", "[[0,1],[2,3,4]]"),
        ("x", "range(3-7)"),
        ("mem", "sum(1024)"),
        ("small", "sum(0.5)"),
    ],
)
def test_def_wire_and_text_roundtrip(name, text):
    d = parse_resource_def(name, text)
    w = d.to_wire()
    assert ResourceDef.from_wire(w) == d
    assert hash(ResourceDef.from_wire(w)) == hash(d)
    assert parse_resource_def(name, d.to_text()) == d


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        [],
        "cpus",
        {"name": "cpus", "kind": "range", "start": 0},
        {"name": "cpus", "kind": "range", "start": 3, "end": 1},
        {"name": "cpus", "kind": "range", "start": -1, "end": 1},
        {"name": "cpus", "kind": "range", "start": "0", "end": 1},
        {"name": "cpus", "kind": "sum", "size": 5},
        {"name": "mem", "kind": "sum", "size": 0},
        {"name": "mem", "kind": "sum", "size": 1.5},
        {"name": "mem", "kind": "bag", "size": 1},
        {"name": 5, "kind": "sum", "size": 1},
        {"name": "1x", "kind": "sum", "size": 1},
        {"name": "g", "kind": "list", "labels": "ab"},
        {"name": "g", "kind": "list", "labels": []},
        {"name": "g", "kind": "list", "labels": ["a", "a"]},
        {"name": "g", "kind": "list", "labels": ["a", 1]},
        {"name": "g", "kind": "groups", "groups": [["a"], []]},
        {"name": "g", "kind": "groups", "groups": []},
        {"name": "g", "kind": "groups", "groups": ["ab"]},
        {"name": "g", "kind": "groups", "groups": [["a"]], "extra": 1},
    ],
)
def test_def_from_wire_rejects_garbage(garbage):
    with pytest.raises(ValueError):
        ResourceDef.from_wire(garbage)


def test_def_equality():
    assert parse_resource_def("cpus", "4") == ResourceDef.range_of("cpus", 0, 3)
    assert parse_resource_def("cpus", "4") != parse_resource_def("cpus", "[0,1,2,3]")
    assert parse_resource_def("cpus", "4") != parse_resource_def("gpus", "4")
    assert repr(parse_resource_def("mem", "sum(2)")) == "ResourceDef(mem=sum(2))"


# ----------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    "text, amount, policy, env",
    [
        ("1", UNIT, "compact", "1 compact"),
        ("4 compact!", 4 * UNIT, "compact!", "4 compact!"),
        ("0.5", 5000, "compact", "0.5 compact"),
        ("2 tight", 2 * UNIT, "tight", "2 tight"),
        ("2 tight!", 2 * UNIT, "tight!", "2 tight!"),
        ("6 scatter", 6 * UNIT, "scatter", "6 scatter"),
        ("  3   compact ", 3 * UNIT, "compact", "3 compact"),
        ("all", ALL, "compact", "all"),
        ("1.2345", 12345, "compact", "1.2345 compact"),
    ],
)
def test_parse_request(text, amount, policy, env):
    e = parse_resource_request("cpus", text)
    assert (e.name, e.amount, e.policy) == ("cpus", amount, policy)
    assert e.to_text() == env
    assert e.is_all == (amount == ALL)
    assert ResourceRequestEntry.from_wire(e.to_wire()) == e


@pytest.mark.parametrize(
    "text, message",
    [
        ("1 foo", "Invalid policy 'foo', expected one of: compact, compact!, tight, tight!, scatter"),
        ("0", "Invalid amount '0': it must be greater than 0"),
        ("-2", "Invalid amount '-2': it must be greater than 0"),
        ("0.00001", "Invalid amount '0.00001': at most 4 decimal places are allowed"),
        ("", "Invalid resource request of 'gpus': it is empty"),
        ("all compact", "Invalid resource request 'all compact': 'all' takes no policy"),
        ("1 compact extra", "Invalid resource request '1 compact extra': expected '<amount> [policy]' or 'all'"),
        ("compact", "Invalid amount 'compact': expected a number such as 2 or 0.5"),
    ],
)
def test_parse_request_errors(text, message):
    with pytest.raises(ValueError) as exc:
        parse_resource_request("gpus", text)
    assert str(exc.value) == message


def test_parse_request_arg():
    e = parse_request_arg("gpus/nvidia=2 scatter")
    assert (e.name, e.amount, e.policy) == ("gpus/nvidia", 2 * UNIT, "scatter")
    assert parse_request_arg("mem=all").amount == ALL
    with pytest.raises(ValueError) as exc:
        parse_request_arg("gpus")
    assert str(exc.value) == "Invalid resource request 'gpus': expected NAME=VALUE, for example gpus=2 or mem=0.5"


@pytest.mark.parametrize(
    "garbage",
    [None, [], ["cpus", 1], ["cpus", 0, "compact"], ["cpus", -2, "compact"], ["cpus", 1.5, "compact"],
     ["cpus", 1, "loose"], [1, 1, "compact"], ["9x", 1, "compact"], ["cpus", 1, None], ["cpus", True, "compact"]],
)
def test_entry_from_wire_rejects_garbage(garbage):
    with pytest.raises(ValueError):
        ResourceRequestEntry.from_wire(garbage)


def test_policies_constant():
    assert POLICIES == ("compact", "compact!", "tight", "tight!", "scatter")


def test_request_default():
    d = ResourceRequest.default()
    assert d.entries == (ResourceRequestEntry("cpus", UNIT, "compact"),)
    assert d.cpus == ResourceRequestEntry("cpus", UNIT, "compact")
    assert (d.n_nodes, d.min_time, d.weight) == (0, 0.0, UNIT)
    assert d == ResourceRequest([parse_request_arg("cpus=1")])
    assert d.describe() == "cpus: 1 compact"


def test_request_sorted_hashable_and_equal():
    a = ResourceRequest([parse_request_arg("mem=2"), parse_request_arg("cpus=1")])
    b = ResourceRequest([parse_request_arg("cpus=1 compact"), parse_request_arg("mem=2")])
    assert [e.name for e in a.entries] == ["cpus", "mem"]
    assert a == b and hash(a) == hash(b)
    groups = {a: 1}
    groups[b] = 2
    assert len(groups) == 1
    assert a != ResourceRequest([parse_request_arg("cpus=1")])
    assert a != ResourceRequest(a.entries, min_time=10)
    assert a != ResourceRequest(a.entries, weight=2 * UNIT)
    assert a.get("mem").amount == 2 * UNIT and a.get("gpus") is None
    assert ResourceRequest([parse_request_arg("mem=1")]).cpus is None
    assert a.describe() == "cpus: 1 compact\nmem: 2 compact"


def test_request_multinode():
    r = ResourceRequest([], n_nodes=2)
    assert r.entries == () and r.n_nodes == 2
    assert r.describe() == "nodes: 2"
    assert ResourceRequest.from_wire(r.to_wire()) == r


def test_request_wire_roundtrip():
    r = ResourceRequest(
        [parse_request_arg("cpus=4 tight!"), parse_request_arg("gpus=all"), parse_request_arg("mem=0.5")],
        min_time=30.0,
        weight=25000,
    )
    w = r.to_wire()
    assert w == {
        "entries": [["cpus", 40000, "tight!"], ["gpus", -1, "compact"], ["mem", 5000, "compact"]],
        "n_nodes": 0,
        "min_time": 30.0,
        "weight": 25000,
    }
    back = ResourceRequest.from_wire(w)
    assert back == r and hash(back) == hash(r)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"entries": [ResourceRequestEntry("cpus", 1), ResourceRequestEntry("cpus", 2)]},
         "Resource 'cpus' is requested more than once"),
        ({"n_nodes": -1}, "The number of nodes must be a non-negative integer"),
        ({"min_time": -1.0}, "The minimal time must be a non-negative number of seconds"),
        ({"min_time": float("nan")}, "The minimal time must be a non-negative number of seconds"),
        ({"weight": 0}, "The weight must be greater than 0"),
        ({"weight": 1.5}, "The weight must be greater than 0"),
    ],
)
def test_request_validation(kwargs, message):
    with pytest.raises(ValueError) as exc:
        ResourceRequest(**kwargs)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        [],
        {"entries": []},
        {"entries": "x", "n_nodes": 0, "min_time": 0.0, "weight": UNIT},
        {"entries": [["cpus", 0, "compact"]], "n_nodes": 0, "min_time": 0.0, "weight": UNIT},
        {"entries": [], "n_nodes": "1", "min_time": 0.0, "weight": UNIT},
        {"entries": [], "n_nodes": 0, "min_time": "1s", "weight": UNIT},
        {"entries": [], "n_nodes": 0, "min_time": 0.0, "weight": -1},
        {"entries": [], "n_nodes": 0, "min_time": 0.0, "weight": UNIT, "x": 1},
        {"entries": [["cpus", 1, "compact"], ["cpus", 2, "compact"]], "n_nodes": 0, "min_time": 0.0,
         "weight": UNIT},
    ],
)
def test_request_from_wire_rejects_garbage(garbage):
    with pytest.raises(ValueError):
        ResourceRequest.from_wire(garbage)


def test_entry_constructor_validation():
    with pytest.raises(ValueError) as exc:
        ResourceRequestEntry("cpus", UNIT, "loose")
    assert str(exc.value) == "Invalid policy 'loose', expected one of: compact, compact!, tight, tight!, scatter"
    with pytest.raises(ValueError):
        ResourceRequestEntry("cpus", 0)
    with pytest.raises(ValueError):
        ResourceRequest(["cpus"])  # type: ignore[list-item]
