"""JSON-shaped views: job info/detail/tasks (including bulk-ended tasks) and workers."""

import json

from core_testkit import Env, R, array_spec, template
from hyperqueue.core import views
from hyperqueue.core.model import WorkerState
from hyperqueue.core.ranges import IntRanges


def test_job_views_include_bulk_canceled_tasks():
    env = Env()
    w = env.worker(2)
    job = env.submit(array_spec("0-9", name="arr"))
    env.schedule()
    t0, t1, t2, t3 = env.out.take_worker_msgs(w, 4)
    env.start(w, [t0, t1])
    env.finish(w, [t0])
    env.cancel(job, "enough")

    info = views.job_info(job)
    assert info == {
        "id": job.id, "name": "arr", "task_count": 10,
        "task_stats": {"aborted": 0, "canceled": 9, "failed": 0, "finished": 1, "running": 0,
                       "waiting": 0},
        "is_open": False, "cancel_reason": "enough", "state": "CANCELED",
    }
    tasks = views.job_tasks(env.core, job)
    assert [t["id"] for t in tasks] == list(range(10))
    assert [t["state"] for t in tasks] == ["finished"] + ["canceled"] * 9
    # Bulk-canceled tasks never had a record: they show only id and state.
    assert tasks[9] == {"id": 9, "state": "canceled"}
    assert tasks[1]["instance"] == 0 and "finished_at" in tasks[1]

    canceled = views.job_tasks(env.core, job, states=["canceled"])
    assert [t["id"] for t in canceled] == list(range(1, 10))
    assert views.job_tasks(env.core, job, states=["waiting"]) == []
    some = views.job_tasks(env.core, job, ids=IntRanges.parse("0,5,42"))
    assert [(t["id"], t["state"]) for t in some] == [(0, "finished"), (5, "canceled")]

    detail = views.job_detail(env.core, job, with_tasks=True)
    assert detail["info"] == info
    assert [t["state"] for t in detail["tasks"]].count("canceled") == 9
    assert detail["finished_at"] == env.now
    assert detail["started_at"] is not None
    assert detail["workers"] == ["node"]
    assert detail["submits"][0]["array"]["ids"] == "0-9"
    assert detail["submit_dir"] == "/submit"
    assert views.job_detail(env.core, job, with_tasks=False)["tasks"] == []
    json.dumps(detail)  # plain data only
    env.check()


def test_aborted_in_bulk_shows_as_aborted_and_waiting_and_assigned_as_waiting():
    env = Env()
    w = env.worker(1)
    job = env.submit(array_spec("0-5", max_fails=0))
    env.schedule()
    t0, t1 = env.out.take_worker_msgs(w, 2)
    tasks = views.job_tasks(env.core, job)
    assert [t["state"] for t in tasks] == ["waiting"] * 6  # assigned shows as waiting
    env.fail(w, [t0], "bad")
    tasks = views.job_tasks(env.core, job)
    assert [t["state"] for t in tasks] == ["failed"] + ["aborted"] * 5
    assert tasks[0]["error"] == "bad"
    assert views.job_info(job)["state"] == "FAILED"
    assert [t["id"] for t in views.job_tasks(env.core, job, states=["aborted"])] == [1, 2, 3, 4, 5]


def test_started_task_view_has_resolved_paths():
    env = Env()
    w = env.worker(1)
    tmpl = template(cwd="work/%{JOB_ID}-%{TASK_ID}", stdout="out/%{TASK_ID}.%{INSTANCE_ID}.txt",
                    stderr="%{CWD}/err")
    job = env.submit(R.SubmitSpec("p", "/home/u", [R.BatchSpec(tmpl, IntRanges.parse("7"))]))
    # The server resolves %{JOB_ID} at submit; %{TASK_ID} and friends stay for the worker.
    assert job.batches[0].template.program.cwd == f"work/{job.id}-%{{TASK_ID}}"
    assert views.job_tasks(env.core, job) == [{"id": 7, "state": "waiting"}]

    env.schedule()
    (task,) = env.out.take_worker_msgs(w, 1)
    assigned_view = views.job_tasks(env.core, job)[0]
    assert "cwd" not in assigned_view and assigned_view["instance"] == 0

    env.start(w, [task])
    (v,) = views.job_tasks(env.core, job)
    cwd = f"/home/u/work/{job.id}-7"
    assert v["state"] == "running"
    assert v["cwd"] == cwd
    assert v["stdout"] == f"{cwd}/out/7.0.txt"
    # upstream-facts F19/F20: %{CWD} was filled at submit with the (still relative) cwd, and
    # the worker makes that relative result absolute against the cwd, as upstream does
    assert v["stderr"] == f"{cwd}/work/{job.id}-7/err"
    assert v["worker"] == w.id and v["worker_hostname"] == "node"
    assert v["started_at"] == env.now
    assert "finished_at" not in v

    # After a restart the instance in the paths moves on.
    env.lose(w, WorkerState.CONNECTION_LOST)
    w2 = env.worker(1)
    env.schedule()
    env.out.take_worker_msgs(w2, 1)
    env.tick()
    env.start(w2, [task])
    (v,) = views.job_tasks(env.core, job)
    assert v["stdout"] == f"{cwd}/out/7.1.txt"
    assert v["instance"] == 1 and v["crash_count"] == 1 and v["worker"] == w2.id
    env.finish(w2, [task])
    (v,) = views.job_tasks(env.core, job)
    assert v["state"] == "finished" and v["finished_at"] == env.now
    env.check()


def test_default_paths_in_task_view():
    env = Env()
    w = env.worker(1)
    job = env.submit(array_spec("3", submit_dir="/data"))
    env.schedule()
    env.finish(w, env.out.take_worker_msgs(w, 1))
    (v,) = views.job_tasks(env.core, job)
    assert v["cwd"] == "/data"
    assert v["stdout"] == f"/data/job-{job.id}/3.stdout"
    assert v["stderr"] == f"/data/job-{job.id}/3.stderr"


def test_batch_view_and_request_view():
    env = Env()
    from core_testkit import request

    job = env.submit(array_spec("1-9:2", req=request(cpus=2, mem=0.5), priority=4,
                                crash_limit=0))
    b = views.batch_view(job.batches[0])
    assert b["ids"] == "1-9:2"
    assert b["priority"] == 4
    assert b["crash_limit"] == "unlimited"
    res = b["resources"][0]["resources"]
    assert {r["resource"]: r["text"] for r in res} == {"cpus": "2 compact", "mem": "0.5 compact"}
    assert views.crash_limit_view(-1) == "never-restart"
    assert views.crash_limit_view(5) == 5


def test_worker_view_counts():
    env = Env()
    w = env.worker(2)
    job = env.submit(array_spec("0-3"))
    env.schedule()
    tasks = env.out.take_worker_msgs(w, 4)
    env.start(w, tasks[:1])
    v = views.worker_view(w, env.now)
    assert v["id"] == w.id and v["state"] == "RUNNING"
    assert v["runtime_info"] == {"assigned_tasks": 4, "running_tasks": 1}
    assert v["last_task_started"] == {"job": job.id, "task": 0, "time": env.now}
    assert v["ended"] is None
    env.lose(w, WorkerState.HEARTBEAT_LOST)
    v = views.worker_view(w, env.now)
    assert v["state"] == "HEARTBEAT LOST" and v["ended"] == {"at": env.now}
    assert v["runtime_info"] == {"assigned_tasks": 0, "running_tasks": 0}
    json.dumps(v)
