"""Journal file format: round trips in any chunking, torn tails cut, damage in the middle refused."""

import datetime
import random
import struct
import zlib

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperqueue.journal import format as fmt
from hyperqueue.journal.format import (
    FORMAT_VERSION,
    HEADER_SIZE,
    MAGIC,
    MAX_RECORD,
    JournalCorrupted,
    JournalError,
    JournalReader,
    TailReport,
    encode_header,
    encode_record,
    encode_records,
    parse_header,
    read_all,
)

PAYLOADS = [
    {"type": "job-submitted", "job": 1, "tasks": list(range(10))},
    [],
    0,
    "x",
    b"",
    {"type": "task-finished", "job": 1, "task": 7, "worker": 3, "stdout": b"\x00" * 100},
    {"type": "big", "blob": bytes(range(256)) * 400},  # ~100 KB
    {"nested": [{"a": [1, 2, {"b": "c" * 1000}]}, -(2**70), 2**64]},
    {"type": "worker-lost", "worker": 3, "reason": "heartbeat"},
]


def journal(payloads):
    """Return the whole file and the offset of each record (and of the end)."""
    offsets = [HEADER_SIZE]
    parts = [encode_header()]
    for p in payloads:
        rec = encode_record(p)
        parts.append(rec)
        offsets.append(offsets[-1] + len(rec))
    return b"".join(parts), offsets


def read_chunked(data, sizes):
    """Feed `data` (after its header) in chunks of the given sizes, cycling; return records + report."""
    parse_header(data)
    reader = JournalReader(HEADER_SIZE)
    got, pos, i = [], HEADER_SIZE, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        reader.feed(data[pos:pos + n])
        got += reader.records()
        pos += n
        i += 1
    return got, reader.finish()


# --- header ---

def test_header_layout_and_round_trip():
    header = encode_header()
    assert len(header) == HEADER_SIZE == 12
    assert header == MAGIC + struct.pack("<HH", *FORMAT_VERSION)
    assert parse_header(header) == FORMAT_VERSION == (1, 0)
    assert parse_header(header + b"more bytes") == (1, 0)


def test_wrong_magic_is_not_an_hq_journal():
    for data in [b"hqjrnl01\x01\x00\x00\x00", b"\x00" * 12, b"GIF89a" + b"\x00" * 20, b"x"]:
        with pytest.raises(JournalError, match="^not an hq journal"):
            parse_header(data)
        with pytest.raises(JournalError, match="^not an hq journal"):
            read_all(data + encode_record(1))


def test_incomplete_header():
    for cut in range(HEADER_SIZE):
        with pytest.raises(JournalError, match=f"journal header is incomplete \\({cut} of 12 bytes\\)"):
            parse_header(encode_header()[:cut])


def test_other_major_is_refused():
    for major, minor in [(2, 0), (0, 9), (3, 1)]:
        data = MAGIC + struct.pack("<HH", major, minor)
        with pytest.raises(JournalError) as info:
            parse_header(data)
        assert info.value.message == (f"journal format {major}.{minor} is not supported by this hq "
                                      f"(it reads 1.x)")
        assert "start with a new journal file" in str(info.value)


def test_newer_minor_is_refused_older_accepted(monkeypatch):
    with pytest.raises(JournalError) as info:
        parse_header(MAGIC + struct.pack("<HH", 1, 1))
    assert info.value.message == "journal format 1.1 is newer than this hq supports (it reads 1.0 to 1.0)"
    assert info.value.hint == "Upgrade hq to read this journal."
    monkeypatch.setattr(fmt, "FORMAT_VERSION", (1, 3))
    assert parse_header(MAGIC + struct.pack("<HH", 1, 2)) == (1, 2)
    assert parse_header(MAGIC + struct.pack("<HH", 1, 0)) == (1, 0)


# --- records ---

def test_record_layout():
    body = cbor2.dumps({"a": 1})
    assert encode_record({"a": 1}) == struct.pack("<II", len(body), zlib.crc32(body)) + body
    assert encode_records([1, "x"]) == encode_record(1) + encode_record("x")


def test_encode_refuses_record_over_maximum(monkeypatch):
    monkeypatch.setattr(fmt, "MAX_RECORD", 100)
    encode_record(b"x" * 90)
    with pytest.raises(JournalError, match="journal record of 104 bytes exceeds the maximum of 100"):
        encode_record(b"x" * 102)


def test_round_trip_many_records_of_various_sizes():
    rng = random.Random(7)
    payloads = []
    for i in range(2000):
        size = rng.choice([0, 1, 10, 100, 1000, 23, 24, 255, 256, 65535, 65536])
        payloads.append({"i": i, "blob": rng.randbytes(size), "s": "é" * (size % 50)})
    payloads += PAYLOADS
    data, offsets = journal(payloads)
    got, report = read_all(data)
    assert got == payloads
    assert report == TailReport(offset=len(data), dropped=0, records=len(payloads), reason=None)
    assert report.clean and report.warning() is None
    for sizes in ([1000], [4096, 1, 7], [65536]):
        assert read_chunked(data, sizes) == (payloads, report)


def test_empty_journal_is_clean():
    assert read_all(encode_header()) == ([], TailReport(HEADER_SIZE, 0, 0, None))


def test_one_byte_chunks():
    data, _ = journal(PAYLOADS[:6])
    got, report = read_chunked(data, [1])
    assert got == PAYLOADS[:6]
    assert report.clean and report.offset == len(data)


def test_records_are_yielded_as_soon_as_complete():
    first, second = encode_record({"n": 1}), encode_record({"n": 2})
    reader = JournalReader()
    reader.feed(first + second[:5])
    assert list(reader.records()) == [{"n": 1}]
    assert list(reader.records()) == []
    reader.feed(second[5:])
    assert list(reader.records()) == [{"n": 2}]
    assert reader.finish() == TailReport(len(first + second), 0, 2, None)


def test_feeding_while_iterating_is_safe():
    data = encode_records(range(100))
    reader = JournalReader()
    reader.feed(data[:50])
    got = []
    rest = data[50:]
    for rec in reader.records():
        got.append(rec)
        if rest:  # compaction inside feed() must not confuse the suspended generator
            reader.feed(rest[:7])
            rest = rest[7:]
    reader.feed(rest)
    got += reader.records()
    assert got == list(range(100))
    assert reader.finish().clean


def test_finish_before_draining_is_a_programming_error():
    reader = JournalReader()
    reader.feed(encode_record(1))
    with pytest.raises(RuntimeError, match="drained"):
        reader.finish()


def test_start_offset_makes_offsets_file_offsets():
    reader = JournalReader(1000)
    reader.feed(encode_record("abc") + b"\x05\x00")
    assert list(reader.records()) == ["abc"]
    assert reader.finish() == TailReport(1000 + 12, 2, 1, "incomplete record header (2 of 8 bytes)")


# --- torn tails ---

def test_every_truncation_point_of_the_last_record_is_a_torn_tail():
    payloads = PAYLOADS[:5] + [{"last": "y" * 300, "n": list(range(50))}]
    data, offsets = journal(payloads)
    start = offsets[-2]
    for cut in range(start, len(data)):
        torn = data[:cut]
        for got, report in (read_all(torn), read_chunked(torn, [3, 50])):
            assert got == payloads[:-1], cut
            assert report.offset == start and report.dropped == cut - start, cut
            assert report.records == len(payloads) - 1
            if cut == start:
                assert report.clean and report.reason is None
            elif cut - start < 8:
                assert report.reason == f"incomplete record header ({cut - start} of 8 bytes)"
            else:
                assert report.reason == f"incomplete record ({cut - start - 8} of {len(data) - start - 8} bytes)"
    # keeping the good prefix and appending again gives a valid journal
    got, report = read_all(data[:start + 17])
    fixed = data[:report.offset] + encode_record("after restart")
    assert read_all(fixed)[0] == payloads[:-1] + ["after restart"]


def test_zero_filled_tail_is_dropped():
    data, offsets = journal(PAYLOADS)
    for tail in (bytes(4096), bytes(1), bytes(7), bytes(8), bytes(100_000)):
        got, report = read_all(data + tail)
        assert got == PAYLOADS
        assert report == TailReport(len(data), len(tail), len(PAYLOADS), "zero-filled tail")
        assert read_chunked(data + tail, [1000, 1]) == (got, report)
    assert report.warning("/srv/hq/journal") == (
        f"journal /srv/hq/journal ends with 100000 bytes of a torn write (zero-filled tail) after byte "
        f"{len(data)}; they are dropped and the {len(PAYLOADS)} records before them are kept")


def test_partly_written_record_followed_by_zeros_is_a_torn_tail():
    data, offsets = journal(PAYLOADS[:4])
    last = encode_record({"half": "written" * 20})
    torn = data + last[:40] + bytes(4096)
    got, report = read_all(torn)
    assert got == PAYLOADS[:4]
    assert report == TailReport(len(data), 40 + 4096, 4, "checksum mismatch")


def test_garbage_without_valid_records_after_the_last_record_is_a_torn_tail():
    data, _ = journal(PAYLOADS[:3])
    rng = random.Random(1)
    for _ in range(20):
        tail = rng.randbytes(rng.randrange(1, 3000))
        got, report = read_all(data + tail)
        assert got == PAYLOADS[:3]
        assert (report.offset, report.dropped) == (len(data), len(tail))


def flip(data, bit):
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_flipped_bit_in_the_last_record_is_a_torn_tail():
    payloads = PAYLOADS[:4] + [{"last": "record", "n": 12345}]
    data, offsets = journal(payloads)
    start = offsets[-2]
    for bit in range(start * 8, len(data) * 8):
        got, report = read_all(flip(data, bit))
        assert got == payloads[:-1], bit
        assert report.offset == start and report.dropped == len(data) - start, bit
        assert not report.clean


# --- damage in the middle ---

def test_flipped_bit_in_a_middle_record_is_refused_with_its_offset():
    payloads = [{"n": i, "pad": "z" * (i * 3)} for i in range(8)]
    data, offsets = journal(payloads)
    k = 3
    start, end = offsets[k], offsets[k + 1]
    for bit in range(start * 8, end * 8):
        damaged = flip(data, bit)
        for read in (read_all, lambda d: read_chunked(d, [5])):
            with pytest.raises(JournalCorrupted) as info:
                read(damaged)
            err = info.value
            assert err.offset == start and err.record == k + 1, bit
            assert err.valid_after is not None and err.valid_after > start
    assert err.message.startswith(f"journal is damaged at byte {start} (record {k + 1}: ")
    assert err.message.endswith("refusing to read past it")
    assert err.hint == (f"To keep the {k} records before the damage and discard everything from byte {start} "
                        f"on, truncate the file to {start} bytes: `truncate -s {start} <file>`")
    # the hint is right: cutting there leaves a clean journal of the records before the damage
    assert read_all(damaged[:start]) == (payloads[:k], TailReport(start, 0, k, None))


def test_body_damage_message_names_the_checksum_and_the_next_valid_record():
    data, offsets = journal(PAYLOADS[:4])
    damaged = flip(data, (offsets[1] + 8) * 8)  # the body of record 2
    with pytest.raises(JournalCorrupted) as info:
        read_all(damaged, path="/tmp/my dir/journal")
    assert str(info.value) == (
        f"journal is damaged at byte {offsets[1]} (record 2: checksum mismatch), and valid records follow "
        f"the damage (at byte {offsets[2]}); refusing to read past it\n"
        f"To keep the 1 records before the damage and discard everything from byte {offsets[1]} on, "
        f"truncate the file to {offsets[1]} bytes: `truncate -s {offsets[1]} '/tmp/my dir/journal'`")
    assert isinstance(info.value, JournalError)


def test_damage_is_reported_as_soon_as_a_valid_record_follows():
    good, bad, after = encode_record(1), bytearray(encode_record("two")), encode_record(3)
    bad[-1] ^= 0xFF
    reader = JournalReader()
    reader.feed(good + bytes(bad))
    assert list(reader.records()) == [1]
    reader.feed(after[:-1])
    assert list(reader.records()) == []
    reader.feed(after[-1:])
    with pytest.raises(JournalCorrupted) as info:
        list(reader.records())
    assert (info.value.offset, info.value.record, info.value.valid_after) == (len(good), 2, len(good + bad))
    with pytest.raises(JournalCorrupted):  # sticky
        reader.finish()


def test_zeroed_block_in_the_middle_is_refused():
    data, offsets = journal(PAYLOADS)
    damaged = data[:offsets[2]] + bytes(offsets[3] - offsets[2]) + data[offsets[3]:]
    with pytest.raises(JournalCorrupted) as info:
        read_all(damaged)
    assert info.value.offset == offsets[2] and info.value.valid_after == offsets[3]
    assert "invalid record length 0" in info.value.message


def test_checksum_valid_record_that_does_not_decode_is_refused_even_last():
    body = b"\xff\xff"  # not CBOR
    bad = struct.pack("<II", len(body), zlib.crc32(body)) + body
    data, offsets = journal(PAYLOADS[:2])
    for tail in (b"", encode_record("after")):
        with pytest.raises(JournalCorrupted) as info:
            read_all(data + bad + tail)
        assert info.value.offset == len(data) and info.value.record == 3
        assert info.value.valid_after is None
        assert "its checksum is valid but it does not decode" in info.value.message


def test_length_over_maximum_is_checked_before_waiting_for_the_body():
    good = encode_record("ok")
    huge = struct.pack("<II", MAX_RECORD + 1, 0)
    # At the end: a torn tail, reported at once without waiting for (or allocating) 256 MiB.
    reader = JournalReader()
    reader.feed(good + huge + b"junk")
    assert list(reader.records()) == ["ok"]
    assert reader.finish() == TailReport(len(good), 12, 1, f"invalid record length {MAX_RECORD + 1} "
                                                          f"(maximum {MAX_RECORD})")
    for length in (0xFFFFFFFF, MAX_RECORD + 1):
        got, report = read_all(encode_header() + good + struct.pack("<II", length, 0))
        assert got == ["ok"] and (report.offset, report.dropped) == (HEADER_SIZE + len(good), 8)
    # Followed by valid records: damage in the middle.
    with pytest.raises(JournalCorrupted) as info:
        read_all(encode_header() + good + huge + encode_record("after"))
    assert info.value.offset == HEADER_SIZE + len(good)
    assert f"invalid record length {MAX_RECORD + 1}" in info.value.message


def test_custom_max_record():
    data = encode_header() + encode_record("a" * 50) + encode_record("b")
    with pytest.raises(JournalCorrupted):
        read_all(data, max_record=40)
    got, report = read_all(encode_header() + encode_record("b") + encode_record("a" * 50), max_record=40)
    assert got == ["b"] and report.reason == "invalid record length 52 (maximum 40)"


# --- properties ---

cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30) | st.binary(max_size=300),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10) | st.integers(), inner,
                                                                max_size=5),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(payloads=st.lists(cbor_values, max_size=30), chunk_sizes=st.lists(st.integers(1, 200), min_size=1, max_size=10))
def test_any_payloads_in_any_chunking_round_trip(payloads, chunk_sizes):
    data, _ = journal(payloads)
    got, report = read_chunked(data, chunk_sizes)
    assert got == payloads
    assert report == TailReport(len(data), 0, len(payloads), None)


@settings(max_examples=100, deadline=None)
@given(payloads=st.lists(cbor_values, min_size=1, max_size=10), data=st.data())
def test_any_cut_keeps_exactly_the_complete_records(payloads, data):
    whole, offsets = journal(payloads)
    cut = data.draw(st.integers(HEADER_SIZE, len(whole)))
    got, report = read_all(whole[:cut])
    complete = sum(1 for end in offsets[1:] if end <= cut)
    assert got == payloads[:complete]
    assert report.offset == offsets[complete] and report.dropped == cut - offsets[complete]


scalar_or_tagged = (cbor_values | st.floats(allow_nan=False) | st.datetimes(timezones=st.just(datetime.timezone.utc))
                    | st.decimals(allow_nan=False, allow_infinity=False) | st.sets(st.integers(), max_size=3)
                    | st.integers(min_value=-(2**130), max_value=2**130) | st.fractions())


@settings(max_examples=300, deadline=None)
@given(value=st.recursive(scalar_or_tagged, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=10))
def test_every_encoded_body_passes_the_resync_prefilter(value):
    # A false "no" here would let damage in the middle pass for a torn tail.
    body = cbor2.dumps(value)
    assert fmt._one_cbor_item(bytearray(body), 0, len(body))
    data = encode_header() + encode_record("a") + b"\x07\x00\x00\x00junk!!!" + encode_record(value)
    with pytest.raises(JournalCorrupted) as info:
        read_all(data)
    assert info.value.valid_after == HEADER_SIZE + len(encode_record("a")) + 11


def test_prefilter_rejects_items_that_do_not_fill_the_candidate():
    for body in [b"\x01\x01", b"\x43ab", b"\x1c", b"\xff", b"\x84\x01\x02", b"\xa2\x01\x02\x03", b"\xc1"]:
        assert not fmt._one_cbor_item(bytearray(body), 0, len(body)), body
    for body in [b"\x01", b"\x43abc", b"\x82\x01\x02", b"\x9f\x01\xff", b"\xc1\x1a\x00\x00\x00\x01"]:
        assert fmt._one_cbor_item(bytearray(body), 0, len(body)), body


def bad_checksum_record():
    rec = bytearray(encode_record("x"))
    rec[4] ^= 1
    return bytes(rec)


def test_search_after_damage_is_bounded(monkeypatch):
    # Megabytes of random garbage after a bad record: too costly to search exhaustively, so
    # it is refused (never cut silently) once the work budget is spent.
    monkeypatch.setattr(fmt, "_SEARCH_BUDGET", 1 << 20)
    data, _ = journal(PAYLOADS[:3])
    garbage = random.Random(3).randbytes(2 << 20)
    with pytest.raises(JournalCorrupted) as info:
        read_all(data + bad_checksum_record() + garbage)
    assert info.value.offset == len(data) and info.value.valid_after is None
    assert info.value.message == (f"journal is damaged at byte {len(data)} (record 4: checksum mismatch), and "
                                  f"the data after it is too large to search for further valid records; "
                                  f"refusing to read past it")
    # zeros cost (almost) nothing to search, however many
    got, report = read_all(data + bytes(16 << 20))
    assert report.reason == "zero-filled tail" and report.dropped == 16 << 20


def test_megabyte_of_garbage_tail_is_cut_within_default_budget():
    data, _ = journal(PAYLOADS[:3])
    garbage = bad_checksum_record() + random.Random(4).randbytes(1 << 20)
    got, report = read_all(data + garbage)
    assert got == PAYLOADS[:3] and report == TailReport(len(data), len(garbage), 3, "checksum mismatch")
