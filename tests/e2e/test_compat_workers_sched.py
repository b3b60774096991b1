"""Facts of upstream-facts.md §4 (task execution), §7 (multi-node tasks), §8 (workers) and
§9 (scheduling), and F77 (workers of a running multi-node task are never idle), as a user of
`hq` sees them."""

from __future__ import annotations

import json
import re
import time

import pytest

from conftest import parse_horizontal, parse_vertical, wait_until
from hqenv import worker_banner_id


@pytest.mark.timeout(60)
def test_workers_of_a_running_multi_node_task_are_not_idle(hq_env):
    """F46/F77: root and secondary nodes of a running multi-node task do not stop on a short
    idle timeout; after the task ends each one's idle timer starts again from that moment."""
    hq_env.start_server()
    job = hq_env.submit(["--nodes", "3", "--", "sleep", "6"])
    # started together: the task starts as soon as the third one connects
    workers = [hq_env.start_worker("--idle-timeout", "2s", wait=False) for _ in range(3)]
    for w in workers:
        w.worker_id = wait_until(lambda: worker_banner_id(w), 20)
    hq_env.wait_task_state(job, 0, "running")
    # the task runs ~6 s: three times the idle timeout
    hq_env.wait_job(job, timeout=20)
    ended = time.monotonic()
    assert [t["state"] for t in hq_env.tasks(job)] == ["finished"]
    states = hq_env.worker_states()
    assert [states[w.worker_id] for w in workers] == ["RUNNING"] * 3, states
    for w in workers:
        assert w.wait(10) == 0
    stopped = time.monotonic() - ended
    assert 1.0 <= stopped <= 6.0, stopped
    states = hq_env.worker_states()
    assert [states[w.worker_id] for w in workers] == ["IDLE TIMEOUT"] * 3, states


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, message", [
    # F47, in upstream's order: each check wins over the later ones
    (["--cpus", "2", "--resource", "cpus=[0,1]", "--manager", "pbs"],
     "Parameters --cpus and --resource cpus=... cannot be combined"),
    (["--detect-resources", "none", "--manager", "pbs"],
     "You have to specify --cpus explicitly when opting out of CPU automatic detection"),
    (["--cpus", "sum(5)", "--manager", "pbs"],
     "Resource kind `sum` cannot be used with CPUs. CPUs must have identity"),
    (["--resource", "cpus=sum(5)"],
     "Resource kind `sum` cannot be used with CPUs. CPUs must have identity"),
    (["--cpus", "0"], "Resource kind `sum` cannot be used with CPUs. CPUs must have identity"),
    (["--cpus", "2", "--manager", "pbs", "--resource", "a=[1]", "--resource", "a=[2]"],
     "PBS_ENVIRONMENT not found. The process is not running under PBS"),
    (["--cpus", "2", "--manager", "slurm"],
     "SLURM_JOB_ID/SLURM_JOBID not found. The process is not running under SLURM"),
    (["--cpus", "2", "--resource", "a=[1]", "--resource", "a=[2]"], "Resource a defined twice"),
])
def test_worker_start_checks_exit_1_before_connecting(hq_env, args, message):
    # no server at all: the checks come before any connection attempt
    res = hq_env.run(["worker", "start", *args], timeout=20)
    assert res.returncode == 1, res
    assert message in res.stderr, res.stderr
    assert "connect" not in res.stderr.lower()


def test_min_utilization_outside_0_1_is_a_value_error(hq_env):
    res = hq_env.run(["worker", "start", "--cpus", "1", "--min-utilization", "1.5"])
    assert res.returncode == 2
    assert "Minimal utilization has to be in the interval [0.0, 1.0]." in res.stderr


@pytest.mark.timeout(60)
def test_worker_resources_runtime_info_and_stop_texts(hq_env):
    """F49 (Resources column and row), F50 (Runtime Info, Started, Process pid), F51."""
    hq_env.start_server()
    w = hq_env.start_worker("--resource", "shark=[1,3,5,2]", "--resource", "fairy=sum(10001000)",
                            "--resource", "small=sum(0.5)", "--resource", "potato=range(1-12)",
                            "--resource", "mem=sum(24105)", cpus="2x3")
    w2 = hq_env.start_worker("--resource", "gpus=[[a,b],[c,d]]", "--resource", "mem=sum(100)",
                             "--coupling", "cpus,gpus", cpus="[[0,1],[2,3]]")
    rows = {int(r["ID"]): r for r in parse_horizontal(hq_env.command(["worker", "list"]))}
    assert rows[w.worker_id]["Resources"] == \
        "cpus 2x3; fairy 10001000; mem 23.54 GiB; potato 12; shark 4; small 0.5"
    assert rows[w2.worker_id]["Resources"] == \
        "cpus 2x2 [coupled]; gpus 2x2 [coupled]; mem 100.00 MiB"
    info = parse_vertical(hq_env.command(["worker", "info", str(w.worker_id)]))
    assert info["Resources"].splitlines() == [
        "cpus: 2x3", "fairy: 10001000", "mem: 23.54 GiB", "potato: 12", "shark: 4", "small: 0.5"]
    assert info["Runtime Info"] == "assigned tasks: 0"
    assert re.fullmatch(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z"', info["Started"])
    assert info["Process pid"] == str(w.pid)
    assert info["Last task started"] == ""

    job = hq_env.submit(["--", "sleep", "30"])
    hq_env.wait_task_state(job, 0, "running")
    info = parse_vertical(hq_env.command(["worker", "info", str(w.worker_id)]))
    if info["Runtime Info"] == "assigned tasks: 0":  # it went to the other worker
        info = parse_vertical(hq_env.command(["worker", "info", str(w2.worker_id)]))
    assert info["Runtime Info"] == "assigned tasks: 1; running tasks: 1"
    assert re.fullmatch(rf'{job}@0; Time: "\S+Z"', info["Last task started"])

    res = hq_env.run(["worker", "stop", f"{w2.worker_id},{w.worker_id},9"])
    assert res.returncode == 0 and res.stdout == ""
    assert [ln.split(" ", 1)[1] for ln in res.stderr.splitlines()] == [
        f"INFO Worker {w.worker_id} stopped", f"INFO Worker {w2.worker_id} stopped",
        "ERROR Stopping worker 9 failed; worker not found"]
    wait_until(lambda: set(hq_env.worker_states().values()) == {"STOPPED"}, 15)
    res = hq_env.run(["worker", "stop", str(w.worker_id)])
    assert [ln.split(" ", 1)[1] for ln in res.stderr.splitlines()] == [
        f"WARN Stopping worker {w.worker_id} failed; worker is already stopped"]
    res = hq_env.run(["worker", "stop", "all"], mode="json")
    assert json.loads(res.stdout) == {} and res.stderr == ""  # `all`: only running workers


def test_hwdetect_text_in_detection_order(hq_env):
    """F53: summaries, a blank line, the kinds (`[a,b]` without spaces); cpus, gpus/nvidia,
    gpus/amd, mem."""
    res = hq_env.run(["worker", "hwdetect"],
                     env={"CUDA_VISIBLE_DEVICES": "1,3", "ROCR_VISIBLE_DEVICES": "foo,bar"})
    assert res.returncode == 0, res.stderr
    summary, full = res.stdout.split("\n\nFull Description:\n")
    lines = summary.splitlines()
    assert lines[0] == "Summary:"
    assert [ln.split(":")[0] for ln in lines[1:]] == ["cpus", "gpus/nvidia", "gpus/amd", "mem"]
    assert lines[2:4] == ["gpus/nvidia: 2", "gpus/amd: 2"]
    assert re.fullmatch(r"mem: \d+\.\d\d (MiB|GiB)", lines[4])
    kinds = full.splitlines()
    assert kinds[1:3] == ["gpus/nvidia: [1,3]", "gpus/amd: [foo,bar]"]
    assert re.fullmatch(r"cpus: (\[[\d,]+\]|range\(\d+-\d+\)|\[\[[\d,\[\]]+\]\])", kinds[0])
    assert re.fullmatch(r"mem: sum\(\d+(\.\d+)?\)", kinds[3])
    assert full.endswith("\n\n")  # upstream's last line is empty
    # a value with duplicates is skipped (with a WARN)
    res = hq_env.run(["worker", "hwdetect"], env={"CUDA_VISIBLE_DEVICES": "1,1"})
    assert "gpus/nvidia" not in res.stdout


@pytest.mark.timeout(60)
def test_spawn_error_and_signal_texts(hq_env):
    """F26 (spawn errors with `(os error N)` and hints) and F28 (signals: exit code -1)."""
    hq_env.start_server()
    hq_env.start_worker(cpus=2)
    work = hq_env.work_dir
    (work / "test.sh").write_text("echo hi\n")
    (work / "prog").write_text("#!/bin/sh\necho hi\n")
    (work / "prog").chmod(0o755)
    cases = {
        hq_env.submit(["--", "foo", "--bar", "--baz=5"]):
            'Cannot execute "foo --bar --baz=5": No such file or directory (os error 2)\n'
            "The program that you have tried to execute (`foo`) was not found.",
        hq_env.submit(["--", "./test.sh"]):
            'Cannot execute "./test.sh": Permission denied (os error 13)\n'
            "The script that you have tried to execute (`./test.sh`) is not executable.\n"
            "Try making it executable or add a shebang line to it.",
        hq_env.submit(["--", "prog", 'a"b']):
            'Cannot execute "prog a\\"b": No such file or directory (os error 2)\n'
            "The program that you have tried to execute (`prog`) was not found.\n"
            f"The file `{work}/prog` exists, maybe you have meant `./prog` instead?",
        hq_env.submit(["--", "bash", "-c", "kill -9 $$"]):
            "Program terminated with exit code -1. Received signal 9 (SIGKILL).",
        hq_env.submit(["--", "bash", "-c", "kill -USR2 $$"]):
            "Program terminated with exit code -1. Received signal 12 (SIGUSR2).",
        hq_env.submit(["--", "bash", "-c", "exit 3"]): "Program terminated with exit code 3.",
    }
    for job, error in cases.items():
        hq_env.wait_task_state(job, 0, "failed")
        (task,) = hq_env.command(["task", "info", str(job), "0"], as_json=True)
        assert task["error"] == error
