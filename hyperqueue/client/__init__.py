"""The client library: everything a front end (the `hq` CLI, the Python API) needs to talk
to a server, without click, trio or rendering.

* `spec`     -- one job-spec builder: plain values -> TaskSpec/JobSpec -> a validated SubmitRequest
                (errors: `hyperqueue.errors.SpecError`, naming the field).
* `jobfile`  -- TOML job files -> the same builder (errors worded in file terms).
* `calls`    -- typed calls as sans-IO generators (paging included), driven by a client.
* `wait`     -- waiting for jobs at once, or polling progress snapshots for a renderer.
* `blocking` -- the blocking client (no event loop, so `hq job list` starts fast).
* `api`      -- the Python API's `Client` (upstream's `hyperqueue.client.Client`,
                `FailedJobsException`, `PythonEnv`, re-exported here lazily).
* `aio`      -- `AsyncClient`, the same operations as awaitables (anyio: asyncio or trio).

Layer: the client side, above protocol and transport. May import core, protocol, transport,
common, errors, version; never trio (`aio` uses anyio, which runs on either loop), click/rich, the server, the worker or the CLI.
"""

_LAZY = {"Client": "api", "FailedJobsException": "api", "SubmittedJob": "api",
         "PythonEnv": "api", "AsyncClient": "aio"}


def __getattr__(name):
    # Lazy: the CLI imports this package for `blocking`/`calls` and must not pay for the API.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
