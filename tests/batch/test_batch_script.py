"""Submission scripts: exact texts, as upstream writes them (hq-features.md §7)."""

import pytest

from hyperqueue.batch import (
    WorkerCommand, allocation_dir, allocation_name, cancel_argv, format_walltime,
    render_pbs_script, render_script, render_slurm_script, status_argv, submit_argv,
)

HQ = "/opt/hq/bin/hq"
SERVER = "/home/u/.hq-server/003"
DIR = "/home/u/.hq-server/003/autoalloc/2-gpu/007"


def cmd(**kw):
    base = dict(hq_path=HQ, manager="slurm", server_dir=SERVER, idle_timeout=300,
                time_limit=3600)
    base.update(kw)
    return WorkerCommand(**base)


def test_layout_and_names():
    assert allocation_dir("/home/u/.hq-server/003", 2, "gpu", 7) == DIR
    assert allocation_dir("/srv/hq/", 1, None, 1234) == "/srv/hq/autoalloc/1/1234"
    assert allocation_name(2, "gpu", 7) == "gpu-7"
    assert allocation_name(3, None, 1) == "hq-3-1"


@pytest.mark.parametrize("secs,text", [(0, "00:00:00"), (59.9, "00:00:59"), (3600, "01:00:00"),
                                       (90061, "25:01:01"), (360000, "100:00:00")])
def test_walltime(secs, text):
    assert format_walltime(secs) == text


def test_worker_command_full():
    c = cmd(manager="pbs", idle_timeout=600, time_limit=5400, on_server_lost="reconnect",
            worker_args=("--cpus", "4", "--resource", "gpus/nvidia=[0,1]", "--no-hyper-threading",
                         "--overview-interval", "30s"),
            start_cmd="module load hq", stop_cmd="echo stopped", wrap_cmd="podman run img")
    assert c.render() == (
        'module load hq && podman run img /opt/hq/bin/hq worker start --idle-timeout "10m" '
        '--manager "pbs" --server-dir "/home/u/.hq-server/003" --cpus 4 --resource '
        '"gpus/nvidia=[0,1]" --no-hyper-threading --overview-interval 30s '
        '--on-server-lost "reconnect" --time-limit "1h 30m"; echo stopped')


def test_worker_command_quotes_what_bash_would_expand():
    c = cmd(server_dir='/tmp/a"$b`c\\d', hq_path="/opt/my hq/hq")
    out = c.render()
    assert '--server-dir "/tmp/a\\"\\$b\\`c\\\\d"' in out
    assert out.startswith('"/opt/my hq/hq" worker start')


@pytest.mark.parametrize("kw", [dict(server_dir="/a\nb"), dict(start_cmd="x\nrm -rf ~"),
                                dict(worker_args=("--cpus", "4\n")), dict(hq_path="hq"),
                                dict(manager="lsf")])
def test_worker_command_refuses_bad_values(kw):
    with pytest.raises(ValueError):
        cmd(**kw).render()


def test_slurm_single_node():
    text = render_slurm_script(nodes=1, name="gpu-7", directory=DIR, walltime=3600,
                               manager_args=["--partition=cpu", "--account=proj"],
                               worker_command=cmd())
    assert text == f"""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --job-name=gpu-7
#SBATCH --output={DIR}/stdout
#SBATCH --error={DIR}/stderr
#SBATCH --time=01:00:00
#SBATCH --partition=cpu --account=proj

{HQ} worker start --idle-timeout "5m" --manager "slurm" --server-dir "{SERVER}" \
--on-server-lost "finish-running" --time-limit "1h"
"""


def test_slurm_multi_node_without_args():
    text = render_slurm_script(nodes=3, name="hq-1-1", directory=DIR, walltime=600,
                               manager_args=[], worker_command=cmd(time_limit=540))
    assert text.splitlines()[1:7] == [
        "#SBATCH --nodes=3", "#SBATCH --job-name=hq-1-1", f"#SBATCH --output={DIR}/stdout",
        f"#SBATCH --error={DIR}/stderr", "#SBATCH --time=00:10:00", ""]
    assert text.splitlines()[7] == (
        f'srun --overlap --ntasks=3 --nodes=3 {HQ} worker start --idle-timeout "5m" '
        f'--manager "slurm" --server-dir "{SERVER}" --on-server-lost "finish-running" '
        '--time-limit "9m"')


def test_slurm_multi_node_with_start_cmd_runs_the_chain_on_every_node():
    text = render_slurm_script(nodes=2, name="n", directory=DIR, walltime=600, manager_args=[],
                               worker_command=cmd(start_cmd="source env.sh"))
    assert text.splitlines()[-1] == (
        f"srun --overlap --ntasks=2 --nodes=2 bash -l -c 'source env.sh && {HQ} worker start "
        f'--idle-timeout "5m" --manager "slurm" --server-dir "{SERVER}" '
        '--on-server-lost "finish-running" --time-limit "1h"\'')


def test_rendered_script_runs_with_the_exact_argv(tmp_path):
    """bash runs the script's body: the fake `hq` sees every value exactly, nothing expanded."""
    import subprocess
    import sys

    fake = tmp_path / "bin dir" / "hq"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    fake.chmod(0o755)
    server = str(tmp_path / 'odd "$HOME" `x` \\ dir')
    c = WorkerCommand(hq_path=str(fake), manager="slurm", server_dir=server, idle_timeout=90,
                      time_limit=3600, worker_args=("--resource", "mem=sum(1024)", "--group",
                                                    "a b"),
                      start_cmd="echo start", stop_cmd="echo stop")
    script = render_slurm_script(nodes=1, name="x-1", directory="/d", walltime=3600,
                                 manager_args=[], worker_command=c)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=10)
    import json
    lines = out.stdout.splitlines()
    assert lines[0] == "start" and lines[2] == "stop"
    assert json.loads(lines[1]) == [
        "worker", "start", "--idle-timeout", "1m 30s", "--manager", "slurm", "--server-dir",
        server, "--resource", "mem=sum(1024)", "--group", "a b", "--on-server-lost",
        "finish-running", "--time-limit", "1h"]
    pbs = render_pbs_script(nodes=2, name="x-1", directory="/d", walltime=3600,
                            manager_args=[], worker_command=c)
    body = pbs.splitlines()[-1].removeprefix("pbsdsh -- ")
    out = subprocess.run(["bash", "-c", body], capture_output=True, text=True, timeout=10)
    assert json.loads(out.stdout.splitlines()[1])[7] == server


def test_pbs_single_and_multi_node():
    single = render_pbs_script(nodes=1, name="hq-4-2", directory=DIR, walltime=7200,
                               manager_args=["-q", "workq", "-A", "proj"],
                               worker_command=cmd(manager="pbs"))
    w = (f'{HQ} worker start --idle-timeout "5m" --manager "pbs" --server-dir "{SERVER}" '
         '--on-server-lost "finish-running" --time-limit "1h"')
    assert single == f"""#!/bin/bash
#PBS -l select=1
#PBS -N hq-4-2
#PBS -o {DIR}/stdout
#PBS -e {DIR}/stderr
#PBS -l walltime=02:00:00
#PBS -q workq -A proj

{w}
"""
    multi = render_pbs_script(nodes=2, name="hq-4-3", directory=DIR, walltime=7200,
                              manager_args=[], worker_command=cmd(manager="pbs"), hold=True)
    assert multi.splitlines()[6:] == ["#PBS -h", "", f"pbsdsh -- bash -l -c '{w}'"]


def test_dispatch_and_bad_inputs():
    args = dict(nodes=1, name="a-1", directory="/d", walltime=60, manager_args=[],
                worker_command="/bin/hq worker start")
    assert render_script("slurm", **args) == render_slurm_script(**args)
    assert "#PBS -h" in render_script("pbs", dry_run=True, **args)
    with pytest.raises(ValueError):
        render_script("lsf", **args)
    for bad in (dict(nodes=0), dict(name="a b"), dict(name="a\n#SBATCH x"),
                dict(directory="/with space"), dict(manager_args=["--x\n/bin/evil"])):
        with pytest.raises(ValueError):
            render_slurm_script(**{**args, **bad})


def test_manager_commands():
    assert submit_argv("slurm", "/d/hq-submit.sh") == ["sbatch", "/d/hq-submit.sh"]
    assert submit_argv("pbs", "/d/hq-submit.sh") == ["qsub", "/d/hq-submit.sh"]
    assert status_argv("slurm", ["1", "2"]) == [["scontrol", "show", "job", "1"],
                                                 ["scontrol", "show", "job", "2"]]
    assert status_argv("pbs", ["1.s", "2.s"]) == [["qstat", "-f", "1.s", "2.s", "-F", "json",
                                                   "-x"]]
    assert status_argv("pbs", []) == []
    assert cancel_argv("slurm", "1") == ["scancel", "1"]
    assert cancel_argv("pbs", "1.s") == ["qdel", "1.s"]
