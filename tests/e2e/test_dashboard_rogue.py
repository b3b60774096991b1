"""`hq dashboard` as the client of a rogue server that holds the client key (it passes the
handshake): garbage in the event stream (hardware overviews with NaN, infinities and bignums,
bignum times, malformed records, batched records of 2^32 ids) is shown as far as it makes
sense, and garbage answers (a wrong message, an undecodable one, an error) end with one clear
error line -- never a traceback. The live source's threads (stream and overview requests)
survive the same answers."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cbor2
import pytest

from hyperqueue.common import serverdir
from hyperqueue.protocol import messages as m
from hyperqueue.protocol.framing import encode_frames
from hyperqueue.protocol.handshake import Handshake
from hyperqueue.version import __version__

from hqenv import HQ, clean_env
from rogue import make_server_dir, sealed_messages

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dashboard"))
from dash_fixture import hw, worker_config  # noqa: E402

pytestmark = pytest.mark.timeout(60)
T = 1.7e9


class Rogue:
    """A server directory whose access record (with a real key) points at a thread that
    passes the handshake and answers every request with `answer(request) -> [payload, ...]`."""

    def __init__(self, root: Path, answer):
        self.answer = answer
        self.lsock = socket.create_server(("127.0.0.1", 0))
        port = self.lsock.getsockname()[1]
        access = make_server_dir(str(root), port, port)
        self.key = serverdir.key_bytes(access["client"])
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.lsock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        with c:
            try:
                c.settimeout(10)
                hs = Handshake(role="hq-server", peer_role="hq-client", key=self.key,
                               hq_version=__version__)
                for raw in sealed_messages(c, hs, self.stop):
                    try:
                        req = m.decode(raw, m.FROM_CLIENT)
                    except Exception:  # noqa: BLE001
                        req = None
                    c.sendall(encode_frames([hs.channel.seal(x) for x in self.answer(req)]))
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.lsock.close()


def _overview(path, value, t=T + 2):
    state = hw([10.0, 20.0], 0.5, 30.0)
    d = state["state"]
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    return [t, "worker-overview", {"id": 1, "hw-state": state}]


GOOD = [[T, "server-start", {"server_uid": "rogue1"}],
        [T + 1, "worker-connected", {"id": 1, "configuration": worker_config("n1", 2, 1, 1.0)}]]
CORE = ("cpu_usage", "cpu_per_core_percent_usage")
GARBAGE_EVENTS = {
    "NaN and infinite usage": [_overview((*CORE,), [math.nan, math.inf]),
                               _overview(("memory_usage", "free"), math.nan, T + 3)],
    "bignum usage": [_overview((*CORE,), [10**400]),
                     _overview(("memory_usage", "free"), -10**400, T + 3),
                     _overview(("nvidia_gpus", "gpus", 0, "processor_usage"), 10**400, T + 4)],
    "bignum and infinite times": [[10**400, "job-created", {}], [math.inf, "server-stop", {}],
                                  [-math.inf, "worker-lost", {"id": 1}]],
    "malformed records": [[T, "job-created", {"job": 1}], [T, "task-started", {"job": "x"}],
                          [T, 5, 6], [], ["a"], [None, None, None], [T, "x" * 5000, {}]],
    "batched records of 2^32 ids": [[T + 3, "task-progress", {
        "job": 1, "worker": 1, "started": "0-4294967295", "finished": "0-4294967295"}]],
}


def _events_answer(events):
    def answer(req):
        if isinstance(req, m.StreamEventsRequest):
            return [cbor2.dumps([108, events, False]), cbor2.dumps([108, [], True])]
        return [m.encode(m.OkResponse())]
    return answer


def _dashboard_once(root):
    def limit():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    return subprocess.run([*HQ, "--server-dir", str(root), "dashboard", "--once"],
                          capture_output=True, text=True, timeout=30, env=clean_env(),
                          preexec_fn=limit)


@pytest.mark.parametrize("case", list(GARBAGE_EVENTS))
def test_garbage_events_are_shown_as_far_as_they_make_sense(tmp_path, case):
    rogue = Rogue(tmp_path / "rogue", _events_answer(GOOD + GARBAGE_EVENTS[case]))
    try:
        res = _dashboard_once(tmp_path / "rogue")
    finally:
        rogue.close()
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and res.stderr == "", res.stderr
    assert "n1" in res.stdout  # the worker of the good records is there


GARBAGE_ANSWERS = {
    "another message": [m.encode(m.JobsResponse([], []))],
    "undecodable": [b"\xff\x00garbage"],
    "an unknown tag": [cbor2.dumps([2**70, 1])],
    "events that are no list": [cbor2.dumps([108, 5, False])],
    "an error": [m.encode(m.ErrorResponse("go away\n" * 3))],
}


@pytest.mark.parametrize("case", list(GARBAGE_ANSWERS))
def test_garbage_answers_end_with_one_clear_error(tmp_path, case):
    rogue = Rogue(tmp_path / "rogue", lambda req: GARBAGE_ANSWERS[case])
    try:
        res = _dashboard_once(tmp_path / "rogue")
    finally:
        rogue.close()
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and res.stderr.startswith("Error: "), res.stderr
    assert len(res.stderr) < 500, res.stderr


def test_the_live_source_threads_survive_a_rogue_server(tmp_path, monkeypatch):
    """The interactive dashboard's source: its stream thread turns garbage into notices and
    reconnects; its overview-request thread keeps asking. Neither thread raises."""
    from hyperqueue.dashboard import source

    monkeypatch.setattr(source, "RETRY_DELAY", 0.1)
    monkeypatch.setattr(source, "OVERVIEW_RENEW", 0.1)
    answers = [[cbor2.dumps([108, GOOD + GARBAGE_EVENTS["bignum usage"], False]),
                cbor2.dumps([108, [], True])],
               [b"\xff\x00"], [m.encode(m.JobsResponse([], []))], [cbor2.dumps([108, 5, 1])]]
    count = {"stream": 0, "overviews": 0}

    def answer(req):
        if isinstance(req, m.StreamEventsRequest):
            count["stream"] += 1
            return answers[count["stream"] % len(answers)]
        count["overviews"] += 1
        return [[b"\xff", m.encode(m.JobsResponse([], [])), cbor2.dumps([102, 5])][
            count["overviews"] % 3]]

    errors = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    rogue = Rogue(tmp_path / "rogue", answer)
    src = source.LiveSource(str(tmp_path / "rogue"))
    try:
        src.start()
        deadline = time.monotonic() + 10
        while (count["stream"] < 6 or count["overviews"] < 6) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert count["stream"] >= 6 and count["overviews"] >= 6, count
        assert src._thread.is_alive() and src._asker.is_alive()
    finally:
        src.stop()
        rogue.close()
    assert errors == []
    notices = [i[1] for i in src.items if i[0] == "notice"]
    assert notices and all("Traceback" not in n and len(n) < 500 for n in notices), notices
