"""`hq worker start --heartbeat 0` (any spelling of zero) is a usage error up front (exit 2, clap
wording), as a negative or too long duration is; before, the worker started, the server refused
its registration ("Invalid worker heartbeat: must be positive") and the worker retried to
connect for its whole connect budget. Durations that may be zero (e.g. `--overview-interval
0s`, which disables overviews) are not affected.
"""

from __future__ import annotations

import time

import pytest


@pytest.mark.parametrize("value", ["0", "0s", "0ms", "00:00:00", "0h 0m"])
@pytest.mark.timeout(60)
def test_zero_heartbeat_is_a_usage_error(hq_env, value):
    hq_env.start_server()
    started = time.monotonic()
    res = hq_env.run(["worker", "start", "--cpus", "1", "--heartbeat", value])
    assert res.returncode == 2, res
    assert res.stderr.startswith(
        f"error: invalid value '{value}' for '--heartbeat <HEARTBEAT>': "
        f"Invalid duration '{value}': must be positive\n"), res.stderr
    assert "For more information, try '--help'." in res.stderr
    assert time.monotonic() - started < 10
    assert hq_env.command(["worker", "list", "--all"], as_json=True) == []


@pytest.mark.timeout(60)
def test_zero_allowed_durations_still_start_a_worker(hq_env):
    hq_env.start_server()
    w = hq_env.start_worker("--heartbeat", "500ms", "--overview-interval", "0s")
    workers = hq_env.command(["worker", "list"], as_json=True)
    assert [x["id"] for x in workers] == [w.worker_id]
    assert workers[0]["configuration"]["heartbeat_interval"] == 0.5
