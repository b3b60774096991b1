"""The journal: an append-only file of checksummed CBOR event records.

`format` is the pure byte-level format (header, records, a reader that tells a torn tail from
damage in the middle); the file itself is owned by a single writer in the server.
"""

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

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_RECORD",
    "JournalCorrupted",
    "JournalError",
    "JournalReader",
    "TailReport",
    "encode_header",
    "encode_record",
    "encode_records",
    "parse_header",
    "read_all",
]
