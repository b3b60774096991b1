"""Detection of the allocation manager (PBS / Slurm) a worker runs under (`--manager`).

The worker uses the result for its default `--group` (the job id), its default `--time-limit` (the
remaining walltime) and to report `Manager` / `Manager Job ID` to the server. Reading the environment
is injectable (`environ`), and so is running `qstat` / `scontrol` (`run`), for tests. A failing or
missing `qstat` / `scontrol` only loses the time limit; it never stops the worker.

The remaining time is range-checked (`_remaining`): garbage (non-finite, negative or absurdly
large parts) loses the time limit with a warning; a used time above the limit (upstream: "used
time is bigger than walltime", an error that leaves the worker without a time limit) does too;
a remaining time longer than `core.limits.MAX_DURATION` is cut to it.

It reads the environment and runs commands, so it lives in the worker shell, not in the pure
`hyperqueue.batch` (which renders the scripts and parses the managers' output for autoalloc).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..core.limits import MAX_DURATION

logger = logging.getLogger(__name__)

PBS = "PBS"
SLURM = "SLURM"
MANAGER_MODES = ("detect", "none", "pbs", "slurm")
COMMAND_TIMEOUT = 5.0

Runner = Callable[[Sequence[str]], "str | None"]


@dataclass(frozen=True, slots=True)
class AllocationInfo:
    """The allocation this worker runs in.

    Attributes:
        manager: "PBS" or "SLURM".
        job_id: the manager's job id (`PBS_JOBID` / `SLURM_JOB_ID`).
        time_limit: remaining walltime in seconds when it was detected; None if unknown or unlimited.
    """

    manager: str
    job_id: str
    time_limit: float | None = None


def run_command(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> str | None:
    """Run `argv` and return its stdout, or None if it cannot start, times out or exits non-zero."""
    import subprocess  # only needed inside an allocation; keeps `hq` start-up light

    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("running %s failed: %s", argv, exc)
        return None
    if proc.returncode != 0:
        logger.debug("%s exited with %d: %s", argv, proc.returncode, proc.stderr.strip())
        return None
    return proc.stdout


# ------------------------------------------------------------------------------------ time formats

_UNLIMITED = {"UNLIMITED", "INFINITE", "NOT_SET", "PARTITION_LIMIT", "N/A", "NONE"}


def parse_slurm_duration(text: str) -> float | None:
    """Parse a Slurm duration as printed by `scontrol` / accepted by `--time`.

    Accepted: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`; `UNLIMITED` and other non-limits
    (`INFINITE`, `Partition_Limit`, `NOT_SET`, `N/A`) give None.

    Returns:
        Seconds, or None for "no limit".

    Raises:
        ValueError: for anything else.
    """
    value = text.strip()
    if value.upper() in _UNLIMITED:
        return None
    days = 0
    rest = value
    if "-" in value:
        day_text, rest = value.split("-", 1)
        days = _number(day_text, text)
        parts = [_number(p, text) for p in rest.split(":")]
        if len(parts) > 3:
            raise ValueError(f"invalid Slurm duration {text!r}")
        hours, minutes, seconds = (parts + [0, 0])[:3]
    else:
        parts = [_number(p, text) for p in rest.split(":")]
        if len(parts) == 1:
            hours, minutes, seconds = 0, parts[0], 0
        elif len(parts) == 2:
            hours, (minutes, seconds) = 0, parts
        elif len(parts) == 3:
            hours, minutes, seconds = parts
        else:
            raise ValueError(f"invalid Slurm duration {text!r}")
    return _seconds(((days * 24 + hours) * 60 + minutes) * 60 + seconds, text)


def parse_pbs_walltime(text: str | int | float) -> float:
    """Parse a PBS walltime: `[[H:]M:]S` (hours may exceed 24) or plain seconds.

    Raises:
        ValueError: on malformed input.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _seconds(text, text)
    parts = [_number(p, str(text)) for p in str(text).strip().split(":")]
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"invalid PBS walltime {text!r}")
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return _seconds(seconds, text)


def _number(part: str, whole: str) -> int:
    part = part.strip()
    if not (part.isascii() and part.isdigit()) or len(part) > 20:  # a u64 has 20 digits
        raise ValueError(f"invalid duration {whole!r}")
    return int(part)


def _seconds(value: int | float, whole) -> float:
    """`value` as float seconds: finite and not negative (else ValueError naming `whole`)."""
    try:
        seconds = float(value)
    except OverflowError:
        seconds = float("inf")
    if not 0.0 <= seconds < float("inf"):  # also NaN
        raise ValueError(f"invalid duration {whole!r}")
    return seconds


def _remaining(limit: float, used: float, what: str) -> float | None:
    """The remaining time of an allocation: `limit - used`, cut to MAX_DURATION; None (with a
    warning) if more than the limit was used already."""
    remaining = limit - used
    if remaining < 0:
        logger.warning("%s has used more time than its limit (%.0f s of %.0f s); the worker gets "
                       "no time limit", what, used, limit)
        return None
    if remaining > MAX_DURATION:
        logger.warning("the remaining time of %s (%.0f s) is longer than the maximum; the worker "
                       "time limit is 10 years", what, remaining)
        return MAX_DURATION
    return remaining


# ----------------------------------------------------------------------------------- remaining time


def _call(run: Runner, argv: list[str]) -> str | None:
    try:
        return run(argv)
    except Exception:  # a custom runner's bug must not stop the worker either
        logger.exception("running %s failed", argv)
        return None


def _pbs_remaining(job_id: str, run: Runner) -> float | None:
    output = _call(run, ["qstat", "-f", job_id, "-F", "json"])
    if output is None:
        logger.warning("cannot get the walltime of PBS job %s: qstat failed", job_id)
        return None
    try:
        jobs = json.loads(output)["Jobs"]
        job = jobs.get(job_id)
        if job is None:
            # qstat may report the id with a longer server suffix than PBS_JOBID has.
            matches = [v for k, v in jobs.items() if k.split(".")[0] == job_id.split(".")[0]]
            if len(matches) != 1:
                raise KeyError(job_id)
            job = matches[0]
        limit = parse_pbs_walltime(job["Resource_List"]["walltime"])
        used_text = job.get("resources_used", {}).get("walltime")
        used = parse_pbs_walltime(used_text) if used_text is not None else 0.0
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        logger.warning("cannot get the walltime of PBS job %s from qstat output (%r)", job_id, exc)
        return None
    return _remaining(limit, used, f"PBS job {job_id}")


_SLURM_FIELD = r"(?:^|\s){}=(\S+)"


def _slurm_remaining(job_id: str, run: Runner) -> float | None:
    output = _call(run, ["scontrol", "show", "job", job_id])
    if output is None:
        logger.warning("cannot get the time limit of Slurm job %s: scontrol failed", job_id)
        return None
    limit_match = re.search(_SLURM_FIELD.format("TimeLimit"), output)
    run_match = re.search(_SLURM_FIELD.format("RunTime"), output)
    try:
        if limit_match is None:
            raise ValueError("no TimeLimit field")
        limit = parse_slurm_duration(limit_match.group(1))
        if limit is None:
            return None  # unlimited
        used = parse_slurm_duration(run_match.group(1)) if run_match else 0.0
    except ValueError as exc:
        logger.warning("cannot get the time limit of Slurm job %s from scontrol output (%s)", job_id, exc)
        return None
    return _remaining(limit, used or 0.0, f"Slurm job {job_id}")


# ------------------------------------------------------------------------------------------ detect


def _pbs_job_id(environ: Mapping[str, str]) -> str | None:
    if environ.get("PBS_ENVIRONMENT") and environ.get("PBS_JOBID"):
        return environ["PBS_JOBID"]
    return None


def _slurm_job_id(environ: Mapping[str, str]) -> str | None:
    return environ.get("SLURM_JOB_ID") or environ.get("SLURM_JOBID") or None


def detect_manager(
    mode: str = "detect",
    *,
    environ: Mapping[str, str] = os.environ,
    run: Runner = run_command,
) -> AllocationInfo | None:
    """Find the PBS / Slurm allocation this process runs in (`--manager`).

    Args:
        mode: `detect` (PBS if `PBS_ENVIRONMENT` and `PBS_JOBID` are set, else Slurm if `SLURM_JOB_ID`
            or `SLURM_JOBID` is set, else None), `none` (always None), `pbs` or `slurm` (that manager,
            required).
        environ: the environment to read.
        run: runs a command (argv) and returns its stdout or None on failure; used for
            `qstat -f <id> -F json` and `scontrol show job <id>` to compute the remaining walltime.

    Returns:
        The allocation, with `time_limit` None when the remaining time is unlimited or cannot be
        read (the latter is logged as a warning); None when not in an allocation.

    Raises:
        ValueError: for an unknown mode, or when `pbs`/`slurm` is forced but its variables are missing.
    """
    mode = mode.strip().lower()
    if mode not in MANAGER_MODES:
        raise ValueError(f"invalid --manager {mode!r}: expected one of {', '.join(MANAGER_MODES)}")
    if mode == "none":
        return None
    if mode in ("detect", "pbs"):
        job_id = _pbs_job_id(environ)
        if job_id is not None:
            return AllocationInfo(PBS, job_id, _pbs_remaining(job_id, run))
        if mode == "pbs":
            raise ValueError(
                "--manager pbs: PBS_ENVIRONMENT and PBS_JOBID must be set; "
                "is the worker running inside a PBS job?"
            )
    job_id = _slurm_job_id(environ)
    if job_id is not None:
        return AllocationInfo(SLURM, job_id, _slurm_remaining(job_id, run))
    if mode == "slurm":
        raise ValueError(
            "--manager slurm: SLURM_JOB_ID (or SLURM_JOBID) must be set; "
            "is the worker running inside a Slurm job?"
        )
    return None
