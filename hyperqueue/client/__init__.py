"""The client library: everything a front end (the `hq` CLI, next the Python API) needs to talk
to a server, without click, trio or rendering.

* `spec`     -- one job-spec builder: plain values -> TaskSpec/JobSpec -> a validated SubmitRequest
                (errors: `hyperqueue.errors.SpecError`, naming the field).
* `jobfile`  -- TOML job files -> the same builder (errors worded in file terms).
* `calls`    -- typed calls as sans-IO generators (paging included), driven by a client.
* `wait`     -- waiting for jobs at once, or polling progress snapshots for a renderer.
* `blocking` -- the blocking client (no event loop, so `hq job list` starts fast).

Layer: the client side, above protocol and transport. May import core, protocol, transport,
common, errors, version; never trio, click/rich, the server, the worker or the CLI.
"""
