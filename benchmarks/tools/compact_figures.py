"""Figures of the compact task store, journal and restore (issue 16 items 1-3), with real `hq`
processes on a zero-spawn worker:

  live N:     one N-task array, `--stdout none --stderr none`, journal on (or off with
              --no-journal): wall time, server RSS before / peak (VmHWM) / after, journal bytes.
  restore N:  an open job with one `sleep` task running on a normal worker and N-1 zero-spawn
              tasks finished; the server is killed (-9) and started again on the journal: time
              to its first answer (`hq job info`, and the server's own start->listening part),
              RSS of the restored server vs the live one, journal bytes.

  restart J:  a server started on a copy of the journal J (e.g. one a `restore` run left).

Usage: PYTHONPATH=<checkout> python benchmarks/tools/compact_figures.py live|restore N [--no-journal]
       PYTHONPATH=<checkout> python benchmarks/tools/compact_figures.py restart JOURNAL
Every process started here is stopped by its pid at the end. Prints one JSON line.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return None


class Hq:
    def __init__(self, d):
        self.d = d
        self.sd = os.path.join(d, "sd")
        self.procs = []

    def cmd(self, *args):
        return [sys.executable, "-c", "from hyperqueue.cli.main import main; main()", "--server-dir", self.sd, *map(str, args)]

    def run(self, *args, check=True):
        r = subprocess.run(self.cmd(*args), capture_output=True, text=True, cwd=self.d,
                           timeout=900)
        if check and r.returncode:
            raise RuntimeError(f"hq {args}: {r.stderr[-500:]}")
        return r

    def spawn(self, *args):
        p = subprocess.Popen(self.cmd(*args), cwd=self.d, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(self.d, f"log{len(self.procs)}"), "w"),
                             start_new_session=True)
        self.procs.append(p)
        return p

    def wait_ready(self, what, timeout=120):
        t0 = time.time()
        while time.time() - t0 < timeout:
            r = self.run(*what, check=False)
            if r.returncode == 0:
                return r
            time.sleep(0.05)
        raise RuntimeError(f"not ready: {what}")

    def stats(self, job):
        # (`job list`, not `job info`: the JSON of `job info` holds every task of the job, and
        # the client needs gigabytes for it with millions of tasks)
        r = self.run("--output-mode", "json", "job", "list", "--all")
        return next(j for j in json.loads(r.stdout) if j["id"] == job)["task_stats"]

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()


def live(n, journal=True):
    d = tempfile.mkdtemp(prefix="hq-compact-")
    hq = Hq(d)
    jpath = os.path.join(d, "journal.bin")
    try:
        server = hq.spawn("server", "start", *(["--journal", jpath] if journal else []))
        hq.wait_ready(("server", "info"))
        hq.spawn("worker", "start", "--zero-spawn", "--cpus", "8")
        hq.wait_ready(("worker", "info", "1"))
        rss0 = status(server.pid, "VmRSS")
        t0 = time.perf_counter()
        hq.run("--output-mode", "quiet", "submit", "--array", f"1-{n}", "--stdout", "none",
               "--stderr", "none", "--", "true")
        hq.run("job", "wait", "1")
        wall = time.perf_counter() - t0
        st = hq.stats(1)
        assert st["finished"] == n, st
        cpu = sum(os.times()[:0]) if False else None
        with open(f"/proc/{server.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        out = {"mode": "live", "n": n, "journal": journal, "wall_s": round(wall, 2),
               "tasks_per_s": round(n / wall), "server_cpu_us_per_task": round(cpu / n * 1e6, 1),
               "rss_before_mb": rss0, "rss_peak_mb": status(server.pid, "VmHWM"),
               "rss_after_mb": status(server.pid, "VmRSS"),
               "journal_bytes": os.path.getsize(jpath) if journal else None,
               "load": os.getloadavg()}
        if journal:
            out["journal_bytes_per_task"] = round(out["journal_bytes"] / n, 2)
        return out
    finally:
        hq.stop_all()


def restore(n):
    d = tempfile.mkdtemp(prefix="hq-restore-")
    hq = Hq(d)
    jpath = os.path.join(d, "journal.bin")
    try:
        server = hq.spawn("server", "start", "--journal", jpath)
        hq.wait_ready(("server", "info"))
        hq.run("job", "open")
        hq.spawn("worker", "start", "--cpus", "1")
        hq.wait_ready(("worker", "info", "1"))
        hq.run("submit", "--job", "1", "--stdout", "none", "--stderr", "none", "--",
               "sleep", "1000")
        while hq.stats(1)["running"] != 1:
            time.sleep(0.1)
        hq.spawn("worker", "start", "--zero-spawn", "--cpus", "16")
        hq.run("--output-mode", "quiet", "submit", "--job", "1", "--array", f"2-{n}", "--cpus",
               "2", "--stdout", "none", "--stderr", "none", "--", "true")
        while hq.stats(1)["finished"] != n - 1:
            time.sleep(0.5)
        hq.run("job", "info", "1")  # durable
        live_rss = status(server.pid, "VmRSS")
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        size = os.path.getsize(jpath)
        for p in hq.procs[1:]:  # the workers (they would stop by themselves)
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        t0 = time.perf_counter()
        server = hq.spawn("server", "start", "--journal", jpath)
        hq.wait_ready(("job", "info", "1"))
        first = time.perf_counter() - t0
        t1 = time.perf_counter()
        hq.run("server", "info")
        cli = time.perf_counter() - t1
        st = hq.stats(1)
        return {"mode": "restore", "n": n, "first_answer_s": round(first, 2),
                "cli_roundtrip_s": round(cli, 2), "journal_bytes": size,
                "journal_bytes_per_task": round(size / n, 2), "live_rss_mb": live_rss,
                "restored_rss_mb": status(server.pid, "VmRSS"),
                "restored_peak_mb": status(server.pid, "VmHWM"), "stats": st,
                "load": os.getloadavg()}
    finally:
        hq.stop_all()


def restart(journal):
    """A server started on a copy of `journal`: time to its first answer, RSS."""
    import shutil

    d = tempfile.mkdtemp(prefix="hq-restart-")
    hq = Hq(d)
    jpath = os.path.join(d, "journal.bin")
    shutil.copyfile(journal, jpath)
    try:
        t0 = time.perf_counter()
        server = hq.spawn("server", "start", "--journal", jpath)
        hq.wait_ready(("job", "info", "1"))
        first = time.perf_counter() - t0
        t1 = time.perf_counter()
        hq.run("server", "info")
        cli = time.perf_counter() - t1
        return {"mode": "restart", "journal_bytes": os.path.getsize(journal),
                "first_answer_s": round(first, 2), "cli_roundtrip_s": round(cli, 2),
                "restored_rss_mb": status(server.pid, "VmRSS"),
                "restored_peak_mb": status(server.pid, "VmHWM"), "stats": hq.stats(1),
                "load": os.getloadavg()}
    finally:
        hq.stop_all()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "restart":
        print(json.dumps(restart(sys.argv[2])))
        sys.exit(0)
    n = int(sys.argv[2])
    res = live(n, "--no-journal" not in sys.argv) if mode == "live" else restore(n)
    print(json.dumps(res))
