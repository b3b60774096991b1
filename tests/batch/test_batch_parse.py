"""Parsers of the managers' output, against real-format samples (see samples/README.md)."""

import pathlib
from datetime import datetime

import pytest

from hyperqueue.batch import (
    FAILED, FINISHED, QUEUED, RUNNING, ManagerOutputError, parse_qsub_output, parse_qstat_json,
    parse_sbatch_output, parse_scontrol_job, parse_scontrol_status,
)

SAMPLES = pathlib.Path(__file__).parent / "samples"


def sample(name):
    return (SAMPLES / name).read_text()


def test_sbatch_output_forms():
    assert parse_sbatch_output(sample("sbatch.txt")) == "4242"
    assert parse_sbatch_output(sample("sbatch_parsable_cluster.txt")) == "4242"
    assert parse_sbatch_output("4243\n") == "4243"
    assert parse_sbatch_output(b"Submitted batch job 7 on cluster c2\n") == "7"
    # a warning line before the id (some sites' job_submit plugins print one)
    assert parse_sbatch_output("sbatch: Warning: no account given\nSubmitted batch job 9\n") == "9"


@pytest.mark.parametrize("text", ["", "\n", "sbatch: error: invalid partition specified: foo\n",
                                  "Submitted batch job \n", "Submitted batch job 1\n2\n"])
def test_sbatch_output_rejected(text):
    with pytest.raises(ManagerOutputError):
        parse_sbatch_output(text)


def test_scontrol_fields():
    f = parse_scontrol_job(sample("scontrol_running.txt"))
    assert f["JobId"] == "4242" and f["JobName"] == "hq-1-1"
    assert f["JobState"] == "RUNNING"
    assert f["AllocNode:Sid"] == "login1:12345"
    assert f["ReqTRES"] == "cpu=2,mem=1000M,node=2,billing=2"
    assert f["CPUs/Task"] == "1" and f["Power"] == ""
    assert f["StdOut"] == "/home/hquser/.hq-server/001/autoalloc/1/001/stdout"


@pytest.mark.parametrize("name,state,raw,started,ended,code", [
    ("scontrol_pending.txt", QUEUED, "PENDING", None, None, 0),
    ("scontrol_running.txt", RUNNING, "RUNNING", datetime(2024, 1, 15, 10, 23, 41), None, 0),
    ("scontrol_completed.txt", FINISHED, "COMPLETED", datetime(2024, 1, 15, 10, 23, 41),
     datetime(2024, 1, 15, 10, 28, 44), 0),
    ("scontrol_cancelled.txt", FAILED, "CANCELLED", datetime(2024, 1, 15, 10, 23, 41),
     datetime(2024, 1, 15, 10, 24, 12), 0),
])
def test_scontrol_status(name, state, raw, started, ended, code):
    st = parse_scontrol_status(sample(name))
    assert (st.state, st.raw_state, st.started_at, st.ended_at, st.exit_status) == (
        state, raw, started, ended, code)


@pytest.mark.parametrize("raw,state", [
    ("CONFIGURING", QUEUED), ("REQUEUED", QUEUED), ("COMPLETING", RUNNING),
    ("SUSPENDED", RUNNING), ("TIMEOUT", FINISHED), ("FAILED", FAILED), ("NODE_FAIL", FAILED),
    ("BOOT_FAIL", FAILED), ("OUT_OF_MEMORY", FAILED), ("PREEMPTED", FAILED),
    ("DEADLINE", FAILED)])
def test_slurm_state_table(raw, state):
    text = sample("scontrol_completed.txt").replace("JobState=COMPLETED", f"JobState={raw}")
    assert parse_scontrol_status(text).state == state


def test_scontrol_unknown_state_and_garbage():
    text = sample("scontrol_running.txt").replace("JobState=RUNNING", "JobState=WEIRD")
    with pytest.raises(ManagerOutputError, match="unknown Slurm job state"):
        parse_scontrol_status(text)
    with pytest.raises(ManagerOutputError):
        parse_scontrol_job("slurm_load_jobs error: Invalid job id specified\n")
    with pytest.raises(ManagerOutputError):
        parse_scontrol_job("")
    bad_time = sample("scontrol_running.txt").replace("StartTime=2024-01-15T10:23:41",
                                                      "StartTime=yesterday")
    with pytest.raises(ManagerOutputError, match="invalid Slurm time"):
        parse_scontrol_status(bad_time)


def test_qsub_output():
    assert parse_qsub_output(sample("qsub.txt")) == "1234.pbs-server"
    assert parse_qsub_output("17[].srv\n") == "17[].srv"
    for bad in ("", "\n", "1234.a\n1235.b\n", "qsub: Unknown queue", "a b"):
        with pytest.raises(ManagerOutputError):
            parse_qsub_output(bad)


def test_qstat_json_sample():
    jobs = parse_qstat_json(sample("qstat_jobs.json"))
    assert sorted(jobs) == ["1234.pbs-server", "1235.pbs-server", "1236.pbs-server",
                            "1237.pbs-server"]
    r, q, ok, killed = (jobs[f"123{i}.pbs-server"] for i in range(4, 8))
    assert (r.state, r.raw_state, r.started_at) == (RUNNING, "R",
                                                    datetime(2024, 1, 15, 10, 21, 42))
    assert r.ended_at is None and r.exit_status is None
    assert (q.state, q.started_at) == (QUEUED, None)
    assert (ok.state, ok.exit_status, ok.ended_at) == (FINISHED, 0,
                                                       datetime(2024, 1, 15, 10, 15, 5))
    assert (killed.state, killed.exit_status) == (FAILED, 271)


@pytest.mark.parametrize("letter,state", [("H", QUEUED), ("W", QUEUED), ("T", QUEUED),
                                          ("E", RUNNING), ("S", RUNNING), ("X", FAILED)])
def test_pbs_state_letters(letter, state):
    text = '{"timestamp":1,"pbs_version":"2021.1.3","pbs_server":"s","Jobs":{"1.s":{' \
           f'"job_state":"{letter}","stime":"Mon Jan 15 10:21:42 2024"}}}}}}'
    assert parse_qstat_json(text)["1.s"].state == state


def test_pbs_finished_without_exit_status_is_failed():
    text = '{"timestamp":1,"pbs_server":"s","Jobs":{"1.s":{"job_state":"F",' \
           '"mtime":"Mon Jan 15 10:21:42 2024"}}}'
    assert parse_qstat_json(text)["1.s"].state == FAILED


def test_qstat_no_jobs_and_garbage():
    assert parse_qstat_json('{"timestamp":1,"pbs_version":"x","pbs_server":"s"}') == {}
    for bad in ("", "qstat: Unknown Job Id 1.s", "[]", '{"Jobs":[]}',
                '{"Jobs":{"1.s":{"job_state":"Z"}}}', '{"Jobs":{"1.s":{"job_state":"F",'
                '"Exit_status":"0"}}}', '{"Jobs":{"1.s":{"job_state":"R","stime":"soon"}}}',
                '{"Jobs":{"bad id":{"job_state":"R"}}}'):
        with pytest.raises(ManagerOutputError):
            parse_qstat_json(bad)
