"""Upstream's `hyperqueue.ffi` paths (there a Rust extension; here thin Python over the client
library): `ffi.protocol.ResourceRequest`, `ffi.client.ClientConnection`, `get_version()`.

Layer: the Python API's front end, beside `client.api`; may import the client library, core,
protocol and errors; never trio, click/rich, the server, the worker or the CLI.
"""

JobId = int
TaskId = int


def get_version() -> str:
    """The HyperQueue version of this package (and of its `hq` command)."""
    from ..version import __version__

    return __version__
