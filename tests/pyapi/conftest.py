"""Fixtures for the Python API tests: a real LocalCluster (server + worker processes over
encrypted loopback TCP) shared by the tests of a module, and a fresh working directory per test
(the submit directory of the jobs it submits)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: hqenv

from hqenv import HQ, clean_env, pid_alive, wait_until  # noqa: E402,F401


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from hyperqueue.cluster import LocalCluster, WorkerConfig

    c = LocalCluster(tmp_path_factory.mktemp("cluster") / "sd",
                     worker_config=WorkerConfig(cores=2))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def client(cluster, workdir):
    c = cluster.client()
    try:
        yield c
    finally:
        c.connection.close()
