#!/usr/bin/env python3
"""Side-by-side benchmarks of hq against upstream HyperQueue 0.27.0 and Dask.

    python benchmarks/run.py [--quick] [--only NAME,...] [--reps N] [--json OUT] [--no-references]

See benchmarks/README.md for what each workload measures and the caveats. In short: every
workload runs on hq and on each applicable reference in the same run, alternating systems per
repetition (A B C A B C ...); a table with medians, ranges, throughputs and hq/reference ratios
is printed, and every repetition is written as JSON (default benchmarks/results/latest.json).

The reference systems live in their own virtual environments under benchmarks/.venvs/ (created
on first use; a marker file records what was installed so later runs skip pip). Every process
the benchmark starts is stopped by pid when it ends, also on Ctrl-C or an error.

Layout: harness.py (arguments, repetitions, statistics, the table), workloads/ (one module per
workload), references/ (the reference systems), tests/hqenv.py (hq processes, shared with the
end-to-end tests).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness, workloads, references

import harness  # noqa: E402
from workloads import all_workloads  # noqa: E402


def main(argv=None) -> int:
    return harness.main(all_workloads(), argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
