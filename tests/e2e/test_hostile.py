"""Hostile input against a live server, on both ports, before and after authentication.

One server (with a worker running a long array job) takes hand-made and hypothesis-generated
garbage: raw bytes, zero/oversize/truncated frames, hellos with bignums, wrong types, huge strings
and deep CBOR in every field; then, after a real handshake with the key from access.json, sealed
messages with unknown (incl. bignum) tags, wrong field counts and types, bignums everywhere, deep
CBOR, and replayed/reordered/tampered/unsealed frames. After every batch the server must be alive
and serve a real request; at the end `hq job list` works, the job finished with every task
FINISHED on the worker that ran from the start, and the server log has no traceback and was not
flooded (its rate limiting shows up as "similar messages suppressed").

At least HQ_HOSTILE_INPUTS inputs per port (default 2000): half before, half after
authentication.
"""

from __future__ import annotations

import copy
import math
import os
import re
import selectors
import socket
import struct
import threading
import time
from collections import Counter
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperqueue.client.blocking import BlockingClient
from hyperqueue.common import serverdir
from hyperqueue.core.model import WorkerConfig
from hyperqueue.core.resources import ResourceDef
from hyperqueue.protocol import messages as m
from hyperqueue.protocol.framing import FrameDecoder, encode_frames
from hyperqueue.protocol.handshake import Handshake

from hqenv import HqEnv, wait_until
from rogue import make_server_dir

INPUTS = int(os.environ.get("HQ_HOSTILE_INPUTS", "2000"))  # per port
BATCH = 50
EXAMPLES = max(1, INPUTS // 2 // BATCH)  # hypothesis batches per port and stage
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
ROLES = {"client": ("hq-client", "hq-server"), "worker": ("worker", "server")}
ARRAY = 150  # tasks of the job that runs during the whole test

pytestmark = pytest.mark.timeout(180)


def frame(payload: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + payload


def hello(my_role="hq-client", **fields) -> bytes:
    h = {"proto": 1, "version": "0.0.1", "role": my_role, "auth": True, "challenge": bytes(32)}
    h.update(fields)
    return cbor2.dumps(h)


BIGNUMS = [1 << 64, 1 << 16000, -(1 << 16000), 2**63, -(2**63) - 1, 2**32, 10**4400]
HUGE = ["x\n" * 1900, "\x1b[31m" * 500, "é" * 1500]
DEEP = b"\x81" * 1500 + b"\x00"  # 1500 nested arrays (fits a handshake frame)


def _deep(n: int):
    v: object = 0
    for _ in range(n):
        v = [v]
    return v


# -- strategies ---------------------------------------------------------------------------------
def _bignum(i: int) -> int:
    return BIGNUMS[i]


# (not sampled_from: hypothesis itself cannot repr an integer of more than 4300 digits)
bignums = st.integers(0, len(BIGNUMS) - 1).map(_bignum)
scalars = st.one_of(
    st.integers(), bignums, st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.binary(max_size=40), st.none(), st.booleans(),
    st.sampled_from(["x\n" * 3, "\x00", "..", "/", "-1", "all", "last"]).map(lambda t: t * 100),
)
values = st.recursive(
    scalars,
    lambda c: st.one_of(st.lists(c, max_size=6),
                        st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), c,
                                        max_size=4)),
    max_leaves=25,
)
HELLO_FIELDS = ("proto", "version", "role", "auth", "challenge")


@st.composite
def hostile_hellos(draw, role):
    """A hello with some fields replaced by hostile values (or dropped, or extra keys)."""
    fields = {"proto": 1, "version": "0.0.1", "role": role, "auth": True,
              "challenge": draw(st.binary(min_size=32, max_size=32))}
    for name in draw(st.lists(st.sampled_from(HELLO_FIELDS), min_size=1, max_size=3)):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            fields.pop(name, None)
        elif choice == 1:
            fields[name] = draw(st.one_of(bignums, st.sampled_from(HUGE + [_deep(300)])))
        else:
            fields[name] = draw(values)
    if draw(st.booleans()):
        fields.update(draw(st.dictionaries(st.text(max_size=8), values, max_size=3)))
    return cbor2.dumps(fields)


def preauth_inputs(role):
    payloads = st.one_of(hostile_hellos(role), st.binary(max_size=300),
                         values.map(cbor2.dumps))
    return st.one_of(
        payloads.map(frame),  # one framed payload
        st.tuples(payloads, st.binary(max_size=200)).map(lambda t: frame(t[0]) + t[1]),
        st.binary(min_size=1, max_size=600),  # raw bytes, any "length"
        payloads.map(lambda p: frame(p)[: max(1, len(p) // 2)]),  # truncated
    )


SAFE_CLIENT_TAGS = sorted(set(m._REGISTRY[m.FROM_CLIENT]) - {2, 6, 10, 12, 13, 14})
# 2 stop server, 6 cancel, 10 stop workers, 12/13 close/forget, 14 journal: a well-formed one
# would legitimately change state this test checks; they are sent with a wrong field count.
DANGEROUS_CLIENT = {2: 1, 6: 3, 10: 2, 12: 2, 13: 3, 14: 2}


# (lists of `values` are pathologically slow to generate in hypothesis: fields come from one
# recursive draw instead)
def _as_fields(v) -> list:
    return v if isinstance(v, list) else [v]


_FIELDS = values.map(_as_fields)


def _exactly(n: int, v) -> list:
    fields = _as_fields(v)
    return (fields * n)[:n] if fields else [None] * n


_TAGS = {"client": st.one_of(st.sampled_from(SAFE_CLIENT_TAGS), bignums, st.integers(),
                             st.text(max_size=3)),
         "worker": st.one_of(st.sampled_from(sorted(m._REGISTRY[m.FROM_WORKER])), bignums,
                             st.integers(), st.text(max_size=3))}
_WRONG_COUNT = {"client": st.sampled_from(sorted(DANGEROUS_CLIENT.items())),
                "worker": st.sampled_from(sorted(m._REGISTRY[m.FROM_WORKER])).map(
                    lambda t: (t, 9))}


# -- the message types added after the first audit, well-formed but for hostile fields -------------
def _new_samples(job: int) -> dict:
    """Valid samples of the newer messages per port: dashboards' overview requests, automatic
    allocation, submits whose batches share a template; worker overviews and notifications.
    Safe when sent as they are: the submit's tasks need a resource no worker has, the queue
    parameters name no real manager (this machine may have a real `sbatch`)."""
    from hyperqueue.autoalloc import QueueParams
    from hyperqueue.core.model import ProgramDef, TaskTemplate
    from hyperqueue.core.resources import ResourceRequest, ResourceRequestEntry

    req = ResourceRequest([ResourceRequestEntry(NO_RESOURCE, 10000, "compact")])
    tmpl = TaskTemplate(ProgramDef(["true"]), [req])
    params = QueueParams("slurm", 3600.0, cpus="1").to_wire()
    params["manager"] = "hostile-none"  # (refused as it is; see `_safe`)
    overview = {"state": {
        "cpu_usage": {"cpu_per_core_percent_usage": [1.5, 2.0]},
        "memory_usage": {"total": 100, "free": 50},
        "network_usage": {k: 0 for k in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets",
                                          "rx_errors", "tx_errors")},
        "nvidia_gpus": {"gpus": [{"id": "BUS1", "processor_usage": 10.0, "mem_usage": 50.0}]},
        "amd_gpus": None, "timestamp": 1700000000}}
    client = [m.OverviewsRequest(2.0, 10.0), m.AllocListRequest(),
              m.AllocInfoRequest(7, ["queued"]), m.AllocQueueRequest(7, "pause", False),
              m.AllocLogRequest("1234.pbs"), m.AllocAddRequest(params, True),
              m.AllocDryRunRequest(params),
              m.SubmitRequest("hostile", None, "/tmp", None,
                              [[tmpl, "0-3", None, []], [tmpl, "4-5", [b"a", b"b"], [0]]])]
    worker = [m.WorkerOverview(overview), m.TaskNotify(job, 1, 0, b"hello")]
    return {"client": [cbor2.loads(m.encode(x)) for x in client],
            "worker": [cbor2.loads(m.encode(x)) for x in worker]}


NO_RESOURCE = "hostilenone"
NEW_SAMPLES = _new_samples(1)  # (the live job is the first one)


def _paths(obj, prefix=()):
    out = []
    items = enumerate(obj) if isinstance(obj, list) else (
        obj.items() if isinstance(obj, dict) else ())
    for k, x in items:
        out.append(prefix + (k,))
        out.extend(_paths(x, prefix + (k,)))
    return out


def _safe(wire):
    """A mutated message that the server would act on is kept harmless: a submit that decodes
    still needs a resource no worker has (else the sample is sent), queue parameters that
    decode never name a real manager."""
    try:
        msg = m.decode(cbor2.dumps(wire), m.FROM_CLIENT)
    except Exception:  # noqa: BLE001 - refused by the decoder: sent as it is
        return wire
    if isinstance(msg, m.SubmitRequest):
        harmless = all(any(e.name == NO_RESOURCE for r in b[0].requests for e in r.entries)
                       for b in msg.batches)
        return wire if harmless else NEW_SAMPLES["client"][-1]
    if isinstance(msg, (m.AllocAddRequest, m.AllocDryRunRequest)):
        wire = list(wire)
        wire[1] = dict(wire[1], manager="hostile-none")
    return wire


@st.composite
def hostile_new_messages(draw, port):
    """A sample of a newer message with one to three positions set to hostile values."""
    wire = copy.deepcopy(draw(st.sampled_from(NEW_SAMPLES[port])))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(wire) if p != (0,)]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        cur = wire
        for k in path[:-1]:
            cur = cur[k]
        cur[path[-1]] = draw(values)
    return cbor2.dumps(_safe(wire) if port == "client" else wire)


@st.composite
def hostile_messages(draw, port):
    kind = draw(st.integers(0, 11))
    if kind >= 10:
        return draw(hostile_new_messages(port))
    if kind == 0:
        return draw(st.binary(max_size=200))  # not CBOR (or some CBOR)
    if kind == 1:
        return cbor2.dumps(draw(values))
    if kind == 2:
        tag, count = draw(_WRONG_COUNT[port])
        return cbor2.dumps([tag, *_exactly(count, draw(values))])
    return cbor2.dumps([draw(_TAGS[port]), *draw(_FIELDS)])


# -- the live server ---------------------------------------------------------------------------
class Live:
    def __init__(self, env: HqEnv):
        self.env = env
        self.server = env.start_server()
        self.worker = env.start_worker("--resource", "magic=sum(1)", "--heartbeat", "1s")
        # Only the real worker has `magic`: fake workers registered below never get its tasks.
        self.job = env.submit(["--array", f"1-{ARRAY}", "--resource", "magic=1", "--",
                               "sleep", "0.1"])
        self.root = str(env.server_dir)
        access = serverdir.load_access(self.root, "client")[0]
        self.ports = {"client": access["client"]["port"], "worker": access["worker"]["port"]}
        self.keys = {p: serverdir.key_bytes(access[p]) for p in ("client", "worker")}
        self.sent = Counter()
        self.finished_seen = 0

    def check(self) -> None:
        """The server is alive and answers a real request on a fresh connection."""
        assert self.server.poll() is None, f"server died:\n{self.server.stderr()[-3000:]}"
        with BlockingClient(self.root, timeout=5) as c:
            info = c.request(m.ServerInfoRequest(), timeout=5)
        assert isinstance(info, m.ServerInfoResponse)

    def check_job_progressing(self) -> None:
        stats = self.env.job_state(self.job)
        assert not stats.get("failed") and not stats.get("canceled"), stats
        finished = stats.get("finished", 0)
        assert finished >= self.finished_seen
        self.finished_seen = finished

    # -- connections --
    def raw(self, port: str) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.ports[port]), timeout=5)
        return s

    def authenticated(self, port: str):
        """A socket past a real handshake and its channel (the project's own protocol code)."""
        role, peer_role = ROLES[port]
        hs = Handshake(role=role, peer_role=peer_role, key=self.keys[port], hq_version="0.0.1")
        s = self.raw(port)
        s.sendall(encode_frames(hs.start()))
        decoder = FrameDecoder()
        while not hs.done:
            data = s.recv(65536)
            assert data, "server closed during a real handshake"
            decoder.feed(data)
            for payload in decoder.frames():
                reply = hs.receive(payload)
                if reply:
                    s.sendall(encode_frames(reply))
        return s, hs.channel

    def registered_worker(self):
        """A fake worker (no `magic`), registered: hostile messages then hit the reader."""
        s, ch = self.authenticated("worker")
        config = WorkerConfig("fake", [ResourceDef.range_of("cpus", 0, 0)], heartbeat=5.0)
        s.sendall(encode_frames([ch.seal(m.encode(m.RegisterWorker(config)))]))
        return s, ch

    def blast(self, sockets_and_data) -> None:
        """Sends each socket its bytes, then waits (bounded) for the server to close them."""
        sel = selectors.DefaultSelector()
        for s, data in sockets_and_data:
            try:
                s.sendall(data)
                # Half-close: a server waiting for the rest of a truncated frame sees the end
                # at once (as from a peer that vanished) instead of waiting for its deadline.
                s.shutdown(socket.SHUT_WR)
            except OSError:  # the server already closed it (e.g. an oversize header)
                s.close()
                continue
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + 1.0
        while sel.get_map() and time.monotonic() < deadline:
            for key, _ in sel.select(0.1):
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
        for key in list(sel.get_map().values()):  # e.g. a truncated frame: we hang up
            key.fileobj.close()
        sel.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    env = HqEnv(tmp_path_factory.mktemp("hostile"))
    try:
        yield Live(env)
    finally:
        env.close()


PORTS = ["client", "worker"]


def _handmade_preauth(port: str) -> list[bytes]:
    role = ROLES[port][0]
    out = [b"", b"\x00", b"\x00\x00\x00\x00", frame(b""), struct.pack("<I", 0xFFFFFFFF),
           struct.pack("<I", 4097) + b"x" * 100, struct.pack("<I", 100) + b"x" * 10,
           frame(DEEP), frame(b"\xa1\x80\x00"), frame(b"\xc2\x59\x01\x00" + b"\xff" * 256),
           frame(b"\x5b" + b"\xff" * 8), frame(b"\x9f" * 2000), os.urandom(4096),
           frame(hello(role)) + os.urandom(500), frame(hello(role)) + frame(os.urandom(64)),
           frame(hello(role, auth=False)), frame(hello(ROLES[port][1]))]  # reflected role
    for name in HELLO_FIELDS:
        for bad in BIGNUMS + HUGE + ["", "1", 1.5, float("nan"), [], {}, None, True, b"x" * 31,
                                     b"x" * 33, _deep(1000)]:
            payload = hello(role, **{name: bad})
            out.append(frame(payload)[:4 + 4096] if len(payload) > 4096 else frame(payload))
    out.append(frame(hello(role, proto=2, version="x" * 3000)))
    return out


@pytest.mark.parametrize("port", PORTS)
def test_hostile_before_authentication(live, port):
    handmade = _handmade_preauth(port)
    for i in range(0, len(handmade), BATCH):
        live.blast([(live.raw(port), data) for data in handmade[i:i + BATCH]])
        live.sent[port] += len(handmade[i:i + BATCH])
        live.check()

    @SETTINGS
    @given(st.lists(preauth_inputs(ROLES[port][0]), min_size=BATCH, max_size=BATCH))
    def run(batch):
        live.blast([(live.raw(port), data) for data in batch])
        live.sent[port] += len(batch)
        live.check()

    run()
    live.check_job_progressing()


def _handmade_postauth(port: str) -> list:
    """(kind, payloads): kind 'sealed' seals each payload in order; the others misuse frames."""
    tag = 4 if port == "client" else 203
    ok = m.encode(m.JobListRequest(None)) if port == "client" else m.encode(m.Heartbeat())
    out: list = [("sealed", [cbor2.dumps([t])]) for t in BIGNUMS + [-1, 2**16, "x", None]]
    out += [("sealed", [cbor2.dumps([tag, *([b] * k)])]) for b in BIGNUMS + HUGE + [_deep(2000)]
            for k in (0, 1, 2, 5)]
    out += [("sealed", [b"\x81" * n + b"\x00"]) for n in (100, 1000, 100_000)]
    out += [("sealed", [b"\x9f" * 50_000]), ("sealed", [b"\xa1\x80\x00"]), ("sealed", [b""]),
            ("sealed", [cbor2.dumps({"a": 1})]), ("sealed", [b"\x82\x04\xc2\x59\x01\x00" + b"\xff" * 256]),
            ("replay", [ok]), ("reorder", [ok, ok]), ("tamper", [ok]), ("plain", [ok]),
            ("plain", [os.urandom(100)]), ("sealed", [ok, os.urandom(64)])]
    # the newer messages with hand-picked hostile fields (see `_new_samples`)
    samples = NEW_SAMPLES[port]
    for sample in samples:
        for i in range(1, len(sample)):
            for bad in (math.nan, math.inf, -1, 2**70, "x" * 5000, _deep(500), None, [], {}):
                wire = copy.deepcopy(sample)
                wire[i] = bad
                out.append(("sealed", [cbor2.dumps(_safe(wire) if port == "client" else wire)]))
    if port == "client":
        sub = copy.deepcopy(samples[-1])
        sub[5][1][1] = "0-4294967295"  # a second batch (sharing the template) of 2^32 ids
        sub[5][1][3] = list(range(1000))  # depending on tasks the job does not have
        out.append(("sealed", [cbor2.dumps(sub)]))
        shared = copy.deepcopy(samples[-1])
        shared[5] = [shared[5][0]] * 20_000  # 20k batches of the same ids
        out.append(("sealed", [cbor2.dumps(shared)]))
    else:
        for key, bad in (("cpu_usage", {"cpu_per_core_percent_usage": [10**400, math.nan]}),
                         ("memory_usage", {"total": math.inf, "free": -(2**70)}),
                         ("timestamp", 2**200)):
            wire = copy.deepcopy(samples[0])
            wire[1]["state"][key] = bad
            out.append(("sealed", [cbor2.dumps(wire)]))
    return out


def _postauth_connection(live, port: str, kind: str, payloads: list, registered: bool):
    s, ch = live.registered_worker() if registered else live.authenticated(port)
    if kind == "sealed":
        data = encode_frames([ch.seal(p) for p in payloads])
    elif kind == "replay":
        sealed = ch.seal(payloads[0])
        data = encode_frames([sealed, sealed])
    elif kind == "reorder":
        a, b = ch.seal(payloads[0]), ch.seal(payloads[1])
        data = encode_frames([b, a])
    elif kind == "tamper":
        sealed = bytearray(ch.seal(payloads[0]))
        sealed[len(sealed) // 2] ^= 0x40
        data = encode_frames([bytes(sealed)])
    else:  # plain: not sealed at all
        data = encode_frames(payloads)
    return s, data


@pytest.mark.parametrize("port", PORTS)
def test_hostile_after_authentication(live, port):
    handmade = _handmade_postauth(port)
    for i in range(0, len(handmade), BATCH):
        batch = [_postauth_connection(live, port, kind, p, registered=False)
                 for kind, p in handmade[i:i + BATCH]]
        if port == "worker":  # the same again to a registered worker's reader
            batch += [_postauth_connection(live, port, kind, p, registered=True)
                      for kind, p in handmade[i:i + BATCH]]
        live.blast(batch)
        live.sent[port] += len(batch)
        live.check()

    @SETTINGS
    @given(st.lists(hostile_messages(port), min_size=BATCH, max_size=BATCH),
           st.booleans())
    def run(batch, registered):
        registered = registered and port == "worker"
        live.blast([_postauth_connection(live, port, "sealed", [p], registered)
                    for p in batch])
        live.sent[port] += len(batch)
        live.check()

    run()
    live.check_job_progressing()


@pytest.mark.parametrize("port", PORTS)
def test_huge_frame_of_tiny_containers_is_refused_without_stalling(live, port):
    """64 MiB of empty arrays in one sealed frame decodes to ~4 GB in ~25 s of held event loop;
    the server refuses it after a shape check in a thread and keeps answering meanwhile."""
    from hyperqueue.protocol.framing import MAX_FRAME

    payload = b"\x9f" + b"\x80" * (MAX_FRAME - 64) + b"\xff"
    s, ch = (live.registered_worker() if port == "worker" else live.authenticated(port))
    data = encode_frames([ch.seal(payload)])
    del payload
    s.settimeout(30)
    started = time.monotonic()
    sender = threading.Thread(target=lambda: _send_ignoring_reset(s, data))
    sender.start()
    answered = []
    while sender.is_alive() or time.monotonic() - started < 1.0:
        t = time.monotonic()
        live.check()
        answered.append(time.monotonic() - t)
    sender.join()
    assert max(answered) < 1.0, answered
    s.settimeout(10)
    try:
        while s.recv(65536):
            pass  # the server closes the connection
    except OSError:
        pass
    s.close()
    assert time.monotonic() - started < 10
    with open(f"/proc/{live.server.pid}/status") as f:
        hwm_kb = int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))
    assert hwm_kb < 1_000_000, f"server peak memory {hwm_kb} kB"


def _send_ignoring_reset(s, data):
    try:
        s.sendall(data)
    except OSError:
        pass


def test_after_the_storm(live):
    """Runs last (module order): every input was sent, the job is intact, the log is sane."""
    for port in PORTS:
        assert live.sent[port] >= INPUTS, live.sent
    env = live.env
    out = env.command(["job", "list", "--all"])
    assert f"| {live.job} " in out
    env.wait_job(live.job, timeout=120)
    tasks = env.tasks(live.job)
    assert len(tasks) == ARRAY and {t["state"] for t in tasks} == {"finished"}
    assert live.worker.poll() is None
    states = env.worker_states()
    assert states[live.worker.worker_id] == "RUNNING", states
    log = live.server.stderr()
    assert "Traceback" not in log, log[-5000:]
    assert "suppressed on the client port" in log and "suppressed on the worker port" in log
    # Not flooded: a handful of lines per second and port at most (10 each, plus summaries
    # and the fake workers' register/lost info lines).
    per_second = Counter(line[:20] for line in log.splitlines() if " WARN " in line)
    assert max(per_second.values()) <= 2 * 10 + 2, per_second.most_common(3)


# -- rogue server --------------------------------------------------------------------------------
def _rogue_server(tmp_path: Path, payload: bytes):
    """A fake server directory whose access record points at a socket that answers every
    connection with `payload` (a hostile hello) and then hangs up."""
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]
    root = str(tmp_path / "rogue")
    make_server_dir(root, port, port)
    stop = threading.Event()

    def serve():
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = lsock.accept()
            except OSError:
                continue
            with c:
                try:
                    c.sendall(payload)
                    c.settimeout(1)
                    c.recv(65536)
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return root, stop, lsock, t


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ["bignum-proto", "huge-strings", "deep", "garbage"])
def test_rogue_server_gives_client_and_worker_a_clear_error(hq_env, tmp_path, case):
    payload = {
        "bignum-proto": frame(hello("hq-server", proto=1 << 16000)),
        "huge-strings": frame(hello("hq-server", version="v\n" * 1000, role="r\n" * 900)),
        "deep": frame(DEEP),
        "garbage": frame(b"\xa1\x80\x00") + os.urandom(100),
    }[case]
    root, stop, lsock, t = _rogue_server(tmp_path, payload)
    try:
        res = hq_env.run(["job", "list"], server_dir=root, timeout=20)
        assert res.returncode == 1, (res.stdout, res.stderr)
        assert "Traceback" not in res.stderr and "Cannot connect to the server" in res.stderr
        assert len(res.stderr) < 600 and res.stderr.count("\n") <= 2, res.stderr
        w = hq_env.start_worker(server_dir=root, wait=False)
        code = w.wait(30)
        err = w.stderr()
        assert code == 1, err
        assert "Traceback" not in err and "Cannot connect to the server" in err, err
        assert len(err) < 2000, err
    finally:
        stop.set()
        t.join(5)
        lsock.close()


def test_log_lines_quote_peer_values(live):
    """A peer's strings reach the log escaped and cut: no forged lines, no 4 KB lines."""
    s = live.raw("client")
    live.blast([(s, frame(hello("evil\nFORGED-LINE" + "y" * 3000)))])
    s2, ch = live.authenticated("client")
    live.blast([(s2, encode_frames([ch.seal(cbor2.dumps([4, "z\nFORGED" * 500]))]))])
    time.sleep(1.2)  # past any rate-limit window
    log = live.server.stderr()
    assert not any(line.startswith("FORGED") for line in log.splitlines())
    assert max(len(line) for line in log.splitlines()) < 700
    wait_until(lambda: live.server.poll() is None, 1)
    assert re.search(r"rejected|malformed", log)


def test_invalid_request_fields_get_an_error_answer_before_the_close(live):
    """An authentic frame whose request has a malformed field changes nothing, and the client is
    told why (instead of a bare "connection lost")."""
    s, ch = live.authenticated("client")
    bad = cbor2.dumps([4, 12345])  # JobListRequest(states=<an int instead of a list>)
    s.sendall(encode_frames([ch.seal(bad)]))
    s.settimeout(10)
    decoder = FrameDecoder()
    answers = []
    while True:
        data = s.recv(65536)
        if not data:
            break
        decoder.feed(data)
        answers += [m.decode(ch.open(p), m.TO_CLIENT) for p in decoder.frames()]
    s.close()
    assert len(answers) == 1 and isinstance(answers[0], m.ErrorResponse), answers
    assert answers[0].message.startswith("Invalid request: malformed JobListRequest"), answers
    live.sent["client"] += 1
    live.check()
