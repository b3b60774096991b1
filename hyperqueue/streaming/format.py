"""The stream file format of `--stream` (pure: bytes in, bytes out).

One file per (worker, stream directory), written by the worker, read by `hq output-log`:

    b"hqsf0000"                          magic (8 bytes)
    u32 little-endian length + CBOR      header: {"server_uid": str, "worker_id": int}
    records, each:
        RECORD = struct "<QIIIBI"        time (ms since the epoch), job id, task id,
                                         instance id, channel (0 stdout, 1 stderr), size
        `size` raw bytes                 a chunk of that channel's output
    A record with size 0 closes that channel of that task instance.

A file can end in the middle of a record (the worker died while writing); readers stop there.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import cbor2

MAGIC = b"hqsf0000"
SUFFIX = ".hqs"
RECORD = struct.Struct("<QIIIBI")
STDOUT, STDERR = 0, 1
CHANNELS = {"stdout": STDOUT, "stderr": STDERR}


class StreamFormatError(ValueError):
    """Not a stream file, or its header is unreadable."""


class TornHeaderError(StreamFormatError):
    """The data is a strict prefix of a header: the writer died while creating the file."""


def encode_header(server_uid: str, worker_id: int) -> bytes:
    body = cbor2.dumps({"server_uid": server_uid, "worker_id": worker_id})
    return MAGIC + struct.pack("<I", len(body)) + body


def encode_record(time_ms: int, job: int, task: int, instance: int, channel: int,
                  data: bytes) -> bytes:
    return RECORD.pack(time_ms, job, task, instance, channel, len(data)) + data


def decode(data: bytes) -> tuple[dict, Iterator[tuple[int, int, int, int, int, bytes]]]:
    """(header, records) of a whole stream file; records are
    `(time_ms, job, task, instance, channel, chunk)`, an empty chunk closing the channel.

    Raises:
        TornHeaderError: the file ends inside its header (it holds no records).
        StreamFormatError: no magic or a damaged header.
    """
    if data[:len(MAGIC)] != MAGIC:
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            raise TornHeaderError("truncated stream file header")
        raise StreamFormatError("not a HyperQueue stream file (bad magic)")
    pos = len(MAGIC)
    if len(data) < pos + 4:
        raise TornHeaderError("truncated stream file header")
    (n,) = struct.unpack_from("<I", data, pos)
    pos += 4
    if len(data) < pos + n:
        raise TornHeaderError("truncated stream file header")
    try:
        header = cbor2.loads(data[pos:pos + n])
    except Exception as e:  # noqa: BLE001 - any decoding failure is a damaged header
        raise StreamFormatError(f"damaged stream file header: {e}") from None
    if not (isinstance(header, dict) and isinstance(header.get("server_uid"), str)
            and isinstance(header.get("worker_id"), int)):
        raise StreamFormatError("damaged stream file header")
    pos += n

    def records(pos=pos):
        size_rec = RECORD.size
        end = len(data)
        while pos + size_rec <= end:
            time_ms, job, task, instance, channel, size = RECORD.unpack_from(data, pos)
            pos += size_rec
            if pos + size > end:
                return  # torn last record
            yield time_ms, job, task, instance, channel, bytes(data[pos:pos + size])
            pos += size

    return header, records()
