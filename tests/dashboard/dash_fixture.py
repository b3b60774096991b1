"""A recorded history for the dashboard tests: journal records written with the journal's own
encoders (deterministic: fixed times, no clock, no server)."""

from __future__ import annotations

from hyperqueue.autoalloc import (
    AllocationFinished, AllocationQueued, AllocationStarted, QueueCreated, QueuePaused,
    QueueParams, event_to_wire,
)
from hyperqueue.core import events as ev
from hyperqueue.core.model import ProgramDef, StdioDef, TaskTemplate, WorkerConfig
from hyperqueue.core.resources import ResourceDef
from hyperqueue.journal.format import encode_header, encode_records

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def template(args, stdout=None, stderr=None) -> list:
    out = StdioDef(stdout) if stdout else None
    err = StdioDef(stderr) if stderr else None
    return TaskTemplate(ProgramDef(args, stdout=out, stderr=err)).to_wire()


def worker_config(host: str, cpus: int, gpus: int = 0, overview: float | None = None) -> list:
    res = [ResourceDef.range_of("cpus", 0, cpus - 1)]
    if gpus:
        res.append(ResourceDef("gpus/nvidia", "list", [[str(i) for i in range(gpus)]]))
    return WorkerConfig(host, res, work_dir=f"/tmp/{host}", listen_address=f"{host}:1234",
                        overview_interval=overview, idle_timeout=300.0).to_wire()


def hw(cores: list[float], used_fraction: float, gpu_util: float | None = None) -> dict:
    gpus = None if gpu_util is None else {"gpus": [
        {"id": "0000:01:00.0", "processor_usage": gpu_util, "mem_usage": 10.0}]}
    return {"state": {
        "cpu_usage": {"cpu_per_core_percent_usage": cores},
        "memory_usage": {"total": 1000, "free": int(1000 * (1 - used_fraction))},
        "network_usage": {k: 0 for k in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets",
                                          "rx_errors", "tx_errors")},
        "nvidia_gpus": gpus, "amd_gpus": None, "timestamp": 0}}


def alloc(t: float, e) -> list:
    wire = event_to_wire(e)
    kind = wire.pop("type")
    return [t, kind, wire]


def records(submit_dir: str = "/work/sub", with_alloc: bool = True) -> list:
    """Two workers (w1: 4 cpus + 1 GPU, overviews), job 1 "array" (10 tasks: 0-7 finished, 8
    failed, 9 back to waiting when worker 2 is lost, then running again on
    worker 1), job 2 "graph" (2 batches, canceled), worker 2 lost with a task that goes
    back to waiting; two allocation queues (one paused) and allocations."""
    t = T0
    out = [ev.ServerStart(t, "uid-1").to_record(),
           ev.WorkerConnected(t + 1, 1, worker_config("node1", 4, 1, 1.0)).to_record(),
           ev.WorkerConnected(t + 1, 2, worker_config("node2", 2)).to_record(),
           ev.JobCreated(t + 2, 1, True, "array", None, submit_dir,
                         [[template(["./compute", "--x"], "%{CWD}/out/%{TASK_ID}.out",
                                    "%{CWD}/out/%{TASK_ID}.err"), "0-9", None, []]]).to_record()]
    for i in range(10):
        out.append(ev.TaskStarted(t + 3 + i, 1, i, 0, 1 if i % 2 == 0 else 2).to_record())
        if i < 8:
            out.append(ev.TaskFinished(t + 4 + i, 1, i, 0).to_record())
    out.append(ev.TaskFailed(t + 14, 1, 8, 0, "Program terminated with exit code 3.")
               .to_record())
    for k in range(5):
        out.append(ev.WorkerOverview(t + 5 + 2 * k, 1, hw([10.0 * k, 20.0, 30.0, 40.0 + k],
                                                          0.25 + 0.1 * k, 50.0)).to_record())
    out += [ev.JobCreated(t + 15, 2, True, "graph", 2, submit_dir,
                          [[template(["prep"]), "0", None, []],
                           [template(["main"]), "1-3", None, [0]]]).to_record(),
            ev.TaskStarted(t + 16, 2, 0, 0, 2).to_record(),
            ev.WorkerLost(t + 17, 2, "CONNECTION LOST").to_record(),
            ev.JobCancel(t + 18, 2, "enough").to_record(),
            ev.TaskCanceled(t + 18, 2, [0, 1, 2, 3]).to_record(),
            ev.JobCompleted(t + 18, 2).to_record(),
            ev.TaskStarted(t + 19, 1, 9, 1, 1).to_record()]
    if with_alloc:
        params = QueueParams(manager="slurm", time_limit=3600.0, backlog=2,
                             max_workers_per_alloc=2, name="cpuq")
        out += [alloc(t + 2, QueueCreated(1, params)),
                alloc(t + 3, AllocationQueued(1, "1001", 2, "/tmp/a/001", t + 3)),
                alloc(t + 6, AllocationStarted(1, "1001", t + 6)),
                alloc(t + 12, AllocationFinished(1, "1001", t + 12)),
                alloc(t + 13, AllocationQueued(1, "1002", 1, "/tmp/a/002", t + 13)),
                alloc(t + 14, QueueCreated(2, QueueParams(manager="pbs", time_limit=600.0))),
                alloc(t + 15, QueuePaused(2, "submission failed 3 times: qsub: bad queue"))]
    out.sort(key=lambda r: r[0])  # stable: same-time records keep their order
    return out


def write_journal(path, recs) -> None:
    with open(path, "wb") as f:
        f.write(encode_header() + encode_records(recs))
