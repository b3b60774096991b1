"""HyperQueue in Python: run many tasks on a cluster or a single machine with little overhead.

The command line is `hq`; see README.md. The Python API (upstream's names and paths):

* `Client` (`hyperqueue.client`) connects to a running server and submits jobs;
* `Job` (`hyperqueue.job`) is a graph of program and function tasks;
* `LocalCluster` (`hyperqueue.cluster`) starts a server and workers on this machine;
* `AsyncClient` (`hyperqueue.client.aio`) offers the client's operations as awaitables (anyio).

They are imported on first use: `import hyperqueue` alone starts nothing and imports no
event loop.
"""

from .errors import HqError
from .version import __version__

__all__ = ["AsyncClient", "Client", "HqError", "Job", "LocalCluster", "__version__",
           "get_version"]

_LAZY = {
    "Client": "hyperqueue.client.api",
    "AsyncClient": "hyperqueue.client.aio",
    "Job": "hyperqueue.job",
    "LocalCluster": "hyperqueue.cluster",
    "get_version": "hyperqueue.ffi",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
