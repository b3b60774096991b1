"""The Python API's surface: upstream's names and module paths, a side-effect-free
`import hyperqueue`, visualize_job, the progress bar on a terminal."""

from __future__ import annotations

import inspect
import os
import pty
import subprocess
import sys

import pytest

import hyperqueue

pytestmark = pytest.mark.timeout(60)


def test_exports_snapshot():
    assert sorted(hyperqueue.__all__) == ["AsyncClient", "Client", "HqError", "Job",
                                          "LocalCluster", "__version__", "get_version"]
    for name in hyperqueue.__all__:
        assert getattr(hyperqueue, name) is not None
    assert hyperqueue.get_version() == hyperqueue.__version__


def test_upstream_module_paths():
    from hyperqueue import Client, Job, LocalCluster, get_version  # noqa: F401
    from hyperqueue.client import Client as C2, FailedJobsException, PythonEnv  # noqa: F401
    from hyperqueue.cluster import LocalCluster as L2, WorkerConfig
    from hyperqueue.ffi.client import ClientConnection
    from hyperqueue.ffi.protocol import ResourceRequest
    from hyperqueue.job import Job as J2
    from hyperqueue.output import StdioDef
    from hyperqueue.task.function import PythonEnv as P2, task_main  # noqa: F401
    from hyperqueue.visualization import visualize_job  # noqa: F401

    assert C2 is Client and J2 is Job and L2 is LocalCluster and P2 is PythonEnv
    assert hasattr(ClientConnection, "stop_server")
    assert str(inspect.signature(Client)) == "(server_dir=None, python_env: 'Optional[PythonEnv]' = None)"
    sig = inspect.signature(Job)
    assert [(p.name, p.default) for p in list(sig.parameters.values())[:4]] == [
        ("default_workdir", None), ("max_fails", 1), ("default_env", None), ("name", None)]
    assert list(inspect.signature(ResourceRequest).parameters) == [
        "n_nodes", "cpus", "resources", "min_time"]
    assert WorkerConfig().cores is None
    assert StdioDef.from_path("x") == StdioDef("x", "none")
    assert StdioDef.remove_if_finished() == StdioDef(None, "rm-if-finished")
    program = inspect.signature(Job.program).parameters
    assert list(program) == ["self", "args", "env", "cwd", "stdout", "stderr", "stdin", "deps",
                             "name", "task_dir", "priority", "resources", "crash_limit"]
    assert program["stdout"].default == "%{CWD}/%{TASK_ID}.stdout"
    function = inspect.signature(Job.function).parameters
    assert list(function) == ["self", "fn", "args", "kwargs", "env", "cwd", "stdout", "stderr",
                              "deps", "name", "priority", "resources", "crash_limit"]


def test_import_has_no_side_effects():
    code = ("import sys, threading, hyperqueue; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('trio', 'anyio', 'cloudpickle', 'rich', 'click', 'asyncio')), "
            "threading.active_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[] 1"


def test_function_task_command_is_upstreams(tmp_path):
    from hyperqueue import Job
    from hyperqueue.client import PythonEnv

    class FakeClient:
        python_env = PythonEnv()

    job = Job()
    job.function(print, args=("hi",))
    request = job._build(FakeClient(), str(tmp_path)).request()
    template = request.batches[0][0]
    assert template.program.args == [
        "python3", "-c", "from hyperqueue.task.function import task_main as m; m()"]
    assert template.program.task_dir is True
    import pickle

    fn, args, kwargs = pickle.loads(template.program.stdin)
    assert (fn, args, kwargs) == (print, ("hi",), None)


def test_visualize_job(tmp_path):
    from hyperqueue import Job
    from hyperqueue.visualization import visualize_job

    job = Job()
    a = job.program("true", name="first")
    b = job.program("true", deps=[a])
    job.function(len, deps=[a, b])
    pytest.importorskip("pydot")
    visualize_job(job, tmp_path / "g.dot")
    dot = (tmp_path / "g.dot").read_text()
    assert 'label="first"' in dot and 'label="len/2"' in dot
    assert "t0 -> t1" in dot and "t0 -> t2" in dot and "t1 -> t2" in dot


def test_visualize_job_without_pydot(tmp_path, monkeypatch):
    from hyperqueue import Job
    from hyperqueue.visualization import visualize_job

    monkeypatch.setitem(sys.modules, "pydot", None)  # import pydot -> ImportError
    job = Job()
    job.program("true")
    with pytest.raises(BaseException, match="^Unable to import `pydot`. You have to install "
                                            "the `pydot` package.$"):
        visualize_job(job, tmp_path / "g.dot")
    assert not (tmp_path / "g.dot").exists()


def test_progress_bar_on_a_terminal(cluster, tmp_path):
    script = tmp_path / "wait.py"
    script.write_text(f"""
from hyperqueue import Client, Job
client = Client({cluster.server_dir!r})
job = Job()
for i in range(3):
    job.program(["sleep", "0.3"])
client.wait_for_jobs([client.submit(job)])
print("DONE")
""")
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(tmp_path)
        os.execv(sys.executable, [sys.executable, str(script)])
    out = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "3/3" in text and "1/1 job completed" in text and "DONE" in text
