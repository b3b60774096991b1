"""Facts of upstream-facts.md §4 (task execution), §7 (multi-node tasks), §8 (workers) and
§9 (scheduling), and F77 (workers of a running multi-node task are never idle), as a user of
`hq` sees them."""

from __future__ import annotations

import time

import pytest

from conftest import wait_until
from hqenv import worker_banner_id


@pytest.mark.timeout(60)
def test_workers_of_a_running_multi_node_task_are_not_idle(hq_env):
    """F46/F77: root and secondary nodes of a running multi-node task do not stop on a short
    idle timeout; after the task ends each one's idle timer starts again from that moment."""
    hq_env.start_server()
    job = hq_env.submit(["--nodes", "3", "--", "sleep", "6"])
    # started together: the task starts as soon as the third one connects
    workers = [hq_env.start_worker("--idle-timeout", "2s", wait=False) for _ in range(3)]
    for w in workers:
        w.worker_id = wait_until(lambda: worker_banner_id(w), 20)
    hq_env.wait_task_state(job, 0, "running")
    # the task runs ~6 s: three times the idle timeout
    hq_env.wait_job(job, timeout=20)
    ended = time.monotonic()
    assert [t["state"] for t in hq_env.tasks(job)] == ["finished"]
    states = hq_env.worker_states()
    assert [states[w.worker_id] for w in workers] == ["RUNNING"] * 3, states
    for w in workers:
        assert w.wait(10) == 0
    stopped = time.monotonic() - ended
    assert 1.0 <= stopped <= 6.0, stopped
    states = hq_env.worker_states()
    assert [states[w.worker_id] for w in workers] == ["IDLE TIMEOUT"] * 3, states
