"""The `hq alloc` wire messages reject what the server must not act on."""

import pytest

from hyperqueue.autoalloc import QueueParams
from hyperqueue.protocol import messages as m
from hyperqueue.protocol.errors import ProtocolError

GOOD = QueueParams("pbs", 600.0, cpus="2", additional_args=("-q", "workq")).to_wire()


def roundtrip(msg):
    return m.decode(m.encode(msg), m.FROM_CLIENT)


def test_good_params_decode():
    assert roundtrip(m.AllocAddRequest(GOOD, False)).params == GOOD


@pytest.mark.parametrize("change", [
    {"manager": "lsf"}, {"time_limit": -1.0}, {"backlog": 0}, {"max_workers_per_alloc": "2"},
    {"name": "a b"}, {"cpus": "x"}, {"additional_args": ["--x\n#SBATCH --evil"]},
    {"worker_time_limit": 1200.0}, {"on_server_lost": "explode"}, {"min_utilization": 2.0},
    {"unknown": 1},
])
def test_bad_params_are_refused(change):
    bad = dict(GOOD, **change)
    with pytest.raises(ProtocolError):
        roundtrip(m.AllocAddRequest(bad, True))
    missing = {k: v for k, v in GOOD.items() if k != "backlog"}
    with pytest.raises(ProtocolError):
        roundtrip(m.AllocDryRunRequest(missing))


@pytest.mark.parametrize("msg", [
    m.AllocInfoRequest(1, ["paused"]), m.AllocInfoRequest(-1, None),
    m.AllocQueueRequest(1, "pause", "yes"), m.AllocLogRequest("a b"), m.AllocLogRequest(""),
])
def test_bad_requests_are_refused(msg):
    with pytest.raises(ProtocolError):
        roundtrip(msg)
