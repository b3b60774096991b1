"""The journal: an append-only file of checksummed CBOR event records.

* `format` -- the pure byte-level format (header, records, a reader that tells a torn tail from
              damage in the middle).
* `writer` -- the file's single owner in the server (trio): group commit, fsync in a thread,
              acknowledgement when durable.
* `prune`  -- which records `hq journal prune` keeps (pure).

The events inside are `core.events`; the HTML report over them is `hyperqueue.report`.
Layer: beside protocol (format, prune: pure) and transport (writer: trio). May import core and
errors; never protocol, transport or a shell.
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
