"""Commands upstream has that were missing (issue 14, item 2): `server debug-dump` (F72) and
`worker deploy-ssh` (F54), with a fake `ssh` on PATH that records its argv and runs the remote
command locally."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from hqenv import wait_until

pytestmark = pytest.mark.timeout(90)

FAKE_SSH = """#!/bin/sh
# records its argv (one per line), then runs what follows `--` locally
log="$FAKE_SSH_DIR/$1.$$"
printf '%s\\n' "$@" > "$log.tmp" && mv "$log.tmp" "$log"
host="$1"
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift
case "$host" in failing*) echo "remote stderr" >&2; exit 3;; esac
echo "remote says hi from $host"
exec "$@"
"""


@pytest.fixture
def fake_ssh(hq_env):
    bin_dir = hq_env.root / "fakebin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text(FAKE_SSH)
    ssh.chmod(0o755)
    calls = hq_env.root / "ssh-calls"
    calls.mkdir()
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SSH_DIR": str(calls)}
    return env, calls


def recorded(calls: Path) -> dict[str, list[str]]:
    return {p.name.split(".")[0] if not p.name.startswith("127") else
            ".".join(p.name.split(".")[:4]): p.read_text().splitlines()
            for p in calls.iterdir() if not p.name.endswith(".tmp")}


def test_debug_dump_is_written_by_the_server_relative_to_its_cwd(hq_env):
    hq_env.start_server()
    hq_env.start_worker("--group", "g1", cpus=2)
    job = hq_env.submit(["--array", "1-3", "--", "sleep", "30"])
    wait_until(lambda: sum(t["state"] == "running" for t in hq_env.tasks(job)) == 2)
    res = hq_env.run(["server", "debug-dump", "state.json"], cwd=hq_env.root)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    logs = [line.split(" ", 1)[1] for line in res.stderr.splitlines()]
    assert logs == ["INFO Dumping server state ...", "INFO Dump finished"]
    # the server's cwd is the work dir: the client's cwd (root) got nothing
    assert not (hq_env.root / "state.json").exists()
    text = (hq_env.work_dir / "state.json").read_text()
    assert "\n" not in text and ": " not in text  # compact JSON
    dump = json.loads(text)
    assert set(dump) == {"tako"}
    assert set(dump["tako"]) == {"workers", "worker_groups", "tasks"}
    assert [w["id"] for w in dump["tako"]["workers"]] == [1]
    assert dump["tako"]["worker_groups"] == [{"name": "g1", "workers": [1]}]
    assert len(dump["tako"]["tasks"]) >= 2


def test_debug_dump_write_error(hq_env):
    hq_env.start_server()
    res = hq_env.run(["server", "debug-dump", "/nonexistent-dir/x.json"])
    assert res.returncode == 1
    assert res.stderr.splitlines()[-1] == (
        "Error: Could not write debug dump: No such file or directory (os error 2)")


def test_deploy_ssh_runs_one_worker_per_host_with_the_args_verbatim(hq_env, fake_ssh):
    env, calls = fake_ssh
    hq_env.start_server()
    hostfile = hq_env.root / "hosts"
    hostfile.write_text("  nodeA  \n\n127.0.0.1:2222\n")
    res = hq_env.run(["worker", "deploy-ssh", str(hostfile), "--cpus", "1",
                      "--idle-timeout", "1s", "--server-dir", str(hq_env.server_dir)],
                     env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "remote says hi" not in res.stdout + res.stderr  # output discarded by default
    calls_by_host = recorded(calls)
    hq = calls_by_host["nodeA"][4]
    assert os.path.isabs(hq) and os.path.basename(hq) == "hq"
    forwarded = ["worker", "start", "--cpus", "1", "--idle-timeout", "1s", "--server-dir",
                 str(hq_env.server_dir)]
    assert calls_by_host["nodeA"] == ["nodeA", "-t", "-t", "--", hq, *forwarded]
    assert calls_by_host["127.0.0.1"] == ["127.0.0.1", "-t", "-t", "-p", "2222", "--", hq,
                                          *forwarded]
    logs = [line.split(" ", 1)[1] for line in res.stderr.splitlines()]
    assert logs[:2] == ["INFO Started worker process at `nodeA`",
                        "INFO Started worker process at `127.0.0.1:2222`"]
    assert sorted(logs[2:4]) == ["INFO Worker at `127.0.0.1:2222` has ended successfully",
                                 "INFO Worker at `nodeA` has ended successfully"]
    assert logs[4:] == ["INFO All workers have finished"]
    # both workers really joined this server (and stopped on their idle timeout)
    workers = hq_env.command(["worker", "list", "--all"], as_json=True)
    assert len(workers) == 2


def test_deploy_ssh_failure_and_show_output(hq_env, fake_ssh):
    env, _calls = fake_ssh
    hostfile = hq_env.root / "hosts"
    hostfile.write_text("failing-node\n")
    res = hq_env.run(["worker", "deploy-ssh", "--show-output", str(hostfile)], env=env)
    assert res.returncode == 1
    assert "remote stderr" in res.stderr
    assert ("ERROR Worker at `failing-node` has ended with an error: "
            "Worker exited with code 3") in res.stderr
    assert "INFO All workers have finished" in res.stderr
    assert res.stderr.rstrip().endswith("Some workers have ended with an error")


def test_deploy_ssh_checks(hq_env, fake_ssh):
    env, calls = fake_ssh
    hosts = hq_env.root / "hosts"
    hosts.write_text("node1\n")
    # worker args are validated as `worker start` options first (clap error: exit 2)
    res = hq_env.run(["worker", "deploy-ssh", str(hosts), "--no-such-flag"], env=env)
    assert res.returncode == 2 and "--no-such-flag" in res.stderr
    res = hq_env.run(["worker", "deploy-ssh", str(hosts), "--heartbeat", "xyz"], env=env)
    assert res.returncode == 2
    hosts.write_text("node1:abc\n")
    res = hq_env.run(["worker", "deploy-ssh", str(hosts)], env=env)
    assert res.returncode == 1
    assert "Cannot parse port from node1:abc: ParseIntError { kind: InvalidDigit }" in res.stderr
    hosts.write_text("\n   \n")
    res = hq_env.run(["worker", "deploy-ssh", str(hosts)], env=env)
    assert res.returncode == 1 and "The provided hostname is empty" in res.stderr
    res = hq_env.run(["worker", "deploy-ssh", str(hq_env.root / "missing")], env=env)
    assert res.returncode == 1
    assert f"Cannot load hostfile from {hq_env.root / 'missing'}" in res.stderr
    hosts.write_text("node1\n")
    res = hq_env.run(["worker", "deploy-ssh", str(hosts)], env={"PATH": str(hq_env.root)})
    assert res.returncode == 1
    assert "Cannot find `ssh` binary. Make sure that OpenSSH is installed." in res.stderr
    assert list(calls.iterdir()) == []


def test_deploy_ssh_ctrl_c_closes_the_workers(hq_env, fake_ssh):
    env, calls = fake_ssh
    hq_env.start_server()
    hosts = hq_env.root / "hosts"
    hosts.write_text("nodeZ\n")
    run_env = dict(hq_env.env, **env)
    err = hq_env.root / "deploy.err"
    with open(err, "wb") as fe:
        p = hq_env.procs.start([*hq_env.hq, "--server-dir", str(hq_env.server_dir), "worker",
                                "deploy-ssh", str(hosts), "--cpus", "1", "--server-dir",
                                str(hq_env.server_dir)], env=run_env, stderr=fe,
                               cwd=hq_env.work_dir)
    wait_until(lambda: hq_env.command(["worker", "list"], as_json=True))
    p.send_signal(signal.SIGINT)
    assert p.wait(20) == 0
    assert "SIGINT received, closing workers" in err.read_text()
    # the worker under the (fake) ssh was killed with it
    wait_until(lambda: not hq_env.command(["worker", "list"], as_json=True), 30)
