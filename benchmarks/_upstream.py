"""Driver for upstream HyperQueue (PyPI `hyperqueue==0.27.0`), run by `run.py` with the
interpreter of the upstream venv. Not meant to be run by hand, but it can be:

    python _upstream.py server SERVER_DIR
        Start a server in this process (`LocalCluster` without workers), print one JSON line
        {"ready": true, ...}, and keep it running until stdin reaches EOF or a line "stop".

    python _upstream.py worker SERVER_DIR OWN_DIR CORES
        Run a worker of the server in SERVER_DIR in THIS process: the PyPI package can only add
        a worker to a cluster it started itself (`Cluster.add_worker`, which reads the access
        record through `<own server dir>/hq-current`). So we start our own (idle) cluster in
        OWN_DIR, point OWN_DIR/hq-current at the instance directory of the first server, then
        add the worker: it connects to the first server. Prints {"ready": true, ...} and runs
        until stdin reaches EOF or a line "stop".

    python _upstream.py client SERVER_DIR N none|default|function
        Build one job with N tasks `true` (stdout/stderr discarded or the package's default
        files in the cwd), or N no-op Python functions (`job.function(noop)`, stdout/stderr
        discarded; the worker's `python3` must be this venv's), submit it, wait for it and
        print one JSON line with timings.

The package's `wait_for_jobs` polls the server once per second, so "wait returned" is late by up
to a second. The progress callback records (time, finished tasks) at each poll; from the last
polls before completion we estimate when the last task finished (linear interpolation at the
observed rate, clamped between the last incomplete poll and the return of the wait).
"""

from __future__ import annotations

import json
import os
import sys
import time


def _block_until_stop() -> None:
    for line in sys.stdin:
        if line.strip() == "stop":
            break


def _say(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def server(server_dir: str) -> None:
    from hyperqueue.cluster import LocalCluster

    server_dir = os.path.abspath(server_dir)
    os.makedirs(server_dir, exist_ok=True)
    cluster = LocalCluster(server_dir=server_dir)
    try:
        instance = os.path.realpath(os.path.join(server_dir, "hq-current"))
        _say({"ready": True, "pid": os.getpid(), "server_dir": server_dir, "instance": instance})
        _block_until_stop()
    finally:
        cluster.stop()


def worker(server_dir: str, own_dir: str, cores: int) -> None:
    from hyperqueue.ffi.cluster import Cluster

    server_dir = os.path.abspath(server_dir)
    own_dir = os.path.abspath(own_dir)
    os.makedirs(own_dir, exist_ok=True)
    target = os.path.realpath(os.path.join(server_dir, "hq-current"))
    if not os.path.isfile(os.path.join(target, "access.json")):
        raise SystemExit(f"no running upstream server instance at {server_dir}")
    cluster = Cluster(own_dir)  # starts an idle server of our own; we only borrow its worker API
    try:
        link = os.path.join(own_dir, "hq-current")
        tmp = link + ".bench"
        os.symlink(target, tmp)
        os.replace(tmp, link)
        cluster.add_worker(cores)
        _say({"ready": True, "pid": os.getpid(), "target_instance": target, "cores": cores})
        _block_until_stop()
    finally:
        cluster.stop()


def _noop():
    return None


def client(server_dir: str, n: int, stdio: str) -> None:
    from hyperqueue import Client, Job

    t_start = time.perf_counter()
    c = Client(os.path.abspath(server_dir))
    t_connected = time.perf_counter()
    job = Job()
    if stdio == "function":
        for _ in range(n):
            job.function(_noop, stdout=None, stderr=None)
    elif stdio == "none":
        for _ in range(n):
            job.program(["true"], stdout=None, stderr=None)
    else:
        for _ in range(n):
            job.program(["true"])
    t_built = time.perf_counter()

    polls: list[tuple[float, int]] = []

    def progress(jobs) -> None:
        finished = sum(int(s.get("finished", 0)) + int(s.get("failed", 0)) for s in jobs.values())
        polls.append((time.perf_counter(), finished))

    t0 = time.perf_counter()
    submitted = c.submit(job)
    t_submitted = time.perf_counter()
    failed_jobs = c.connection.wait_for_jobs([submitted.id], progress)
    t_done = time.perf_counter()

    # Estimate when the last task finished (see the module docstring).
    points = [(t0, 0)] + [(t, f) for t, f in polls if f < n and t < t_done]
    estimate = t_done
    coarse = True
    if len(points) >= 2:
        (ta, fa), (tb, fb) = points[-2], points[-1]
        if fb > fa and tb > ta:
            rate = (fb - fa) / (tb - ta)
            estimate = min(max(tb + (n - fb) / rate, tb), t_done)
            coarse = False
    _say({
        "n": n,
        "stdio": stdio,
        "connect_s": t_connected - t_start,
        "build_s": t_built - t_connected,
        "submit_s": t_submitted - t0,
        "wait_returned_s": t_done - t0,
        "completed_s": estimate - t0,
        "coarse": coarse,
        "polls": [[round(t - t0, 4), f] for t, f in polls],
        "failed_jobs": list(failed_jobs),
    })


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    mode, args = argv[0], argv[1:]
    if mode == "server" and len(args) == 1:
        server(args[0])
    elif mode == "worker" and len(args) == 3:
        worker(args[0], args[1], int(args[2]))
    elif mode == "client" and len(args) == 3:
        client(args[0], int(args[1]), args[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
