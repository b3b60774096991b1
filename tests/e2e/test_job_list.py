"""Job listing, ID selectors, forget/open/close and priorities (each test on its own server,
so that job ids and counts are exact)."""

from __future__ import annotations

import pytest

from hqenv import parse_horizontal, read_file


@pytest.mark.timeout(60)
def test_job_list_footer_filters_and_selectors(hq_env, tmp_path):
    env = hq_env
    env.start_server()
    out = env.command(["job", "list"])
    assert parse_horizontal(out) == []
    assert "There are 0 jobs in total." in out

    j1 = env.submit(["--", "true"], cwd=tmp_path)
    assert j1 == 1
    out = env.command(["job", "list"])
    rows = parse_horizontal(out)
    assert rows == [{"ID": "1", "Name": "true", "State": "WAITING", "Tasks": "1"}]
    assert out.rstrip().splitlines()[-1].startswith("There is 1 job in total.")
    j2 = env.submit(["--array", "1-3", "--name", "arr", "--", "true"], cwd=tmp_path)
    assert j2 == 2
    out = env.command(["job", "list"])
    assert [r["ID"] for r in parse_horizontal(out)] == ["1", "2"]
    assert out.rstrip().splitlines()[-1].startswith("There are 2 jobs in total.")
    assert [j["id"] for j in env.command(["job", "list"], as_json=True)] == [1, 2]

    env.start_worker(cpus=2)
    env.command(["job", "wait", "all"])
    out = env.command(["job", "list"])
    assert parse_horizontal(out) == []
    assert "There are 2 jobs in total." in out
    rows = parse_horizontal(env.command(["job", "list", "--all"]))
    assert [(r["ID"], r["Name"], r["State"], r["Tasks"]) for r in rows] == [
        ("1", "true", "FINISHED", "1"), ("2", "arr", "FINISHED", "3")]
    assert [r["ID"] for r in parse_horizontal(
        env.command(["job", "list", "--filter", "finished"]))] == ["1", "2"]
    assert parse_horizontal(env.command(["job", "list", "--filter", "waiting,running"])) == []

    # selectors
    assert env.command(["job", "info", "last"], as_json=True)[0]["info"]["id"] == 2
    assert [d["info"]["id"] for d in env.command(["job", "info", "1-2"], as_json=True)] == [1, 2]
    assert [d["info"]["id"] for d in env.command(["job", "info", "all"], as_json=True)] == [1, 2]
    assert [d["info"]["id"] for d in env.command(["job", "info", "1,2"], as_json=True)] == [1, 2]
    assert list(env.command(["task", "list", "last"], as_json=True)) == ["2"]
    assert [t["id"] for t in env.command(["task", "info", "last", "2-3"], as_json=True)] == [2, 3]
    assert [t["id"] for t in env.command(["task", "list", "2", "--tasks", "1,3"],
                                         as_json=True)["2"]] == [1, 3]
    res = env.run(["job", "info", "5"])
    assert res.returncode == 0
    assert env.run(["job", "info", "1-x"]).returncode != 0

    summary = env.command(["job", "summary"], as_json=True)
    assert summary["Finished"] == 2 and summary["Running"] == 0

    # forget
    out = env.logged(["job", "forget", "1"])
    assert out == ["INFO 1 job were forgotten"]
    assert [j["id"] for j in env.command(["job", "list", "--all"], as_json=True)] == [2]
    out = env.logged(["job", "forget", "1"])
    assert out[0].startswith("INFO 0 jobs were forgotten")


@pytest.mark.timeout(60)
def test_open_job(hq_env, tmp_path):
    env = hq_env
    env.start_server()
    env.start_worker()
    out = env.command(["job", "open"])
    assert out.strip() == "Job 1 is open."
    job = int(env.command(["job", "open"], mode="quiet").strip())
    assert job == 2
    env.command(["job", "close", "1"])
    rows = parse_horizontal(env.command(["job", "list"]))
    assert rows[0]["ID"] == f"*{job}" and rows[0]["State"] == "OPENED"
    env.command(["submit", "--job", str(job), "--", "true"], cwd=tmp_path)
    env.command(["submit", "--job", str(job), "--", "true"], cwd=tmp_path)
    # `job wait --without-close` returns once the submitted tasks are done
    env.command(["job", "wait", str(job), "--without-close"])
    d = env.job_info(job)
    assert d["info"]["is_open"] is True and d["info"]["task_count"] == 2
    out = env.logged(["job", "close", str(job)])
    assert out == [f"INFO Job {job} closed"]
    out = env.logged(["job", "close", str(job)])
    assert out == [f"ERROR Closing job {job} failed; job is already closed"]
    env.command(["job", "wait", str(job)])
    rows = parse_horizontal(env.command(["job", "list", "--all"]))
    assert {"ID": str(job), "Name": "job", "State": "FINISHED", "Tasks": "2"} in rows


def _order_job(env, tmp_path, name, prio) -> int:
    return env.submit(["--priority", prio, "--", "sh", "-c", f"echo {name} >> order"],
                      cwd=tmp_path)


@pytest.mark.timeout(60)
def test_priorities_of_queued_jobs(hq_env, tmp_path):
    env = hq_env
    env.start_server()
    jobs = [_order_job(env, tmp_path, name, prio)
            for name, prio in [("zero", "0"), ("high", "5"), ("low", "1"), ("negative", "-2")]]
    env.start_worker(cpus=1)
    for j in jobs:
        env.wait_job(j)
    assert (tmp_path / "order").read_text().split() == ["high", "low", "zero", "negative"]


@pytest.mark.timeout(60)
def test_priorities_while_worker_busy(hq_env, tmp_path):
    env = hq_env
    env.start_server()
    env.start_worker(cpus=1)
    blocker = env.submit(["--", "sh", "-c",
                          "echo started > started; "
                          "while [ ! -f release ]; do sleep 0.05; done"], cwd=tmp_path)
    read_file(tmp_path / "started")
    low = _order_job(env, tmp_path, "low", "0")
    high = _order_job(env, tmp_path, "high", "5")
    for j in (low, high):
        assert env.tasks(j)[0]["state"] == "waiting"
    (tmp_path / "release").write_text("")
    for j in (blocker, low, high):
        env.wait_job(j)
    assert (tmp_path / "order").read_text().split() == ["high", "low"]


@pytest.mark.timeout(60)
def test_job_list_fast_path_matches_click(hq_env, tmp_path):
    """`hq job list` runs without click for plain arguments; every spelling prints exactly what
    the click command prints, and anything unusual still gets click's usage errors."""
    env = hq_env
    env.start_server()
    env.submit(["--name", "x" * 80, "--", "true"], cwd=tmp_path)
    env.command(["job", "open"])
    env.submit(["--array", "1-3", "--", "false"], cwd=tmp_path)
    env.command(["job", "cancel", "1", "--reason", "no longer needed"])
    slow = {"HQ_NO_FAST_PATH": "1"}
    for args in (["job", "list"], ["job", "list", "--all"], ["job", "list", "--verbose"],
                 ["job", "list", "--all", "--verbose"], ["job", "list", "--filter", "canceled"],
                 ["job", "list", "--filter=opened,waiting"], ["job", "list", "--filter", "x"],
                 ["job", "list", "--all", "--filter", "waiting"], ["job", "list", "--bogus"],
                 ["job", "list", "--all", "--all"], ["job", "list", "--filter"], ["--version"]):
        for mode in (None, "json", "quiet"):
            fast = env.run(args, mode=mode)
            ref = env.run(args, mode=mode, env=slow)
            assert (fast.returncode, fast.stdout, fast.stderr) == (
                ref.returncode, ref.stdout, ref.stderr), (args, mode)
    rows = parse_horizontal(env.command(["job", "list", "--all", "--verbose"]))
    assert [(r["ID"], r["State"], r["Cancel Reason"]) for r in rows] == [
        ("1", "CANCELED", "no longer needed"), ("*2", "OPENED", ""), ("3", "WAITING", "")]
    assert rows[0]["Name"] == "x" * 24 + "..." + "x" * 23  # upstream's split (F33)
    bad = env.run(["job", "list", "--filter", "x"])
    assert bad.returncode == 2 and "'x' is not one of" in bad.stderr
    # a server that is gone: same message and exit code on both paths
    env.command(["server", "stop"])
    gone = env.run(["job", "list"])
    ref = env.run(["job", "list"], env=slow)
    assert gone.returncode == ref.returncode == 1
    assert gone.stderr == ref.stderr and gone.stderr.startswith("Error: ")
