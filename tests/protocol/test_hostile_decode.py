"""Hostile bytes at the pure protocol layer: the hello parser and the message decoder raise
nothing but their protocol errors, with bounded messages, whatever they are fed."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperqueue.protocol import messages as m
from hyperqueue.protocol.errors import HandshakeError, ProtocolError, describe, shown
from hyperqueue.protocol.handshake import (
    CHALLENGE_SIZE,
    MAX_ROLE_LEN,
    MAX_VERSION_LEN,
    PROTOCOL_VERSION,
    Handshake,
)

BIG = 1 << 16000  # ~4800 decimal digits: str() of it raises ValueError
BOUND = 300  # no error message may be longer than this


def client():
    return Handshake(role="hq-client", peer_role="hq-server", key=bytes(32), hq_version="0.1")


def hello(**fields):
    msg = {"proto": PROTOCOL_VERSION, "version": "9.9.9", "role": "hq-server", "auth": True,
           "challenge": bytes(CHALLENGE_SIZE)}
    msg.update(fields)
    return cbor2.dumps({k: v for k, v in msg.items() if v is not ...})


def _deep(n):
    v = 0
    for _ in range(n):
        v = [v]
    return v


BAD_VALUES = [BIG, -BIG, 2**64, -1, 1.5, float("nan"), "x" * 5000, "a\nb" * 1000, b"x" * 5000,
              [], {}, None, False, _deep(500), ...]


@pytest.mark.parametrize("field", ["proto", "version", "role", "auth", "challenge"])
@pytest.mark.parametrize("value", BAD_VALUES, ids=lambda v: type(v).__name__)
def test_every_hello_field_is_validated_with_a_bounded_error(field, value):
    with pytest.raises(HandshakeError) as info:
        client().receive(hello(**{field: value}))
    assert len(str(info.value)) < BOUND


@pytest.mark.parametrize("size", [0, 1, CHALLENGE_SIZE - 1, CHALLENGE_SIZE + 1, 4000])
def test_wrong_challenge_size(size):
    with pytest.raises(HandshakeError, match="^malformed handshake message$"):
        client().receive(hello(challenge=bytes(size)))


def test_bignum_protocol_version_is_malformed_not_a_crash():
    # Before: the version-mismatch f-string raised ValueError (int -> str digit limit), which
    # escaped every handler and stopped the whole server.
    with pytest.raises(HandshakeError, match="^malformed handshake message$"):
        client().receive(hello(proto=BIG))


@pytest.mark.parametrize("field,limit", [("version", MAX_VERSION_LEN), ("role", MAX_ROLE_LEN)])
def test_string_fields_are_length_limited(field, limit):
    with pytest.raises(HandshakeError, match="^malformed handshake message$"):
        client().receive(hello(**{field: "v" * (limit + 1)}))


def test_version_mismatch_shows_a_checked_version_only():
    with pytest.raises(HandshakeError, match=r"^Protocol version mismatch: peer speaks 2, .*"
                                             r"peer hq version 1\.2\.3,"):
        client().receive(hello(proto=2, version="1.2.3"))
    for version in ("1.0\nFORGED", "x" * (MAX_VERSION_LEN + 1), "", "\x1b[31m"):
        with pytest.raises(HandshakeError, match="^malformed handshake message$"):
            client().receive(hello(proto=2, version=version))


def test_unexpected_role_is_quoted_and_cut():
    with pytest.raises(HandshakeError) as info:
        client().receive(hello(role="evil\nline"))
    assert str(info.value) == "Unexpected peer role 'evil\\nline', expected 'hq-server'"


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=600))
def test_garbage_hello_raises_only_handshake_error(data):
    try:
        client().receive(data)
    except HandshakeError as e:
        assert len(str(e)) < BOUND


# -- messages.decode ------------------------------------------------------------------------------
def _bignum(i):
    return [BIG, -BIG, 2**64, 10**5000][i]


scalars = st.one_of(st.integers(), st.integers(0, 3).map(_bignum), st.floats(),
                    st.text(max_size=20), st.binary(max_size=20), st.none(), st.booleans())
values = st.recursive(scalars, lambda c: st.one_of(
    st.lists(c, max_size=5), st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), c,
                                             max_size=3)), max_leaves=20)
DIRECTIONS = [m.FROM_CLIENT, m.TO_CLIENT, m.FROM_WORKER, m.TO_WORKER]


def _decode_only_protocol_errors(data: bytes, direction: str) -> None:
    try:
        m.decode(data, direction)
    except ProtocolError as e:
        assert len(str(e)) < 2 * BOUND, str(e)[:500]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=400), st.sampled_from(DIRECTIONS))
def test_decode_of_random_bytes_raises_only_protocol_error(data, direction):
    _decode_only_protocol_errors(data, direction)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.sampled_from(sorted({t for d in DIRECTIONS for t in m._REGISTRY[d]})),
                 st.integers(), st.integers(0, 3).map(_bignum), scalars),
       values, st.sampled_from(DIRECTIONS))
def test_decode_of_tagged_garbage_raises_only_protocol_error(tag, fields, direction):
    fields = fields if isinstance(fields, list) else [fields]
    _decode_only_protocol_errors(cbor2.dumps([tag, *fields]), direction)


@pytest.mark.parametrize("data", [
    cbor2.dumps([BIG]), cbor2.dumps([-BIG]), cbor2.dumps([2**64, 1]),
    b"\x81" * 100_000 + b"\x00",  # deep nesting
    b"\x9f" * 100_000,  # deep indefinite arrays, truncated
    b"\x81\xa1\x80\x00",  # unhashable map key
    b"\x82\x04\xc2\x59\x01\x00" + b"\xff" * 256,  # bignum field via tag 2
    b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff",  # absurd byte-string length
    b"\xd9\xd9\xf7" * 1000 + b"\x00",  # a long chain of self-describe tags
    cbor2.dumps([4, [BIG]]), cbor2.dumps([201] + [BIG] * 4), cbor2.dumps([302, [[BIG]], []]),
])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_decode_of_hand_made_garbage(data, direction):
    with pytest.raises(ProtocolError) as info:
        m.decode(data, direction)
    assert len(str(info.value)) < 2 * BOUND


def test_shown_and_describe_are_bounded_and_escaped():
    assert shown("a\nb") == "'a\\nb'"
    assert len(shown("x" * 10_000)) < 260
    assert shown(BIG) == "<an integer of 16001 bits>"
    assert len(describe(ValueError("y" * 10_000))) < 260
    assert "\n" not in describe(ValueError("a\nb"))


# -- cborshape.check_shape ----------------------------------------------------------------------
from hyperqueue.protocol.cborshape import check_shape  # noqa: E402


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(values)
def test_shape_check_accepts_every_encoded_value(v):
    check_shape(cbor2.dumps(v))


@pytest.mark.parametrize("data", [b"\x9f\x01\x02\xff", b"\xbf\x61a\x01\xff", b"\x7f\x61a\x61b\xff",
                                  b"\xc2\x41\x01", b"\x80", b"\xa0", cbor2.dumps([4, None])])
def test_shape_check_accepts_indefinite_and_tagged_forms(data):
    check_shape(data)


@pytest.mark.parametrize("data", [b"", b"\x82\x01", b"\xff", b"\x01\x02", b"\x1c", b"\x9f\x01",
                                  b"\x5a\xff\xff\xff\xff", b"\x9b" + b"\xff" * 8, b"\xc2"])
def test_shape_check_refuses_malformed(data):
    with pytest.raises(ProtocolError):
        check_shape(data)


def test_shape_check_bounds_items_and_containers():
    with pytest.raises(ProtocolError, match="arrays and maps"):
        check_shape(b"\x9f" + b"\x80" * 1001 + b"\xff", max_containers=1000)
    with pytest.raises(ProtocolError, match="items"):
        check_shape(b"\x9f" + b"\x00" * 1001 + b"\xff", max_items=1000)
    check_shape(b"\x9f" + b"\x00" * 998 + b"\xff", max_items=1000)
    # Many bytes in few items (a big submit's entries) are fine.
    check_shape(cbor2.dumps([3, [b"x" * 1000] * 1000]), max_items=2000, max_containers=2)
