"""Reference systems: what hq is compared with, each in its own venv under benchmarks/.venvs/.

* `venvs.py`: creating the venvs (upstream HyperQueue, Dask, and `hq-clean`, this checkout
  installed with `pip install .`), with a marker file so later runs skip pip;
* `upstream.py`: upstream's server and worker in two processes, driven by `../_upstream.py`;
* `dask.py`: Dask's LocalCluster, driven by `../_dask.py`.

The drivers (`_upstream.py`, `_dask.py`) run under the references' own interpreters, so they
stay plain scripts next to run.py.
"""

from references.venvs import (REFERENCES, UPSTREAM_VERSION, Reference, ensure_clean_hq,  # noqa: F401
                              ensure_reference)
