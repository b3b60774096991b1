"""Function tasks from Python on a real worker: arguments, closures, exceptions, return values."""

from __future__ import annotations

import os
import sys

import cloudpickle
import pytest

from hyperqueue import Job
from hyperqueue.client import FailedJobsException, PythonEnv

pytestmark = pytest.mark.timeout(60)
# The worker cannot import this test module: send its functions by value (as for a script's).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def write(path, *parts, sep=" "):
    with open(path, "w") as f:
        f.write(sep.join(str(p) for p in parts))
    return len(parts)


def test_args_kwargs_closures_env_cwd(client, workdir):
    (workdir / "w").mkdir()
    offset = 40  # captured by the closure below

    def closure(x):
        write("closure.txt", x + offset, os.environ["FROM_JOB"], os.getcwd())

    job = Job(default_env={"FROM_JOB": "yes"}, keep_results=True)
    t0 = job.function(write, args=("args.txt", 1, "two"), kwargs={"sep": "-"})
    t1 = job.function(closure, args=(2,), cwd=workdir / "w", deps=[t0])
    t2 = job.function(lambda: print("to stdout") or {"answer": offset + 2}, name="lam",
                      stdout="lam.out")
    submitted = client.submit(job)
    assert client.wait_for_jobs([submitted])
    assert (workdir / "args.txt").read_text() == "1-two"
    assert (workdir / "w" / "closure.txt").read_text() == f"42 yes {workdir / 'w'}"
    assert (workdir / "lam.out").read_text() == "to stdout\n"
    assert (t0.label, t1.label, t2.label) == ("write/0", "closure/1", "lam")
    assert client.get_results(submitted) == {0: 2, 1: None, 2: {"answer": 42}}
    client.forget(submitted)
    assert not (workdir / ".hq-results" / str(submitted.id)).exists()


def test_exception_is_the_error_with_traceback(client, workdir):
    def inner(n):
        raise ValueError(f"bad value {n}")

    def failing(n):
        inner(n)

    job = Job()
    job.function(failing, args=(7,))
    job.function(write, args=("ok.txt", 1))
    submitted = client.submit(job)
    with pytest.raises(FailedJobsException) as info:
        client.wait_for_jobs([submitted])
    text = str(info.value)
    assert "Task failing/0 (id=0):" in text
    assert "Traceback (most recent call last):" in text
    assert "in inner" in text and "ValueError: bad value 7" in text
    assert f"Stderr: {workdir / '0.stderr'}" in text
    assert "ValueError: bad value 7" in (workdir / "0.stderr").read_text()
    assert (workdir / "ok.txt").read_text() == "1"
    assert list(client.get_failed_tasks(submitted)) == [0]


def test_results_need_keep_results(client, workdir):
    job = Job()
    job.function(write, args=("x.txt", 1))
    submitted = client.submit(job)
    client.wait_for_jobs([submitted])
    assert not (workdir / ".hq-results").exists()  # upstream scripts: nothing extra written
    with pytest.raises(Exception, match="keep_results=True"):
        client.get_results(submitted)


def test_python_env_prologue(cluster, workdir):
    client = cluster.client(python_env=PythonEnv(prologue="export FROM_PROLOGUE=pro"))
    job = Job()
    job.function(lambda: write("pro.txt", os.environ["FROM_PROLOGUE"]))
    submitted = client.submit(job)
    assert client.wait_for_jobs([submitted])
    assert (workdir / "pro.txt").read_text() == "pro"
