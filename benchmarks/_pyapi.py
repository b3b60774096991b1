"""Driver for hq's Python API (this checkout's `hyperqueue` package), run by `run.py` with hq's
interpreter against a server (and one 2-CPU worker) that `workloads/_hq.py` started:

    python _pyapi.py function SERVER_DIR N    N no-op function tasks (`job.function(noop)`)
    python _pyapi.py true SERVER_DIR N        N program tasks `true` (`job.program(["true"])`)

stdout/stderr of every task: None (no files), as in the Dask and CLI rows it is compared with.
One `Job`, one `Client.submit`, `Client.wait_for_jobs`; prints one JSON line. `total_s` is
timed from the first `Job()` line (building the job and pickling the functions included) to the
return of the wait; `process_start` is this process's start (perf_counter at `main`, for the
whole-script figure the CLI comparison uses).
"""

from __future__ import annotations

import json
import os
import sys
import time

T_MAIN = time.perf_counter()


def noop():
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("function", "true"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, server_dir, n = argv[0], argv[1], int(argv[2])
    t_import = time.perf_counter()
    from hyperqueue import Client, Job

    client = Client(os.path.abspath(server_dir))
    t0 = time.perf_counter()
    job = Job()
    if mode == "function":
        for _ in range(n):
            job.function(noop, stdout=None, stderr=None)
    else:
        for _ in range(n):
            job.program(["true"], stdout=None, stderr=None)
    t_built = time.perf_counter()
    submitted = client.submit(job)
    t_submitted = time.perf_counter()
    ok = client.wait_for_jobs([submitted], raise_on_error=False)
    t_done = time.perf_counter()
    print(json.dumps({"mode": mode, "n": n, "ok": ok, "job_id": submitted.id,
                      "import_connect_s": t0 - t_import, "build_s": t_built - t0,
                      "submit_s": t_submitted - t_built, "wait_s": t_done - t_submitted,
                      "total_s": t_done - t0, "script_s": t_done - T_MAIN}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
