"""Ids are never given twice across `journal prune` and a restart (real `hq` processes): jobs
1..3 finish and their worker stops, the prune drops them all, and after the restart the next job
is 4 and the next worker 3 (upstream's restore: highest worker id + 2), as without the prune.
Before, the restarted server gave job id 1 and worker id 2 again. A second prune and restart
continue from there, and a job that was live at the prune keeps its id and state.
"""

from __future__ import annotations

import pytest


def _stop_server(env, server) -> None:
    env.command(["server", "stop"])
    assert server.wait(10) == 0, server.stderr()


def _finished_job(env) -> int:
    job = env.submit(["--", "true"])
    env.wait_job(job)
    return job


def _stop_workers(env, *workers) -> None:
    env.command(["worker", "stop", "all"])
    for w in workers:
        w.wait(10)


@pytest.mark.timeout(90)
def test_ids_continue_after_prune_and_restart(hq_env):
    journal = str(hq_env.root / "journal.bin")
    server = hq_env.start_server("--journal", journal)
    w1 = hq_env.start_worker()
    assert w1.worker_id == 1
    assert [_finished_job(hq_env) for _ in range(3)] == [1, 2, 3]
    _stop_workers(hq_env, w1)
    out = hq_env.command(["journal", "prune"])
    assert out.startswith("Journal pruned: ") and out.rstrip().endswith(" events dropped, 1 kept")
    _stop_server(hq_env, server)

    server = hq_env.start_server("--journal", journal)
    assert hq_env.command(["job", "list", "--all"], as_json=True) == []
    assert hq_env.command(["worker", "list", "--all"], as_json=True) == []
    w2 = hq_env.start_worker()
    assert w2.worker_id == 3
    assert _finished_job(hq_env) == 4
    live = hq_env.submit(["--cpus", "8", "--", "true"])  # cannot run on a 1-cpu worker
    assert live == 5
    _stop_workers(hq_env, w2)
    hq_env.command(["journal", "prune"])
    _stop_server(hq_env, server)

    server = hq_env.start_server("--journal", journal)
    jobs = hq_env.command(["job", "list", "--all"], as_json=True)
    assert [(j["id"], j["task_stats"]["waiting"]) for j in jobs] == [(5, 1)]
    assert hq_env.submit(["--", "true"]) == 6
    w3 = hq_env.start_worker()
    assert w3.worker_id == 5
    hq_env.wait_job(6)
    _stop_server(hq_env, server)
