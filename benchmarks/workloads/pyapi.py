"""The Python API (issue 12's performance section), three row groups in one run:

* pyapi-function-noop: N no-op function tasks (`job.function(noop, stdout=None, stderr=None)`)
  as ONE job from a Python script (`_pyapi.py`) on an hq server + one 2-CPU worker (processes;
  the worker's `python3` is this interpreter, so its warm runner runs them), timed from building
  the job to `wait_for_jobs` returning; against Dask (`client.map(noop, range(N))`, one
  2-thread worker process) and upstream 0.27.0's Python API (the same script lines; its worker
  in its own process starts an interpreter per task, so it runs fewer tasks; throughputs are
  compared). Targets: hq >= 2x Dask's and >= 20x upstream's throughput (the reference rows'
  target column; judged on the medians of this run).
* pyapi-true: N `true` tasks (no output files) as one job, submitted from a Python script
  (`job.program(["true"])`; the whole script's wall time: interpreter start, import, build,
  submit, wait) vs the same job by the CLI: a job file with the same N tasks (`hq job
  submit-file`, then `hq job wait`: both commands' wall time; what the Python API submits is
  that task graph, one batch per task). Target: Python within 10% of it. Also shown: the CLI's
  array form of N `true` (`hq submit --array 1-N ...`, one batch for all tasks), which the
  server and worker run faster than any graph of N separate tasks.
* import-hyperqueue: `import hyperqueue` in a clean venv (this checkout `pip install .`-ed into
  benchmarks/.venvs/hq-clean), timed inside the interpreter. Target <= 60 ms.
"""

from __future__ import annotations

import json
import os
import sys
import time

from harness import HERE, Series, Workload, alternate, clean_env
from references import ensure_clean_hq
from references.dask import dask_run
from references.upstream import UpstreamCluster
from workloads._hq import HqCluster

TARGET_DASK = 2.0
TARGET_UPSTREAM = 20.0
TARGET_CLI = 0.9  # Python's throughput >= 90% of the CLI's
TARGET_IMPORT = 0.060


def _hq_env(ctx) -> dict:
    # the worker's `python3` is this interpreter (a pyenv shim would run every function task
    # the normal way: it chooses its interpreter per cwd)
    return dict(ctx.env, PATH=os.path.dirname(sys.executable) + os.pathsep
                + ctx.env.get("PATH", ""))


def _driver(ctx, c: HqCluster, mode: str, n: int) -> dict:
    rc, out, err, wall = ctx.run([sys.executable, HERE / "_pyapi.py", mode, c.sd, str(n)], cwd=c.cwd,
                                 env=c.env.env, timeout=3600)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if rc != 0 or not lines:
        raise RuntimeError(f"_pyapi.py {mode} exited with {rc}: {err.strip()[-400:]}")
    data = json.loads(lines[-1])
    data["process_wall_s"] = wall
    c.check_finished(data["job_id"], n)
    return data


def hq_pyapi(ctx, mode: str, n: int) -> tuple[float, dict]:
    c = HqCluster(ctx, f"hq-pyapi-{mode}")
    c.env.env = _hq_env(ctx)
    with c:
        data = _driver(ctx, c, mode, n)
    return (data["total_s"] if mode == "function" else data["process_wall_s"]), data


def _cli_submit(c, n: int, *submit: str) -> tuple[float, dict]:
    """Times `hq --output-mode quiet <submit...>` + `hq job wait last` on cluster `c`."""
    with c:
        t0 = time.perf_counter()
        out, t_submit = c.hq("--output-mode", "quiet", *submit)
        _, t_wait = c.hq("job", "wait", "last")
        elapsed = time.perf_counter() - t0
        c.check_finished(out, n)
    return elapsed, {"submit_s": t_submit, "wait_s": t_wait}


def hq_cli_true(ctx, n: int) -> tuple[float, dict]:
    c = HqCluster(ctx, "hq-cli-true")
    c.env.env = _hq_env(ctx)
    return _cli_submit(c, n, "submit", "--array", f"1-{n}", "--stdout", "none", "--stderr",
                       "none", "--", "true")


def hq_cli_jobfile(ctx, n: int) -> tuple[float, dict]:
    c = HqCluster(ctx, "hq-cli-jobfile")
    c.env.env = _hq_env(ctx)
    jobfile = c.dir / "job.toml"
    jobfile.write_text("".join(f'[[task]]\nid = {i}\ncommand = ["true"]\nstdout = "none"\n'
                               f'stderr = "none"\n\n' for i in range(n)))
    return _cli_submit(c, n, "job", "submit-file", jobfile)


def upstream_function(ctx, n: int) -> tuple[float, dict]:
    c = UpstreamCluster(ctx, "upstream-fn")
    # its worker runs `python3 -c "from hyperqueue.task.function import task_main ..."`: that
    # must be the upstream venv's interpreter (with upstream's package and cloudpickle)
    c.env["PATH"] = os.path.dirname(ctx.refs["upstream"].python) + os.pathsep + c.env["PATH"]
    with c:
        data = c.client(n, "function")
        if data["failed_jobs"]:
            raise RuntimeError(f"upstream reported failed jobs {data['failed_jobs']}")
    return data["completed_s"], data


def import_time(ctx, python: str) -> tuple[float, dict]:
    code = ("import time; t = time.perf_counter(); import hyperqueue; "
            "print(time.perf_counter() - t)")
    rc, out, err, wall = ctx.run([python, "-c", code], cwd=ctx.tmpdir("import"), env=clean_env())
    if rc != 0:
        raise RuntimeError(f"import hyperqueue failed: {err.strip()[-300:]}")
    return float(out.strip().splitlines()[-1]), {"process_wall_s": wall}


def _ratio_target(ref: Series, hq: Series, factor: float, text: str) -> None:
    """The reference row's target: its throughput <= hq's / factor (i.e. hq >= factor x)."""
    if hq.throughput() and ref.status == "ok" and ref.values:
        ref.target = ("throughput", "<=", hq.throughput() / factor, text)


def run(ctx) -> None:
    res = ctx.results
    n = ctx.size("pyapi-function-noop")
    nd = ctx.size("pyapi-function-noop-dask")
    nu = ctx.size("pyapi-function-noop-upstream")
    name = "pyapi-function-noop"
    hq_fn = res.add(Series(name, "wall", "hq Python API (warm runner)", n=n, role="primary"))
    dk = res.add(ctx.ref_series(name, "dask", n=nd))
    up = res.add(ctx.ref_series(name, "upstream", n=nu))
    runs = [([hq_fn], lambda _r: hq_pyapi(ctx, "function", n))]
    if dk.status == "ok":
        dk.system += " (no-op fn)"
        runs.append(([dk], lambda _r: dask_run(ctx, "noop", nd)))
    if up.status == "ok":
        up.system += " Python API"
        runs.append(([up], lambda _r: upstream_function(ctx, nu)))
    alternate(ctx.reps, runs, name)
    _ratio_target(dk, hq_fn, TARGET_DASK, f"hq >= {TARGET_DASK:.0f}x")
    _ratio_target(up, hq_fn, TARGET_UPSTREAM, f"hq >= {TARGET_UPSTREAM:.0f}x")
    if hq_fn.values:
        ex = hq_fn.extra[-1]
        res.note(f"{name}: hq's last repetition: build {ex['build_s']:.2f} s, submit "
                 f"{ex['submit_s']:.2f} s, wait {ex['wait_s']:.2f} s ({n:,} tasks)")
    if up.status == "ok" and up.values:
        res.note(f"{name}: upstream ran {nu:,} tasks per repetition (an interpreter per task), "
                 f"Dask {nd:,}, hq {n:,}; the ratios compare throughputs")

    nt = ctx.size("pyapi-true")
    name = "pyapi-true"
    py = res.add(Series(name, "wall", "hq, job submitted from Python", n=nt, role="primary"))
    cli = res.add(Series(name, "wall", "hq CLI, same job (job file)", n=nt, role="reference"))
    arr = res.add(Series(name, "wall", "hq CLI, as an array", n=nt, role="reference"))
    alternate(ctx.reps, [([py], lambda _r: hq_pyapi(ctx, "true", nt)),
                         ([cli], lambda _r: hq_cli_jobfile(ctx, nt)),
                         ([arr], lambda _r: hq_cli_true(ctx, nt))], name)
    if py.throughput() and cli.values:
        cli.target = ("throughput", "<=", py.throughput() / TARGET_CLI, "Python >= 0.9x CLI")
        res.note(f"{name}: whole-command wall times (Python: one script from its interpreter "
                 "start to the wait's return; CLI: `hq job submit-file` or `hq submit` + "
                 "`hq job wait`)")

    clean = ensure_clean_hq()
    imp = res.add(Series("import-hyperqueue", "import", "import hyperqueue (clean venv)", n=1,
                         per="imports/s", role="primary",
                         target=("value", "<=", TARGET_IMPORT, "<= 60 ms")))
    if clean is None:
        imp.status, imp.note = "unavailable", "the clean venv could not be installed"
    else:
        alternate(max(ctx.reps, 5), [([imp], lambda _r: import_time(ctx, clean[0]))],
                  "import-hyperqueue")


WORKLOAD = Workload(
    "pyapi", run,
    sizes={"pyapi-function-noop": (1_000, 10_000),
           "pyapi-function-noop-dask": (1_000, 10_000),
           # an interpreter start per task there
           "pyapi-function-noop-upstream": (100, 500),
           "pyapi-true": (2_000, 10_000)},
    needs=("dask", "upstream"))
