"""Output streaming (`hq submit --stream`): the file format and the reader.

* `format` -- the stream file's records (pure: bytes in, bytes out).
* `reader` -- reading a stream directory for `hq output-log` (pure apart from reading files).

The writer is the worker's (`worker/streamer.py`). Layer: a pure byte format like protocol;
may import cbor2 and the standard library, never trio/anyio, transport or any shell.
"""
