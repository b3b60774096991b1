"""`worker start --retract-check-interval` (F55) and worker overviews (F56)."""

from __future__ import annotations

import time

import pytest

from hqenv import wait_until


@pytest.mark.timeout(60)
def test_queued_tasks_whose_time_request_no_longer_fits_go_elsewhere(hq_env):
    hq_env.start_server()
    w1 = hq_env.start_worker("--time-limit", "8s", "--retract-check-interval", "200ms")
    blocker = hq_env.submit(["--", "sleep", "20"])
    wait_until(lambda: hq_env.tasks(blocker)[0]["state"] == "running")
    started = time.monotonic()
    job = hq_env.submit(["--time-request", "5s", "--", "true"])
    # assigned to (queued on) worker 1, which has ~7 s left when it is submitted
    wait_until(lambda: (time.monotonic() - started > 3.5))
    w2 = hq_env.start_worker()
    hq_env.wait_job(job)
    task = hq_env.tasks(job)[0]
    assert task["state"] == "finished" and task["worker"] == w2.worker_id
    # done while worker 1 was still alive: it gave the task back, nobody waited for its end
    assert w1.poll() is None
