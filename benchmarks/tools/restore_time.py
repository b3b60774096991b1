"""Times the server's restore (`server.boot.restore`) of a journal file in this process: the
part of a restart that grows with the journal. Works on a copy (restore may cut a torn tail).

Usage: PYTHONPATH=<checkout> python benchmarks/tools/restore_time.py JOURNAL  -> one JSON line
"""

import json
import os
import resource
import shutil
import sys
import tempfile
import time

src = sys.argv[1]
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "journal.bin")
    shutil.copyfile(src, path)
    from hyperqueue.server.boot import restore

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    core = restore(path)
    dt = time.perf_counter() - t0  # (with the lazy imports of restore: see the second)
    del core
    t0 = time.perf_counter()
    core = restore(path)
    dt2 = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tasks = sum(j.n_tasks for j in core.jobs.values())
    print(json.dumps({"journal": src, "bytes": os.path.getsize(src), "restore_s": round(dt, 3),
                      "restore_again_s": round(dt2, 3),
                      "peak_rss_mb": round(peak, 1), "rss_before_mb": round(rss0, 1),
                      "jobs": len(core.jobs), "tasks_kept": tasks, "load": os.getloadavg()}))
