"""function-noop: N no-op Python function tasks on one 2-CPU worker, submitted as one CLI array
job with upstream's function-task command (`hq submit --array 1-N --stdin --task-dir --stdout
none --stderr none -- python3 -c "from hyperqueue.task.function import task_main as m; m()"`,
the cloudpickle of `(noop, (), {})` on stdin), timed from the submit to `hq job wait` returning.

* hq (warm runner): `python3` on the worker's PATH is this interpreter, so the worker runs every
  task as a fork of its warm runner (hyperqueue.worker.pyrunner; its start is in the timing).
* hq (process per task): the same job with upstream's prologue form (`bash -c "true\\n\\npython3
  -c ..."`), which the worker runs the normal way: an interpreter start per task (fewer tasks:
  throughputs are compared).
* Dask: `client.map(noop, range(N))` on a LocalCluster with one 2-thread worker.
"""

from __future__ import annotations

import os
import sys
import time

from harness import Series, Workload, alternate
from references.dask import dask_run
from workloads._hq import HqCluster

TARGET_DASK = 2.0  # the target: >= 2x Dask's no-op throughput (judged on the warm row)


def _noop():
    return None


def _payload() -> bytes:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the task cannot import us
    return cloudpickle.dumps((_noop, (), {}))


def hq_function_noop(ctx, n: int, *, prologue: bool) -> tuple[float, dict]:
    from hyperqueue.task.function import PythonEnv, function_task_args

    command = function_task_args(PythonEnv(prologue="true" if prologue else None))
    c = HqCluster(ctx, "hq-fn-prologue" if prologue else "hq-fn")
    # the worker's `python3` is this interpreter (a pyenv shim would run every task the normal
    # way: it chooses its interpreter per cwd)
    env = dict(ctx.env, PATH=os.path.dirname(sys.executable) + os.pathsep
               + ctx.env.get("PATH", ""))
    c.env.env = env
    with c:
        t0 = time.perf_counter()
        rc, out, err, t_submit = ctx.run(
            [ctx.hq, "--server-dir", c.sd, "--output-mode", "quiet", "submit", "--array",
             f"1-{n}", "--stdin", "--task-dir", "--stdout", "none", "--stderr", "none", "--",
             *command], cwd=c.cwd, env=env, stdin_data=_payload(), timeout=3600)
        if rc != 0:
            raise RuntimeError(f"hq submit exited with {rc}: {err.strip()[-400:]}")
        _, t_wait = c.hq("job", "wait", "last", timeout=3600, check=False)
        elapsed = time.perf_counter() - t0
        c.check_finished(out, n)
    return elapsed, {"submit_s": t_submit, "wait_s": t_wait}


def run(ctx) -> None:
    n = ctx.size("function-noop")
    nf = ctx.size("function-noop-fallback")
    nd = ctx.size("function-noop-dask")
    res = ctx.results
    warm = res.add(Series("function-noop", "wall", "hq (warm runner)", n=n, role="primary"))
    cold = res.add(Series("function-noop", "wall", "hq (process per task)", n=nf,
                          role="baseline"))
    runs = [([warm], lambda _r: hq_function_noop(ctx, n, prologue=False)),
            ([cold], lambda _r: hq_function_noop(ctx, nf, prologue=True))]
    dk = res.add(ctx.ref_series("function-noop", "dask", n=nd))
    if dk.status == "ok":
        dk.system += " (no-op fn)"
        runs.append(([dk], lambda _r: dask_run(ctx, "noop", nd)))
    alternate(ctx.reps, runs, "function-noop")
    if warm.throughput() and cold.throughput():
        res.note(f"function-noop: the warm runner runs {warm.throughput() / cold.throughput():.1f}x "
                 f"the function tasks per second of a process per task ({nf:,} tasks per "
                 "repetition there)")
    if warm.throughput() and dk.status == "ok" and dk.throughput():
        ratio = warm.throughput() / dk.throughput()
        res.note(f"function-noop: hq (warm runner, CLI submit) / Dask no-op = {ratio:.1f}x "
                 f"(target >= {TARGET_DASK:.0f}x: {'ok' if ratio >= TARGET_DASK else 'MISSED'})")


WORKLOAD = Workload(
    "function-noop", run,
    sizes={"function-noop": (1_000, 10_000),
           # an interpreter start per task: tens of ms each on this machine
           "function-noop-fallback": (100, 1_000),
           "function-noop-dask": (2_000, 10_000)},
    needs=("dask",))
