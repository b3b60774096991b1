"""Fixtures for end-to-end tests that run real `hq` processes over 127.0.0.1.

The process handling lives in `tests/hqenv.py` (shared with the namespace cluster and the
benchmarks): `HqEnv` starts servers and workers as subprocesses (output redirected to files in the
test's temporary directory, so a full pipe can never block them), runs client commands, and on
teardown stops every process it started -- by pid, SIGTERM first and SIGKILL after a grace period
-- plus any task pids that a test registered with `track_pid`. Every name tests import from here
(`HQ`, `wait_until`, `parse_horizontal`, ...) is re-exported below.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: hqenv

from hqenv import (  # noqa: E402,F401 - re-exported for the tests
    DEFAULT_TIMEOUT,
    ENV_DROP as _ENV_DROP,
    HQ,
    HqEnv,
    Process,
    hq_command as _hq_command,
    parse_horizontal,
    parse_vertical,
    parse_vertical_keys,
    pid_alive,
    read_file,
    wait_until,
)


@pytest.fixture
def hq_env(tmp_path):
    env = HqEnv(tmp_path)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory):
    """One server for all tests of a module (tests must not depend on job/worker ids)."""
    env = HqEnv(tmp_path_factory.mktemp("shared"))
    try:
        env.start_server()
        yield env
    finally:
        env.close()
