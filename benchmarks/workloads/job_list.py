"""job-list-1000: a worker-less server with 1,000 one-task jobs, then `hq job list` timed
repeatedly (the median per call), alternated with the same call from the clean install
(.venvs/hq-clean, also held to the target) and baselines: `hq --version` (CLI start),
`python -c pass` (host and clean venv) and `python -S -c pass`."""

from __future__ import annotations

import os
import sys
import sysconfig
import time
from pathlib import Path

from harness import Series, Workload, alternate, log, warn
from references import UPSTREAM_VERSION, ensure_clean_hq
from workloads._hq import HqCluster

TARGET = ("value", "<=", 0.120, "<= 120 ms")


def _submit_many_jobs(c: HqCluster, jobs: int) -> str:
    """Submits `jobs` one-task jobs; through the library in this process when it can."""
    try:
        from hyperqueue.cli.submit import build_request
        from hyperqueue.client.blocking import BlockingClient
        from hyperqueue.protocol import messages as m

        old = os.getcwd()
        os.chdir(c.cwd)
        try:
            request = build_request({}, ("true",))
        finally:
            os.chdir(old)
        with BlockingClient(str(c.sd)) as client:
            for _ in range(jobs):
                r = client.request(request)
                if not isinstance(r, m.SubmitResponse):
                    raise RuntimeError(f"unexpected response {r!r}")
        return "BlockingClient"
    except ImportError as e:
        warn(f"job-list-1000: library submit unavailable ({e}); submitting through the CLI (slow)")
    for _ in range(jobs):
        c.hq("submit", "--", "true")
    return "CLI"


def run(ctx) -> None:
    jobs = ctx.size("job-list-jobs")
    calls = ctx.size("job-list-calls")
    res = ctx.results
    name = f"job-list-{jobs}"
    with HqCluster(ctx, "hq-joblist", worker=False) as c:
        t0 = time.perf_counter()
        how = _submit_many_jobs(c, jobs)
        log(f"  [{name}] submitted {jobs} jobs via {how} in {time.perf_counter() - t0:.1f} s")
        out, _ = c.hq("job", "list")
        if out.count("\n") < jobs:
            raise RuntimeError(f"`hq job list` printed {out.count(chr(10))} lines for {jobs} jobs")
        clean = ensure_clean_hq()
        hq_s = res.add(Series(name, "per call", "hq job list", n=1, per="calls/s", role="primary",
                              target=TARGET))
        if clean is not None:
            hq_clean = res.add(Series(name, "per call", "hq job list (clean venv)", n=1,
                                      per="calls/s", role="primary",
                                      target=TARGET))
            py_clean = res.add(Series(name, "per call", "python -c pass (clean venv)", n=1,
                                      per="calls/s", role="baseline"))
        ver = res.add(Series(name, "per call", "hq --version (CLI start)", n=1, per="calls/s",
                             role="baseline"))
        py = res.add(Series(name, "per call", "python -c pass", n=1, per="calls/s", role="baseline"))
        pys = res.add(Series(name, "per call", "python -S -c pass", n=1, per="calls/s", role="baseline"))
        upstream = ctx.refs.get("upstream")
        if upstream is not None:
            res.add(Series(name, "per call", f"upstream {UPSTREAM_VERSION}", n=1, role="reference",
                           status="n/a", note="n/a: the PyPI package ships no `hq` CLI binary"))

        def timed(argv):
            def f(_r):
                rc, _out, err, dt = ctx.run(argv, cwd=c.cwd)
                if rc != 0:
                    raise RuntimeError(f"{argv[0]} exited with {rc}: {err[-300:]}")
                return dt
            return f

        systems = [
            ([hq_s], timed([ctx.hq, "--server-dir", c.sd, "job", "list"])),
            ([ver], timed([ctx.hq, "--version"])),
            ([py], timed([sys.executable, "-c", "pass"])),
            ([pys], timed([sys.executable, "-S", "-c", "pass"])),
        ]
        if clean is not None:
            systems += [([hq_clean], timed([clean[1], "--server-dir", c.sd, "job", "list"])),
                        ([py_clean], timed([clean[0], "-c", "pass"]))]
        alternate(calls, systems, name)
    pth = [p.name for p in Path(sysconfig.get_path("purelib")).glob("*.pth")]
    if py.median and pys.median:
        res.note(f"{name}: interpreter start: `python -c pass` {py.median * 1e3:.0f} ms vs "
                 f"`python -S -c pass` {pys.median * 1e3:.0f} ms; the difference is site-packages "
                 f"start-up hooks ({', '.join(sorted(pth))}); this sandbox's egress .pth hook costs "
                 "~50 ms per interpreter start and is part of every `hq` call here")
    if clean is not None and hq_clean.median:
        res.note(f"{name}: `hq job list (clean venv)` is this checkout installed with `pip install .` "
                 "into benchmarks/.venvs/hq-clean, a venv without the host's site-packages and "
                 "their start-up hooks: what a user's installation runs")


WORKLOAD = Workload("job-list-1000", run,
                    sizes={"job-list-jobs": (1_000, 1_000), "job-list-calls": (10, 20)},
                    targets={"per call": TARGET})
