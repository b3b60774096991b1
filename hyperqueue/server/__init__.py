"""The server: a trio shell around the pure core.

* `boot`     -- before the event loop: the listening sockets, the core restored from the
                journal, the access record (no trio).
* `app`      -- the nursery tree: listeners, client and worker connections, the dispatcher that
                runs the scheduler, the journal writer, signals and graceful stop.
* `requests` -- the answers to client requests (one typed request -> one typed response).

Layer: a shell. May import core, protocol, transport, journal, common, streaming (and, for
automatic allocation, autoalloc and batch); never the worker, the client, the CLI or `local`.
"""
