"""Allocation manager detection with fake environments and a fake command runner."""

import json
import logging
import sys

import pytest

from hyperqueue.worker import batchdetect as manager
from hyperqueue.worker.batchdetect import (
    AllocationInfo,
    detect_manager,
    parse_pbs_walltime,
    parse_slurm_duration,
    run_command,
)


class FakeRun:
    """Records the commands and answers from a table {argv tuple: stdout or None}."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.calls = []

    def __call__(self, argv):
        self.calls.append(tuple(argv))
        return self.answers.get(tuple(argv))


def failing_run(argv):
    raise AssertionError(f"must not run {argv}")


PBS_ENV = {"PBS_ENVIRONMENT": "PBS_BATCH", "PBS_JOBID": "123.pbs-server"}
SLURM_ENV = {"SLURM_JOB_ID": "4567"}


def qstat_json(job_id, walltime="02:00:00", used="00:30:00"):
    job = {"job_state": "R", "Resource_List": {"walltime": walltime, "ncpus": 8}}
    if used is not None:
        job["resources_used"] = {"walltime": used}
    return json.dumps({"timestamp": 1, "pbs_version": "2022", "Jobs": {job_id: job}})


def scontrol_output(limit="01:00:00", runtime="00:10:00"):
    return (
        "JobId=4567 JobName=hq-alloc-1\n"
        "   UserId=u(1000) GroupId=u(1000) MCS_label=N/A\n"
        "   JobState=RUNNING Reason=None Dependency=(null)\n"
        f"   RunTime={runtime} TimeLimit={limit} TimeMin=N/A\n"
        "   SubmitTime=2024-01-01T10:00:00 EligibleTime=2024-01-01T10:00:00\n"
    )


# ------------------------------------------------------------------------------------------ modes


def test_no_manager():
    assert detect_manager(environ={}, run=failing_run) is None
    assert detect_manager("none", environ={**PBS_ENV, **SLURM_ENV}, run=failing_run) is None


def test_unknown_mode():
    with pytest.raises(ValueError, match="detect, none, pbs, slurm"):
        detect_manager("lsf", environ={}, run=failing_run)


def test_forced_manager_without_env_is_an_error():
    with pytest.raises(ValueError, match="PBS_JOBID"):
        detect_manager("pbs", environ=SLURM_ENV, run=failing_run)
    with pytest.raises(ValueError, match="SLURM_JOB_ID"):
        detect_manager("slurm", environ=PBS_ENV, run=failing_run)
    # PBS needs both variables.
    with pytest.raises(ValueError):
        detect_manager("pbs", environ={"PBS_JOBID": "1"}, run=failing_run)


def test_pbs_wins_in_detect_mode_but_slurm_can_be_forced():
    run = FakeRun(
        {
            ("qstat", "-f", "123.pbs-server", "-F", "json"): qstat_json("123.pbs-server"),
            ("scontrol", "show", "job", "4567"): scontrol_output(),
        }
    )
    env = {**PBS_ENV, **SLURM_ENV}
    assert detect_manager(environ=env, run=run) == AllocationInfo("PBS", "123.pbs-server", 5400.0)
    assert detect_manager("slurm", environ=env, run=run) == AllocationInfo("SLURM", "4567", 3000.0)
    assert detect_manager("PBS", environ=env, run=run).manager == "PBS"


# -------------------------------------------------------------------------------------------- PBS


def test_pbs_remaining_time():
    run = FakeRun({("qstat", "-f", "123.pbs-server", "-F", "json"): qstat_json("123.pbs-server")})
    info = detect_manager(environ=PBS_ENV, run=run)
    assert info == AllocationInfo(manager="PBS", job_id="123.pbs-server", time_limit=5400.0)
    assert run.calls == [("qstat", "-f", "123.pbs-server", "-F", "json")]


def test_pbs_without_used_walltime():
    run = FakeRun(
        {("qstat", "-f", "123.pbs-server", "-F", "json"): qstat_json("123.pbs-server", "48:00:00", None)}
    )
    assert detect_manager("pbs", environ=PBS_ENV, run=run).time_limit == 48 * 3600.0


def test_pbs_job_key_with_longer_server_name():
    out = qstat_json("123.pbs-server.cluster.org", "01:00:00", "00:00:10")
    run = FakeRun({("qstat", "-f", "123.pbs-server", "-F", "json"): out})
    assert detect_manager(environ=PBS_ENV, run=run).time_limit == 3590.0


def test_pbs_overrun_gives_no_time_limit(caplog):
    # Upstream: "used time is bigger than walltime" is an error that leaves the worker
    # without a time limit (a warning), not a limit of zero.
    out = qstat_json("123.pbs-server", "01:00:00", "01:00:05")
    run = FakeRun({("qstat", "-f", "123.pbs-server", "-F", "json"): out})
    with caplog.at_level(logging.WARNING):
        assert detect_manager(environ=PBS_ENV, run=run).time_limit is None
    assert "PBS job 123.pbs-server has used more time than its limit (3605 s of 3600 s)" \
        in caplog.text


def test_pbs_used_exactly_the_walltime_is_expired():
    out = qstat_json("123.pbs-server", "01:00:00", "01:00:00")
    run = FakeRun({("qstat", "-f", "123.pbs-server", "-F", "json"): out})
    assert detect_manager(environ=PBS_ENV, run=run).time_limit == 0.0


@pytest.mark.parametrize(
    "output",
    [None, "", "not json", json.dumps({"Jobs": {}}), json.dumps({"Jobs": {"123.pbs-server": {}}}),
     qstat_json("123.pbs-server", walltime="soon")],
)
def test_pbs_qstat_failure_gives_no_time_limit(output, caplog):
    run = FakeRun({("qstat", "-f", "123.pbs-server", "-F", "json"): output})
    with caplog.at_level(logging.WARNING, logger=manager.__name__):
        info = detect_manager(environ=PBS_ENV, run=run)
    assert info == AllocationInfo("PBS", "123.pbs-server", None)
    assert "123.pbs-server" in caplog.text


@pytest.mark.parametrize(
    "text, seconds", [("01:02:03", 3723.0), ("100:00:00", 360000.0), ("05:00", 300.0), ("42", 42.0), (90, 90.0)]
)
def test_parse_pbs_walltime(text, seconds):
    assert parse_pbs_walltime(text) == seconds


# ------------------------------------------------------------------------------------------ Slurm


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("1-02:03:04", ((24 + 2) * 60 + 3) * 60 + 4.0),
        ("10:00", 600.0),  # MM:SS
        ("02:03:04", 7384.0),
        ("30", 1800.0),  # plain minutes
        ("2-12", (2 * 24 + 12) * 3600.0),
        ("2-12:30", (2 * 24 + 12) * 3600.0 + 1800.0),
        ("UNLIMITED", None),
        ("Partition_Limit", None),
    ],
)
def test_parse_slurm_duration(text, seconds):
    assert parse_slurm_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "1-2:3:4:5", "-1", "1--2"])
def test_parse_slurm_duration_errors(text):
    with pytest.raises(ValueError):
        parse_slurm_duration(text)


@pytest.mark.parametrize(
    "limit, runtime, remaining",
    [
        ("1-02:03:04", "00:00:04", (26 * 60 + 3) * 60.0),
        ("10:00", "00:01:00", 540.0),
        ("UNLIMITED", "5-00:00:00", None),
        ("00:10:00", "00:11:00", None),  # overrun (e.g. OverTimeLimit): no time limit
        ("00:10:00", "00:10:00", 0.0),
    ],
)
def test_slurm_remaining_time(limit, runtime, remaining):
    run = FakeRun({("scontrol", "show", "job", "4567"): scontrol_output(limit, runtime)})
    assert detect_manager(environ=SLURM_ENV, run=run) == AllocationInfo("SLURM", "4567", remaining)


def test_slurm_jobid_fallback_variable():
    run = FakeRun({("scontrol", "show", "job", "99"): scontrol_output("01:00:00", "00:00:00")})
    assert detect_manager(environ={"SLURM_JOBID": "99"}, run=run) == AllocationInfo("SLURM", "99", 3600.0)


@pytest.mark.parametrize("output", [None, "", "JobId=4567 JobState=RUNNING\n", scontrol_output("bogus")])
def test_slurm_scontrol_failure_gives_no_time_limit(output, caplog):
    run = FakeRun({("scontrol", "show", "job", "4567"): output})
    with caplog.at_level(logging.WARNING, logger=manager.__name__):
        info = detect_manager("slurm", environ=SLURM_ENV, run=run)
    assert info == AllocationInfo("SLURM", "4567", None)
    assert "4567" in caplog.text


def test_raising_runner_does_not_crash(caplog):
    def broken(argv):
        raise RuntimeError("boom")

    with caplog.at_level(logging.WARNING, logger=manager.__name__):
        assert detect_manager(environ=SLURM_ENV, run=broken) == AllocationInfo("SLURM", "4567", None)
        assert detect_manager(environ=PBS_ENV, run=broken) == AllocationInfo("PBS", "123.pbs-server", None)
    assert "boom" in caplog.text


# ---------------------------------------------------------------------------------- run_command


def test_run_command_real_processes():
    assert run_command([sys.executable, "-c", "print('hi')"]) == "hi\n"
    assert run_command([sys.executable, "-c", "import sys; sys.exit(3)"]) is None
    assert run_command(["/nonexistent/qstat-binary"]) is None
    assert run_command([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2) is None


def test_default_runner_without_tools_does_not_crash():
    # No qstat/scontrol here (or they fail): the allocation is still detected, just without a limit.
    info = detect_manager(environ={"SLURM_JOB_ID": "definitely-not-a-job"})
    assert info is not None and info.manager == "SLURM" and info.time_limit is None


# ------------------------------------------------------------- garbage and huge values (range checks)
def _pbs_raw(walltime_json: str, used_json: str = '"00:00:00"') -> str:
    """qstat JSON with the walltime values written as raw JSON (numbers, Infinity, NaN...)."""
    return ('{"Jobs": {"123.pbs-server": {"Resource_List": {"walltime": %s}, '
            '"resources_used": {"walltime": %s}}}}' % (walltime_json, used_json))


@pytest.mark.parametrize("walltime, used", [
    ("1e400", "0"),  # json: inf
    ("Infinity", "0"),
    ("NaN", "0"),
    ("-Infinity", "0"),
    ("-5", "0"),
    ("1" + "0" * 400, "0"),  # an int that no float holds
    ('"99:99:99"', "-10"),
    ('"' + "9" * 400 + ':00:00"', '"00:00:00"'),
    ('"1:²:3"', '"00:00:00"'),
    ('"00:10:00"', '"' + "9" * 5000 + '"'),  # beyond Python's int digit limit
], ids=["1e400", "Infinity", "NaN", "-Infinity", "negative", "huge-int", "negative-used",
        "400-digit-hours", "superscript", "5000-digit-used"])
def test_pbs_garbage_walltime_loses_only_the_time_limit(walltime, used, caplog):
    run = FakeRun({("qstat", "-f", "123.pbs-server", "-F", "json"): _pbs_raw(walltime, used)})
    with caplog.at_level(logging.WARNING):
        info = detect_manager(environ=PBS_ENV, run=run)
    assert info == AllocationInfo("PBS", "123.pbs-server", None)
    assert "cannot get the walltime of PBS job 123.pbs-server" in caplog.text


def test_pbs_deeply_nested_output_loses_only_the_time_limit(caplog):
    run = FakeRun({("qstat", "-f", "123.pbs-server", "-F", "json"): "[" * 200_000})
    with caplog.at_level(logging.WARNING):
        assert detect_manager(environ=PBS_ENV, run=run).time_limit is None
    assert "cannot get the walltime" in caplog.text


@pytest.mark.parametrize("walltime", ["1e30", '"99999999999999999999:00:00"'])
def test_pbs_huge_walltime_is_cut_to_the_maximum(walltime, caplog):
    from hyperqueue.core.limits import MAX_DURATION

    run = FakeRun({("qstat", "-f", "123.pbs-server", "-F", "json"): _pbs_raw(walltime)})
    with caplog.at_level(logging.WARNING):
        assert detect_manager(environ=PBS_ENV, run=run).time_limit == MAX_DURATION
    assert "longer than the maximum" in caplog.text


@pytest.mark.parametrize("limit, runtime", [
    ("9" * 400 + "-00:00:00", "00:00:00"),
    ("9" * 5000, "00:00:00"),
    ("1-²", "00:00:00"),
    ("00:10:00", "9" * 400),
    ("00:10:00", "nan"),
    ("inf", "00:00:00"),
    ("-00:10:00", "00:00:00"),
], ids=["400-digit-days", "5000-digits", "superscript", "400-digit-runtime", "nan-runtime",
        "inf", "negative"])
def test_slurm_garbage_time_limit_loses_only_the_time_limit(limit, runtime, caplog):
    run = FakeRun({("scontrol", "show", "job", "4567"): scontrol_output(limit, runtime)})
    with caplog.at_level(logging.WARNING):
        assert detect_manager(environ=SLURM_ENV, run=run) == AllocationInfo("SLURM", "4567", None)
    assert "cannot get the time limit of Slurm job 4567" in caplog.text


def test_slurm_huge_time_limit_is_cut_to_the_maximum(caplog):
    from hyperqueue.core.limits import MAX_DURATION

    run = FakeRun({("scontrol", "show", "job", "4567"):
                   scontrol_output("99999999999999999999-00:00:00", "00:00:05")})
    with caplog.at_level(logging.WARNING):
        assert detect_manager(environ=SLURM_ENV, run=run).time_limit == MAX_DURATION
    assert "Slurm job 4567 (" in caplog.text and "longer than the maximum" in caplog.text
