"""Facts of upstream-facts.md §9 (scheduling: time requests F57, strict priority with the gap
F58, weights and --min-utilization F59) and the worker facts F44 (multi-node task
environment), F50 (reserved for a multi-node task), F52 (manager names), as a user of `hq`
sees them: real server and workers, tasks that wait for a file to end."""

from __future__ import annotations

import time

import pytest

from conftest import parse_horizontal, parse_vertical, wait_until


def gate(d) -> list[str]:
    """A task command that appends its name to `order` when it starts and runs until
    `<d>/release` exists."""
    return ["sh", "-c", f'echo "$N" >> {d}/order; while [ ! -e {d}/release ]; do sleep 0.05; '
                        f'done']


def states(env, job) -> list[str]:
    return [t["state"] for t in env.tasks(job)]


def runtime_info(env, worker_id) -> str:
    return parse_vertical(env.command(["worker", "info", str(worker_id)]))["Runtime Info"]


@pytest.mark.timeout(60)
def test_time_request_against_the_worker_time_limit(hq_env):
    """F57: a task goes to a worker only if the worker lives at least its time request
    longer; a worker without a time limit takes any request."""
    env = hq_env
    env.start_server()
    limited = env.start_worker("--time-limit", "30s", cpus="2")
    d = env.work_dir
    long = env.submit(["--time-request", "1m", "--", "true"])
    short = env.submit(["--time-request", "5s", "--", "true"])
    env.wait_job(short)
    assert env.tasks(short)[0]["worker"] == limited.worker_id
    time.sleep(1)
    assert states(env, long) == ["waiting"]
    free = env.start_worker(cpus="1")
    env.wait_job(long)
    assert env.tasks(long)[0]["worker"] == free.worker_id
    assert not (d / "release").exists()


@pytest.mark.timeout(60)
def test_strict_priority_leaves_lower_tasks_waiting(hq_env):
    """F58, the 4-CPU example: one 1-CPU task runs, a 4-CPU task of a higher priority waits:
    2-CPU tasks of a lower priority stay WAITING although 3 CPUs are free; once the 1-CPU
    task ends the 4-CPU task runs first, then the 2-CPU ones."""
    env = hq_env
    env.start_server()
    w = env.start_worker(cpus="4")
    d = env.work_dir
    first = env.submit(["--cpus", "1", "--env", "N=first", "--", *gate(d / "a")])
    (d / "a").mkdir()
    env.wait_task_state(first, 0, "running")
    (d / "b").mkdir()
    high = env.submit(["--cpus", "4", "--priority", "5", "--env", "N=high", "--",
                       *gate(d / "b")])
    low = env.submit(["--cpus", "2", "--priority", "1", "--array", "1-2", "--env", "N=low",
                      "--", *gate(d / "b")])
    time.sleep(1.5)
    assert states(env, high) == ["waiting"]
    assert states(env, low) == ["waiting", "waiting"]
    assert runtime_info(env, w.worker_id).endswith("; running tasks: 1")
    (d / "a" / "release").touch()
    env.wait_task_state(high, 0, "running")
    time.sleep(0.5)
    assert states(env, low) == ["waiting", "waiting"]  # the 4-CPU task holds every CPU
    (d / "b" / "release").touch()
    env.wait_job(low)
    assert (d / "b" / "order").read_text().split() == ["high", "low", "low"]

    # the same tasks without the higher-priority one: a 2-CPU task starts beside the 1-CPU
    (d / "c").mkdir()
    first = env.submit(["--cpus", "1", "--env", "N=first", "--", *gate(d / "c")])
    env.wait_task_state(first, 0, "running")
    low = env.submit(["--cpus", "2", "--priority", "1", "--array", "1-2", "--env", "N=low",
                      "--", *gate(d / "c")])
    env.wait_task_state(low, 1, "running")
    time.sleep(0.3)
    assert sorted(states(env, low)) == ["running", "waiting"]
    (d / "c" / "release").touch()
    env.wait_job(low)


@pytest.mark.timeout(60)
def test_the_gap_of_a_waiting_gpu_task_is_used(hq_env):
    """F58: a higher-priority task waits for the only GPU; the CPUs it would leave free are the
    gap, which CPU-only tasks of a lower priority use."""
    env = hq_env
    env.start_server()
    env.start_worker("--resource", "gpus=[0]", cpus="4")
    d = env.work_dir
    (d / "g").mkdir()
    gpu = env.submit(["--cpus", "1", "--resource", "gpus=1", "--env", "N=gpu", "--",
                      *gate(d / "g")])
    env.wait_task_state(gpu, 0, "running")
    high = env.submit(["--cpus", "1", "--resource", "gpus=1", "--priority", "5", "--", "true"])
    low = env.submit(["--cpus", "1", "--array", "1-3", "--env", "N=low", "--", *gate(d / "g")])
    wait_until(lambda: states(env, low).count("running") == 2, 20)
    time.sleep(1)
    # 3 CPUs free, 1 of them held back for the waiting GPU task
    assert sorted(states(env, low)) == ["running", "running", "waiting"]
    assert states(env, high) == ["waiting"]
    (d / "g" / "release").touch()
    env.wait_job(high)
    env.wait_job(low)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("heavy_first", [True, False])
def test_min_utilization_takes_the_most_valuable_full_mix(hq_env, heavy_first):
    """F59, the 12-CPU example: with --min-utilization 1, two 3-CPU tasks of weight 2 and
    one 6-CPU task run (value 2*3*2 + 6 = 18 beats 2*6 = 12)."""
    env = hq_env
    env.start_server()
    d = env.work_dir
    three = ["--cpus", "3", "--weight", "2", "--array", "1-2", "--env", "N=three", "--",
             *gate(d)]
    six = ["--cpus", "6", "--array", "1-2", "--env", "N=six", "--", *gate(d)]
    jobs = [env.submit(a) for a in ((three, six) if heavy_first else (six, three))]
    env.start_worker("--min-utilization", "1", cpus="12")
    wait_until(lambda: (d / "order").exists() and len((d / "order").read_text().split()) == 3,
               20)
    time.sleep(1)
    assert sorted((d / "order").read_text().split()) == ["six", "three", "three"]
    by_job = {j: states(env, j) for j in jobs}
    three_job, six_job = jobs if heavy_first else jobs[::-1]
    assert by_job[three_job] == ["running", "running"]
    assert sorted(by_job[six_job]) == ["running", "waiting"]
    # (what follows depends on which task ends first: the last 6-CPU task may start only
    # beside the running one, 6 + 6 = 12; alone it would use half the CPUs)
    env.command(["job", "cancel", str(six_job)], allow_stderr=True)
    (d / "release").touch()
    env.wait_job(three_job)


@pytest.mark.timeout(60)
def test_heavier_weight_runs_first_and_never_blocks(hq_env):
    """F59 without min-utilization: of equal priorities the request of higher weight is
    placed first; a lighter task still takes what the heavier ones leave."""
    env = hq_env
    env.start_server()
    d = env.work_dir
    light = env.submit(["--cpus", "1", "--array", "1-3", "--env", "N=light", "--", *gate(d)])
    heavy = env.submit(["--cpus", "3", "--weight", "3", "--env", "N=heavy", "--", *gate(d)])
    env.start_worker(cpus="4")
    wait_until(lambda: (d / "order").exists() and len((d / "order").read_text().split()) == 2,
               20)
    time.sleep(0.5)
    # (both start at once: their lines may come in either order)
    assert sorted((d / "order").read_text().split()) == ["heavy", "light"]
    assert states(env, heavy) == ["running"]
    assert states(env, light) == ["running", "waiting", "waiting"]
    (d / "release").touch()
    env.wait_job(light)


@pytest.mark.timeout(60)
def test_multi_node_environment_and_reserved_workers(hq_env):
    """F44: the program runs once, on the root node, with HQ_NUM_NODES, HQ_NODE_FILE (short
    names), HQ_HOST_FILE and a task dir, without HQ_RESOURCE_* variables. F50: workers held
    for a waiting multi-node task say `reserved for a multi-node task`."""
    env = hq_env
    env.start_server()
    w1 = env.start_worker(cpus="1")
    w2 = env.start_worker(cpus="1")
    d = env.work_dir
    (d / "busy").mkdir()
    busy = env.submit(["--env", "N=busy", "--", *gate(d / "busy")])
    t = env.wait_task_state(busy, 0, "running")
    busy_worker = t["worker"]
    idle_worker = ({w1.worker_id, w2.worker_id} - {busy_worker}).pop()
    mn = env.submit(["--nodes", "2", "--", "sh", "-c",
                     f"env > {d}/mn.env; cat \"$HQ_NODE_FILE\" > {d}/nodes; "
                     f"cat \"$HQ_HOST_FILE\" > {d}/hosts; echo run >> {d}/runs; "
                     f"test -d \"$HQ_TASK_DIR\" && echo yes > {d}/taskdir"])
    wait_until(lambda: "reserved" in runtime_info(env, idle_worker), 20)
    assert runtime_info(env, idle_worker) == "assigned tasks: 0; reserved for a multi-node task"
    assert runtime_info(env, busy_worker) == \
        "assigned tasks: 1; running tasks: 1; reserved for a multi-node task"
    (info,) = env.command(["worker", "info", str(idle_worker)], as_json=True)
    assert info["runtime_info"] == {"SingleNodeTasks": {
        "assigned_tasks": 0, "running_tasks": 0, "is_reserved": True}}
    (d / "busy" / "release").touch()
    env.wait_job(mn)
    assert (d / "runs").read_text() == "run\n"
    lines = dict(ln.split("=", 1) for ln in (d / "mn.env").read_text().splitlines()
                 if ln.startswith("HQ_") and "=" in ln)
    assert lines["HQ_NUM_NODES"] == "2"
    assert not [k for k in lines if k.startswith("HQ_RESOURCE_")]
    assert (d / "taskdir").read_text() == "yes\n"
    import socket

    host = socket.gethostname()
    assert (d / "nodes").read_text().split() == [host.split(".")[0]] * 2
    assert (d / "hosts").read_text().split() == [host] * 2
    # after the task, nothing is reserved any more
    wait_until(lambda: runtime_info(env, idle_worker) == "assigned tasks: 0", 10)


@pytest.mark.timeout(60)
def test_manager_names_in_list_and_json(hq_env):
    """F52: the Manager column says SLURM/PBS/None; JSON says "Slurm"/"PBS"/null. F50: the
    Data provider row."""
    env = hq_env
    env.start_server()
    env.start_worker(cpus="1")
    slurm = env._spawn("worker", ["--server-dir", str(env.server_dir), "worker", "start",
                                  "--cpus", "1", "--manager", "slurm",
                                  "--work-dir", str(env.root / "slurm-work")],
                       env={**env.env, "SLURM_JOB_ID": "4242"})
    pbs = env._spawn("worker", ["--server-dir", str(env.server_dir), "worker", "start",
                                "--cpus", "1", "--manager", "pbs",
                                "--work-dir", str(env.root / "pbs-work")],
                     env={**env.env, "PBS_ENVIRONMENT": "PBS_BATCH", "PBS_JOBID": "77.pbs"})
    assert slurm and pbs
    wait_until(lambda: len(env.command(["worker", "list"], as_json=True)) == 3, 20)
    rows = parse_horizontal(env.command(["worker", "list"]))
    assert sorted((r["Manager"], r["Manager Job ID"]) for r in rows) == [
        ("None", "N/A"), ("PBS", "77.pbs"), ("SLURM", "4242")]
    allocs = sorted((w["allocation"] or {}).get("manager", "")
                    for w in env.command(["worker", "list"], as_json=True))
    assert allocs == ["", "PBS", "Slurm"]
    for w in env.command(["worker", "list"], as_json=True):
        (info,) = env.command(["worker", "info", str(w["id"])], as_json=True)
        assert info["allocation"] == w["allocation"]
        # F50: Data provider is the worker's listen address, printed as it is (our workers
        # accept no data connections: an empty address in both forms)
        text = parse_vertical(env.command(["worker", "info", str(w["id"])]))
        assert text["Data provider"] == info["configuration"]["listen_address"] == ""
