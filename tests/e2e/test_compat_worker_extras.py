"""`worker start --retract-check-interval` (F55) and worker overviews (F56)."""

from __future__ import annotations

import time

import pytest

from hqenv import wait_until


@pytest.mark.timeout(60)
def test_queued_tasks_whose_time_request_no_longer_fits_go_elsewhere(hq_env):
    hq_env.start_server()
    w1 = hq_env.start_worker("--time-limit", "8s", "--retract-check-interval", "200ms")
    blocker = hq_env.submit(["--", "sleep", "20"])
    wait_until(lambda: hq_env.tasks(blocker)[0]["state"] == "running")
    started = time.monotonic()
    job = hq_env.submit(["--time-request", "5s", "--", "true"])
    # assigned to (queued on) worker 1, which has ~7 s left when it is submitted
    wait_until(lambda: (time.monotonic() - started > 3.5))
    w2 = hq_env.start_worker()
    hq_env.wait_job(job)
    task = hq_env.tasks(job)[0]
    assert task["state"] == "finished" and task["worker"] == w2.worker_id
    # done while worker 1 was still alive: it gave the task back, nobody waited for its end
    assert w1.poll() is None


FAKE_NVIDIA = """#!/bin/sh
echo "$@" >> "{log}"
echo "BUS1, 10.0 %, 100 MiB, 200 MiB"
echo "BUS2, 55 %, 1 GiB, 4 GiB"
"""
FAKE_ROCM = """#!/bin/sh
echo "$@" >> "{log}"
cat <<'JSON'
{{"card1": {{"PCI Bus": "0000:c1:00.0", "GPU use (%)": "7", "GPU memory use (%)": "12.5"}},
 "card0": {{"PCI Bus": "0000:c0:00.0", "GPU use (%)": "n/a", "GPU memory use (%)": "3"}}}}
JSON
"""


@pytest.mark.timeout(60)
def test_overviews_carry_cpu_memory_and_gpu_state_into_the_journal(hq_env):
    import json
    import os

    bin_dir = hq_env.root / "bin"
    bin_dir.mkdir()
    calls = hq_env.root / "calls.log"
    for name, text in (("nvidia-smi", FAKE_NVIDIA), ("rocm-smi", FAKE_ROCM)):
        (bin_dir / name).write_text(text.format(log=calls))
        (bin_dir / name).chmod(0o755)
    journal = hq_env.root / "j.bin"
    hq_env.start_server("--journal", str(journal))
    hq_env.env = dict(hq_env.env, PATH=f"{bin_dir}:{os.environ['PATH']}")
    w = hq_env.start_worker("--resource", "gpus/nvidia=[0,1]", "--resource", "gpus/amd=[0]",
                            "--overview-interval", "100ms")
    plain = hq_env.start_worker()  # no interval: no overviews

    def overviews():
        hq_env.command(["journal", "flush"])
        out = hq_env.command(["journal", "export", str(journal)], allow_stderr=True)
        events = [json.loads(line)["event"] for line in out.splitlines()]
        return [e for e in events if e["type"] == "worker-overview"]

    found = wait_until(lambda: len(overviews()) >= 2 and overviews())
    assert {e["id"] for e in found} == {w.worker_id} != {plain.worker_id}
    event = found[-1]
    assert set(event) == {"type", "id", "hw-state"}
    state = event["hw-state"]["state"]
    assert set(state) == {"cpu_usage", "memory_usage", "network_usage", "nvidia_gpus",
                          "amd_gpus", "timestamp"}
    assert len(state["cpu_usage"]["cpu_per_core_percent_usage"]) == os.cpu_count()
    assert state["memory_usage"]["total"] > state["memory_usage"]["free"] > 0
    assert set(state["network_usage"]) == {"rx_bytes", "tx_bytes", "rx_packets", "tx_packets",
                                           "rx_errors", "tx_errors"}
    assert abs(state["timestamp"] - time.time()) < 30
    assert state["nvidia_gpus"] == {"gpus": [
        {"id": "BUS1", "processor_usage": 10.0, "mem_usage": 50.0},
        {"id": "BUS2", "processor_usage": 55.0, "mem_usage": 25.0}]}
    assert state["amd_gpus"] == {"gpus": [  # sorted by card name; unparsable usage is 0
        {"id": "0000:c0:00.0", "processor_usage": 0.0, "mem_usage": 3.0},
        {"id": "0000:c1:00.0", "processor_usage": 7.0, "mem_usage": 12.5}]}
    invocations = set(calls.read_text().splitlines())
    assert invocations == {
        "--format=csv,noheader --query-gpu=pci.bus_id,utilization.gpu,memory.used,memory.total",
        "--json --showuse --showbus --showmemuse"}
