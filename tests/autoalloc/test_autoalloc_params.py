"""Queue parameters: defaults, validation (upstream's errors), worker flags, strict wire form."""

import pytest

from hyperqueue.autoalloc import ADD_FLAGS, WORKER_TIME_LIMIT_ERROR, QueueParams


def flag(name):
    return next(f for f in ADD_FLAGS if name in f.names)


def test_every_flag_of_alloc_add_is_listed_with_upstream_defaults():
    names = {n for f in ADD_FLAGS for n in f.names}
    for n in ("--time-limit", "--backlog", "--max-workers-per-alloc", "--workers-per-alloc",
              "--max-worker-count", "--name", "--cpus", "--resource", "--group", "--coupling",
              "--detect-resources", "--no-hyper-threading", "--idle-timeout",
              "--overview-interval", "--min-utilization", "--on-server-lost",
              "--worker-time-limit", "--worker-start-cmd", "--worker-stop-cmd",
              "--worker-wrap-cmd", "--no-dry-run"):
        assert n in names, n
    assert flag("--time-limit").default is None  # required
    assert flag("--backlog").default == 1
    assert flag("--workers-per-alloc") is flag("--max-workers-per-alloc")
    assert flag("--max-workers-per-alloc").default == 1
    assert flag("--idle-timeout").default == 300.0
    assert flag("--on-server-lost").default == "finish-running"
    p = QueueParams("slurm", 3600)
    assert (p.backlog, p.max_workers_per_alloc, p.max_worker_count, p.idle_timeout,
            p.on_server_lost, p.effective_worker_time_limit) == (1, 1, None, 300.0,
                                                                  "finish-running", 3600)


def test_worker_time_limit_at_most_time_limit():
    assert QueueParams("pbs", 3600, worker_time_limit=3600).effective_worker_time_limit == 3600
    assert QueueParams("pbs", 3600, worker_time_limit=600).effective_worker_time_limit == 600
    with pytest.raises(ValueError) as e:
        QueueParams("pbs", 3600, worker_time_limit=3601)
    assert str(e.value) == WORKER_TIME_LIMIT_ERROR


@pytest.mark.parametrize("kw,match", [
    (dict(manager="lsf"), "manager"), (dict(time_limit=0), "time limit"),
    (dict(time_limit=float("inf")), "time limit"), (dict(backlog=0), "backlog"),
    (dict(backlog=True), "backlog"), (dict(max_workers_per_alloc=0), "per allocation"),
    (dict(max_worker_count=0), "max worker count"), (dict(name="a/b"), "queue name"),
    (dict(name="a b"), "queue name"), (dict(name=""), "queue name"),
    (dict(name="x\n#SBATCH --x"), "newline"), (dict(cpus="four"), "Invalid resource definition .four."),
    (dict(resources=("gpus",)), "NAME=VALUE"), (dict(resources=("gpus=2", "gpus=3")), "twice"),
    (dict(min_utilization=1.5), "utilization"), (dict(on_server_lost="panic"), "on-server-lost"),
    (dict(idle_timeout=-1), "idle timeout"), (dict(worker_start_cmd="a\nb"), "newline"),
    (dict(additional_args=("--partition=x\nrm",)), "newline"),
    (dict(additional_args=["--x"]), "tuples"),
])
def test_validation_errors(kw, match):
    args = dict(manager="slurm", time_limit=3600)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        QueueParams(**args)


def test_worker_args_in_upstream_order_and_warnings():
    p = QueueParams("slurm", 3600, cpus="8", resources=("gpus/nvidia=[0,1]", "mem=sum(1024)"),
                    group="g", coupling="cpus,gpus/nvidia", detect_resources="none",
                    no_hyper_threading=True, overview_interval=30, min_utilization=0.5,
                    idle_timeout=1200)
    assert p.worker_args() == (
        "--cpus", "8", "--resource", "gpus/nvidia=[0,1]", "--resource", "mem=sum(1024)",
        "--coupling", "cpus,gpus/nvidia", "--group", "g", "--no-hyper-threading",
        "--detect-resources", "none", "--overview-interval", "30s", "--min-utilization", "0.5")
    assert p.resources_complete
    assert sorted(p.declared_resources()) == ["cpus", "gpus/nvidia", "mem"]
    w = p.warnings()
    assert len(w) == 1 and "20m" in w[0]
    w = QueueParams("slurm", 3600).warnings()
    assert len(w) == 1 and "probing mode" in w[0]


def test_wire_roundtrip_and_strictness():
    p = QueueParams("pbs", 7200, backlog=3, max_workers_per_alloc=2, max_worker_count=10,
                    name="big", cpus="4", resources=("gpus=2",), worker_time_limit=3600,
                    worker_start_cmd="module load x", additional_args=("-q", "workq"))
    w = p.to_wire()
    assert QueueParams.from_wire(w) == p
    assert QueueParams.from_wire({**w, "time_limit": 7200}) == p  # cbor may give ints
    for bad in ({**w, "extra": 1}, {k: v for k, v in w.items() if k != "backlog"},
                {**w, "backlog": "3"}, {**w, "resources": "gpus=2"},
                {**w, "additional_args": ["-q", 1]}, {**w, "manager": None},
                {**w, "name": 5}, {**w, "worker_time_limit": 9000}, {**w, "time_limit": None},
                {**w, "min_utilization": "0"}, [], None):
        with pytest.raises(ValueError):
            QueueParams.from_wire(bad)
