"""Sealed channel: counter nonces make replayed, reordered, dropped or altered frames fail."""

import pytest
from nacl.bindings import crypto_secretbox

from hyperqueue.protocol.errors import ProtocolError
from hyperqueue.protocol.framing import MAX_FRAME, FrameDecoder
from hyperqueue.protocol.secretbox import PlainChannel, SealedChannel

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
AUTH = r"frame failed authentication \(tampered, replayed, reordered or wrong key\)"


def pair():
    """Two ends of one connection: a's send key is b's receive key and vice versa."""
    return SealedChannel(send_key=K1, recv_key=K2), SealedChannel(send_key=K2, recv_key=K1)


def test_round_trip_both_directions():
    a, b = pair()
    for i in range(5):
        assert b.open(a.seal(b"to b %d" % i)) == b"to b %d" % i
        assert a.open(b.seal(b"to a %d" % i)) == b"to a %d" % i
    assert b.open(a.seal(b"")) == b""


def test_nonce_is_counter_and_not_transmitted():
    a, _ = pair()
    first, second = a.seal(b"same"), a.seal(b"same")
    assert len(first) == len(b"same") + SealedChannel.overhead == len(b"same") + 16
    assert first == crypto_secretbox(b"same", bytes(24), K1)
    assert second == crypto_secretbox(b"same", b"\x01" + bytes(23), K1)
    assert first != second


@pytest.mark.parametrize("position", [0, 1, 15, 16, 17, -1])
def test_tampered_byte_fails(position):
    a, b = pair()
    sealed = bytearray(a.seal(b"a message of some length"))
    sealed[position] ^= 0x01
    with pytest.raises(ProtocolError, match=AUTH):
        b.open(bytes(sealed))


@pytest.mark.parametrize("cut", [1, 10, 17])
def test_truncated_frame_fails(cut):
    a, b = pair()
    sealed = a.seal(b"a message of some length")
    with pytest.raises(ProtocolError, match=AUTH):
        b.open(sealed[:-cut])


def test_replayed_frame_fails():
    a, b = pair()
    sealed = a.seal(b"pay 100")
    assert b.open(sealed) == b"pay 100"
    with pytest.raises(ProtocolError, match=AUTH):
        b.open(sealed)


def test_reordered_frames_fail():
    a, b = pair()
    first, second = a.seal(b"1"), a.seal(b"2")
    with pytest.raises(ProtocolError, match=AUTH):
        b.open(second)


def test_dropped_frame_fails():
    a, b = pair()
    first, _dropped, third = a.seal(b"1"), a.seal(b"2"), a.seal(b"3")
    assert b.open(first) == b"1"
    with pytest.raises(ProtocolError, match=AUTH):
        b.open(third)


def test_wrong_key_fails():
    a, _ = pair()
    stranger = SealedChannel(send_key=K2, recv_key=bytes(32))
    with pytest.raises(ProtocolError, match=AUTH):
        stranger.open(a.seal(b"secret"))


def test_reflected_frame_fails():
    a, _ = pair()
    with pytest.raises(ProtocolError, match=AUTH):
        a.open(a.seal(b"echo"))


def test_channel_is_poisoned_after_failure():
    a, b = pair()
    good = a.seal(b"good")
    with pytest.raises(ProtocolError, match=AUTH):
        b.open(good[:-1])
    with pytest.raises(ProtocolError, match="unusable"):
        b.open(good)  # the genuine frame no longer helps
    with pytest.raises(ProtocolError, match="unusable"):
        b.seal(b"reply")


def test_keys_must_be_32_bytes():
    with pytest.raises(ValueError):
        SealedChannel(send_key=b"short", recv_key=K2)


def test_seal_frames_decodes_back():
    a, b = pair()
    decoder = FrameDecoder()
    decoder.feed(a.seal_frames([b"one", b"", b"three"]))
    assert [b.open(frame) for frame in decoder.frames()] == [b"one", b"", b"three"]


def test_seal_frames_too_big_consumes_no_nonce():
    a, b = pair()
    with pytest.raises(ProtocolError, match=f"exceeds the maximum of {MAX_FRAME - 16}"):
        a.seal_frames([b"fits", bytes(MAX_FRAME - 15)])
    decoder = FrameDecoder()
    decoder.feed(a.seal_frames([b"next"]))
    assert b.open(decoder.next_frame()) == b"next"


def test_plain_channel_passes_bytes_through():
    plain = PlainChannel()
    assert plain.seal(b"abc") == b"abc"
    assert plain.open(b"abc") == b"abc"
    assert plain.overhead == 0
    assert plain.seal_frames([b"abc"]) == b"\x03\x00\x00\x00abc"
