"""HyperQueue in Python: run many tasks on a cluster or a single machine with little overhead.

The command line is `hq`; see README.md.
"""

from .errors import HqError
from .version import __version__

__all__ = ["HqError", "__version__"]
