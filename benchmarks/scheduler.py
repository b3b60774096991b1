"""Scheduler core benchmark: one scheduling pass over a large, mixed backlog (no sockets).

100 workers with 128 CPUs (4 NUMA groups of 32) and 4 GPUs each; 100,000 waiting tasks in 20 jobs
with mixed requests (1/2/4/8 CPUs, some with a GPU or a fraction of one, some with two
variants, a few priorities). Reports the CPU time of the first pass (which fills every worker)
and of a steady-state pass (after 5% of the assigned tasks finished), median of several runs.

Run: python benchmarks/scheduler.py [--tasks N] [--workers N] [--reps N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from hyperqueue.core import reactor, scheduler
from hyperqueue.core.model import ProgramDef, TaskTemplate, WorkerConfig
from hyperqueue.core.outbox import Outbox
from hyperqueue.core.ranges import IntRanges
from hyperqueue.core.resources import (ResourceRequest, ResourceRequestEntry, UNIT,
                                       parse_resource_def)
from hyperqueue.core.state import Core


def _req(cpus: int, gpu: float = 0.0) -> ResourceRequest:
    entries = [ResourceRequestEntry("cpus", cpus * UNIT, "compact")]
    if gpu:
        entries.append(ResourceRequestEntry("gpus", int(gpu * UNIT), "compact"))
    return ResourceRequest(entries)


def build(n_workers: int, n_tasks: int) -> tuple[Core, Outbox]:
    core = Core()
    outbox = Outbox()
    now = 1000.0
    for _ in range(n_workers):
        config = WorkerConfig("node", [parse_resource_def("cpus", "4x32"),
                                       parse_resource_def("gpus", "4")])
        reactor.add_worker(core, outbox, config, now)
    shapes = [[_req(1)], [_req(2)], [_req(4)], [_req(8)], [_req(1, 0.25)], [_req(4, 1)],
              [_req(8, 1), _req(16)]]
    n_jobs = 20
    per_job = n_tasks // n_jobs
    for j in range(n_jobs):
        t = TaskTemplate(ProgramDef(["true"]), shapes[j % len(shapes)], priority=j % 3)
        spec = reactor.SubmitSpec(f"job{j}", "/tmp",
                                  [reactor.BatchSpec(t, IntRanges.span(0, per_job))])
        reactor.submit(core, outbox, spec, now)
    outbox.clear()
    return core, outbox


def one_run(n_workers: int, n_tasks: int) -> tuple[float, float, int]:
    core, outbox = build(n_workers, n_tasks)
    t0 = time.process_time()
    assigned = scheduler.schedule(core, outbox, 1001.0)
    first = time.process_time() - t0
    # finish 5% of what was assigned, then a steady-state pass
    done = 0
    for wid, tasks in list(outbox.compute.items()):
        worker = core.workers[wid]
        batch = [[reactor.UPDATE_FINISHED, t.job.id, t.id, t.instance, None]
                 for t in tasks[: max(1, len(tasks) // 20)]]
        reactor.task_updates(core, outbox, worker, batch, 1002.0)
        done += len(batch)
    outbox.clear()
    t0 = time.process_time()
    scheduler.schedule(core, outbox, 1003.0)
    steady = time.process_time() - t0
    core.sanity_check()
    return first, steady, assigned


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=100)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    firsts, steadies = [], []
    for _ in range(args.reps):
        first, steady, assigned = one_run(args.workers, args.tasks)
        firsts.append(first)
        steadies.append(steady)
    print(f"scheduler: {args.workers} workers x 128 cpus, {args.tasks} waiting tasks "
          f"(mixed requests), {args.reps} runs")
    print(f"  first pass (fills every worker, {assigned} tasks assigned incl. prefill): "
          f"median {statistics.median(firsts) * 1000:.1f} ms CPU "
          f"(min {min(firsts) * 1000:.1f}, max {max(firsts) * 1000:.1f})")
    print(f"  steady-state pass (after 5% finished): median "
          f"{statistics.median(steadies) * 1000:.1f} ms CPU")


if __name__ == "__main__":
    main()
