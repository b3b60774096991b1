"""Parsers for what `sbatch`, `scontrol show job`, `qsub` and `qstat -f -F json -x` print (pure).

Every parser takes the tool's stdout as text and raises `ManagerOutputError` (a ValueError) with
a short reason when the text is not what the tool prints; it never trusts a field it did not
check. Statuses are mapped to upstream's allocation states (hq-features.md §7):

* Slurm `JobState`: PENDING/CONFIGURING/REQUEUED/... -> QUEUED; RUNNING/COMPLETING/... -> RUNNING;
  COMPLETED/TIMEOUT -> FINISHED; CANCELLED/FAILED/NODE_FAIL/BOOT_FAIL/OUT_OF_MEMORY/PREEMPTED/
  DEADLINE/... -> FAILED. An unknown state is an error (the caller counts it as a status error).
* PBS `job_state`: Q/H/W/T/M -> QUEUED; R/E/B/S/U -> RUNNING; F/X -> FINISHED when `Exit_status`
  is 0, else FAILED (also when the job never ran and has no `Exit_status`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "QUEUED", "RUNNING", "FINISHED", "FAILED", "ManagerOutputError", "ExternalStatus",
    "parse_sbatch_output", "parse_scontrol_job", "slurm_status", "parse_scontrol_status",
    "parse_qsub_output", "parse_qstat_json", "pbs_status", "SLURM_INVALID_JOB",
]

QUEUED, RUNNING, FINISHED, FAILED = "QUEUED", "RUNNING", "FINISHED", "FAILED"

#: What `scontrol show job <id>` prints to stderr (exit 1) for a job Slurm has forgotten.
SLURM_INVALID_JOB = "slurm_load_jobs error: Invalid job id specified"

_MAX_OUTPUT = 1 << 24  # 16 MiB: more is not a manager's answer about a handful of jobs
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\[\]@:-]{0,255}\Z")


class ManagerOutputError(ValueError):
    """The output of a manager command was not in the expected format."""


@dataclass(frozen=True, slots=True)
class ExternalStatus:
    """A job's state as the manager reports it.

    Attributes:
        state: QUEUED, RUNNING, FINISHED or FAILED.
        raw_state: the manager's own word (`PENDING`, `R`, ...).
        started_at, ended_at: the manager's times (naive local datetimes), when it reports them.
        exit_status: PBS `Exit_status` / Slurm `ExitCode` (the code before the `:`), when known.
    """

    state: str
    raw_state: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_status: int | None = None


def _text(out) -> str:
    if isinstance(out, bytes):
        out = out.decode("utf-8", "replace")
    if not isinstance(out, str):
        raise ManagerOutputError("expected text")
    if len(out) > _MAX_OUTPUT:
        raise ManagerOutputError("the output is too long")
    return out


def _job_id(text: str, tool: str) -> str:
    if not _JOB_ID.match(text):
        raise ManagerOutputError(f"{tool} printed no job id: {text[:200]!r}")
    return text


# ------------------------------------------------------------------------------------ Slurm

_SBATCH = re.compile(r"Submitted batch job (\d+)(?: on cluster \S+)?\Z")
_PARSABLE = re.compile(r"(\d+)(?:;\S+)?\Z")


def parse_sbatch_output(out) -> str:
    """The job id from `sbatch` stdout: `Submitted batch job 42` or `--parsable` `42[;cluster]`.

    Other lines (sbatch may print `sbatch: ...` warnings to stdout on some sites) are skipped.
    """
    found = None
    for line in _text(out).splitlines():
        line = line.strip()
        m = _SBATCH.match(line) or _PARSABLE.match(line)
        if m:
            if found is not None:
                raise ManagerOutputError("sbatch printed more than one job id")
            found = m.group(1)
    if found is None:
        raise ManagerOutputError(f"sbatch printed no job id: {_text(out).strip()[:200]!r}")
    return found


_SCONTROL_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_:/.()]*\Z")


def parse_scontrol_job(out) -> dict[str, str]:
    """`scontrol show job <id>` as a dict of its `Key=Value` fields.

    Fields are separated by whitespace; a token without `=` (or whose key is not a Slurm key)
    continues the previous value (`Reason=...` values and job names may contain spaces). Only
    the first job is read (`scontrol show job` of one id prints one).
    """
    fields: dict[str, str] = {}
    last = None
    for line in _text(out).splitlines():
        if not line.strip():
            if fields:
                break
            continue
        for token in line.split():
            key, sep, value = token.partition("=")
            if sep and _SCONTROL_KEY.match(key):
                fields[key] = value
                last = key
            elif last is not None:
                fields[last] = f"{fields[last]} {token}"
            else:
                raise ManagerOutputError(f"unexpected scontrol output: {line[:200]!r}")
    if "JobId" not in fields or "JobState" not in fields:
        raise ManagerOutputError("scontrol output has no JobId/JobState")
    return fields


_SLURM_STATES = {
    QUEUED: ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD",
             "SPECIAL_EXIT"),
    RUNNING: ("RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING",
              "STAGE_OUT"),
    FINISHED: ("COMPLETED", "TIMEOUT"),
    FAILED: ("CANCELLED", "FAILED", "NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
             "DEADLINE", "REVOKED"),
}
_SLURM_MAP = {raw: state for state, raws in _SLURM_STATES.items() for raw in raws}


def _slurm_time(value: str | None) -> datetime | None:
    if not value or value in ("Unknown", "None", "N/A"):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise ManagerOutputError(f"invalid Slurm time {value[:40]!r}") from None


def slurm_status(fields: dict[str, str]) -> ExternalStatus:
    """Maps parsed `scontrol show job` fields to an `ExternalStatus`."""
    raw = fields.get("JobState", "").split(" ")[0]
    state = _SLURM_MAP.get(raw)
    if state is None:
        raise ManagerOutputError(f"unknown Slurm job state {raw[:40]!r}")
    exit_status = None
    code = fields.get("ExitCode", "")
    m = re.match(r"(\d+):(\d+)\Z", code)
    if m:
        exit_status = int(m.group(1))
    started = _slurm_time(fields.get("StartTime")) if state != QUEUED else None
    ended = _slurm_time(fields.get("EndTime")) if state in (FINISHED, FAILED) else None
    return ExternalStatus(state, raw, started, ended, exit_status)


def parse_scontrol_status(out) -> ExternalStatus:
    """`slurm_status(parse_scontrol_job(out))`."""
    return slurm_status(parse_scontrol_job(out))


# -------------------------------------------------------------------------------------- PBS


def parse_qsub_output(out) -> str:
    """The job id `qsub` prints (its trimmed stdout, e.g. `1234.pbs-server`)."""
    text = _text(out).strip()
    if "\n" in text:
        raise ManagerOutputError(f"qsub printed more than a job id: {text[:200]!r}")
    return _job_id(text, "qsub")


_PBS_STATES = {"Q": QUEUED, "H": QUEUED, "W": QUEUED, "T": QUEUED, "M": QUEUED,
               "R": RUNNING, "E": RUNNING, "B": RUNNING, "S": RUNNING, "U": RUNNING,
               "F": FINISHED, "X": FINISHED}


def _pbs_time(value) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ManagerOutputError("invalid PBS time")
    try:
        return datetime.strptime(value, "%a %b %d %H:%M:%S %Y")
    except ValueError:
        raise ManagerOutputError(f"invalid PBS time {value[:40]!r}") from None


def pbs_status(job: dict) -> ExternalStatus:
    """Maps one job object of `qstat -f -F json` to an `ExternalStatus`."""
    if not isinstance(job, dict):
        raise ManagerOutputError("a PBS job is not an object")
    raw = job.get("job_state")
    if not isinstance(raw, str) or raw not in _PBS_STATES:
        raise ManagerOutputError(f"unknown PBS job state {str(raw)[:40]!r}")
    state = _PBS_STATES[raw]
    exit_status = job.get("Exit_status")
    if exit_status is not None and type(exit_status) is not int:
        raise ManagerOutputError("PBS Exit_status is not an integer")
    if state == FINISHED and exit_status != 0:
        state = FAILED
    started = _pbs_time(job.get("stime")) if state != QUEUED else None
    ended = _pbs_time(job.get("mtime")) if state in (FINISHED, FAILED) else None
    return ExternalStatus(state, raw, started, ended, exit_status)


def parse_qstat_json(out) -> dict[str, ExternalStatus]:
    """`qstat -f <ids> -F json -x` -> {job id: status} for the jobs it lists.

    A job the caller asked about and that is missing here is unknown to PBS (qstat printed
    `qstat: Unknown Job Id ...` to stderr); the caller counts that as a status error.
    """
    text = _text(out)
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ManagerOutputError(f"qstat printed invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ManagerOutputError("qstat JSON is not an object")
    jobs = doc.get("Jobs", {})  # PBS leaves "Jobs" out when no job matched
    if not isinstance(jobs, dict):
        raise ManagerOutputError("qstat JSON 'Jobs' is not an object")
    result = {}
    for job_id, job in jobs.items():
        result[_job_id(job_id, "qstat")] = pbs_status(job)
    return result
