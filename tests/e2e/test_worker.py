"""Workers: list/info/stop/address/wait, losing workers and rerunning their tasks."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from hqenv import (HQ, parse_horizontal, parse_vertical, parse_vertical_keys, pid_alive,
                      read_file, wait_until)

WORKER_INFO_ROWS = ["Worker", "State", "Hostname", "Started", "Data provider",
                    "Working directory", "Heartbeat", "Idle timeout", "Overview interval",
                    "Resources", "Time Limit", "Process pid", "Group", "Manager",
                    "Manager Job ID", "Last task started", "Runtime Info"]


@pytest.mark.timeout(60)
def test_worker_list_info_address_stop(shared_env):
    env = shared_env
    w = env.start_worker("--hostname", "e2e-host", cpus=2)
    wid = w.worker_id

    rows = parse_horizontal(env.command(["worker", "list"]))
    assert list(rows[0].keys()) == ["ID", "State", "Hostname", "Resources", "Manager",
                                    "Manager Job ID"]
    row = next(r for r in rows if r["ID"] == str(wid))
    assert row["State"] == "RUNNING"
    assert row["Hostname"] == "e2e-host"
    assert "cpus 2" in row["Resources"]

    info = env.command(["worker", "info", str(wid)])
    assert parse_vertical_keys(info) == WORKER_INFO_ROWS
    rows = parse_vertical(info)
    assert rows["Worker"] == str(wid)
    assert rows["State"] == "RUNNING"
    assert rows["Hostname"] == "e2e-host"
    assert rows["Process pid"] == str(w.pid)
    assert rows["Group"] == "default"
    assert "assigned tasks: 0" in rows["Runtime Info"]

    data = env.command(["worker", "list"], as_json=True)
    wj = next(x for x in data if x["id"] == wid)
    assert set(wj) >= {"id", "configuration", "allocation", "started", "ended",
                       "runtime_info", "last_task_started"}
    assert set(wj["configuration"]) >= {"heartbeat_interval", "hostname", "idle_timeout",
                                        "listen_address", "resources", "time_limit",
                                        "work_dir", "group", "on_server_lost",
                                        "min_utilization"}
    assert wj["configuration"]["hostname"] == "e2e-host"
    assert wj["configuration"]["heartbeat_interval"] == 8.0
    assert wj["allocation"] is None
    assert wj["ended"] is None
    info_json = env.command(["worker", "info", str(wid)], as_json=True)
    assert isinstance(info_json, list) and info_json[0]["id"] == wid

    assert env.command(["worker", "address", str(wid)]).strip() == "e2e-host"

    res = env.run(["worker", "stop", str(wid)])  # F51: a log record on stderr
    assert res.returncode == 0 and res.stdout == ""
    out = res.stderr
    assert len(out.strip().splitlines()) == 1 and "stop" in out.lower(), out
    w.wait(15)
    wait_until(lambda: env.worker_states().get(wid) == "STOPPED", 10, 0.2, "STOPPED state")
    assert wid not in {x["id"] for x in env.command(["worker", "list"], as_json=True)}
    offline = parse_horizontal(env.command(["worker", "list", "--filter", "offline"]))
    assert str(wid) in [r["ID"] for r in offline]

    out = env.run(["worker", "stop", str(wid)]).stderr
    assert "already stopped" in out + "", out
    res = env.run(["worker", "stop", "999"])
    assert res.returncode == 0
    assert "not found" in (res.stdout + res.stderr).lower()


@pytest.mark.timeout(60)
def test_worker_wait(shared_env):
    env = shared_env
    base = len(env.command(["worker", "list"], as_json=True))
    env.start_worker()
    target = base + 2
    waiter = subprocess.Popen(HQ + ["--server-dir", str(env.server_dir), "worker", "wait",
                                    str(target)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env.env)
    try:
        time.sleep(0.5)
        assert waiter.poll() is None, "worker wait returned before enough workers connected"
        env.start_worker()
        assert waiter.wait(15) == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


TASK_SCRIPT = ('echo $HQ_INSTANCE_ID >> "$D/instances"; '
               'echo $$ > "$D/pid.$HQ_INSTANCE_ID"; '
               'if [ "$HQ_INSTANCE_ID" = 0 ]; then exec sleep 100; fi')


def _submit_rerun_task(env, tmp_path) -> int:
    return env.submit(["--env", f"D={tmp_path}", "--", "sh", "-c", TASK_SCRIPT],
                      cwd=tmp_path)


@pytest.mark.timeout(60)
def test_worker_killed_task_rerun(hq_env, tmp_path):
    env = hq_env
    env.start_server()
    w1 = env.start_worker()
    job = _submit_rerun_task(env, tmp_path)
    pid0 = int(read_file(tmp_path / "pid.0"))
    env.track_pid(pid0)  # a SIGKILLed worker cannot clean up its task
    env.wait_task_state(job, 0, "running")
    w2 = env.start_worker()
    env.kill(w1)  # kill -9
    env.wait_job(job)
    assert env.tasks(job)[0]["state"] == "finished"
    assert read_file(tmp_path / "instances").split() == ["0", "1"]
    t = env.tasks(job)[0]
    assert t["worker"] == w2.worker_id  # (the JSON has no instance: upstream's keys, F62)
    states = env.worker_states()
    assert states[w1.worker_id] == "CONNECTION LOST"
    assert states[w2.worker_id] == "RUNNING"


@pytest.mark.timeout(60)
def test_worker_stop_task_rerun(hq_env, tmp_path):
    env = hq_env
    env.start_server()
    w1 = env.start_worker()
    job = _submit_rerun_task(env, tmp_path)
    pid0 = int(read_file(tmp_path / "pid.0"))
    env.track_pid(pid0)
    env.wait_task_state(job, 0, "running")
    w2 = env.start_worker()
    env.command(["worker", "stop", str(w1.worker_id)], allow_stderr=True)
    w1.wait(15)
    env.wait_job(job)
    t = env.tasks(job)[0]
    assert t["state"] == "finished"
    assert t["worker"] == w2.worker_id
    assert read_file(tmp_path / "instances").split() == ["0", "1"]
    assert env.worker_states()[w1.worker_id] == "STOPPED"
    # the stopped worker killed its task
    wait_until(lambda: not pid_alive(pid0), 5, 0.1, "task of the stopped worker to die")


@pytest.mark.timeout(60)
def test_heartbeat_lost(shared_env):
    env = shared_env
    w = env.start_worker("--heartbeat", "1s")
    assert env.command(["worker", "info", str(w.worker_id)], as_json=True)[0][
        "configuration"]["heartbeat_interval"] == 1.0
    w.signal(signal.SIGSTOP)
    try:
        wait_until(lambda: env.worker_states().get(w.worker_id) == "HEARTBEAT LOST", 15, 0.3,
                   "HEARTBEAT LOST")
    finally:
        w.signal(signal.SIGCONT)
    env.kill(w)
    assert w.worker_id not in {x["id"] for x in env.command(["worker", "list"], as_json=True)}


@pytest.mark.timeout(60)
def test_worker_signal_and_idle_timeout(shared_env):
    env = shared_env
    w1 = env.start_worker()
    w2 = env.start_worker("--idle-timeout", "1s", "--resource", "fairy=sum(1000)",
                          "--resource", "gpus=[a,b]", cpus="2x2")
    # (it may have timed out already)
    row = next(r for r in parse_horizontal(env.command(["worker", "list", "--all"]))
               if r["ID"] == str(w2.worker_id))
    assert row["Resources"].startswith("cpus 2x2; fairy 1000; gpus ")
    w1.signal(signal.SIGTERM)
    assert w1.wait(10) == 0
    assert w2.wait(15) == 0  # idle timeout reached
    states = env.worker_states()
    assert states[w1.worker_id] == "CONNECTION LOST"
    assert states[w2.worker_id] == "IDLE TIMEOUT"


@pytest.mark.timeout(60)
def test_worker_info_resources(shared_env):
    env = shared_env
    w = env.start_worker("--resource", "fairy=sum(1000)", cpus=2)
    rows = parse_vertical(env.command(["worker", "info", str(w.worker_id)]))
    lines = rows["Resources"].splitlines()
    assert "cpus: 2 range(0-1)" in lines or "cpus: 2" in lines, lines
    assert "fairy: sum(1000)" in lines or "fairy: 1000" in lines, lines
    env.kill(w)


@pytest.mark.timeout(30)
def test_hwdetect(hq_env):
    out = hq_env.command(["worker", "hwdetect"])
    assert "Summary:" in out and "cpus" in out
    data = hq_env.command(["worker", "hwdetect"], as_json=True)
    assert [r["name"] for r in data["resources"]][0] == "cpus"


@pytest.mark.timeout(60)
def test_server_stop_kills_tasks_and_workers(hq_env, tmp_path):
    env = hq_env
    env.start_server()
    w1 = env.start_worker()
    w2 = env.start_worker()
    job = env.submit(["--array", "1-2", "--", "sh", "-c",
                      'sh -c "echo \\$\\$ > child.$HQ_TASK_ID; exec sleep 100"; true'],
                     cwd=tmp_path)
    children = [int(read_file(tmp_path / f"child.{i}")) for i in (1, 2)]
    for c in children:
        env.track_pid(c)
    env.command(["server", "stop"])
    assert w1.wait(15) == 1
    assert w2.wait(15) == 1
    wait_until(lambda: not any(pid_alive(c) for c in children), 5, 0.05,
               "tasks of the lost workers to die")
    assert job
