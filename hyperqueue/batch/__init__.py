"""Batch managers (Slurm, PBS): submission scripts and output parsers. Pure: no I/O, no clock.

The server's autoalloc shell is the only place that runs `sbatch`/`qsub`/...; it renders scripts
with `script` and reads the tools' output with `parse`.

Layer: pure, beside the core. May import the pure part of `common` only; never the OS, the
clock, trio, `autoalloc` or a shell. Detecting the allocation a worker runs in reads the
environment and runs `qstat`/`scontrol`, so it is the worker's (`worker/batchdetect.py`).
"""

from .parse import (  # noqa: F401
    FAILED, FINISHED, QUEUED, RUNNING, SLURM_INVALID_JOB, ExternalStatus, ManagerOutputError,
    parse_qsub_output, parse_qstat_json, parse_sbatch_output, parse_scontrol_job,
    parse_scontrol_status, pbs_status, slurm_status,
)
from .script import (  # noqa: F401
    JOBID_FILE, MANAGERS, PBS, SCRIPT_NAME, SLURM, STDERR_FILE, STDOUT_FILE, WorkerCommand,
    allocation_dir, allocation_name, cancel_argv, format_walltime, render_pbs_script,
    render_script, render_slurm_script, status_argv, submit_argv,
)
