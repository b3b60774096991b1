"""Framed, sealed connections: the thin I/O shells around the sans-IO protocol.

* `connection` -- over a trio stream (server and worker), one writer per connection.
* `blocking`   -- over a blocking socket (the CLI's client: no event loop, fast start-up).

Layer: above protocol, below the server, worker and client shells that use it. May import
`protocol` (and trio, socket); the bytes' encoding and sealing stay in protocol (no cbor2 or
nacl here); never a shell or the CLI.
"""
