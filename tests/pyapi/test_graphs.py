"""Jobs from Python on a real server and worker: graphs, program tasks' options, failures,
forget, and that a Python job is the same job the CLI's job files make."""

from __future__ import annotations

import datetime
import json
import os
import subprocess

import pytest

from hqenv import HQ, clean_env  # (not `conftest`: ambiguous across test directories)
from hyperqueue import Job
from hyperqueue.client import FailedJobsException
from hyperqueue.ffi.protocol import ResourceRequest
from hyperqueue.output import StdioDef

pytestmark = pytest.mark.timeout(60)


def hq_json(cluster, *args):
    out = subprocess.run([*HQ, "--server-dir", cluster.server_dir, "--output-mode", "json",
                          *args], capture_output=True, text=True, env=clean_env(), timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_diamond_runs_in_dependency_order(client, workdir):
    job = Job()
    a = job.program(["bash", "-c", "echo a > a.txt"])
    b = job.program(["bash", "-c", "cat a.txt > b.txt; echo b >> b.txt"], deps=[a])
    c = job.program(["bash", "-c", "cat a.txt > c.txt; echo c >> c.txt"], deps=[a])
    job.program(["bash", "-c", "cat b.txt c.txt > d.txt"], deps=[b, c])
    submitted = client.submit(job)
    assert client.wait_for_jobs([submitted]) is True
    assert (workdir / "d.txt").read_text() == "a\nb\na\nc\n"
    # default stdio: %{CWD}/%{TASK_ID}.stdout, no job-N folder
    assert sorted(p.name for p in workdir.glob("*.std*")) == [
        f"{i}.{s}" for i in range(4) for s in ("stderr", "stdout")]
    assert [t.task_id for t in job.tasks] == [0, 1, 2, 3]
    assert job.task_by_id(3).dependencies == [b, c] and job.task_by_id(4) is None


def test_failed_dependency_cancels_dependants(client, workdir):
    job = Job()
    bad = job.program(["bash", "-c", "echo oops >&2; exit 3"], name="bad")
    child = job.program(["touch", "child-ran"], deps=[bad])
    job.program(["touch", "grandchild-ran"], deps=[child])
    job.program(["touch", "independent-ran"])
    submitted = client.submit(job)
    assert client.wait_for_jobs([submitted], raise_on_error=False) is False
    assert not (workdir / "child-ran").exists() and not (workdir / "grandchild-ran").exists()
    assert (workdir / "independent-ran").exists()
    states = {t["id"]: t["state"] for t in hq_json(client_cluster(client), "task", "list",
                                                    str(submitted.id))[str(submitted.id)]}
    # dependants of a failed task are aborted (the server, not a user, ended them)
    assert states == {0: "failed", 1: "aborted", 2: "aborted", 3: "finished"}
    failed = client.get_failed_tasks(submitted)
    assert list(failed) == [0]
    assert "3" in failed[0].error
    assert failed[0].cwd == str(workdir)
    assert failed[0].stderr == str(workdir / "0.stderr")
    assert failed[0].stdout == str(workdir / "0.stdout")
    with pytest.raises(FailedJobsException) as info:
        client.wait_for_jobs([submitted])
    text = str(info.value)
    assert f"The following tasks of job `{submitted.id}` have failed:" in text
    assert "Task bad (id=0):" in text
    assert f"Working directory: {workdir}" in text
    assert f"Stderr: {workdir / '0.stderr'}" in text
    assert info.value.failed_tasks[submitted.id][0].error == failed[0].error


def client_cluster(client):
    class _C:  # the server dir of a client, for `hq` commands
        server_dir = client.connection.server_dir
    return _C


def test_failed_tasks_listed_up_to_five(client, workdir):
    job = Job(max_fails=None)
    for i in range(7):
        job.program(["bash", "-c", f"exit {i + 1}"])
    submitted = client.submit(job)
    with pytest.raises(FailedJobsException) as info:
        client.wait_for_jobs([submitted])
    text = str(info.value)
    assert text.count("(id=") == 5
    assert "... and 2 more failed tasks" in text
    assert len(info.value.failed_tasks[submitted.id]) == 7


def test_program_options(client, workdir):
    (workdir / "sub").mkdir()
    job = Job(default_env={"A": "from-job", "B": "job"})
    job.program(["bash", "-c", 'echo "$A $B $C $(pwd)"; cat; echo err >&2'],
                env={"B": "task", "C": "c"}, cwd=workdir / "sub", stdin=b"\x00in\xff",
                stdout="out-%{TASK_ID}.txt", stderr=None)
    job.program("true", stdout=StdioDef.remove_if_finished(),
                stderr=StdioDef.remove_if_finished("%{CWD}/kept-%{TASK_ID}.err"))
    job.program(["bash", "-c", 'test -d "$HQ_TASK_DIR" && echo "$HQ_TASK_DIR" > td.txt'],
                task_dir=True, stdout=StdioDef.from_path("%{CWD}/td.out"))
    job.program(["bash", "-c", 'echo "$HQ_CPUS" > cpus.txt'],
                resources=ResourceRequest(cpus=2))
    job.program(["bash", "-c", 'echo "$HQ_RESOURCE_VARIANT" > variant.txt'],
                resources=[ResourceRequest(cpus=1, resources={"gpus": 1}),
                           ResourceRequest(cpus="1 compact", min_time=datetime.timedelta(0))])
    job.program(["bash", "-c", "cat > text-stdin.txt"],
                stdin="text ü")
    submitted = client.submit(job)
    assert client.wait_for_jobs([submitted])
    out = (workdir / "sub" / "out-0.txt").read_bytes()
    assert out == f"from-job task c {workdir / 'sub'}\n".encode() + b"\x00in\xff"
    assert not (workdir / "sub" / "0.stderr").exists()
    assert not (workdir / "1.stdout").exists() and not (workdir / "kept-1.err").exists()
    task_dir = (workdir / "td.txt").read_text().strip()
    assert task_dir and not os.path.exists(task_dir)  # removed after the task
    assert len((workdir / "cpus.txt").read_text().strip().split(",")) == 2
    assert (workdir / "variant.txt").read_text().strip() == "1"  # no gpus: the 2nd variant
    assert (workdir / "text-stdin.txt").read_text() == "text ü"


def test_forget(client, workdir):
    job = Job()
    job.program(["sleep", "30"])
    running = client.submit(job)
    with pytest.raises(Exception, match=f"^Cannot forget job {running.id}. It either hasn't "
                                        "been completed yet, or it does not exist"):
        client.forget(running)
    with pytest.raises(Exception, match="^Cannot forget job 999999. It either hasn't"):
        client.forget(999999)
    done = Job()
    done.program("true")
    d = client.submit(done)
    client.wait_for_jobs([d])
    client.forget(d.id)
    ids = [j["id"] for j in hq_json(client_cluster(client), "job", "list", "--all")]
    assert d.id not in ids and running.id in ids
    subprocess.run([*HQ, "--server-dir", client.connection.server_dir, "job", "cancel",
                    str(running.id)], env=clean_env(), capture_output=True, check=True)


def test_submit_errors(client, workdir):
    with pytest.raises(Exception, match="^Submitted job must have at least a single task$"):
        client.submit(Job())
    other = Job()
    foreign = other.program("true")
    job = Job()
    job.program("true")
    job.program("true", deps=[foreign])  # a task of another job (id 0 exists here too)
    with pytest.raises(Exception, match="^Invalid dependency id"):
        client.submit(job)
    job = Job()
    job.program("true")
    job.tasks.append(job.tasks[0])  # two tasks with id 0
    with pytest.raises(Exception, match="^Non unique IDs in submitted task graph"):
        client.submit(job)
    job = Job()
    job.program("true", resources=ResourceRequest(cpus="lots"))
    with pytest.raises(Exception, match="Invalid task 0"):
        client.submit(job)


def test_python_job_equals_job_file_job(client, workdir):
    """The same two-task graph from Python and from a TOML job file: the same job in
    `hq job info` (the submissions' task definitions) apart from its name."""
    job = Job(name="same", max_fails=1)
    a = job.program(["echo", "a"], env={"K": "V"}, priority=3, crash_limit=2)
    job.program(["echo", "b"], deps=[a], stdout=None, resources=ResourceRequest(cpus=2))
    submitted = client.submit(job)
    (workdir / "job.toml").write_text('''
name = "same"
max_fails = 1
[[task]]
id = 0
command = ["echo", "a"]
env = { K = "V" }
priority = 3
crash_limit = 2
stdout = "%{CWD}/%{TASK_ID}.stdout"
stderr = "%{CWD}/%{TASK_ID}.stderr"
[[task]]
id = 1
command = ["echo", "b"]
deps = [0]
stdout = "none"
stderr = "%{CWD}/%{TASK_ID}.stderr"
[[task.request]]
resources = { cpus = "2" }
''')
    out = subprocess.run([*HQ, "--server-dir", client.connection.server_dir, "--output-mode",
                          "quiet", "job", "submit-file", "job.toml"], capture_output=True,
                         text=True, env=clean_env(), timeout=30)
    assert out.returncode == 0, out.stderr
    cli_id = int(out.stdout.strip())
    client.wait_for_jobs([submitted])
    py, cli = (hq_json(client_cluster(client), "job", "info", str(i))[0]
               for i in (submitted.id, cli_id))
    # Task graphs are stored as given (upstream-facts F19: no submit-time prefill); the job
    # file's default cwd is the client's directory (F43), the Python API's `%{SUBMIT_DIR}`.
    for s in py["submits"]:
        for td in s["graph"] if "graph" in s else [s["array"]]:
            if td["program"]["cwd"] == "%{SUBMIT_DIR}":
                td["program"]["cwd"] = os.getcwd()  # both were submitted from here
    assert py["submits"] == cli["submits"]
    assert py["info"]["name"] == cli["info"]["name"] == "same"
    assert py["max_fails"] == cli["max_fails"]
    unnamed = Job()
    unnamed.program("true")
    s = client.submit(unnamed)
    assert hq_json(client_cluster(client), "job", "info", str(s.id))[0]["info"]["name"] == \
        "PyAPI job"
    client.wait_for_jobs([s])
