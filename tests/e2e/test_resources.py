"""Resources and scheduling: worker resource pools, task requests and the environment a task
gets, policies, fractional/sum pools, pinning, priorities, blocked requests (`task explain`),
`--min-utilization`, resource variants and multi-node tasks."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from hqenv import parse_horizontal, parse_vertical, read_file, wait_until

# Records the task's HQ_*/CUDA_*/ROCR_*/OMP_* variables (sorted) into `<task id>.env` in its cwd.
RECORD_ENV = 'env | grep -E "^(HQ_|CUDA_|ROCR_|OMP_)" | sort > $HQ_TASK_ID.env'


def record_env_cmd(extra: str = "") -> list[str]:
    return ["sh", "-c", RECORD_ENV + (f"; {extra}" if extra else "")]


def timed_cmd(seconds: float, values_var: str = "") -> list[str]:
    """A task that writes `<id>.start` ("<start time> <value of values_var>") and `<id>.end`."""
    val = f" ${values_var}" if values_var else ""
    return ["sh", "-c",
            f'echo "$(date +%s.%N){val}" > $HQ_TASK_ID.start.tmp && '
            f"mv $HQ_TASK_ID.start.tmp $HQ_TASK_ID.start; sleep {seconds}; "
            f"date +%s.%N > $HQ_TASK_ID.end.tmp && mv $HQ_TASK_ID.end.tmp $HQ_TASK_ID.end"]


def read_env(path) -> dict[str, str]:
    text = read_file(path)
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition("=")
        out[k] = v
    return out


def read_intervals(d: Path, ids) -> dict[int, tuple[float, float, str]]:
    """{task id: (start, end, recorded value)} from files written by `timed_cmd`."""
    out = {}
    for i in ids:
        start_line = (d / f"{i}.start").read_text().split()
        end = float((d / f"{i}.end").read_text().split()[0])
        out[i] = (float(start_line[0]), end, start_line[1] if len(start_line) > 1 else "")
    return out


def max_overlap(intervals) -> int:
    """Largest number of (start, end) intervals that are open at the same time."""
    events = []
    for s, e in intervals:
        events.append((s, 1))
        events.append((e, -1))
    events.sort(key=lambda x: (x[0], x[1]))  # an end before a start at the same instant
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def run_job(env, args, cwd: Path, cmd=None, timeout: float = 30.0) -> int:
    """Submits a single-task job recording its environment in `cwd`, waits for it, checks that
    it finished and returns the job id."""
    cwd.mkdir(parents=True, exist_ok=True)
    job = env.submit([*args, "--cwd", str(cwd), "--", *(cmd or record_env_cmd())])
    env.wait_job(job, timeout=timeout)
    tasks = env.tasks(job)
    assert [t["state"] for t in tasks] == ["finished"] * len(tasks), tasks
    return job


def cpu_ids(value: str) -> list[int]:
    return [int(x) for x in value.split(",")]


def parse_cpulist(text: str) -> set[int]:
    out = set()
    for part in text.strip().split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def job_count(env) -> int:
    return len(env.command(["job", "list", "--all"], as_json=True))


def start_workers(env, specs: list[tuple[tuple, str]]):
    """Starts several workers in parallel: `specs` = [(args, cpus)]; returns the processes with
    their worker ids (in the same order)."""
    procs = [env.start_worker(*args, cpus=cpus, wait=False) for args, cpus in specs]

    def ready():
        ids = []
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"worker exited with {p.poll()}:\n{p.stderr()}")
            m = re.search(r"^\| Worker +\| (\d+) +\|", p.stdout(), re.M)
            if not m:
                return None
            ids.append(int(m.group(1)))
        running = {w["id"] for w in env.command(["worker", "list"], as_json=True)}
        return ids if set(ids) <= running else None

    ids = wait_until(ready, 30, 0.1, "workers to start")
    for p, wid in zip(procs, ids):
        p.worker_id = wid
    return procs


# ------------------------------------------------------------------------------ worker resources


@pytest.mark.timeout(60)
def test_worker_resource_definitions(hq_env):
    env = hq_env
    env.start_server()
    extra = ("--resource", "gpus/nvidia=[0,1]", "--resource", "mem=sum(1000)",
             "--resource", "fairy=range(1-3)")
    w_plain, w_nxm, w_list, w_groups = start_workers(env, [
        (extra, "4"), (extra, "2x2"), (extra, "[0,2,4]"), (extra, "[[0,1],[2,3]]")])

    rows = {int(r["ID"]): r for r in parse_horizontal(env.command(["worker", "list"]))}
    expected_cpus = {w_plain.worker_id: ["cpus 4"], w_nxm.worker_id: ["cpus 2x2"],
                     w_list.worker_id: ["cpus 3", "cpus [0,2,4]"],
                     w_groups.worker_id: ["cpus 2x2"]}
    for wid, cpus_texts in expected_cpus.items():
        parts = [p.strip() for p in rows[wid]["Resources"].split(";")]
        assert parts[0] in cpus_texts, rows[wid]
        # the other pools follow in name order
        assert [p.split(" ")[0] for p in parts] == ["cpus", "fairy", "gpus/nvidia", "mem"], parts
        assert "fairy 3" in parts, parts
        assert "mem 0.98 GiB" in parts, parts  # F49: mem of kind sum in MiB/GiB
        assert "gpus/nvidia 2" in parts or "gpus/nvidia [0,1]" in parts, parts

    info = parse_vertical(env.command(["worker", "info", str(w_nxm.worker_id)]))
    lines = info["Resources"].splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["cpus", "fairy", "gpus/nvidia", "mem"], lines
    assert "2x2" in lines[0], lines
    assert lines[3] == "mem: 0.98 GiB", lines
    info = parse_vertical(env.command(["worker", "info", str(w_list.worker_id)]))
    cpus_line = info["Resources"].splitlines()[0]
    assert cpus_line == "cpus: 3", cpus_line  # F49: a list shows the number of values

    data = {w["id"]: {r["name"]: r for r in w["configuration"]["resources"]["resources"]}
            for w in env.command(["worker", "list"], as_json=True)}
    r = data[w_plain.worker_id]
    assert r["cpus"]["kind"] == "range" and (r["cpus"]["start"], r["cpus"]["end"]) == (0, 3)
    assert r["gpus/nvidia"]["kind"] == "list" and r["gpus/nvidia"]["values"] == ["0", "1"]
    assert r["mem"]["kind"] == "sum" and r["mem"]["size"] == 1000 * 10000  # raw amount (F61)
    assert r["fairy"]["kind"] == "range" and (r["fairy"]["start"], r["fairy"]["end"]) == (1, 3)
    assert data[w_nxm.worker_id]["cpus"]["kind"] == "groups"
    assert data[w_nxm.worker_id]["cpus"]["groups"] == [["0", "1"], ["2", "3"]]
    assert data[w_list.worker_id]["cpus"]["kind"] == "list"
    assert data[w_list.worker_id]["cpus"]["values"] == ["0", "2", "4"]
    assert data[w_groups.worker_id]["cpus"]["kind"] == "groups"
    assert data[w_groups.worker_id]["cpus"]["groups"] == [["0", "1"], ["2", "3"]]

    # the labels of a list pool are what a task gets
    d = env.work_dir / "fairy"
    run_job(env, ["--resource", "fairy=2", "--cpus", "1"], d)
    got = read_env(d / "0.env")
    assert sorted(got["HQ_RESOURCE_VALUES_fairy"].split(",")) in (["1", "2"], ["1", "3"],
                                                                 ["2", "3"]), got


@pytest.mark.timeout(60)
def test_worker_detected_cpus_and_no_hyper_threading(hq_env):
    env = hq_env
    env.start_server()
    w = env.start_worker("--no-hyper-threading", cpus=None)
    res = {r["name"]: r for r in env.command(["worker", "info", str(w.worker_id)],
                                              as_json=True)[0]["configuration"]["resources"][
        "resources"]}
    assert "cpus" in res
    d = env.work_dir / "ht"
    run_job(env, [], d)
    assert len(cpu_ids(read_env(d / "0.env")["HQ_CPUS"])) == 1


@pytest.mark.timeout(60)
def test_gpus_detected_from_visible_devices(hq_env):
    env = hq_env
    env.start_server()
    env.env["CUDA_VISIBLE_DEVICES"] = "GPU-aa,GPU-bb"
    env.env["ROCR_VISIBLE_DEVICES"] = "3"
    try:
        out = env.command(["worker", "hwdetect"])
        full = out.split("Full Description:")[1]
        assert "gpus/nvidia" in full and "GPU-aa" in full and "GPU-bb" in full, out
        assert "gpus/amd" in full, out
        w = env.start_worker("--resource", "cpus=[[0,1],[2,3,4]]", cpus=None)
        w_nogpu = env.start_worker("--detect-resources", "cpus", cpus=None)
    finally:
        del env.env["CUDA_VISIBLE_DEVICES"], env.env["ROCR_VISIBLE_DEVICES"]
    data = {x["id"]: {r["name"]: r for r in x["configuration"]["resources"]["resources"]}
            for x in env.command(["worker", "list"], as_json=True)}
    res = data[w.worker_id]
    assert res["gpus/nvidia"]["values"] == ["GPU-aa", "GPU-bb"], res
    assert res["gpus/amd"]["values"] == ["3"], res
    assert res["cpus"]["groups"] == [["0", "1"], ["2", "3", "4"]], res
    assert "mem" in res and res["mem"]["kind"] == "sum"
    assert set(data[w_nogpu.worker_id]) == {"cpus"}, data[w_nogpu.worker_id]
    row = next(r for r in parse_horizontal(env.command(["worker", "list"]))
               if r["ID"] == str(w.worker_id))
    assert row["Resources"].startswith("cpus 1x2 1x3;"), row

    d = env.work_dir / "uuid"
    run_job(env, ["--resource", "gpus/nvidia=1", "--cpus", "3 compact!"], d)
    e = read_env(d / "0.env")
    assert e["CUDA_VISIBLE_DEVICES"] in ("GPU-aa", "GPU-bb"), e
    assert e["CUDA_VISIBLE_DEVICES"] == e["HQ_RESOURCE_VALUES_gpus_nvidia"]
    assert sorted(cpu_ids(e["HQ_CPUS"])) == [2, 3, 4], e  # the only group of 3

    d = env.work_dir / "tight"
    run_job(env, ["--cpus", "4 tight"], d)
    ids = set(cpu_ids(read_env(d / "0.env")["HQ_CPUS"]))
    assert len(ids) == 4 and {2, 3, 4} <= ids, ids  # fills the bigger group first

    d = env.work_dir / "amd"
    run_job(env, ["--resource", "gpus/amd=1"], d)
    assert read_env(d / "0.env")["ROCR_VISIBLE_DEVICES"] == "3"

    res = env.run(["worker", "start", "--detect-resources", "none"], timeout=15)
    assert res.returncode != 0 and "--cpus" in res.stderr, res


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args,message", [
    (["--cpus", "sum(4)"], "sum"),
    (["--cpus", "[0,0]"], "duplicate"),
    (["--cpus", "[[0,1],[1,2]]"], "duplicate"),
    (["--cpus", "0"], "`sum`"),  # F47: an empty sum, and CPUs cannot be a sum
    (["--cpus", "2", "--resource", "bad"], "bad"),
    (["--cpus", "2", "--resource", "gpus=[a,b,a]"], "duplicate"),
    (["--cpus", "2", "--resource", "gpus=[0]", "--resource", "gpus=[1]"], "gpus"),
    (["--cpus", "2", "--resource", "cpus=4"], "cpus"),
    (["--cpus", "2", "--resource", "1gpu=[0]"], "1gpu"),
    (["--cpus", "2", "--resource", "mem=sum(0)"], "0"),
])
def test_invalid_worker_resources(hq_env, args, message):
    # No server is needed: the definitions are rejected before connecting.
    res = hq_env.run(["worker", "start", *args], timeout=15)
    assert res.returncode != 0
    assert res.stdout == ""
    err = res.stderr
    assert message in err, err
    if res.returncode == 2:  # a value parser's error, worded by clap: "error: ..." (F3)
        assert err.startswith("error: "), err
    else:  # a check after parsing: the bare message, exit 1 (F2, F47)
        assert res.returncode == 1 and len(err.splitlines()) == 1, err
    assert "Traceback" not in err, err


@pytest.mark.timeout(30)
def test_hwdetect_output(hq_env):
    for extra in ([], ["--no-hyper-threading"]):
        out = hq_env.command(["worker", "hwdetect", *extra])
        lines = out.splitlines()
        assert "Summary:" in lines and "Full Description:" in lines, out
        assert lines.index("Summary:") < lines.index("Full Description:")
        full = lines[lines.index("Full Description:") + 1:]
        assert any(ln.strip().startswith("cpus:") for ln in full), out
        assert any(ln.strip().startswith("mem:") for ln in full), out
        data = hq_env.command(["worker", "hwdetect", *extra], as_json=True)
        names = [r["name"] for r in data["resources"]]
        assert names[0] == "cpus" and "mem" in names, data
        assert data["coupling"] == {"weights": []}
    # the JSON is the resource descriptor a worker with default detection reports
    hq_env.start_server()
    hq_env.start_worker(cpus=None)
    (listed,) = hq_env.command(["worker", "list"], as_json=True)
    assert hq_env.command(["worker", "hwdetect"], as_json=True) == \
        listed["configuration"]["resources"]


# --------------------------------------------------------------------------------- task requests


@pytest.mark.timeout(60)
def test_task_cpu_requests_and_policies(hq_env):
    env = hq_env
    env.start_server()
    env.start_worker("--resource", "gpus/nvidia=[0,1]", "--resource", "gpus/amd=[a,b]",
                     "--resource", "mem=sum(1000)", cpus="2x2")
    groups = [{0, 1}, {2, 3}]

    def run(name, args):
        d = env.work_dir / name
        run_job(env, args, d)
        return read_env(d / "0.env")

    e = run("cpus2", ["--cpus", "2"])
    assert len(cpu_ids(e["HQ_CPUS"])) == 2
    assert e["HQ_RESOURCE_VALUES_cpus"] == e["HQ_CPUS"]
    assert e["HQ_RESOURCE_REQUEST_cpus"] == "2 compact"
    assert e["OMP_NUM_THREADS"] == "2"
    assert set(cpu_ids(e["HQ_CPUS"])) in groups, e  # compact on a free worker: one group
    assert "HQ_PIN" not in e and "CUDA_VISIBLE_DEVICES" not in e

    e = run("default", [])
    assert len(cpu_ids(e["HQ_CPUS"])) == 1
    assert e["HQ_RESOURCE_REQUEST_cpus"] == "1 compact"
    assert e["OMP_NUM_THREADS"] == "1"

    e = run("strict", ["--cpus", "2 compact!"])
    assert set(cpu_ids(e["HQ_CPUS"])) in groups, e
    assert e["HQ_RESOURCE_REQUEST_cpus"] == "2 compact!"

    e = run("tight", ["--cpus", "3 tight"])
    ids = set(cpu_ids(e["HQ_CPUS"]))
    assert len(ids) == 3 and any(g <= ids for g in groups), e
    assert e["HQ_RESOURCE_REQUEST_cpus"] == "3 tight"

    e = run("scatter", ["--cpus", "2 scatter"])
    ids = cpu_ids(e["HQ_CPUS"])
    assert len(ids) == 2 and all(len(set(ids) & g) == 1 for g in groups), e
    assert e["HQ_RESOURCE_REQUEST_cpus"] == "2 scatter"

    e = run("all", ["--cpus", "all"])
    assert sorted(cpu_ids(e["HQ_CPUS"])) == [0, 1, 2, 3]
    assert e["HQ_RESOURCE_REQUEST_cpus"] == "all"
    assert e["OMP_NUM_THREADS"] == "4"

    e = run("omp-user", ["--cpus", "2", "--env", "OMP_NUM_THREADS=7"])
    assert e["OMP_NUM_THREADS"] == "7"

    e = run("gpu", ["--resource", "gpus/nvidia=1"])
    assert e["HQ_RESOURCE_REQUEST_gpus_nvidia"] == "1 compact"
    assert e["HQ_RESOURCE_VALUES_gpus_nvidia"] in ("0", "1")
    assert e["CUDA_VISIBLE_DEVICES"] == e["HQ_RESOURCE_VALUES_gpus_nvidia"]
    assert e["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert e["HQ_RESOURCE_REQUEST_cpus"] == "1 compact"  # the default cpu request is kept

    e = run("gpu2", ["--resource", "gpus/nvidia=2"])
    assert sorted(e["CUDA_VISIBLE_DEVICES"].split(",")) == ["0", "1"]

    e = run("amd", ["--resource", "gpus/amd=1"])
    assert e["HQ_RESOURCE_VALUES_gpus_amd"] in ("a", "b")
    assert e["ROCR_VISIBLE_DEVICES"] == e["HQ_RESOURCE_VALUES_gpus_amd"]
    assert "CUDA_VISIBLE_DEVICES" not in e

    e = run("half", ["--resource", "gpus/nvidia=0.5"])
    assert e["HQ_RESOURCE_REQUEST_gpus_nvidia"] == "0.5 compact"
    assert e["HQ_RESOURCE_VALUES_gpus_nvidia"] in ("0", "1")

    e = run("mem", ["--resource", "mem=600"])
    assert e["HQ_RESOURCE_REQUEST_mem"] == "600 compact"
    assert "HQ_RESOURCE_VALUES_mem" not in e  # sum pools have no indices

    # job info shows the request
    job = run_job(env, ["--cpus", "2 scatter", "--resource", "mem=100"], env.work_dir / "info")
    res = parse_vertical(env.command(["job", "info", str(job)]))["Resources"].splitlines()
    assert "cpus: 2 scatter" in res and "mem: 100 compact" in res, res
    res = parse_vertical(env.command(["task", "info", str(job), "0"]))["Resources"]
    assert "cpus: 2 scatter" in res.splitlines(), res


@pytest.mark.timeout(60)
def test_compact_strict_with_partly_busy_groups(hq_env):
    """`2 compact!` on a 2x2 worker whose groups each have one busy CPU must wait instead of
    taking one CPU from each group; a plain `2 compact` may run across groups."""
    env = hq_env
    env.start_server()
    env.start_worker(cpus="[[0,1],[2,3]]")
    d = env.work_dir / "strict"
    d.mkdir()
    # occupy one CPU of each group (scatter places the two CPUs in different groups)
    blocker = env.submit(["--cpus", "2 scatter", "--cwd", str(d), "--", "sh", "-c",
                          f"{RECORD_ENV}; while [ ! -e {d}/release ]; do sleep 0.1; done"])
    env.wait_task_state(blocker, 0, "running")
    held = set(cpu_ids(read_env(d / "0.env")["HQ_CPUS"]))
    assert held & {0, 1} and held & {2, 3}, held
    (d / "s").mkdir()
    strict = env.submit(["--cpus", "2 compact!", "--cwd", str(d / "s"), "--",
                         *record_env_cmd()])
    time.sleep(1.0)
    assert env.tasks(strict)[0]["state"] == "waiting"
    (d / "release").touch()
    env.wait_job(strict)
    assert env.tasks(strict)[0]["state"] == "finished"
    ids = set(cpu_ids(read_env(d / "s" / "0.env")["HQ_CPUS"]))
    assert ids in ({0, 1}, {2, 3}), ids
    env.wait_job(blocker)


@pytest.mark.timeout(60)
def test_fractional_gpus_at_most_two_per_index(hq_env):
    env = hq_env
    env.start_server()
    env.start_worker("--resource", "gpus/nvidia=[0,1]", cpus="4")
    d = env.work_dir / "frac"
    d.mkdir()
    job = env.submit(["--array", "1-4", "--resource", "gpus/nvidia=0.5", "--cwd", str(d),
                      "--", *timed_cmd(1.0, "HQ_RESOURCE_VALUES_gpus_nvidia")])
    env.wait_job(job)
    assert all(t["state"] == "finished" for t in env.tasks(job))
    iv = read_intervals(d, range(1, 5))
    assert {v for _, _, v in iv.values()} <= {"0", "1"}, iv
    for index in ("0", "1"):
        assert max_overlap([(s, e) for s, e, v in iv.values() if v == index]) <= 2, iv

    # 0.75 of a GPU: two of them never share an index
    d2 = env.work_dir / "frac75"
    d2.mkdir()
    job = env.submit(["--array", "1-3", "--resource", "gpus/nvidia=0.75", "--cwd", str(d2),
                      "--", *timed_cmd(0.7, "HQ_RESOURCE_VALUES_gpus_nvidia")])
    env.wait_job(job)
    assert all(t["state"] == "finished" for t in env.tasks(job))
    iv = read_intervals(d2, range(1, 4))
    assert max_overlap([(s, e) for s, e, _ in iv.values()]) <= 2, iv
    for index in ("0", "1"):
        assert max_overlap([(s, e) for s, e, v in iv.values() if v == index]) <= 1, iv


@pytest.mark.timeout(60)
def test_fractional_part_must_fit_one_index(hq_env):
    """With 0.75 used on each of two GPUs, 0.5 does not fit (0.25 + 0.25 is not one index), but
    0.25 does."""
    env = hq_env
    env.start_server()
    env.start_worker("--resource", "gpus/nvidia=[0,1]", cpus="4")
    d = env.work_dir / "frac"
    d.mkdir()
    hold = env.submit(["--array", "1-2", "--resource", "gpus/nvidia=0.75", "--cwd", str(d), "--",
                       "sh", "-c", f"{RECORD_ENV}; while [ ! -e {d}/release ]; do sleep 0.1; done"])
    wait_until(lambda: all(t["state"] == "running" for t in env.tasks(hold)), 20, 0.2,
               "both holders running")
    held = {read_env(d / f"{i}.env")["HQ_RESOURCE_VALUES_gpus_nvidia"] for i in (1, 2)}
    assert held == {"0", "1"}, held
    half = env.submit(["--resource", "gpus/nvidia=0.5", "--cwd", str(d), "--", "true"])
    (d / "q").mkdir()
    quarter = env.submit(["--resource", "gpus/nvidia=0.25", "--cwd", str(d / "q"), "--",
                          *record_env_cmd()])
    env.wait_job(quarter)
    assert env.tasks(quarter)[0]["state"] == "finished"
    assert read_env(d / "q" / "0.env")["HQ_RESOURCE_VALUES_gpus_nvidia"] in ("0", "1")
    assert env.tasks(half)[0]["state"] == "waiting"
    (d / "release").touch()
    env.wait_job(half)
    assert env.tasks(half)[0]["state"] == "finished"


@pytest.mark.timeout(60)
def test_sum_resource_is_not_overbooked(hq_env):
    env = hq_env
    env.start_server()
    env.start_worker("--resource", "mem=sum(1000)", cpus="2")
    d = env.work_dir / "mem"
    d.mkdir()
    job = env.submit(["--array", "1-2", "--resource", "mem=600", "--cwd", str(d), "--",
                      *timed_cmd(0.8)])
    env.wait_job(job)
    assert all(t["state"] == "finished" for t in env.tasks(job))
    iv = read_intervals(d, (1, 2))
    assert max_overlap([(s, e) for s, e, _ in iv.values()]) == 1, iv

    # 400 + 600 fit together
    d2 = env.work_dir / "mem2"
    d2.mkdir()
    a = env.submit(["--resource", "mem=600", "--cwd", str(d2), "--", "sh", "-c",
                    f"touch a; while [ ! -e {d2}/release ]; do sleep 0.1; done"])
    env.wait_task_state(a, 0, "running")
    b = env.submit(["--resource", "mem=400", "--cwd", str(d2), "--", "true"])
    env.wait_job(b)
    assert env.tasks(a)[0]["state"] == "running"
    (d2 / "release").touch()
    env.wait_job(a)


@pytest.mark.timeout(60)
def test_pinning(hq_env):
    env = hq_env
    env.start_server()
    env.start_worker(cpus="2")
    allowed = os.sched_getaffinity(0)

    d = env.work_dir / "taskset"
    run_job(env, ["--cpus", "1", "--pin", "taskset"], d,
            cmd=record_env_cmd("grep Cpus_allowed_list /proc/self/status > affinity"))
    e = read_env(d / "0.env")
    assert e["HQ_PIN"] == "taskset"
    cpus = cpu_ids(e["HQ_CPUS"])
    assert len(cpus) == 1
    got = parse_cpulist((d / "affinity").read_text().split(":")[1])
    if set(cpus) <= allowed:
        assert got == set(cpus), (got, cpus)

    d = env.work_dir / "taskset2"
    run_job(env, ["--cpus", "2", "--pin", "taskset"], d,
            cmd=record_env_cmd("grep Cpus_allowed_list /proc/self/status > affinity"))
    e = read_env(d / "0.env")
    got = parse_cpulist((d / "affinity").read_text().split(":")[1])
    if {0, 1} <= allowed:
        assert got == set(cpu_ids(e["HQ_CPUS"])) == {0, 1}

    d = env.work_dir / "omp"
    run_job(env, ["--cpus", "2", "--pin", "omp"], d)
    e = read_env(d / "0.env")
    assert e["HQ_PIN"] == "omp"
    assert e["OMP_PROC_BIND"] == "close"
    places = set(int(x) for x in re.findall(r"\d+", e["OMP_PLACES"]))
    assert places == set(cpu_ids(e["HQ_CPUS"])), e
    assert e["OMP_PLACES"].startswith("{"), e

    # user-provided OMP settings win
    d = env.work_dir / "omp-user"
    run_job(env, ["--cpus", "1", "--pin", "omp", "--env", "OMP_PROC_BIND=spread"], d)
    assert read_env(d / "0.env")["OMP_PROC_BIND"] == "spread"

    job = run_job(env, ["--cpus", "1", "--pin", "omp"], env.work_dir / "info")
    assert parse_vertical(env.command(["job", "info", str(job)]))["Pin"] in ("omp", "openmp")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args,message", [
    (["--cpus", "1 nonsense"], "nonsense"),
    (["--resource", "gpus=0.12345"], "0.12345"),
    (["--cpus", "0"], "0"),
    (["--resource", "gpus=0"], "0"),
    (["--resource", "gpus"], "gpus"),
    (["--cpus", "-1"], "-1"),
    (["--nodes", "2", "--cpus", "1"], "--nodes"),
    (["--cpus", "2", "--resource", "cpus=1"], "cpus"),
])
def test_bad_requests_rejected_at_submit(shared_env, args, message):
    env = shared_env
    before = job_count(env)
    res = env.run(["submit", *args, "--", "true"])
    assert res.returncode != 0, res
    # clap-worded value errors (exit 2) or a bare message after parsing (exit 1), F2/F3
    assert message in res.stderr and ("error: " in res.stderr or res.returncode == 1), res
    assert "Traceback" not in res.stderr
    assert "submitted" not in res.stdout
    assert job_count(env) == before


# ------------------------------------------------------------------------------------ scheduling


@pytest.mark.timeout(60)
def test_gpus_never_double_booked(hq_env):
    env = hq_env
    env.start_server()
    env.start_worker("--resource", "gpus/nvidia=[0,1]", cpus="4")
    d = env.work_dir / "gpus"
    d.mkdir()
    n = 8
    job = env.submit(["--array", f"1-{n}", "--resource", "gpus/nvidia=1", "--cwd", str(d),
                      "--", *timed_cmd(0.3, "HQ_RESOURCE_VALUES_gpus_nvidia")])
    env.wait_job(job)
    assert all(t["state"] == "finished" for t in env.tasks(job))
    iv = read_intervals(d, range(1, n + 1))
    assert {v for _, _, v in iv.values()} <= {"0", "1"}, iv
    assert max_overlap([(s, e) for s, e, _ in iv.values()]) <= 2, iv
    for index in ("0", "1"):
        assert max_overlap([(s, e) for s, e, v in iv.values() if v == index]) == 1, iv


@pytest.mark.timeout(60)
def test_priorities_on_busy_worker(hq_env):
    env = hq_env
    env.start_server()
    env.start_worker(cpus="1")
    d = env.work_dir / "prio"
    d.mkdir()
    blocker = env.submit(["--cwd", str(d), "--", "sh", "-c",
                          f"while [ ! -e {d}/release ]; do sleep 0.1; done"])
    env.wait_task_state(blocker, 0, "running")
    order_cmd = ["sh", "-c", 'echo "$HQ_JOB_ID $HQ_TASK_ID" >> order']
    low1 = env.submit(["--array", "0-1", "--cwd", str(d), "--", *order_cmd])
    high1 = env.submit(["--priority", "5", "--cwd", str(d), "--", *order_cmd])
    low2 = env.submit(["--cwd", str(d), "--", *order_cmd])
    high2 = env.submit(["--priority", "5", "--array", "0-1", "--cwd", str(d), "--",
                        *order_cmd])
    neg = env.submit(["--priority", "-3", "--cwd", str(d), "--", *order_cmd])
    time.sleep(0.5)
    (d / "release").touch()
    for j in (blocker, low1, high1, low2, high2, neg):
        env.wait_job(j)
    order = [tuple(map(int, ln.split())) for ln in (d / "order").read_text().splitlines()]
    assert order == [(high1, 0), (high2, 0), (high2, 1), (low1, 0), (low1, 1), (low2, 0),
                     (neg, 0)], order


@pytest.mark.timeout(60)
def test_priorities_before_worker_starts(hq_env):
    env = hq_env
    env.start_server()
    d = env.work_dir / "prio"
    d.mkdir()
    order_cmd = ["sh", "-c", 'echo "$HQ_JOB_ID" >> order']
    jobs = [env.submit(["--priority", str(p), "--cwd", str(d), "--", *order_cmd])
            for p in (1, 3, 0, 3)]
    env.start_worker(cpus="1")
    for j in jobs:
        env.wait_job(j)
    order = [int(x) for x in (d / "order").read_text().split()]
    assert order == [jobs[1], jobs[3], jobs[0], jobs[2]]


@pytest.mark.timeout(60)
def test_missing_resource_waits_explain_then_runs(hq_env):
    env = hq_env
    env.start_server()
    w1 = env.start_worker(cpus="1")
    d = env.work_dir / "fpga"
    d.mkdir()
    job = env.submit(["--resource", "fpga=1", "--cwd", str(d), "--", *record_env_cmd()])
    time.sleep(1.0)
    assert env.tasks(job)[0]["state"] == "waiting"

    out = env.command(["task", "explain", str(job), "0"])
    assert "There is no worker where the task can run." in out, out  # upstream's text (F64)
    rows = parse_horizontal(out)
    assert len(rows) == 1, out  # one worker (continuation lines are merged into its row)
    assert rows[0]["Worker Id"] == str(w1.worker_id) and rows[0]["Runnable"] == "No", out
    # upstream's cells (F64): what the worker provides beside the request, no verdict per item
    items = dict(zip(rows[0]["Type"].split("\n"), rows[0]["Request"].split("\n")))
    provides = dict(zip(rows[0]["Type"].split("\n"), rows[0]["Provides"].split("\n")))
    assert items["fpga"] == "1" and provides["fpga"] == "0", out
    assert items["cpus"] == "1" and provides["cpus"] == "1", out
    explained = env.command(["task", "explain", str(job), "0"], as_json=True)
    assert "fpga" in str(explained)

    # more CPUs than any worker has: waits too, blocked by cpus
    too_big = env.submit(["--cpus", "2", "--", "true"])
    time.sleep(0.5)
    out = env.command(["task", "explain", str(too_big), "0"])
    row = parse_horizontal(out)[0]
    items = dict(zip(row["Type"].split("\n"), row["Request"].split("\n")))
    provides = dict(zip(row["Type"].split("\n"), row["Provides"].split("\n")))
    assert row["Runnable"] == "No" and items["cpus"] == "2" and provides["cpus"] == "1", out

    w2 = env.start_worker("--resource", "fpga=[x]", cpus="1")
    env.wait_job(job)
    t = env.tasks(job)[0]
    assert t["state"] == "finished" and t["worker"] == w2.worker_id, t
    e = read_env(d / "0.env")
    assert e["HQ_RESOURCE_VALUES_fpga"] == "x"
    assert e["HQ_RESOURCE_REQUEST_fpga"] == "1 compact"

    # a task that fits says so
    # (upstream explains waiting and running tasks only, F64)
    job2 = env.submit(["--resource", "fpga=1", "--", "sleep", "100"])
    env.wait_task_state(job2, 0, "running")
    out = env.command(["task", "explain", str(job2), "0"])
    assert f"The task can run on 1 worker: {w2.worker_id}" in out, out
    env.command(["job", "cancel", str(job2)])
    assert env.tasks(too_big)[0]["state"] == "waiting"
    env.command(["job", "cancel", str(too_big)])


@pytest.mark.timeout(60)
def test_min_utilization(hq_env):
    env = hq_env
    env.start_server()
    w = env.start_worker("--min-utilization", "1.0", cpus="2")
    wj = env.command(["worker", "info", str(w.worker_id)], as_json=True)[0]
    assert wj["configuration"]["min_utilization"] == 1.0
    d = env.work_dir / "util"
    d.mkdir()
    small = env.submit(["--cpus", "1", "--cwd", str(d), "--", "true"])
    time.sleep(1.5)
    assert env.tasks(small)[0]["state"] == "waiting"
    out = env.command(["task", "explain", str(small), "0"])
    assert "Runnable" in out
    env.command(["job", "cancel", str(small)])

    big = env.submit(["--cpus", "2", "--cwd", str(d), "--", "true"])
    env.wait_job(big)
    assert env.tasks(big)[0]["state"] == "finished"
    assert env.tasks(big)[0]["worker"] == w.worker_id

    # two 1-cpu tasks together use all CPUs
    pair = env.submit(["--array", "1-2", "--cpus", "1", "--cwd", str(d), "--", "true"])
    env.wait_job(pair)
    assert [t["state"] for t in env.tasks(pair)] == ["finished", "finished"]

    # a worker without --min-utilization next to it takes the lone small task
    small = env.submit(["--cpus", "1", "--cwd", str(d), "--", "true"])
    time.sleep(1.0)
    assert env.tasks(small)[0]["state"] == "waiting"
    w2 = env.start_worker(cpus="2")
    env.wait_job(small)
    assert env.tasks(small)[0]["worker"] == w2.worker_id


@pytest.mark.timeout(60)
def test_min_utilization_counts_only_planned_tasks(hq_env):
    env = hq_env
    env.start_server()
    env.start_worker("--min-utilization", "1.0", cpus="2")
    d = env.work_dir / "util"
    d.mkdir()
    small = env.submit(["--cpus", "1", "--cwd", str(d), "--", "true"])
    big = env.submit(["--cpus", "2", "--cwd", str(d), "--", "true"])
    env.wait_job(big)
    time.sleep(1.0)
    # {small} alone uses 50% of the CPUs and {small, big} do not fit together: only big runs
    assert env.tasks(small)[0]["state"] == "waiting"


@pytest.mark.timeout(60)
def test_resource_variants_job_file(hq_env):
    env = hq_env
    env.start_server()
    w = env.start_worker("--detect-resources", "none", cpus="2")
    d = env.work_dir / "variants"
    d.mkdir()
    (d / "job.toml").write_text(
        '[[task]]\n'
        'id = 0\n'
        f'command = ["sh", "-c", {RECORD_ENV!r}]\n'
        '[[task.request]]\n'
        'resources = { "gpus/nvidia" = 1 }\n'
        '[[task.request]]\n'
        'resources = { cpus = 2 }\n')
    job = int(env.command(["job", "submit-file", str(d / "job.toml")], cwd=d,
                          mode="quiet").strip())
    env.wait_job(job)
    assert env.tasks(job)[0]["state"] == "finished"
    e = read_env(d / "0.env")
    assert e["HQ_RESOURCE_VARIANT"] == "1"
    assert sorted(cpu_ids(e["HQ_CPUS"])) == [0, 1]
    assert e["HQ_RESOURCE_REQUEST_cpus"] == "2 compact"
    assert "CUDA_VISIBLE_DEVICES" not in e and "HQ_RESOURCE_VALUES_gpus_nvidia" not in e

    # a worker where both variants fit: the first one is preferred
    env.command(["worker", "stop", str(w.worker_id)], allow_stderr=True)
    w.wait(15)
    env.start_worker("--detect-resources", "none", "--resource", "gpus/nvidia=[7]", cpus="2")
    d2 = d / "second"
    d2.mkdir()
    (d / "job.toml").rename(d2 / "job.toml")
    job = int(env.command(["job", "submit-file", str(d2 / "job.toml")], cwd=d2,
                          mode="quiet").strip())
    env.wait_job(job)
    e = read_env(d2 / "0.env")
    assert e["HQ_RESOURCE_VARIANT"] == "0"
    assert e["HQ_RESOURCE_VALUES_gpus_nvidia"] == "7" and e["CUDA_VISIBLE_DEVICES"] == "7"
    assert "HQ_CPUS" not in e  # F43: an explicit request without `cpus` requests no CPUs


@pytest.mark.timeout(60)
def test_resource_variants_shown_in_info(hq_env):
    env = hq_env
    env.start_server()
    d = env.work_dir / "variants"
    d.mkdir()
    (d / "job.toml").write_text(
        '[[task]]\n'
        'id = 0\n'
        'command = ["true"]\n'
        '[[task.request]]\n'
        'resources = { "gpus/nvidia" = 1 }\n'
        '[[task.request]]\n'
        'resources = { cpus = 2 }\n')
    job = int(env.command(["job", "submit-file", str(d / "job.toml")], cwd=d,
                          mode="quiet").strip())
    info = env.job_info(job)
    assert len(info["submits"][0]["array"]["resources"]) == 2, info["submits"]
    res = parse_vertical(env.command(["task", "info", str(job), "0"]))["Resources"]
    assert "gpus/nvidia: 1 compact" in res and "cpus: 2 compact" in res, res


# ------------------------------------------------------------------------------------ multi-node


@pytest.mark.timeout(60)
def test_multi_node_task(hq_env):
    env = hq_env
    env.start_server()
    wa, wb, wc = start_workers(env, [
        (("--group", "g", "--hostname", "node-a.example.org"), "1"),
        (("--group", "g", "--hostname", "node-b.example.org"), "1"),
        (("--group", "other", "--hostname", "node-c"), "1"),
    ])
    group_ids = {wa.worker_id, wb.worker_id}
    d = env.work_dir / "mn"
    d.mkdir()
    mn = env.submit(["--nodes", "2", "--cwd", str(d), "--", "sh", "-c",
                     'echo $HQ_NUM_NODES; cat $HQ_NODE_FILE; cat $HQ_HOST_FILE; '
                     f'{RECORD_ENV}; while [ ! -e {d}/release ]; do sleep 0.1; done'])
    t = env.wait_task_state(mn, 0, "running")
    assert set(t["workers"]) == group_ids and "worker" not in t, t  # every node (F62)

    # both workers of group g are reserved: normal tasks run on the third worker only
    normal = env.submit(["--array", "1-3", "--cwd", str(d), "--", "sleep", "0.1"])
    env.wait_job(normal)
    assert {x["worker"] for x in env.tasks(normal)} == {wc.worker_id}
    ji = parse_vertical(env.command(["job", "info", str(mn)]))
    assert set(ji["Workers"].replace(" ", "").split(",")) == {"node-a.example.org",
                                                              "node-b.example.org"}, ji

    (d / "release").touch()
    env.wait_job(mn)
    t = env.tasks(mn)[0]
    assert t["state"] == "finished"
    root = {wa.worker_id: "node-a.example.org", wb.worker_id: "node-b.example.org"}[
        t["workers"][0]]  # the root node first
    other = ({"node-a.example.org", "node-b.example.org"} - {root}).pop()
    lines = Path(t["stdout"]).read_text().splitlines()
    assert lines == ["2", root.split(".")[0], other.split(".")[0], root, other], lines
    e = read_env(d / "0.env")
    assert e["HQ_NUM_NODES"] == "2"
    assert "HQ_CPUS" not in e and not any(k.startswith("HQ_RESOURCE_") for k in e), e
    assert "HQ_TASK_DIR" in e  # a task dir is always created for multi-node tasks

    # three nodes of one group do not exist: the task waits
    big = env.submit(["--nodes", "3", "--cwd", str(d), "--", "true"])
    time.sleep(1.0)
    assert env.tasks(big)[0]["state"] == "waiting"
    out = env.command(["task", "explain", str(big), "0"])
    assert "There is no worker where the task can run." in out, out
    # and single-node work keeps flowing meanwhile
    normal = env.submit(["--cwd", str(d), "--", "true"])
    env.wait_job(normal)
    env.command(["job", "cancel", str(big)])


@pytest.mark.timeout(60)
def test_multi_node_waits_for_busy_group_worker(hq_env):
    env = hq_env
    env.start_server()
    wa, wb = start_workers(env, [(("--group", "g"), "1"), (("--group", "g"), "1")])
    d = env.work_dir / "busy"
    d.mkdir()
    busy = env.submit(["--cwd", str(d), "--", "sh", "-c",
                       f"while [ ! -e {d}/release ]; do sleep 0.1; done"])
    env.wait_task_state(busy, 0, "running")
    mn = env.submit(["--nodes", "2", "--cwd", str(d), "--", "sh", "-c",
                     f"while [ ! -e {d}/release2 ]; do sleep 0.1; done"])
    time.sleep(1.0)
    assert env.tasks(mn)[0]["state"] == "waiting"
    (d / "release").touch()
    env.wait_task_state(mn, 0, "running")
    # every worker is taken by the multi-node task: a normal task waits
    normal = env.submit(["--cwd", str(d), "--", "true"])
    time.sleep(1.0)
    assert env.tasks(normal)[0]["state"] == "waiting"
    (d / "release2").touch()
    env.wait_job(mn)
    env.wait_job(normal)
    assert env.tasks(mn)[0]["state"] == "finished"
    assert env.tasks(normal)[0]["state"] == "finished"


@pytest.mark.timeout(60)
def test_multi_node_task_reserves_free_workers(hq_env):
    env = hq_env
    env.start_server()
    start_workers(env, [(("--group", "g"), "1"), (("--group", "g"), "1")])
    d = env.work_dir / "reserve"
    d.mkdir()
    busy = env.submit(["--cwd", str(d), "--", "sh", "-c",
                       f"while [ ! -e {d}/release ]; do sleep 0.1; done"])
    env.wait_task_state(busy, 0, "running")
    mn = env.submit(["--nodes", "2", "--cwd", str(d), "--", "true"])
    time.sleep(0.5)
    normal = env.submit(["--cwd", str(d), "--", "sleep", "0.5"])
    try:
        time.sleep(1.0)
        # the older multi-node job comes first: the free worker waits for it
        assert env.tasks(normal)[0]["state"] == "waiting"
    finally:
        (d / "release").touch()
        env.wait_job(mn)
        env.wait_job(normal)


@pytest.mark.timeout(60)
def test_multi_node_runtime_info(hq_env):
    env = hq_env
    env.start_server()
    wa, wb = start_workers(env, [(("--group", "g"), "1"), (("--group", "g"), "1")])
    d = env.work_dir / "rt"
    d.mkdir()
    mn = env.submit(["--nodes", "2", "--cwd", str(d), "--", "sh", "-c",
                     f"while [ ! -e {d}/release ]; do sleep 0.1; done"])
    t = env.wait_task_state(mn, 0, "running")
    try:
        texts = {}
        for w in (wa, wb):
            info = parse_vertical(env.command(["worker", "info", str(w.worker_id)]))
            texts[w.worker_id] = info["Runtime Info"]
        root = t["workers"][0]
        secondary = ({wa.worker_id, wb.worker_id} - {root}).pop()
        assert "main node" in texts[root], texts
        assert "secondary node" in texts[secondary], texts
    finally:
        (d / "release").touch()
        env.wait_job(mn)
