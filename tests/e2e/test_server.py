"""Server lifecycle, server directory, access records and client errors."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import time

import pytest

from hqenv import parse_vertical, parse_vertical_keys, wait_until

SERVER_INFO_ROWS = ["Server UID", "Client host", "Client port", "Worker host", "Worker port",
                    "Version", "Pid", "Start date", "Journal path"]


def _stop(env, proc, how: str) -> float:
    """Stops the server `how` (a signal name or "command"); returns the seconds it took."""
    t0 = time.monotonic()
    if how == "command":
        env.command(["server", "stop"])
    else:
        proc.signal(getattr(signal, how))
    rc = proc.wait(10)
    elapsed = time.monotonic() - t0
    assert rc == 0, f"server exit code {rc}; stderr:\n{proc.stderr()}"
    return elapsed


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["SIGHUP", "SIGTERM", "SIGINT", "command"])
def test_server_stop_modes_and_dirs(hq_env, how):
    sd = hq_env.server_dir
    assert not sd.exists()
    server = hq_env.start_server()
    worker = hq_env.start_worker()

    access = sd / "hq-current" / "access.json"
    assert stat.S_IMODE(os.stat(access).st_mode) == 0o400
    assert stat.S_IMODE(os.stat(sd).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(sd / "001").st_mode) == 0o700
    assert os.path.realpath(sd / "hq-current") == str((sd / "001").resolve())

    elapsed = _stop(hq_env, server, how)
    assert elapsed < 3.0, f"server needed {elapsed:.1f}s to stop"
    assert not os.path.lexists(sd / "hq-current")
    assert (sd / "001" / "access.json").exists()
    # a worker of a stopped server exits with code 1
    assert worker.wait(15) == 1

    # a second start gets a new instance directory; the first one is kept
    server2 = hq_env.start_server()
    assert os.path.realpath(sd / "hq-current") == str((sd / "002").resolve())
    assert stat.S_IMODE(os.stat(sd / "002").st_mode) == 0o700
    _stop(hq_env, server2, how)
    assert not os.path.lexists(sd / "hq-current")
    assert sorted(p.name for p in sd.iterdir()) == ["001", "002"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_stop_signal_while_starting_stops_cleanly(hq_env, tmp_path, how):
    """The access record is published before the event loop runs; a stop signal in that
    window (here: as soon as access.json exists) is honoured cleanly, and a client that
    connected meanwhile still gets its answer (early connections wait in the backlog)."""
    sd = hq_env.server_dir
    access = sd / "hq-current" / "access.json"
    server = hq_env.start_server(wait=False)
    wait_until(access.exists, 20, 0.001, "access.json")
    client = hq_env.run(["server", "info"], mode="json")
    assert client.returncode == 0, client.stderr
    assert json.loads(client.stdout)["pid"] == server.pid
    server.signal(getattr(signal, how))
    assert server.wait(10) == 0, server.stderr()
    assert not os.path.lexists(sd / "hq-current")
    # a journal-backed start that gets the signal right away also stops cleanly
    journal = tmp_path / "j.bin"
    server = hq_env.start_server("--journal", str(journal), wait=False)
    wait_until(access.exists, 20, 0.001, "access.json")
    server.signal(getattr(signal, how))
    assert server.wait(10) == 0, server.stderr()
    assert not os.path.lexists(sd / "hq-current")
    assert journal.exists()


@pytest.mark.timeout(60)
def test_server_start_table_and_info(hq_env):
    server = hq_env.start_server()
    out = server.stdout()
    keys = parse_vertical_keys(out)
    assert keys[0] == "Server directory"
    for row in ["Server directory", "Server UID", "Client host", "Client port", "Worker host",
                "Worker port", "Version", "Pid", "Start date", "Journal path"]:
        assert row in keys, f"row {row!r} missing in:\n{out}"
    start_rows = parse_vertical(out)
    assert start_rows["Server directory"] == str(hq_env.server_dir)
    assert start_rows["Pid"] == str(server.pid)
    assert start_rows["Client host"] == "127.0.0.1"
    for line in out.strip().splitlines():
        assert line.startswith("+-") or line.startswith("| "), line

    info = hq_env.command(["server", "info"])
    assert parse_vertical_keys(info) == SERVER_INFO_ROWS
    rows = parse_vertical(info)
    assert re.fullmatch(r"[A-Za-z0-9]{6}", rows["Server UID"])
    assert rows["Server UID"] == start_rows["Server UID"]
    assert rows["Pid"] == str(server.pid)
    assert rows["Client host"] == "127.0.0.1"
    assert rows["Worker host"] == "127.0.0.1"
    access = json.loads((hq_env.server_dir / "hq-current" / "access.json").read_text())
    assert rows["Client port"] == str(access["client"]["port"])
    assert rows["Worker port"] == str(access["worker"]["port"])
    assert rows["Server UID"] == access["server_uid"]

    data = hq_env.command(["server", "info"], as_json=True)
    assert set(data) >= {"worker_host", "client_host", "worker_port", "client_port",
                         "server_dir", "version", "server_uid", "start_date", "pid",
                         "journal_path"}
    assert data["pid"] == server.pid
    assert data["server_uid"] == access["server_uid"]
    assert data["client_port"] == access["client"]["port"]
    assert data["worker_port"] == access["worker"]["port"]
    assert data["version"] == access["version"]
    assert data["journal_path"] is None
    assert isinstance(data["start_date"], str)

    # access.json layout
    assert set(access) >= {"version", "server_uid", "client", "worker"}
    for section in ("client", "worker"):
        assert set(access[section]) >= {"host", "port", "secret_key"}
        assert re.fullmatch(r"[0-9a-f]{64}", access[section]["secret_key"])
    assert access["client"]["secret_key"] != access["worker"]["secret_key"]

    # the global options are also accepted after the subcommand and from the environment
    import subprocess

    from hqenv import HQ

    env = dict(hq_env.env)
    res = subprocess.run(HQ + ["server", "info", f"--server-dir={hq_env.server_dir}",
                               "--output-mode", "json"], capture_output=True, text=True,
                         env=env, timeout=30)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["pid"] == server.pid
    env["HQ_SERVER_DIR"] = str(hq_env.server_dir)
    env["HQ_OUTPUT_MODE"] = "json"
    res = subprocess.run(HQ + ["server", "info"], capture_output=True, text=True, env=env,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["pid"] == server.pid


@pytest.mark.timeout(60)
def test_refuse_start_while_running_but_not_when_stale(hq_env):
    sd = hq_env.server_dir
    server = hq_env.start_server()
    out = hq_env.command(["server", "start", "--host", "127.0.0.1"], expect_fail=True)
    assert "already" in out.lower() and "running" in out.lower(), out
    assert server.poll() is None
    assert os.path.realpath(sd / "hq-current") == str((sd / "001").resolve())
    assert sorted(p.name for p in sd.iterdir()) == ["001", "hq-current"]

    # kill -9: a stale hq-current is left behind and must not block a new server
    hq_env.kill(server)
    assert os.path.lexists(sd / "hq-current")
    hq_env.command(["server", "info"], expect_fail=True)
    server2 = hq_env.start_server()
    assert os.path.realpath(sd / "hq-current") == str((sd / "002").resolve())
    info = hq_env.command(["server", "info"], as_json=True)
    assert info["pid"] == server2.pid


@pytest.mark.timeout(60)
def test_two_servers_side_by_side(hq_env):
    sd1 = hq_env.root / "sd1"
    sd2 = hq_env.root / "sd2"
    s1 = hq_env.start_server(server_dir=sd1)
    s2 = hq_env.start_server(server_dir=sd2)
    i1 = hq_env.command(["server", "info"], as_json=True, server_dir=sd1)
    i2 = hq_env.command(["server", "info"], as_json=True, server_dir=sd2)
    assert i1["pid"] == s1.pid and i2["pid"] == s2.pid
    assert i1["server_uid"] != i2["server_uid"]
    assert {i1["client_port"], i1["worker_port"]}.isdisjoint({i2["client_port"],
                                                              i2["worker_port"]})
    w = hq_env.start_worker(server_dir=sd2)
    assert hq_env.command(["worker", "list"], as_json=True, server_dir=sd1) == []
    assert [x["id"] for x in hq_env.command(["worker", "list"], as_json=True,
                                            server_dir=sd2)] == [w.worker_id]
    hq_env.command(["server", "stop"], server_dir=sd1)
    assert s1.wait(10) == 0
    assert s2.poll() is None
    hq_env.command(["server", "info"], server_dir=sd2)


@pytest.mark.timeout(30)
def test_no_server(hq_env):
    t0 = time.monotonic()
    res = hq_env.run(["server", "wait", "--timeout", "1s"])
    assert res.returncode == 1
    assert "Timeout after 1s" in res.stdout + res.stderr
    assert time.monotonic() - t0 < 10

    out = hq_env.command(["job", "list"], expect_fail=True)
    assert "No running instance of HQ found" in out
    res = hq_env.run(["job", "list"], mode="json")
    assert res.returncode == 1
    data = json.loads(res.stdout)
    assert set(data) == {"error"} and "No running instance of HQ found" in data["error"]
    hq_env.command(["server", "info"], expect_fail=True)
    hq_env.command(["server", "stop"], expect_fail=True)
    hq_env.command(["submit", "--", "true"], expect_fail=True)


@pytest.mark.timeout(60)
def test_worker_started_before_server_connects(hq_env):
    # the worker keeps retrying (re-reading the access record) for a while
    worker = hq_env.start_worker(wait=False)
    time.sleep(0.5)
    assert worker.poll() is None
    hq_env.start_server()
    wait_until(lambda: len(hq_env.command(["worker", "list"], as_json=True)) == 1, 20, 0.2,
               "worker to connect")
    assert worker.poll() is None


@pytest.mark.timeout(30)
def test_server_wait_succeeds_with_server(hq_env):
    hq_env.start_server()
    hq_env.command(["server", "wait", "--timeout", "5s"])


def _copy_access(env, name: str, change) -> str:
    record = json.loads((env.server_dir / "hq-current" / "access.json").read_text())
    change(record)
    d = env.root / name
    d.mkdir()
    (d / "access.json").write_text(json.dumps(record))
    return str(d)


@pytest.mark.timeout(60)
def test_wrong_keys_and_version(hq_env):
    hq_env.start_server()
    hq_env.start_worker()  # sanity: the right key works

    def other_client_key(r):
        r["client"]["secret_key"] = "ab" * 32

    def other_worker_key(r):
        r["worker"]["secret_key"] = "cd" * 32

    def other_version(r):
        r["version"] = "0.0.1"

    bad_client = _copy_access(hq_env, "bad-client", other_client_key)
    out = hq_env.command(["job", "list"], expect_fail=True, server_dir=bad_client)
    assert "Traceback" not in out
    assert "key" in out.lower() or "authenticat" in out.lower(), out
    res = hq_env.run(["job", "list"], server_dir=bad_client, mode="json")
    assert res.returncode == 1 and "error" in json.loads(res.stdout)

    bad_worker = _copy_access(hq_env, "bad-worker", other_worker_key)
    t0 = time.monotonic()
    res = hq_env.run(["worker", "start", "--cpus", "1"], server_dir=bad_worker, timeout=50)
    assert res.returncode != 0
    assert time.monotonic() - t0 < 30
    assert "Traceback" not in res.stderr

    versioned = _copy_access(hq_env, "bad-version", other_version)
    out = hq_env.command(["server", "info"], expect_fail=True, server_dir=versioned)
    from hyperqueue.version import __version__

    assert (f"Access record contains version 0.0.1, but the current version is {__version__}"
            in out), out

    # the server is unharmed
    assert len(hq_env.command(["worker", "list"], as_json=True)) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(60)
def test_generate_access_and_reuse(hq_env):
    access_file = hq_env.root / "gen" / "access.json"
    access_file.parent.mkdir()
    cport, wport = _free_port(), _free_port()
    while wport == cport:
        wport = _free_port()
    hq_env.command(["server", "generate-access", str(access_file), "--host", "127.0.0.1",
                    "--client-port", str(cport), "--worker-port", str(wport)])
    assert stat.S_IMODE(os.stat(access_file).st_mode) == 0o400
    generated = json.loads(access_file.read_text())
    assert generated["client"]["port"] == cport
    assert generated["worker"]["port"] == wport
    # an existing file is not overwritten
    hq_env.command(["server", "generate-access", str(access_file), "--client-port", "1",
                    "--worker-port", "2"], expect_fail=True)

    hq_env.start_server("--access-file", str(access_file))
    current = json.loads((hq_env.server_dir / "hq-current" / "access.json").read_text())
    assert current == generated
    info = hq_env.command(["server", "info"], as_json=True)
    assert info["server_uid"] == generated["server_uid"]
    assert info["client_port"] == cport and info["worker_port"] == wport
    w = hq_env.start_worker()
    assert w.worker_id == 1
