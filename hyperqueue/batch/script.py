r"""Submission scripts of allocations, as upstream HyperQueue writes them (pure: returns text).

Layout of one allocation (upstream `create_allocation_dir`)::

    <instance dir>/autoalloc/<queue id>[-<queue name>]/<NNN>/   NNN = allocation counter, 3 digits
        hq-submit.sh   the script below (submitted with this directory as cwd)
        jobid          the manager's job id (written after a successful submission)
        stdout, stderr the allocation's output (the `#SBATCH --output/--error`, `#PBS -o/-e` paths)

Slurm::

    #!/bin/bash
    #SBATCH --nodes=<N>
    #SBATCH --job-name=<name>
    #SBATCH --output=<dir>/stdout
    #SBATCH --error=<dir>/stderr
    #SBATCH --time=HH:MM:SS
    #SBATCH <manager args joined by one space>      (only when there are some)

    [srun --overlap --ntasks=<N> --nodes=<N> ]<worker command>

PBS::

    #!/bin/bash
    #PBS -l select=<N>
    #PBS -N <name>
    #PBS -o <dir>/stdout
    #PBS -e <dir>/stderr
    #PBS -l walltime=HH:MM:SS
    #PBS <manager args joined by one space>         (only when there are some)
    #PBS -h                                         (dry run only: submit on hold)

    <worker command>   |   pbsdsh -- bash -l -c '<worker command>'   (N > 1)

On several Slurm nodes, a command line with `--worker-start-cmd`/`--worker-stop-cmd` runs as
`srun ... bash -l -c '<line>'` so every node runs the whole chain (upstream puts the chain
after `srun` unquoted, which runs only the start command under srun).

Upstream puts the manager arguments (`hq alloc add ... -- <args>`) on one `#SBATCH`/`#PBS` line of
the script, and calls `sbatch <script>` / `qsub <script>` without them (hq-features.md §7).

The worker command (upstream `build_worker_args`)::

    [<wrap cmd> ]<abs hq> worker start --idle-timeout "<dur>" --manager "<slurm|pbs>"
        --server-dir "<instance dir>" [<queue worker flags>] --on-server-lost "<policy>"
        --time-limit "<worker time limit>"
    wrapped as  <start cmd> && <command>; <stop cmd>

Every value that reaches the script was checked to hold no newline or NUL (a newline in a
`#SBATCH` line would inject script lines); `"`-quoted values escape `\ " $ \``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from ..common.durations import format_duration

__all__ = [
    "SLURM", "PBS", "MANAGERS", "SCRIPT_NAME", "JOBID_FILE", "STDOUT_FILE", "STDERR_FILE",
    "format_walltime", "dq", "worker_arg", "allocation_dir", "queue_dir_name", "allocation_name",
    "WorkerCommand", "render_slurm_script", "render_pbs_script", "render_script",
    "submit_argv", "status_argv", "cancel_argv", "check_script_text",
]

SLURM = "slurm"
PBS = "pbs"
MANAGERS = (SLURM, PBS)
SCRIPT_NAME = "hq-submit.sh"
JOBID_FILE = "jobid"
STDOUT_FILE = "stdout"
STDERR_FILE = "stderr"

_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+\Z")


def check_script_text(value: str, what: str) -> str:
    """Returns `value` if it can be written into a script line; raises ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"Invalid {what}: expected a string")
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"Invalid {what}: it must not contain a newline or NUL character")
    return value


def format_walltime(seconds: float) -> str:
    """`HH:MM:SS` of whole seconds (hours may exceed 24: `36:00:00`), as upstream; rounds down."""
    total = int(seconds)
    if total < 0:
        total = 0
    return f"{total // 3600:02}:{total % 3600 // 60:02}:{total % 60:02}"


def dq(value: str) -> str:
    """Double-quotes `value` for bash, escaping the four characters special inside quotes."""
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    return f'"{out}"'


def worker_arg(token: str) -> str:
    """One token of the queue's worker flags: bare when safe (`--cpus`, `4`), else `dq`-quoted."""
    return token if _SAFE.match(token) else dq(token)


def queue_dir_name(queue_id: int, name: str | None) -> str:
    """`<id>` or `<id>-<name>`."""
    return f"{queue_id}-{name}" if name else str(queue_id)


def allocation_dir(instance_dir: str, queue_id: int, name: str | None, counter: int) -> str:
    """`<instance>/autoalloc/<id>[-name]/<NNN>` (at least 3 digits, as upstream)."""
    base = instance_dir.rstrip("/") or "/"
    return f"{base}/autoalloc/{queue_dir_name(queue_id, name)}/{counter:03}"


def allocation_name(queue_id: int, name: str | None, counter: int) -> str:
    """Job name of an allocation: `<name or hq-<queue id>>-<counter>`."""
    return f"{name or f'hq-{queue_id}'}-{counter}"


@dataclass(frozen=True, slots=True)
class WorkerCommand:
    """What the worker command line of an allocation is made of.

    Attributes:
        hq_path: absolute path of the `hq` executable the server runs.
        manager: "slurm" or "pbs".
        server_dir: the server's instance directory (`--server-dir`).
        idle_timeout: seconds (`--idle-timeout`).
        time_limit: seconds (`--time-limit`: the queue's worker time limit, else its time limit).
        on_server_lost: "stop", "finish-running" or "reconnect".
        worker_args: the queue's worker flags as argv tokens (`("--cpus", "4")`).
        start_cmd, stop_cmd, wrap_cmd: `--worker-start-cmd`, `--worker-stop-cmd`, `--worker-wrap-cmd`.
    """

    hq_path: str
    manager: str
    server_dir: str
    idle_timeout: float
    time_limit: float
    on_server_lost: str = "finish-running"
    worker_args: tuple[str, ...] = ()
    start_cmd: str | None = None
    stop_cmd: str | None = None
    wrap_cmd: str | None = None

    @property
    def needs_shell(self) -> bool:
        """True when the line chains shell commands (start/stop commands): on several nodes it
        then runs as `bash -l -c '<line>'` so that every node runs the whole chain."""
        return bool(self.start_cmd or self.stop_cmd)

    def render(self) -> str:
        if self.manager not in MANAGERS:
            raise ValueError(f"Invalid manager {self.manager!r}")
        if not self.hq_path.startswith("/"):
            raise ValueError("The path of hq must be absolute")
        for what, v in (("hq path", self.hq_path), ("server directory", self.server_dir),
                        ("on-server-lost policy", self.on_server_lost),
                        *(("worker argument", a) for a in self.worker_args),
                        ("worker start command", self.start_cmd or ""),
                        ("worker stop command", self.stop_cmd or ""),
                        ("worker wrap command", self.wrap_cmd or "")):
            check_script_text(v, what)
        parts = [worker_arg(self.hq_path), "worker", "start",
                 "--idle-timeout", dq(format_duration(self.idle_timeout)),
                 "--manager", dq(self.manager),
                 "--server-dir", dq(self.server_dir)]
        parts += [worker_arg(a) for a in self.worker_args]
        parts += ["--on-server-lost", dq(self.on_server_lost),
                  "--time-limit", dq(format_duration(self.time_limit))]
        cmd = " ".join(parts)
        if self.wrap_cmd:
            cmd = f"{self.wrap_cmd} {cmd}"
        if self.start_cmd:
            cmd = f"{self.start_cmd} && {cmd}"
        if self.stop_cmd:
            cmd = f"{cmd}; {self.stop_cmd}"
        return cmd


def _header_args(args: Sequence[str]) -> str:
    for a in args:
        check_script_text(a, "manager argument")
    return " ".join(args)


def _command(worker_command) -> tuple[str, bool]:
    if isinstance(worker_command, WorkerCommand):
        return worker_command.render(), worker_command.needs_shell
    return worker_command, False


def render_slurm_script(*, nodes: int, name: str, directory: str, walltime: float,
                        manager_args: Sequence[str], worker_command: WorkerCommand | str) -> str:
    """The `hq-submit.sh` of a Slurm allocation (see the module docstring)."""
    worker_command, shell = _command(worker_command)
    _check_common(nodes, name, directory, worker_command)
    lines = ["#!/bin/bash",
             f"#SBATCH --nodes={nodes}",
             f"#SBATCH --job-name={name}",
             f"#SBATCH --output={directory}/{STDOUT_FILE}",
             f"#SBATCH --error={directory}/{STDERR_FILE}",
             f"#SBATCH --time={format_walltime(walltime)}"]
    extra = _header_args(manager_args)
    if extra:
        lines.append(f"#SBATCH {extra}")
    if nodes > 1:
        if shell:
            worker_command = f"bash -l -c {shlex.quote(worker_command)}"
        worker_command = f"srun --overlap --ntasks={nodes} --nodes={nodes} {worker_command}"
    return "\n".join(lines) + f"\n\n{worker_command}\n"


def render_pbs_script(*, nodes: int, name: str, directory: str, walltime: float,
                      manager_args: Sequence[str], worker_command: WorkerCommand | str,
                      hold: bool = False) -> str:
    """The `hq-submit.sh` of a PBS allocation; `hold` (dry run) adds `#PBS -h`."""
    worker_command, _ = _command(worker_command)
    _check_common(nodes, name, directory, worker_command)
    lines = ["#!/bin/bash",
             f"#PBS -l select={nodes}",
             f"#PBS -N {name}",
             f"#PBS -o {directory}/{STDOUT_FILE}",
             f"#PBS -e {directory}/{STDERR_FILE}",
             f"#PBS -l walltime={format_walltime(walltime)}"]
    extra = _header_args(manager_args)
    if extra:
        lines.append(f"#PBS {extra}")
    if hold:
        lines.append("#PBS -h")
    if nodes > 1:
        if "'" in worker_command:
            body = "pbsdsh -- bash -l -c " + shlex.quote(worker_command)
        else:
            body = f"pbsdsh -- bash -l -c '{worker_command}'"
    else:
        body = worker_command
    return "\n".join(lines) + f"\n\n{body}\n"


def render_script(manager: str, *, nodes: int, name: str, directory: str, walltime: float,
                  manager_args: Sequence[str], worker_command: WorkerCommand | str, dry_run: bool = False) -> str:
    """Dispatches to `render_slurm_script` / `render_pbs_script` by manager name."""
    if manager == SLURM:
        return render_slurm_script(nodes=nodes, name=name, directory=directory, walltime=walltime,
                                   manager_args=manager_args, worker_command=worker_command)
    if manager == PBS:
        return render_pbs_script(nodes=nodes, name=name, directory=directory, walltime=walltime,
                                 manager_args=manager_args, worker_command=worker_command,
                                 hold=dry_run)
    raise ValueError(f"Invalid manager {manager!r}")


def _check_common(nodes: int, name: str, directory: str, worker_command: str) -> None:
    if type(nodes) is not int or nodes < 1:
        raise ValueError("An allocation has at least one node")
    check_script_text(name, "allocation name")
    if not name or any(c.isspace() for c in name):
        raise ValueError("Invalid allocation name: it must be non-empty without whitespace")
    check_script_text(directory, "allocation directory")
    if any(c.isspace() for c in directory):
        raise ValueError("Invalid allocation directory: it must not contain whitespace")
    check_script_text(worker_command, "worker command")


# ----------------------------------------------------------------------------- manager commands
# The managers are called by name from PATH; the shell runs these argv lists with the allocation
# directory as cwd.


def submit_argv(manager: str, script_path: str) -> list[str]:
    """`sbatch <script>` / `qsub <script>`."""
    return {SLURM: ["sbatch", script_path], PBS: ["qsub", script_path]}[manager]


def status_argv(manager: str, job_ids: Sequence[str]) -> list[list[str]]:
    """Slurm: one `scontrol show job <id>` per job; PBS: one `qstat -f <ids> -F json -x`."""
    if manager == SLURM:
        return [["scontrol", "show", "job", j] for j in job_ids]
    if manager == PBS:
        return [["qstat", "-f", *job_ids, "-F", "json", "-x"]] if job_ids else []
    raise ValueError(f"Invalid manager {manager!r}")


def cancel_argv(manager: str, job_id: str) -> list[str]:
    """`scancel <id>` / `qdel <id>`."""
    return {SLURM: ["scancel", job_id], PBS: ["qdel", job_id]}[manager]
