"""hq on a cluster of network namespaces: a login node (server, clients) and three compute
nodes (workers), each with its own address and hostname, names from a hosts file; partitions
cut a node's switch port (see netns_cluster.py). Heartbeats are 1 s, so a worker is HEARTBEAT
LOST 2 s into a partition."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter

import pytest

from hqenv import parse_horizontal as table_rows  # (tests/ is on the path: netns_cluster)
from hqenv import parse_vertical as vertical
from hqenv import wait_until
from netns_cluster import LOGIN_ALIAS, HqCluster

pytestmark = pytest.mark.netns

HB = ("--heartbeat", "1s")


def worker_states(c: HqCluster) -> dict[int, tuple[str, str]]:
    return {int(r["ID"]): (r["State"], r["Hostname"])
            for r in table_rows(c.hq_ok("worker", "list", "--all"))}


def finished_events(c: HqCluster, journal) -> Counter:
    """task-finished events per (job, task) in the journal (flushed first)."""
    c.hq_ok("journal", "flush")
    out = c.hq_ok("journal", "export", str(journal))
    return Counter((e["event"]["job"], e["event"]["task"]) for e in map(json.loads, out.splitlines())
                   if e["event"]["type"] == "task-finished")


def lines_of(path) -> list[tuple[int, int, str]]:
    """`<task> <instance> <hostname>` lines appended by the tasks."""
    out = []
    for line in path.read_text().splitlines():
        t, i, h = line.split()
        out.append((int(t), int(i), h))
    return out


def appender(path) -> list[str]:
    return ["sh", "-c", f"sleep 1; echo $HQ_TASK_ID $HQ_INSTANCE_ID $(hostname) >> {path}"]


# -- a healthy cluster ------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_server_is_reached_through_its_host_name(shared_cluster):
    c = shared_cluster
    access = json.loads((c.server_dir / "hq-current" / "access.json").read_text())
    assert access["client"]["host"] == access["worker"]["host"] == LOGIN_ALIAS
    info = vertical(c.hq_ok("server", "info"))
    assert info["Client host"] == info["Worker host"] == LOGIN_ALIAS
    js = json.loads(c.hq_ok("server", "info", mode="json"))
    assert js["client_host"] == js["worker_host"] == LOGIN_ALIAS
    # The three workers on other hosts came in through that name; a client on a compute node
    # (which knows the login node only as `login`) reaches the server too.
    res = c.run("worker", "list", node=c.computes[0])
    assert res.returncode == 0, res.stderr
    assert len(table_rows(res.stdout)) == 3
    # The login node's own name is not known to the compute nodes: a server that advertises it
    # (no --host) cannot be reached from them, and the worker says whom it tried to reach.
    other = c.root / "sd-nohost"
    p = c.login.popen([*c.hq, "--server-dir", other, "server", "start"], cwd=c.work,
                      stdout=open(c.root / "nohost.out", "wb"),
                      stderr=open(c.root / "nohost.err", "wb"))
    wait_until(lambda: (other / "hq-current" / "access.json").exists(), 20, 0.05, "server")
    rec = json.loads((other / "hq-current" / "access.json").read_text())
    assert rec["worker"]["host"] == c.login.hostname  # the login namespace's hostname
    w = c.computes[0].popen([*c.hq, "--server-dir", other, "worker", "start", "--cpus", "1",
                             "--work-dir", c.root / "nohost-work"], cwd=c.work,
                            stdout=open(c.root / "nohost-w.out", "wb"),
                            stderr=open(c.root / "nohost-w.err", "wb"))
    err = wait_until(lambda: "retrying" in (t := (c.root / "nohost-w.err").read_text()) and t,
                     20, 0.1, "a connection failure")
    assert c.login.hostname in err, err
    assert w.poll() is None  # still retrying, never registered
    res = c.run("worker", "list", "--all")  # our server never saw it
    assert len(table_rows(res.stdout)) == 3
    for proc in (w, p):
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


@pytest.mark.timeout(60)
def test_workers_show_their_own_hostnames(shared_cluster):
    c = shared_cluster
    rows = table_rows(c.hq_ok("worker", "list"))
    assert sorted(r["Hostname"] for r in rows) == [n.hostname for n in c.computes]
    assert all(r["State"] == "RUNNING" for r in rows)
    by_host = {r["Hostname"]: int(r["ID"]) for r in rows}
    for n in c.computes:
        info = vertical(c.hq_ok("worker", "info", str(by_host[n.hostname])))
        assert info["Hostname"] == n.hostname
        assert info["State"] == "RUNNING"
    js = json.loads(c.hq_ok("worker", "list", mode="json"))
    assert sorted(w["configuration"]["hostname"] for w in js) == [n.hostname for n in c.computes]
    # None of them is this machine's name.
    assert os.uname().nodename not in by_host


@pytest.mark.timeout(60)
def test_array_runs_on_every_node(shared_cluster):
    c = shared_cluster
    job = int(c.hq_ok("submit", "--array", "1-12", "--", "sh", "-c", "sleep 0.3; hostname",
                      mode="quiet"))
    c.hq_ok("job", "wait", str(job), timeout=60)
    ran = {t: (c.work / f"job-{job}" / f"{t}.stdout").read_text().strip() for t in range(1, 13)}
    assert set(ran.values()) == {n.hostname for n in c.computes}
    # The task list names the host each task ran on, the job its hosts (F38: two, then total).
    tasks = table_rows(c.hq_ok("task", "list", str(job)))
    assert {int(t["Task ID"]): t["Worker"] for t in tasks} == ran
    info = vertical(c.hq_ok("job", "info", str(job)))
    assert info["State"] == "FINISHED (12)"
    first_two = sorted(n.hostname for n in c.computes)[:2]
    assert info["Workers"].startswith(",".join(first_two) + ", ") or \
        info["Workers"].startswith(", ".join(first_two)), info["Workers"]
    assert info["Workers"].endswith("(3 total)")


@pytest.mark.timeout(60)
def test_multi_node_task_gets_the_node_and_host_files(shared_cluster):
    c = shared_cluster
    script = 'cat "$HQ_NODE_FILE"; echo --; cat "$HQ_HOST_FILE"; echo --; hostname; echo $HQ_NUM_NODES'
    job = int(c.hq_ok("submit", "--nodes", "2", "--", "sh", "-c", script, mode="quiet"))
    c.hq_ok("job", "wait", str(job), timeout=60)
    out = (c.work / f"job-{job}" / "0.stdout").read_text()
    nodes, hosts, rest = out.split("--\n")
    nodes, hosts = nodes.split(), hosts.split()
    me, num = rest.split()
    all_hosts = {n.hostname for n in c.computes}
    assert len(hosts) == 2 and set(hosts) <= all_hosts and len(set(hosts)) == 2
    assert nodes == [h.split(".")[0] for h in hosts]  # short names, same order
    assert me == hosts[0] and num == "2"  # runs on the root node, listed first
    (task,) = table_rows(c.hq_ok("task", "list", str(job)))
    assert task["Worker"].split("\n")[0] == hosts[0]


@pytest.mark.timeout(60)
def test_multi_node_task_list_shows_every_node(shared_cluster):
    c = shared_cluster
    job = int(c.hq_ok("submit", "--nodes", "2", "--", "sh", "-c", 'cat "$HQ_HOST_FILE"',
                      mode="quiet"))
    c.hq_ok("job", "wait", str(job), timeout=60)
    hosts = (c.work / f"job-{job}" / "0.stdout").read_text().split()
    (task,) = table_rows(c.hq_ok("task", "list", str(job)))
    assert task["Worker"].split("\n") == hosts


@pytest.mark.timeout(60)
def test_stream_collects_output_of_every_node(shared_cluster):
    c = shared_cluster
    stream = c.work / "stream"
    job = int(c.hq_ok("submit", "--array", "1-9", "--stream", str(stream), "--", "sh", "-c",
                      'sleep 0.3; echo "task $HQ_TASK_ID on $(hostname)"', mode="quiet"))
    c.hq_ok("job", "wait", str(job), timeout=60)
    out = c.hq_ok("output-log", str(stream), "cat", str(job), "stdout")
    lines = sorted(out.splitlines(), key=lambda s: int(s.split()[1]))
    assert [int(s.split()[1]) for s in lines] == list(range(1, 10))
    assert {s.split()[3] for s in lines} == {n.hostname for n in c.computes}
    assert len(list(stream.iterdir())) >= 3  # one stream file per worker at least


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_partitioned_compute_nodes_heartbeat_lost_then_reconnect_or_stop(cluster):
    """cn1 (`--on-server-lost reconnect`) and cn2 (`stop`) are cut off for 4 s, cn3 stays."""
    c = cluster
    journal = c.root / "journal.bin"
    c.start_server("--journal", str(journal))
    cn1, cn2, cn3 = c.computes
    w1 = c.start_worker(cn1, *HB, "--on-server-lost", "reconnect")
    w2 = c.start_worker(cn2, *HB)
    c.start_worker(cn3, *HB)
    shared = c.work / "lines"
    job = int(c.hq_ok("submit", "--array", "1-12", "--", *appender(shared), mode="quiet"))
    wait_until(lambda: sum(t["State"] == "RUNNING"
                           for t in table_rows(c.hq_ok("task", "list", str(job)))) == 3,
               message="three running tasks")
    c.partition(cn1, cn2)
    t_cut = time.monotonic()
    states = wait_until(lambda: (s := worker_states(c))[w1.worker_id][0] == "HEARTBEAT LOST"
                        and s[w2.worker_id][0] == "HEARTBEAT LOST" and s, 10,
                        message="HEARTBEAT LOST")
    assert time.monotonic() - t_cut >= 1.5  # not before two heartbeats were missed
    assert states[w1.worker_id][1] == cn1.hostname and states[w2.worker_id][1] == cn2.hostname
    # Their tasks go elsewhere: nothing is counted as running on the lost workers any more.
    wait_until(lambda: all(t["Worker"] in ("", cn3.hostname)
                           for t in table_rows(c.hq_ok("task", "list", str(job)))
                           if t["State"] == "RUNNING"), 10, message="tasks moved to cn3")
    time.sleep(2)
    c.heal(cn1, cn2)
    t_heal = time.monotonic()
    # `stop`: the worker exits with 1 once it learns the server dropped it (documented).
    assert w2.wait(20) == 1
    assert "Connection to the server lost" in c.log_text(w2)
    # `reconnect`: the worker comes back as a new RUNNING worker with its own hostname.
    states = wait_until(lambda: (s := worker_states(c)) and any(
        h == cn1.hostname and st == "RUNNING" for st, h in s.values()) and s, 20,
        message="cn1 back")
    reconnect_s = time.monotonic() - t_heal
    assert w1.poll() is None
    assert states[w1.worker_id][0] == "HEARTBEAT LOST"  # the old entry stays lost
    c.hq_ok("job", "wait", str(job), timeout=60)
    info = vertical(c.hq_ok("job", "info", str(job)))
    assert info["State"] == "FINISHED (12)", info
    # Every task reported finished exactly once (the journal has one event per task)...
    assert finished_events(c, journal) == Counter({(job, t): 1 for t in range(1, 13)})
    # ... and ran at least once; reruns are the tasks that were on the cut-off nodes.
    ran = lines_of(shared)
    assert {t for t, _, _ in ran} == set(range(1, 13))
    for t, n in Counter(t for t, _, _ in ran).items():
        if n > 1:
            assert {h for tt, _, h in ran if tt == t} & {cn1.hostname, cn2.hostname}, ran
    assert reconnect_s < 15


@pytest.mark.timeout(90)
def test_login_node_link_flap_loses_nothing(cluster):
    """A 1 s cut of the login node (shorter than two heartbeats) while tasks run: no worker is
    lost and every task runs exactly once."""
    c = cluster
    journal = c.root / "journal.bin"
    c.start_server("--journal", str(journal))
    workers = [c.start_worker(n, "--heartbeat", "2s") for n in c.computes]
    shared = c.work / "lines"
    job = int(c.hq_ok("submit", "--array", "1-9", "--", *appender(shared), mode="quiet"))
    time.sleep(1.2)
    c.partition(c.login)
    time.sleep(1.0)
    c.heal(c.login)
    c.hq_ok("job", "wait", str(job), timeout=60)
    assert all(st == "RUNNING" for st, _ in worker_states(c).values())
    assert all(w.poll() is None for w in workers)
    ran = lines_of(shared)
    assert sorted(t for t, _, _ in ran) == list(range(1, 10))  # each task exactly once
    assert all(i == 0 for _, i, _ in ran)
    assert finished_events(c, journal) == Counter({(job, t): 1 for t in range(1, 10)})


@pytest.mark.timeout(90)
def test_login_node_partition_longer_than_heartbeat(cluster):
    """All workers lose the login node for 4 s: all HEARTBEAT LOST, all reconnect, and the
    job ends with every task finished exactly once."""
    c = cluster
    journal = c.root / "journal.bin"
    c.start_server("--journal", str(journal))
    workers = [c.start_worker(n, *HB, "--on-server-lost", "reconnect") for n in c.computes]
    shared = c.work / "lines"
    job = int(c.hq_ok("submit", "--array", "1-12", "--", *appender(shared), mode="quiet"))
    time.sleep(1.5)
    c.partition(c.login)
    # The client on the login node still talks to the server while the node is cut off.
    wait_until(lambda: all(worker_states(c)[w.worker_id][0] == "HEARTBEAT LOST"
                           for w in workers), 10, message="all HEARTBEAT LOST")
    time.sleep(1)
    c.heal(c.login)
    wait_until(lambda: sorted(h for st, h in worker_states(c).values() if st == "RUNNING")
               == [n.hostname for n in c.computes], 20, message="all reconnected")
    c.hq_ok("job", "wait", str(job), timeout=60)
    assert vertical(c.hq_ok("job", "info", str(job)))["State"] == "FINISHED (12)"
    assert finished_events(c, journal) == Counter({(job, t): 1 for t in range(1, 13)})
    assert {t for t, _, _ in lines_of(shared)} == set(range(1, 13))
    assert all(w.poll() is None for w in workers)


@pytest.mark.timeout(90)
def test_server_kill9_during_partition_then_restart(cluster):
    """cn1 is cut off, the server is killed with SIGKILL and restarted with the same journal
    while cn1 is still cut off; after the heal every task has run and finished exactly once."""
    c = cluster
    journal = c.root / "journal.bin"
    c.start_server("--journal", str(journal))
    workers = [c.start_worker(n, *HB, "--on-server-lost", "reconnect",
                              "--reconnect-timeout", "30s") for n in c.computes]
    shared = c.work / "lines"
    job = int(c.hq_ok("submit", "--array", "1-12", "--", *appender(shared), mode="quiet"))
    time.sleep(1.5)
    cn1 = c.computes[0]
    c.partition(cn1)
    time.sleep(0.5)
    old = c.server
    os.kill(old.pid, signal.SIGKILL)
    old.wait(10)
    c.start_server("--journal", str(journal))
    time.sleep(2.5)
    c.heal(cn1)
    wait_until(lambda: sorted(h for st, h in worker_states(c).values() if st == "RUNNING")
               == [n.hostname for n in c.computes], 20, message="all reconnected")
    # Workers of the previous run get their ids back (the restored server awaited them).
    assert sorted(worker_states(c)) == sorted(w.worker_id for w in workers)
    c.hq_ok("job", "wait", str(job), timeout=60)
    assert vertical(c.hq_ok("job", "info", str(job)))["State"] == "FINISHED (12)"
    assert finished_events(c, journal) == Counter({(job, t): 1 for t in range(1, 13)})
    ran = lines_of(shared)
    assert sorted(t for t, _, _ in ran) == list(range(1, 13)), ran  # exactly once each
