"""A small hq cluster on one machine, built from Linux network namespaces (needs root).

    switch netns  : a bridge `br0`, one port `p-<node>` per node (nothing is added to the
                    machine's own namespace; traffic never leaves the machine)
    login  netns  : eth0 10.77.0.1, hostname `login0.<domain>`; runs the server and the clients
    cnN    netns  : eth0 10.77.0.(10+N), hostname `cnN.<domain>`; runs a worker

Every node is held by one "holder" process (`ip netns exec NS unshare --uts --mount sh -c ...`
that sets the hostname, bind-mounts the hosts file this helper writes over /etc/hosts, and
sleeps). Commands run in a node through `nsenter -t <holder> -n -u -m`, so they see the node's
network, hostname and hosts file. The hosts file maps `login` (the name given to `hq server start
--host`) and every `cnN`; the login node's own hostname (`login0...`) is deliberately *not* in
it, like a login node whose default name is not the one compute nodes reach it by.

A partition takes a node's switch port down (`ip -n <switch> link set p-<node> down`): the node
keeps its address and routes, its packets are dropped, like a pulled cable.

Names carry a per-cluster prefix `hqc-<creator pid>-<random>`, so parallel or leftover runs
never collide; `sweep_leftovers()` removes the namespaces of creators that are gone. `close()`
stops only the processes this helper started (by pid: SIGTERM, then SIGKILL), then whatever still
runs inside its own namespaces (descendants of those: tasks of killed workers), then deletes the
namespaces. It is safe to call more than once and after a failed `start()`.

Standard library only (the benchmark imports it too). The `hq` command, the environment
clean-up and the readiness checks come from `tests/hqenv.py`, shared with the e2e tests and the
benchmarks.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: hqenv

from hqenv import ENV_DROP, Process, hq_command, pid_alive, server_ready, worker_banner_id  # noqa: E402

NAME_RE = re.compile(r"^hqc-(\d+)-([0-9a-f]{6})-")
SUBNET = "10.77.0"
DOMAIN = "hqc.test"
LOGIN_ALIAS = "login"  # what the server is started with: `--host login`


class ClusterError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    if check and res.returncode != 0:
        raise ClusterError(f"`ip {' '.join(args)}` failed: {res.stderr.strip()}")
    return res


def unavailable_reason() -> str | None:
    """Why namespaces cannot be built here (None: they can). Tries a real namespace."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (running as uid %d)" % os.geteuid()
    for tool in ("ip", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (iproute2 / util-linux)"
    probe = f"hqc-{os.getpid()}-{secrets.token_hex(3)}-probe"
    res = _ip("netns", "add", probe, check=False)
    if res.returncode != 0:
        return f"cannot create a network namespace: {res.stderr.strip() or res.returncode}"
    try:
        res = _ip("-n", probe, "link", "add", "br0", "type", "bridge", check=False)
        if res.returncode != 0:
            return f"cannot create a bridge in a namespace: {res.stderr.strip()}"
        res = subprocess.run(["ip", "netns", "exec", probe, "unshare", "--uts", "--mount", "true"],
                             capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            return f"cannot create UTS/mount namespaces: {res.stderr.strip()}"
    finally:
        _ip("netns", "del", probe, check=False)
    return None


_pid_alive = pid_alive


def _kill_pids(pids, grace: float = 3.0) -> None:
    pids = [p for p in pids if _pid_alive(p)]
    for p in pids:
        for sig in (signal.SIGCONT, signal.SIGTERM):
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        time.sleep(0.05)
    for p in pids:
        if _pid_alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _netns_pids(ns: str) -> list[int]:
    res = _ip("netns", "pids", ns, check=False)
    return [int(x) for x in res.stdout.split() if x.isdigit()]


def _delete_netns(names) -> None:
    """Kills what still runs inside (only descendants of our processes live there), deletes."""
    for _ in range(3):
        pids = [p for ns in names for p in _netns_pids(ns)]
        if not pids:
            break
        _kill_pids(pids, grace=1.0)
    for ns in names:
        _ip("netns", "del", ns, check=False)


def sweep_leftovers() -> list[str]:
    """Deletes namespaces of earlier runs whose creating process is gone. Returns their names."""
    res = _ip("netns", "list", check=False)
    stale = []
    for line in res.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = NAME_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            stale.append(name)
    if stale:
        _delete_netns(stale)
    return stale


class Node:
    """One host of the cluster: a network namespace with its own hostname and hosts file."""

    def __init__(self, cluster: "Cluster", short: str, addr: str, alias: str | None = None):
        self.cluster = cluster
        self.short = short
        self.hostname = f"{short}.{cluster.domain}"
        self.addr = addr
        self.alias = alias
        self.netns = f"{cluster.prefix}-{short}"
        self.port = f"p-{short}"  # its port on the switch
        self.holder: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"<Node {self.hostname} {self.addr}>"

    def _enter(self, argv, cwd) -> list[str]:
        if self.holder is None:
            raise ClusterError(f"node {self.short} is not running")
        return ["nsenter", "-t", str(self.holder.pid), "-n", "-u", "-m",
                f"--wd={cwd}", "--", *map(str, argv)]

    def popen(self, argv, *, cwd, stdout, stderr, env=None, name="proc") -> subprocess.Popen:
        """Starts a long-running process on this node (nsenter execs it: the pid is the
        program's own); stopped by `Cluster.close`."""
        p = subprocess.Popen(self._enter(argv, cwd), stdout=stdout, stderr=stderr,
                             stdin=subprocess.DEVNULL, env=env or self.cluster.env,
                             start_new_session=True)
        self.cluster.procs.append(p)
        return p

    def run(self, argv, *, cwd, env=None, timeout: float = 30.0,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Runs a command on this node to completion."""
        p = subprocess.Popen(self._enter(argv, cwd), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env or self.cluster.env, text=True,
                             stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                             start_new_session=True)
        self.cluster.procs.append(p)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_pids([p.pid], grace=1.0)
            p.wait(5)
            raise ClusterError(f"{argv} on {self.short} timed out after {timeout} s") from None
        finally:
            if p.poll() is not None and p in self.cluster.procs:
                self.cluster.procs.remove(p)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)


class Cluster:
    """See the module docstring. Use as a context manager or call start()/close()."""

    def __init__(self, root: Path, n_compute: int = 3, *, domain: str = DOMAIN,
                 env: dict | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.prefix = f"hqc-{os.getpid()}-{secrets.token_hex(3)}"
        self.domain = domain
        self.switch = f"{self.prefix}-sw"
        self.login = Node(self, "login0", f"{SUBNET}.1", alias=LOGIN_ALIAS)
        self.computes = [Node(self, f"cn{i}", f"{SUBNET}.{10 + i}")
                         for i in range(1, n_compute + 1)]
        self.hosts_file = self.root / "hosts"
        self.procs: list[subprocess.Popen] = []  # everything started, in order
        self.created: list[str] = []  # namespaces created, in order
        base = env if env is not None else os.environ
        self.env = {k: v for k, v in base.items() if k not in ENV_DROP}
        self.closed = False

    @property
    def nodes(self) -> list[Node]:
        return [self.login, *self.computes]

    def node(self, short: str) -> Node:
        for n in self.nodes:
            if n.short == short:
                return n
        raise KeyError(short)

    def __enter__(self) -> "Cluster":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- building ---------------------------------------------------------------------------
    def start(self) -> None:
        sweep_leftovers()
        lines = ["127.0.0.1 localhost"]
        for n in self.nodes:
            names = [n.hostname, n.short] if n.alias is None else [n.alias]
            lines.append(f"{n.addr} {' '.join(names)}")
        self.hosts_file.write_text("\n".join(lines) + "\n")
        os.chmod(self.hosts_file, 0o644)
        self._add_netns(self.switch)
        sw = self.switch
        _ip("-n", sw, "link", "set", "lo", "up")
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw, "link", "set", "br0", "up")
        for n in self.nodes:
            self._add_netns(n.netns)
            _ip("-n", sw, "link", "add", n.port, "type", "veth", "peer", "name", "eth0",
                "netns", n.netns)
            _ip("-n", sw, "link", "set", n.port, "master", "br0")
            _ip("-n", sw, "link", "set", n.port, "up")
            _ip("-n", n.netns, "link", "set", "lo", "up")
            _ip("-n", n.netns, "addr", "add", f"{n.addr}/24", "dev", "eth0")
            _ip("-n", n.netns, "link", "set", "eth0", "up")
        for n in self.nodes:
            self._start_holder(n)

    def _add_netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.created.append(name)

    def _start_holder(self, n: Node) -> None:
        script = (f"hostname {n.hostname} && mount --bind {self.hosts_file} /etc/hosts "
                  f"&& echo ready && exec sleep 2147483647")
        p = subprocess.Popen(["ip", "netns", "exec", n.netns, "unshare", "--uts", "--mount",
                              "sh", "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                             start_new_session=True)
        self.procs.append(p)
        line = p.stdout.readline()
        if line.strip() != "ready":
            p.wait(5)
            raise ClusterError(f"node {n.short} did not start: {p.stderr.read().strip()}")
        n.holder = p

    # -- faults -----------------------------------------------------------------------------
    def partition(self, *nodes: Node) -> None:
        """Cuts the nodes off the switch (their packets are dropped, addresses stay)."""
        for n in nodes:
            _ip("-n", self.switch, "link", "set", n.port, "down")

    def heal(self, *nodes: Node) -> None:
        for n in nodes:
            _ip("-n", self.switch, "link", "set", n.port, "up")

    # -- teardown ---------------------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        holders = {n.holder.pid for n in self.nodes if n.holder is not None}
        # Heal first, so stopping workers can say goodbye instead of waiting on a dead link.
        for n in self.nodes:
            if self.switch in self.created:
                _ip("-n", self.switch, "link", "set", n.port, "up", check=False)
        _kill_pids([p.pid for p in reversed(self.procs) if p.pid not in holders], grace=5.0)
        _kill_pids(list(holders), grace=1.0)
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
            for f in (p.stdout, p.stderr):
                if f is not None:
                    f.close()
        _delete_netns(list(reversed(self.created)))
        self.created = []


class HqCluster(Cluster):
    """The cluster with hq on it: server on the login node, workers on compute nodes, clients
    on the login node. Process output goes to files in `root`."""

    def __init__(self, root: Path, n_compute: int = 3, **kw):
        super().__init__(root, n_compute, **kw)
        self.hq = hq_command()
        self.server_dir = self.root / "sd"
        self.work = self.root / "work"  # the shared file system (submit dir, task outputs)
        self.work.mkdir(exist_ok=True)
        self.server: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self._n = 0

    def _logs(self, name: str):
        self._n += 1
        return (open(self.root / f"{name}-{self._n}.out", "wb"),
                open(self.root / f"{name}-{self._n}.err", "wb"))

    def log_text(self, p: subprocess.Popen, which: str = "err") -> str:
        path = getattr(p, "hq_" + which)
        return Path(path).read_text(errors="replace")

    def _spawn(self, node: Node, name: str, args) -> subprocess.Popen:
        out, err = self._logs(name)
        with out, err:
            p = node.popen([*self.hq, "--server-dir", self.server_dir, *args], cwd=self.work,
                           stdout=out, stderr=err)
        p.hq_out, p.hq_err = out.name, err.name
        return p

    def start_server(self, *args: str, host: str = LOGIN_ALIAS, timeout: float = 20.0):
        host_args = ["--host", host] if host else []
        p = self._spawn(self.login, "server", ["server", "start", *host_args, *args])
        access = self.server_dir / "hq-current" / "access.json"
        proc = Process("server", p, Path(p.hq_out), Path(p.hq_err))
        deadline = time.monotonic() + timeout
        while True:
            try:
                if server_ready(proc, access):
                    break
            except AssertionError:
                raise ClusterError(f"server exited with {p.returncode}: {self.log_text(p)}") from None
            if time.monotonic() > deadline:
                raise ClusterError(f"server not ready after {timeout} s: {self.log_text(p)}")
            time.sleep(0.05)
        self.server = p
        return p

    def start_worker(self, node: Node, *args: str, cpus: str = "1", wait: bool = True,
                     timeout: float = 20.0) -> subprocess.Popen:
        work_dir = self.root / f"worker-work-{node.short}-{self._n + 1}"
        p = self._spawn(node, f"worker-{node.short}",
                        ["worker", "start", "--cpus", cpus, "--work-dir", work_dir, *args])
        self.workers[node.short] = p
        if wait:
            proc = Process(f"worker on {node.short}", p, Path(p.hq_out), Path(p.hq_err))
            deadline = time.monotonic() + timeout
            while True:
                try:
                    worker_id = worker_banner_id(proc)
                except AssertionError:
                    raise ClusterError(f"worker on {node.short} exited with {p.returncode}: "
                                       f"{self.log_text(p)}") from None
                if worker_id is not None:
                    p.worker_id = worker_id
                    break
                if time.monotonic() > deadline:
                    raise ClusterError(f"worker on {node.short} not up after {timeout} s: "
                                       f"{self.log_text(p)}")
                time.sleep(0.05)
        return p

    def run(self, *args: str, timeout: float = 30.0, node: Node | None = None,
            mode: str | None = None) -> subprocess.CompletedProcess:
        """A client command (on the login node unless `node` is given)."""
        full = ["--server-dir", self.server_dir]
        if mode:
            full += ["--output-mode", mode]
        return (node or self.login).run([*self.hq, *full, *args], cwd=self.work, timeout=timeout)

    def hq_ok(self, *args: str, **kw) -> str:
        res = self.run(*args, **kw)
        if res.returncode != 0:
            raise ClusterError(f"hq {' '.join(map(str, args))} exited with {res.returncode}:\n"
                               f"{res.stdout}{res.stderr}")
        return res.stdout
