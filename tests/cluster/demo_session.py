"""A session by hand on the namespaced cluster (needs root):

    PYTHONPATH=. python tests/cluster/demo_session.py

Builds the cluster, starts the server (`--host login`) and a 1-CPU worker on each of cn1..cn3
(cn1 with `--on-server-lost reconnect`), submits 9 tasks, cuts cn1 off for 4 s and prints
`worker list` / `job info` before, during and after; tears everything down at the end."""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netns_cluster import HqCluster  # noqa: E402


def show(c, *args):
    print(f"$ hq {' '.join(args)}", flush=True)
    print(c.hq_ok(*args).rstrip(), flush=True)


def main():
    with HqCluster(Path(tempfile.mkdtemp(prefix="hqc-demo-"))) as c:
        c.start_server()
        cn1, cn2, cn3 = c.computes
        c.start_worker(cn1, "--heartbeat", "1s", "--on-server-lost", "reconnect")
        c.start_worker(cn2, "--heartbeat", "1s")
        c.start_worker(cn3, "--heartbeat", "1s")
        show(c, "server", "info")
        show(c, "worker", "list")
        show(c, "submit", "--array", "1-9", "--", "sh", "-c", "sleep 1.5; hostname")
        time.sleep(1)
        print(f"# partition: {cn1.hostname} cut off the switch", flush=True)
        c.partition(cn1)
        time.sleep(3)
        show(c, "worker", "list", "--all")
        show(c, "task", "list", "1")
        time.sleep(1)
        print(f"# heal: {cn1.hostname} back on the switch", flush=True)
        c.heal(cn1)
        time.sleep(2)
        show(c, "worker", "list", "--all")
        show(c, "job", "wait", "1")
        show(c, "job", "info", "1")
        show(c, "task", "list", "1")


if __name__ == "__main__":
    main()
