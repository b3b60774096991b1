"""Length-prefixed framing: any chunking of the byte stream yields the same frames."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperqueue.protocol.errors import ProtocolError
from hyperqueue.protocol.framing import MAX_FRAME, FrameDecoder, encode_frame, encode_frames

PAYLOADS = [b"", b"a", b"hello world", bytes(range(256)) * 3, b"\x00\x00\x00\x00", b"x" * 70000]


def test_encode_frame_is_little_endian_length_prefix():
    assert encode_frame(b"abc") == b"\x03\x00\x00\x00abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"
    assert encode_frames([b"abc", b"", b"d"]) == encode_frame(b"abc") + encode_frame(b"") + encode_frame(b"d")


def test_encode_rejects_payload_over_maximum():
    with pytest.raises(ProtocolError, match=f"frame of {MAX_FRAME + 1} bytes exceeds the maximum of {MAX_FRAME}"):
        encode_frame(bytes(MAX_FRAME + 1))
    with pytest.raises(ProtocolError):
        encode_frames([b"ok", bytes(MAX_FRAME + 1)])


def test_round_trip_split_at_every_byte_boundary():
    data = encode_frames(PAYLOADS[:5])
    for cut in range(len(data) + 1):
        decoder = FrameDecoder()
        decoder.feed(data[:cut])
        got = list(decoder.frames())
        decoder.feed(data[cut:])
        got += list(decoder.frames())
        assert got == PAYLOADS[:5], cut
        assert decoder.pending_bytes == 0


def test_round_trip_byte_by_byte():
    decoder = FrameDecoder()
    got = []
    for byte in encode_frames(PAYLOADS):
        decoder.feed(bytes([byte]))
        got += decoder.frames()
    assert got == PAYLOADS


def test_next_frame_returns_none_until_complete():
    decoder = FrameDecoder()
    assert decoder.next_frame() is None
    decoder.feed(b"\x02\x00")
    assert decoder.next_frame() is None
    decoder.feed(b"\x00\x00a")
    assert decoder.next_frame() is None
    decoder.feed(b"b")
    assert decoder.next_frame() == b"ab"
    assert decoder.next_frame() is None


def test_oversized_length_rejected_before_body_arrives():
    decoder = FrameDecoder(max_frame=1000)
    decoder.feed(b"\xe9\x03")  # half a header: nothing to check yet
    with pytest.raises(ProtocolError, match="frame of 1001 bytes exceeds the maximum of 1000"):
        decoder.feed(b"\x00\x00")  # the header alone is enough to refuse


def test_default_maximum_rejects_huge_header():
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError, match="frame of 200000000 bytes exceeds the maximum of 67108864"):
        decoder.feed((200_000_000).to_bytes(4, "little"))


def test_oversized_frame_after_good_frames_is_reported_in_order():
    decoder = FrameDecoder(max_frame=10)
    decoder.feed(encode_frame(b"ok") + (11).to_bytes(4, "little"))
    assert decoder.next_frame() == b"ok"
    for _ in range(2):  # the stream cannot be resynchronised: it keeps failing
        with pytest.raises(ProtocolError):
            decoder.next_frame()


def test_max_frame_can_be_raised_later():
    decoder = FrameDecoder(max_frame=4)
    decoder.feed(encode_frame(b"abcd"))
    assert decoder.next_frame() == b"abcd"
    decoder.max_frame = 100
    decoder.feed(encode_frame(b"x" * 50))
    assert decoder.next_frame() == b"x" * 50


def test_pending_bytes_detects_truncation():
    decoder = FrameDecoder()
    data = encode_frame(b"hello") + encode_frame(b"world")
    decoder.feed(data[:-2])
    assert list(decoder.frames()) == [b"hello"]
    assert decoder.pending_bytes == 7  # header and 3 body bytes of the truncated frame
    decoder.feed(data[-2:])
    assert list(decoder.frames()) == [b"world"]
    assert decoder.pending_bytes == 0


def test_pending_bytes_with_partial_header():
    decoder = FrameDecoder()
    decoder.feed(b"\x01")
    assert decoder.next_frame() is None
    assert decoder.pending_bytes == 1


@pytest.mark.timeout(10)
def test_many_small_frames_and_a_big_one_are_linear():
    # Quadratic buffer handling would take minutes here.
    small = [b"%d" % i for i in range(200_000)]
    decoder = FrameDecoder()
    decoder.feed(encode_frames(small))
    assert list(decoder.frames()) == small

    big = bytes(range(256)) * (32 * 1024)  # 8 MiB, fed in 64 KiB chunks with small frames around it
    data = encode_frames([b"before", big, b"after"])
    got = []
    for i in range(0, len(data), 65536):
        decoder.feed(data[i : i + 65536])
        got += decoder.frames()
    assert got == [b"before", big, b"after"]
    assert decoder.pending_bytes == 0


@given(
    payloads=st.lists(st.binary(max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=15),
)
def test_property_any_chunking_yields_same_payloads(payloads, cuts):
    data = encode_frames(payloads)
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    decoder = FrameDecoder()
    got = []
    for start, end in zip(bounds, bounds[1:]):
        decoder.feed(data[start:end])
        got += decoder.frames()
    assert got == payloads
    assert decoder.pending_bytes == 0
