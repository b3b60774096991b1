"""The fake PBS (tests/fakepbs/bin) prints what the real one prints, as hq's parsers read it."""

import os
import pathlib
import subprocess
import time

import pytest

from hyperqueue.batch import (
    FAILED, FINISHED, QUEUED, RUNNING, parse_qstat_json, parse_qsub_output, render_pbs_script,
)

BIN = pathlib.Path(__file__).parent / "bin"
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pbs(tmp_path):
    state = tmp_path / "pbs"
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", HQ_FAKE_PBS_DIR=str(state))
    started = []

    def run(*argv, cwd=tmp_path, check=True, **extra):
        p = subprocess.run(list(argv), cwd=cwd, env={**env, **extra}, capture_output=True,
                           text=True, timeout=20)
        if check:
            assert p.returncode == 0, p.stderr
        if argv[0] == "qsub" and p.returncode == 0:
            started.append(p.stdout.strip())
        return p

    yield run
    for job in started:  # no job outlives the test
        run("qdel", job, check=False)
    deadline = time.time() + 10
    while time.time() < deadline:
        out = run("qstat", "-f", *started, "-F", "json", "-x", check=False).stdout
        if all(s.raw_state == "F" for s in parse_qstat_json(out).values()):
            break
        time.sleep(0.1)


def script(tmp_path, body, nodes=1, walltime=60, hold=False, args=()):
    d = tmp_path / "alloc"
    d.mkdir(exist_ok=True)
    text = render_pbs_script(nodes=nodes, name="hq-1-1", directory=str(d), walltime=walltime,
                             manager_args=list(args), worker_command=body, hold=hold)
    path = d / "hq-submit.sh"
    path.write_text(text)
    return d, path


def status(pbs, job_id):
    return parse_qstat_json(pbs("qstat", "-f", job_id, "-F", "json", "-x").stdout)[job_id]


def wait_state(pbs, job_id, states, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = status(pbs, job_id)
        if st.raw_state in states:
            return st
        time.sleep(0.05)
    raise AssertionError(f"{job_id} never reached {states}: {status(pbs, job_id)}")


def test_submit_runs_the_script_with_pbs_environment(pbs, tmp_path):
    d, path = script(tmp_path, 'echo "$PBS_JOBID $PBS_JOBNAME $PBS_QUEUE"; echo oops >&2')
    job = parse_qsub_output(pbs("qsub", str(path), cwd=d).stdout)
    assert job.endswith(".fakepbs")
    st = wait_state(pbs, job, "F")
    assert (st.state, st.exit_status) == (FINISHED, 0) and st.started_at and st.ended_at
    assert (d / "stdout").read_text() == f"{job} hq-1-1 workq\n"
    assert (d / "stderr").read_text() == "oops\n"


def test_status_transitions_and_exit_status(pbs, tmp_path):
    d, path = script(tmp_path, "sleep 1; exit 3")
    job = pbs("qsub", str(path), cwd=d, HQ_FAKE_PBS_START_DELAY="0.5").stdout.strip()
    assert status(pbs, job).state == QUEUED
    assert wait_state(pbs, job, "R").state == RUNNING
    st = wait_state(pbs, job, "F")
    assert (st.state, st.exit_status) == (FAILED, 3)


def test_qstat_formats_and_errors(pbs, tmp_path):
    d, path = script(tmp_path, "true", nodes=2, walltime=3600)
    job = pbs("qsub", str(path), cwd=d).stdout.strip()
    wait_state(pbs, job, "F")
    out = pbs("qstat", "-f", job, "-F", "json", "-x").stdout
    assert out.startswith('{\n    "timestamp":') and '"pbs_server":"fakepbs"' in out
    import json

    raw = json.loads(out)["Jobs"][job]
    assert raw["Resource_List"]["walltime"] == "01:00:00"
    assert raw["Resource_List"]["select"] == "2" and raw["Exit_status"] == 0
    p = pbs("qstat", "-f", job, "-F", "json", check=False)  # no -x: finished jobs are history
    assert p.returncode == 35 and "Job has finished" in p.stderr
    p = pbs("qstat", "-f", job, "999.fakepbs", "-F", "json", "-x", check=False)
    assert p.returncode == 153 and p.stderr == "qstat: Unknown Job Id 999.fakepbs\n"
    assert list(parse_qstat_json(p.stdout)) == [job]  # known jobs are still printed


def test_qdel_queued_running_and_finished(pbs, tmp_path):
    d, path = script(tmp_path, "sleep 30", hold=True)
    held = pbs("qsub", str(path), cwd=d).stdout.strip()
    assert status(pbs, held).raw_state == "H" and status(pbs, held).state == QUEUED
    pbs("qdel", held)
    st = status(pbs, held)
    assert (st.raw_state, st.state, st.exit_status) == ("F", FAILED, None)
    d, path = script(tmp_path, "sleep 30")
    running = pbs("qsub", str(path), cwd=d).stdout.strip()
    wait_state(pbs, running, "R")
    pbs("qdel", running)
    st = wait_state(pbs, running, "F")
    assert (st.state, st.exit_status) == (FAILED, 271)
    p = pbs("qdel", running, check=False)
    assert p.returncode == 35 and "Job has finished" in p.stderr
    p = pbs("qdel", "4242.fakepbs", check=False)
    assert p.returncode == 153 and "Unknown Job Id" in p.stderr


def test_walltime_and_bad_queue(pbs, tmp_path):
    d, path = script(tmp_path, "sleep 30", walltime=1)
    job = pbs("qsub", str(path), cwd=d).stdout.strip()
    st = wait_state(pbs, job, "F", timeout=15)
    assert (st.state, st.exit_status) == (FAILED, -29)
    d, path = script(tmp_path, "true", args=["-q", "nosuchqueue"])
    p = pbs("qsub", str(path), cwd=d, check=False)
    assert (p.returncode, p.stderr, p.stdout) == (170, "qsub: Unknown queue\n", "")


def test_pbsdsh_runs_once_per_node(pbs, tmp_path):
    d, path = script(tmp_path, "echo node-$PBS_TASKNUM >> " + str(tmp_path / "nodes.txt"),
                     nodes=3)
    job = pbs("qsub", str(path), cwd=d).stdout.strip()
    assert wait_state(pbs, job, "F").state == FINISHED
    assert sorted((tmp_path / "nodes.txt").read_text().split()) == ["node-0", "node-1", "node-2"]
