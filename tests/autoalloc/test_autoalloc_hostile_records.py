"""Automatic-allocation journal records tampered with (values of any type, NaN, infinities,
bignums, huge strings in any field, also inside the queue parameters) are refused with a
ValueError -- the server then says "Cannot restore from journal PATH: record N: ..." -- and
never raise anything else (a bignum time limit once crashed the server's start with an
OverflowError traceback)."""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperqueue.autoalloc.state import Registry, event_from_wire
from hyperqueue.server.autoalloc import is_autoalloc_kind, policy_from_env

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dashboard"))
import dash_fixture  # noqa: E402

RECORDS = [r for r in dash_fixture.records() if is_autoalloc_kind(r[1])]
HOSTILE = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, -1, 2**70, 10**400, None,
                                     True, 1.5, "", "x" * 10_000, [], {}, [1] * 10]),
                    st.just(10**400), st.integers(), st.floats(), st.text(max_size=5))


def _restore(records) -> None:
    registry = Registry(policy_from_env())
    for _t, kind, payload in records:
        if not isinstance(payload, dict) or "type" in payload:
            raise ValueError("not a map")
        registry.apply(event_from_wire({"type": kind, **payload}))


def test_the_records_restore():
    assert len(RECORDS) >= 5
    _restore(copy.deepcopy(RECORDS))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(RECORDS) - 1), st.integers(0, 50),
                          st.integers(0, 50), HOSTILE), min_size=1, max_size=3))
def test_tampered_records_are_refused_with_a_value_error_only(changes):
    records = copy.deepcopy(RECORDS)
    for index, k1, k2, value in changes:
        payload = records[index][2]
        key = sorted(payload)[k1 % len(payload)]
        inner = payload[key]
        if isinstance(inner, dict) and inner and k2 % 2:
            inner[sorted(inner)[k2 % len(inner)]] = value
        else:
            payload[key] = value
    try:
        _restore(records)
    except ValueError:
        pass


def test_a_bignum_duration_in_queue_parameters_is_a_value_error():
    records = copy.deepcopy(RECORDS)
    records[0][2]["params"]["time_limit"] = 10**400
    try:
        _restore(records)
    except ValueError as e:
        assert "time_limit is out of range" in str(e)
    else:
        raise AssertionError("accepted")
