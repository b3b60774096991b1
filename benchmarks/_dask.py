"""Driver for Dask (`dask[distributed]`), run by `run.py` with the interpreter of the Dask venv.

    python _dask.py true N     N tasks, each `subprocess.run(["true"])` with output discarded
    python _dask.py noop N     N no-op Python functions (`client.map(noop, range(N))`)

Starts `LocalCluster(n_workers=1, threads_per_worker=2)` (the worker in its own process, the
scheduler in this one), times from `client.map` until every future has finished, checks that
none failed, closes the cluster and prints one JSON line. Cluster start-up is not timed.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time


def run_true(i):
    subprocess.run(["true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def noop(i):
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("true", "noop"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, n = argv[0], int(argv[1])

    # run.py stops us with SIGTERM on Ctrl-C: leave through the context managers so the
    # worker processes are shut down too.
    def _term(signum, frame):
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, _term)

    from distributed import Client, LocalCluster, wait

    fn = run_true if mode == "true" else noop
    t_start = time.perf_counter()
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(1)
        t_ready = time.perf_counter()
        t0 = time.perf_counter()
        futures = client.map(fn, range(n))
        wait(futures)
        elapsed = time.perf_counter() - t0
        errors = sum(1 for f in futures if f.status != "finished")
        del futures
    print(json.dumps({"mode": mode, "n": n, "elapsed_s": elapsed, "errors": errors,
                      "setup_s": t_ready - t_start}), flush=True)
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
