"""journal: N `true` tasks with `hq server start --journal FILE` and without, alternated
(`hq/ref` is journal-on / journal-off throughput); n/a when `--journal` writes nothing."""

from __future__ import annotations

import time

from harness import Series, Workload, alternate
from workloads._hq import HqCluster, hq_true


def _journal_works(ctx) -> tuple[bool, str]:
    d = ctx.tmpdir("journal-probe")
    journal = d / "journal.bin"
    try:
        with HqCluster(ctx, "hq-journal-probe", worker=False, server_args=("--journal", journal)) as c:
            c.hq("submit", "--", "true")
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                if journal.exists() and journal.stat().st_size > 0:
                    return True, ""
                time.sleep(0.1)
    except Exception as e:  # noqa: BLE001
        return False, f"n/a: `hq server start --journal` failed ({str(e)[:120]})"
    return False, "n/a: journal not implemented yet (no journal file written)"


def run(ctx) -> None:
    n = ctx.size("journal")
    res = ctx.results
    works, why = _journal_works(ctx)
    on = res.add(Series("journal", "wall", "hq --journal", n=n, role="primary"))
    off = res.add(Series("journal", "wall", "hq (no journal)", n=n, role="reference"))
    if not works:
        on.status = off.status = "n/a"
        on.note = off.note = why
        return
    def with_journal(_r):
        jdir = ctx.tmpdir("journal")
        return hq_true(ctx, n, files=False, server_args=("--journal", jdir / "journal.bin"))

    alternate(ctx.reps, [([on], with_journal), ([off], lambda _r: hq_true(ctx, n, files=False))],
              "journal")


WORKLOAD = Workload("journal", run, sizes={"journal": (1_000, 10_000)})
