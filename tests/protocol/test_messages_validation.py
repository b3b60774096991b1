"""Every field of every decoded message is validated (issue 10, item 2): out-of-range ids,
counts, priorities, durations, string and list lengths become a ProtocolError for that one
connection, never another exception and never a message that carries them."""

from __future__ import annotations

import math

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperqueue.core.limits import (MAX_DURATION, MAX_ID, MAX_LIST_LEN, MAX_NAME_LEN,
                                     MAX_STRING_LEN)
from hyperqueue.core.model import ProgramDef, StdioDef, TaskTemplate, WorkerConfig
from hyperqueue.core.resources import ResourceDef, ResourceRequest, ResourceRequestEntry
from hyperqueue.protocol import messages as m
from hyperqueue.protocol.errors import ProtocolError


def _template():
    prog = ProgramDef(["echo", "hi"], {"A": "1"}, "/tmp", StdioDef("/o"), StdioDef(None),
                      None, False, None)
    req = ResourceRequest([ResourceRequestEntry("cpus", 10000, "compact")], 0, 0.0, 10000)
    return TaskTemplate(prog, [req], 10.0, 0, 5, None)


def _config():
    return WorkerConfig("host", [ResourceDef.range_of("cpus", 0, 3),
                                 ResourceDef("mem", "sum", size=10000)],
                        time_limit=100.0, idle_timeout=5.0, overview_interval=1.0,
                        reconnect_timeout=2.0, coupling=[])


from hyperqueue.autoalloc import QueueParams  # noqa: E402

_ALLOC_PARAMS = QueueParams("slurm", 3600.0, cpus="4").to_wire()

SAMPLES = {
    m.ServerInfoRequest: m.ServerInfoRequest(),
    m.StopServerRequest: m.StopServerRequest(),
    m.SubmitRequest: m.SubmitRequest("job", 3, "/submit", 1,
                                     [[_template(), "0-3", None, [7]],
                                      [_template(), "4", [b"e"], [0]]]),
    m.JobListRequest: m.JobListRequest(["waiting"]),
    m.JobInfoRequest: m.JobInfoRequest([[1, 5, 1]], True, [[0, 9, 1]], ["failed"]),
    m.CancelJobsRequest: m.CancelJobsRequest([[1, 1, 1]], "why"),
    m.WaitJobsRequest: m.WaitJobsRequest("all", False),
    m.WorkerListRequest: m.WorkerListRequest(True),
    m.WorkerInfoRequest: m.WorkerInfoRequest([[1, 2, 1]]),
    m.StopWorkersRequest: m.StopWorkersRequest("last"),
    m.OpenJobRequest: m.OpenJobRequest("job", None, "/submit"),
    m.CloseJobsRequest: m.CloseJobsRequest([[1, 1, 1]]),
    m.ForgetJobsRequest: m.ForgetJobsRequest("all", ["finished"]),
    m.JournalRequest: m.JournalRequest("flush"),
    m.OverviewsRequest: m.OverviewsRequest(2.0, 10.0),
    m.TaskExplainRequest: m.TaskExplainRequest([[1, 1, 1]], 0),
    m.StreamEventsRequest: m.StreamEventsRequest(False),
    m.TaskPageRequest: m.TaskPageRequest(1, [[0, 100, 1]], ["waiting"], 5),
    m.ServerInfoResponse: m.ServerInfoResponse({"a": 1}),
    m.OkResponse: m.OkResponse("ok"),
    m.ErrorResponse: m.ErrorResponse("bad"),
    m.SubmitResponse: m.SubmitResponse(1),
    m.JobsResponse: m.JobsResponse([{"a": 1}], [[2, 2, 1], [5, MAX_ID, 1]]),
    m.ItemResultsResponse: m.ItemResultsResponse([[1, "canceled", 2, 3],
                                                  [[4, 9, 1], "not-found", 0, 0]]),
    m.WorkersResponse: m.WorkersResponse([{"a": 1}], [[3, 3, 1]]),
    m.ExplainResponse: m.ExplainResponse({"a": 1}),
    m.EventsResponse: m.EventsResponse([[1.0, "x", {}]], True),
    m.PageResponse: m.PageResponse([{"id": 1}], 1),
    m.JobListPageRequest: m.JobListPageRequest(["waiting"], 7),
    m.AllocAddRequest: m.AllocAddRequest(_ALLOC_PARAMS, True),
    m.AllocDryRunRequest: m.AllocDryRunRequest(_ALLOC_PARAMS),
    m.AllocListRequest: m.AllocListRequest(),
    m.AllocInfoRequest: m.AllocInfoRequest(1, ["queued", "failed"]),
    m.AllocQueueRequest: m.AllocQueueRequest(1, "remove", True),
    m.AllocLogRequest: m.AllocLogRequest("1234.pbs"),
    m.DebugDumpRequest: m.DebugDumpRequest("dump.json"),
    m.WaitNotifyRequest: m.WaitNotifyRequest([[1, 1, 1]], False),
    m.TaskNotification: m.TaskNotification(1, 2, 3, b"hello"),
    m.TaskNotify: m.TaskNotify(1, 2, 0, b"hello"),
    m.WorkerOverview: m.WorkerOverview({"state": {
        "cpu_usage": {"cpu_per_core_percent_usage": [1.5, 2.0]},
        "memory_usage": {"total": 100, "free": 50},
        "network_usage": {"rx_bytes": 1, "tx_bytes": 2, "rx_packets": 3, "tx_packets": 4,
                          "rx_errors": 0, "tx_errors": 0},
        "nvidia_gpus": {"gpus": [{"id": "BUS1", "processor_usage": 10.0, "mem_usage": 50.0}]},
        "amd_gpus": None, "timestamp": 1700000000}}),
    m.AllocResponse: m.AllocResponse({"queue_id": 1}),
    m.RegisterWorker: m.RegisterWorker(_config(), ["uid", 3], [[1, 2, 0]],
                                       [[1, 1, 2, 0, None]]),
    m.TaskUpdates: m.TaskUpdates(4, [[2, 1, 2, 0, "err"]]),
    m.TasksRetracted: m.TasksRetracted([[1, 2, 0]], [[1, 3, 0]]),
    m.Heartbeat: m.Heartbeat(),
    m.WorkerStopping: m.WorkerStopping("IDLE_TIMEOUT"),
    m.WorkerRegistered: m.WorkerRegistered(1, "uid", 3.0, [[1, 2, 0]]),
    m.ComputeTasks: m.ComputeTasks([[1, _template(), "/submit"]],
                                   [[1, 2, 0, 1, b"entry", 0, ["h1", "h2"]]]),
    m.CancelTasks: m.CancelTasks([[1, 2, 0]]),
    m.StopWorkerCommand: m.StopWorkerCommand(),
    m.RetractTasks: m.RetractTasks([[1, 2, 0]]),
    m.ConfirmResults: m.ConfirmResults(3),
    m.WorkerReserved: m.WorkerReserved(True),
    m.SendOverviews: m.SendOverviews(2.0, 10.0),
}


def _wire(msg):
    """The message as plain CBOR data (nested objects already in wire form)."""
    return cbor2.loads(m.encode(msg))


def test_every_message_type_has_a_sample_that_decodes():
    registered = {cls for table in m._REGISTRY.values() for cls in table.values()}
    assert registered == set(SAMPLES), registered ^ set(SAMPLES)
    for cls, msg in SAMPLES.items():
        data = m.encode(msg)
        assert m.encode(m.decode(data, cls.DIRECTION)) == data


def _decode_wire(wire, direction):
    return m.decode(cbor2.dumps(wire), direction)


def _set(obj, path, value):
    obj = _copy(obj)
    cur = obj
    for key in path[:-1]:
        cur = cur[key]
    cur[path[-1]] = value
    return obj


def _copy(obj):
    if isinstance(obj, list):
        return [_copy(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    return obj


def _paths(obj, prefix=()):
    """Every position inside a wire value (list indices and dict keys), depth first."""
    out = []
    if isinstance(obj, list):
        for i, x in enumerate(obj):
            out.append(prefix + (i,))
            out.extend(_paths(x, prefix + (i,)))
    elif isinstance(obj, dict):
        for k, x in obj.items():
            out.append(prefix + (k,))
            out.extend(_paths(x, prefix + (k,)))
    return out


# -- hand-made out-of-range values: each must be a ProtocolError ------------------------------------
BIG = 2**70
T = 1  # index of the first field in the wire array (0 is the tag)
TPL = [T + 4, 0, 0]  # the template of the first batch of the SubmitRequest sample
OUT_OF_RANGE = [
    # ids / counts
    (m.SubmitRequest, (T + 3,), MAX_ID + 1),
    (m.SubmitRequest, (T + 3,), -1),
    (m.SubmitRequest, (T + 3,), BIG),
    (m.SubmitRequest, (T + 1,), -1),
    (m.SubmitRequest, (T + 1,), BIG),
    (m.SubmitRequest, (T + 4, 0, 3), [MAX_ID + 1]),
    (m.SubmitRequest, (T + 4, 0, 3), [-5]),
    (m.TaskExplainRequest, (T + 1,), MAX_ID + 1),
    (m.TaskExplainRequest, (T + 1,), BIG),
    (m.TaskPageRequest, (T,), -1),
    (m.TaskPageRequest, (T + 3,), -2),
    (m.TaskPageRequest, (T + 3,), MAX_ID + 1),
    (m.TaskUpdates, (T,), -1),
    (m.TaskUpdates, (T,), BIG),
    (m.TaskUpdates, (T + 1, 0, 1), MAX_ID + 1),
    (m.TaskUpdates, (T + 1, 0, 3), -1),
    (m.TaskUpdates, (T + 1, 0, 0), True),
    (m.TasksRetracted, (T, 0, 0), BIG),
    (m.CancelTasks, (T, 0, 2), -1),
    (m.ConfirmResults, (T,), -3),
    (m.WorkerRegistered, (T,), MAX_ID + 1),
    (m.RegisterWorker, (T + 1, 1), -1),
    (m.ComputeTasks, (T + 1, 0, 5), 99),  # variant
    (m.ComputeTasks, (T + 1, 0, 0), MAX_ID + 1),
    (m.ComputeTasks, (T, 0, 0), -1),  # template id
    (m.SubmitResponse, (T,), -1),
    (m.JobsResponse, (T + 1,), [[0, MAX_ID + 1, 1]]),
    (m.JobsResponse, (T + 1,), [[5, 2, 1]]),
    (m.ItemResultsResponse, (T, 0, 0), -1),
    (m.PageResponse, (T + 1,), BIG),
    (m.JobListPageRequest, (T + 1,), -2),
    (m.JobListPageRequest, (T + 1,), MAX_ID + 1),
    # selectors
    (m.JobInfoRequest, (T,), [[0, MAX_ID + 1, 1]]),
    (m.JobInfoRequest, (T,), [[-1, 5, 1]]),
    (m.JobInfoRequest, (T,), [[0, 5, 0]]),
    (m.JobInfoRequest, (T,), [[0, 5]]),
    (m.JobInfoRequest, (T,), "everything"),
    (m.JobInfoRequest, (T,), [[i, i, 1] for i in range(0, 140_000, 2)]),
    (m.JobInfoRequest, (T,), [[i, MAX_ID - (MAX_ID - i) % 1000, 1000] for i in range(100)]),
    (m.JobInfoRequest, (T + 2,), [[0, BIG, 1]]),
    (m.CancelJobsRequest, (T,), {"a": 1}),
    (m.WaitJobsRequest, (T,), 5),
    (m.WorkerInfoRequest, (T,), [[0, 1, 1], [1, 2, 1]]),
    (m.StopWorkersRequest, (T,), [[BIG, BIG, 1]]),
    (m.CloseJobsRequest, (T,), None),
    (m.ForgetJobsRequest, (T,), [[0, 1, -1]]),
    (m.TaskExplainRequest, (T,), [[0, MAX_ID + 1, 1]]),
    # strings and lists
    (m.SubmitRequest, (T,), "x" * (MAX_NAME_LEN + 1)),
    (m.OpenJobRequest, (T,), "x" * (MAX_NAME_LEN + 1)),
    (m.SubmitRequest, (T + 2,), "x" * (MAX_STRING_LEN + 1)),
    (m.CancelJobsRequest, (T + 1,), "x" * (MAX_NAME_LEN + 1)),
    (m.JobListRequest, (T,), ["waiting"] * 100),
    (m.JournalRequest, (T,), "x" * (MAX_NAME_LEN + 1)),
    (m.OverviewsRequest, (T,), 0.001),
    (m.OverviewsRequest, (T + 1,), 0),
    (m.OverviewsRequest, (T + 1,), 1e9),
    (m.SendOverviews, (T,), math.inf),
    (m.OverviewsRequest, (T,), math.nan),
    (m.OverviewsRequest, (T,), True),
    (m.OverviewsRequest, (T + 1,), BIG),
    (m.OverviewsRequest, (T + 1,), -1.0),
    (m.SendOverviews, (T,), 0.0),
    (m.SendOverviews, (T + 1,), math.nan),
    (m.SendOverviews, (T + 1,), 3601.0),
    (m.AllocInfoRequest, (T,), MAX_ID + 1),
    (m.AllocInfoRequest, (T + 1,), ["queued"] * 9),
    (m.AllocInfoRequest, (T + 1,), ["nope"]),
    (m.AllocQueueRequest, (T,), -1),
    (m.AllocQueueRequest, (T + 1,), "x" * (MAX_NAME_LEN + 1)),
    (m.AllocQueueRequest, (T + 2,), 1),
    (m.AllocLogRequest, (T,), ""),
    (m.AllocLogRequest, (T,), "a b"),
    (m.AllocLogRequest, (T,), "x" * 257),
    (m.AllocAddRequest, (T + 1,), 0),
    (m.AllocAddRequest, (T,), {}),
    (m.AllocDryRunRequest, (T,), None),
    # worker overviews: numbers finite and within a u64 (a dashboard plots them)
    (m.WorkerOverview, (T, "state", "cpu_usage", "cpu_per_core_percent_usage", 0), math.nan),
    (m.WorkerOverview, (T, "state", "cpu_usage", "cpu_per_core_percent_usage", 0), math.inf),
    (m.WorkerOverview, (T, "state", "cpu_usage", "cpu_per_core_percent_usage", 0), 10**400),
    (m.WorkerOverview, (T, "state", "memory_usage", "total"), BIG),
    (m.WorkerOverview, (T, "state", "memory_usage", "free"), -math.inf),
    (m.WorkerOverview, (T, "state", "network_usage", "rx_bytes"), "1"),
    (m.WorkerOverview, (T, "state", "timestamp"), math.nan),
    (m.WorkerOverview, (T, "state", "nvidia_gpus", "gpus", 0, "processor_usage"), 10**400),
    (m.WorkerOverview, (T, "state", "nvidia_gpus", "gpus", 0, "id"), 5),
    (m.WorkerOverview, (T, "state", "cpu_usage", "cpu_per_core_percent_usage"),
     [1.0] * (MAX_LIST_LEN + 1)),
    # shared templates on submit: a second batch with the same template on the wire shares the
    # first's (validated) one; its own fields are still checked
    (m.SubmitRequest, (T + 4, 1, 1), "x" * (MAX_STRING_LEN + 1)),
    (m.SubmitRequest, (T + 4, 1, 3), [MAX_ID + 1]),
    (m.SubmitRequest, (T + 4, 1, 2), ["not bytes"]),
    (m.SubmitRequest, (T + 4, 1, 0, 2), math.inf),  # its template differs: checked itself
    (m.WorkerStopping, (T,), "x" * (MAX_NAME_LEN + 1)),
    (m.TaskUpdates, (T + 1, 0, 4), "e" * (MAX_STRING_LEN + 1)),
    (m.RegisterWorker, (T + 1, 0), "u" * (MAX_NAME_LEN + 1)),
    (m.ComputeTasks, (T + 1, 0, 6), ["h" * (MAX_NAME_LEN + 1)]),
    (m.ComputeTasks, (T + 1, 0, 6), []),
    # task template (through the submit and through ComputeTasks)
    (m.SubmitRequest, (*TPL, 2), math.inf),
    (m.SubmitRequest, (*TPL, 2), math.nan),
    (m.SubmitRequest, (*TPL, 2), -1.0),
    (m.SubmitRequest, (*TPL, 2), MAX_DURATION * 2),
    (m.SubmitRequest, (*TPL, 2), 30 * 24 * 3600 * 1000),
    (m.SubmitRequest, (*TPL, 2), BIG),
    (m.SubmitRequest, (*TPL, 2), True),
    (m.SubmitRequest, (*TPL, 3), 2**31),
    (m.SubmitRequest, (*TPL, 3), -(2**31) - 1),
    (m.SubmitRequest, (*TPL, 3), 1.5),
    (m.SubmitRequest, (*TPL, 4), -2),
    (m.SubmitRequest, (*TPL, 4), BIG),
    (m.SubmitRequest, (*TPL, 5), "numa"),
    (m.SubmitRequest, (*TPL, 1), []),
    (m.SubmitRequest, (*TPL, 1), [_wire(SAMPLES[m.SubmitRequest])[T + 4][0][0][1][0]] * 40),
    (m.SubmitRequest, (*TPL, 1, 0, "n_nodes"), -1),
    (m.SubmitRequest, (*TPL, 1, 0, "n_nodes"), BIG),
    (m.SubmitRequest, (*TPL, 1, 0, "min_time"), math.inf),
    (m.SubmitRequest, (*TPL, 1, 0, "min_time"), -1),
    (m.SubmitRequest, (*TPL, 1, 0, "weight"), 0),
    (m.SubmitRequest, (*TPL, 1, 0, "weight"), BIG),
    (m.SubmitRequest, (*TPL, 1, 0, "entries", 0, 1), 0),
    (m.SubmitRequest, (*TPL, 1, 0, "entries", 0, 1), -5),
    (m.SubmitRequest, (*TPL, 1, 0, "entries", 0, 1), 1.5),
    (m.SubmitRequest, (*TPL, 1, 0, "entries", 0, 1), BIG),
    (m.SubmitRequest, (*TPL, 1, 0, "entries", 0, 0), "x" * 5000),
    (m.SubmitRequest, (*TPL, 0, 0), []),
    (m.SubmitRequest, (*TPL, 0, 0), ["x" * (MAX_STRING_LEN + 1)]),
    (m.SubmitRequest, (*TPL, 0, 1), {"A": 5}),
    (m.SubmitRequest, (*TPL, 0, 2), 7),
    (m.SubmitRequest, (*TPL, 0, 3), ["/o", 1, False]),
    (m.SubmitRequest, (*TPL, 0, 3), ["/o" * (MAX_STRING_LEN), False, False]),
    (m.SubmitRequest, (*TPL, 0, 6), "yes"),
    (m.ComputeTasks, (T, 0, 1, 2), math.inf),
    (m.ComputeTasks, (T, 0, 1, 3), BIG),
    # worker configuration
    (m.RegisterWorker, (T, 0), "h" * (MAX_NAME_LEN + 1)),
    (m.RegisterWorker, (T, 2), "g" * (MAX_NAME_LEN + 1)),
    (m.RegisterWorker, (T, 3), math.inf),  # time_limit
    (m.RegisterWorker, (T, 3), -1),
    (m.RegisterWorker, (T, 4), 0),  # heartbeat
    (m.RegisterWorker, (T, 4), math.nan),
    (m.RegisterWorker, (T, 4), BIG),
    (m.RegisterWorker, (T, 5), math.inf),  # idle_timeout
    (m.RegisterWorker, (T, 10), -1),  # pid
    (m.RegisterWorker, (T, 10), BIG),
    (m.RegisterWorker, (T, 11), MAX_DURATION + 1),  # overview_interval
    (m.RegisterWorker, (T, 12), 2),  # min_utilization
    (m.RegisterWorker, (T, 12), math.nan),
    (m.RegisterWorker, (T, 14), math.inf),  # reconnect_timeout
    (m.RegisterWorker, (T, 15), [["cpus", 0, "gpus", 0, -1]]),
    (m.RegisterWorker, (T, 1, 0, "end"), MAX_ID + 1),
    (m.RegisterWorker, (T, 1, 1, "size"), -1),
    (m.RegisterWorker, (T, 1, 1, "size"), 0.5),
    (m.RegisterWorker, (T, 1, 1, "size"), BIG),
    (m.RegisterWorker, (T, 1, 1, "name"), "m" * 5000),
    (m.WorkerRegistered, (T + 2,), math.inf),
    (m.WorkerRegistered, (T + 2,), -1.0),
]


@pytest.mark.parametrize("cls, path, value", OUT_OF_RANGE,
                         ids=[f"{c.__name__}-{'.'.join(map(str, p))}-{str(v)[:12]}"
                              for c, p, v in OUT_OF_RANGE])
def test_out_of_range_value_is_a_protocol_error(cls, path, value):
    wire = _set(_wire(SAMPLES[cls]), path, value)
    with pytest.raises(ProtocolError):
        _decode_wire(wire, cls.DIRECTION)


def test_limits_themselves_are_accepted():
    wire = _wire(SAMPLES[m.SubmitRequest])
    wire = _set(wire, (*TPL, 2), MAX_DURATION)
    wire = _set(wire, (*TPL, 3), 2**31 - 1)
    wire = _set(wire, (T + 3,), MAX_ID)
    msg = _decode_wire(wire, m.FROM_CLIENT)
    assert msg.batches[0][0].time_limit == MAX_DURATION and msg.job_id == MAX_ID
    wire = _set(_wire(SAMPLES[m.JobInfoRequest]), (T,), [[0, MAX_ID, 1]])
    assert _decode_wire(wire, m.FROM_CLIENT).selector == [[0, MAX_ID, 1]]


# -- hypothesis: any value at any position gives a message or a ProtocolError, nothing else -------
_hostile_scalars = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([-1, 0, MAX_ID, MAX_ID + 1, 2**31, 2**63, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.booleans(),
    st.none(),
)
_hostile = st.recursive(_hostile_scalars,
                        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3)),
                        max_leaves=8)


@st.composite
def _mutated(draw):
    cls = draw(st.sampled_from(sorted(SAMPLES, key=lambda c: c.__name__)))
    wire = _wire(SAMPLES[cls])
    paths = [p for p in _paths(wire) if p != (0,)]
    for _ in range(draw(st.integers(1, 3))):
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        wire = _set(wire, path, draw(_hostile))
        paths = [p for p in _paths(wire) if p != (0,)]
    return cls, wire


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_messages_decode_or_raise_protocol_error(case):
    cls, wire = case
    try:
        msg = _decode_wire(wire, cls.DIRECTION)
    except ProtocolError:
        return
    assert isinstance(msg, m.Message)
    # what got through is well-formed: re-encoding works and decodes to the same message
    data = m.encode(msg)
    assert m.encode(m.decode(data, cls.DIRECTION)) == data


_ID_FIELDS = [
    (m.SubmitRequest, (T + 3,)), (m.TaskExplainRequest, (T + 1,)), (m.TaskPageRequest, (T,)),
    (m.TaskUpdates, (T + 1, 0, 1)), (m.TaskUpdates, (T + 1, 0, 2)), (m.CancelTasks, (T, 0, 1)),
    (m.RetractTasks, (T, 0, 0)), (m.TasksRetracted, (T + 1, 0, 2)), (m.SubmitResponse, (T,)),
    (m.WorkerRegistered, (T,)), (m.ComputeTasks, (T + 1, 0, 1)), (m.RegisterWorker, (T + 2, 0, 1)),
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_ID_FIELDS),
       st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_ID + 1)))
def test_any_id_outside_u32_is_refused(field, value):
    cls, path = field
    with pytest.raises(ProtocolError):
        _decode_wire(_set(_wire(SAMPLES[cls]), path, value), cls.DIRECTION)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(
    lambda x: not (0 <= x <= MAX_DURATION)),
    st.integers().filter(lambda x: not (0 <= x <= MAX_DURATION))))
def test_any_time_limit_outside_the_maximum_is_refused(value):
    # (a zero time limit is valid, as upstream: the task fails with "Time limit reached")
    wire = _set(_wire(SAMPLES[m.SubmitRequest]), (*TPL, 2), value)
    with pytest.raises(ProtocolError):
        _decode_wire(wire, m.FROM_CLIENT)


@pytest.mark.parametrize("value", [1, 0, None, "true", [True], {}])
def test_a_reservation_flag_must_be_a_bool(value):
    with pytest.raises(ProtocolError, match="WorkerReserved"):
        _decode_wire([m.WorkerReserved.TAG, value], m.TO_WORKER)
    assert _decode_wire([m.WorkerReserved.TAG, False], m.TO_WORKER).reserved is False
