"""Fixtures for tests on a cluster of network namespaces (see netns_cluster.py).

Tests marked `netns` get a cluster (`cluster` per test, `shared_cluster` per module); where
namespaces cannot be built (not root, no `ip`/`unshare`/`nsenter`, permission denied) they are
skipped with the reason. The cluster is always torn down: the fixture closes it in a `finally`,
and a finalizer closes it again (a no-op then) in case the fixture's generator is not resumed.
"""

from __future__ import annotations

import functools

import pytest

from netns_cluster import HqCluster, unavailable_reason


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "netns: builds a cluster of network namespaces (needs root and iproute2)")


@functools.cache
def _reason() -> str | None:
    return unavailable_reason()


def _build(request, root, n_compute=3) -> HqCluster:
    reason = _reason()
    if reason is not None:
        pytest.skip(f"cannot build a namespace cluster here: {reason}")
    c = HqCluster(root, n_compute)
    request.addfinalizer(c.close)
    c.start()
    return c


@pytest.fixture
def cluster(request, tmp_path):
    c = _build(request, tmp_path / "cluster")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def shared_cluster(request, tmp_path_factory):
    """One cluster with a server (`--host login`) and a 1-CPU worker on each of 3 compute
    nodes, for tests that do not break anything."""
    c = _build(request, tmp_path_factory.mktemp("shared-cluster"))
    try:
        c.start_server()
        for node in c.computes:
            c.start_worker(node, "--heartbeat", "1s")
        yield c
    finally:
        c.close()
