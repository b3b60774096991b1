"""The textual app on a recorded journal (Pilot: `App.run_test()`; deterministic, no clock)."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest
from dash_fixture import T0, records

pytest.importorskip("textual", reason="textual (the dashboard extra) is not installed")

from hyperqueue.dashboard.app import DashboardApp  # noqa: E402

SIZE = (160, 50)


def text(app, wid: str) -> str:
    return app.w(wid.lstrip("#")).text


def rows(app, wid: str) -> list[list[str]]:
    table = app.w(wid.lstrip("#"))
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def settle(app, pilot) -> None:
    """Lets the app handle the keys sent and draw what changed: the details follow a new
    selection on the app's next tick (every 0.1 s), which a loaded machine can delay."""
    await pilot.pause()
    for _ in range(100):
        if not app._dirty:
            return
        await pilot.pause(0.05)


def run(scenario, **kw):
    async def main():
        app = DashboardApp(**kw)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            await scenario(app, pilot)
        return app
    return asyncio.run(main())


@pytest.mark.timeout(60)
def test_jobs_screen_tables_details_and_failed_task(tmp_path):
    async def scenario(app, pilot):
        assert app.screen_name == "jobs" and app.first_frame_at is not None
        assert [r[:3] for r in rows(app, "#jobs-table")] == [["1", "array", "RUNNING"],
                                                             ["2", "graph", "CANCELED"]]
        assert "Job 1: array" in text(app, "#job-detail")
        assert "Command: ./compute --x" in text(app, "#job-detail")
        assert f"Workdir: {tmp_path}" in text(app, "#job-detail")
        assert [r[:3] for r in rows(app, "#tasks-table")][8:] == [["8", "failed", "1"],
                                                                  ["9", "running", "1"]]
        assert "Task-state counts over time:" in text(app, "#counts-chart")
        await pilot.press("2")  # focus the task table, go to the failed task
        for _ in range(8):
            await pilot.press("down")
        await settle(app, pilot)
        detail = text(app, "#task-detail")
        assert "Task 8 of job 1: failed" in detail
        assert "Program terminated with exit code 3." in detail
        assert f"Stderr: {tmp_path}/out/8.err" in detail
        await pilot.press("1", "down")  # job 2
        await settle(app, pilot)
        assert "Job 2: graph" in text(app, "#job-detail")
        assert "Cancel reason: enough" in text(app, "#job-detail")
        assert [r[1] for r in rows(app, "#tasks-table")] == ["canceled"] * 4

    run(scenario, records=records(str(tmp_path)), replay_path="fixture.journal")


@pytest.mark.timeout(60)
def test_workers_screen_and_worker_detail():
    async def scenario(app, pilot):
        await pilot.press("w")
        await settle(app, pilot)
        assert app.screen_name == "workers"
        table = rows(app, "#workers-table")
        assert [r[:4] for r in table] == [["1", "node1", "RUNNING", "1"],
                                          ["2", "node2", "CONNECTION LOST", "0"]]
        assert "[###.......]  34%" in table[0][4] and "65%" in table[0][5]
        assert text(app, "#workers-chart").startswith("workers ")
        await pilot.press("i")
        await settle(app, pilot)
        assert app.screen_name == "worker-detail"
        d = text(app, "#worker-detail-text")
        for part in ("Worker 1 (node1): RUNNING", "node-global CPUs", "3: 44.0%",
                     "GPU nvidia 0000:01:00.0", "Utilisation history", "Listen address: "
                     "node1:1234", "Overview interval: 1s", "gpus/nvidia: 1", "job 1 task 9"):
            assert part in d, part
        await pilot.press("c")
        await settle(app, pilot)
        assert "worker-managed CPUs" in text(app, "#worker-detail-text")
        await pilot.press("backspace")
        await settle(app, pilot)
        assert app.screen_name == "workers"
        await pilot.press("down", "i")  # worker 2: lost, no overview
        await settle(app, pilot)
        assert "no hardware overview" in text(app, "#worker-detail-text")
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen_name == "workers"

    run(scenario, records=records(), replay_path="fixture.journal")


@pytest.mark.timeout(60)
def test_allocations_screen_and_its_empty_state():
    async def scenario(app, pilot):
        await pilot.press("a")
        await settle(app, pilot)
        assert app.screen_name == "allocations"
        queues = rows(app, "#queues-table")
        assert [q[:4] for q in queues] == [["1", "cpuq", "slurm", "ACTIVE"],
                                           ["2", "", "pbs", "PAUSED"]]
        assert "bad queue" in queues[1][7]
        assert [a[:4] for a in rows(app, "#allocs-table")] == [
            ["1001", "1", "2", "FINISHED"], ["1002", "1", "1", "QUEUED"]]
        assert "1001 |" in text(app, "#alloc-timeline") and "#" in text(app, "#alloc-timeline")
        assert not app.query_one("#alloc-empty").display

    run(scenario, records=records(), replay_path="fixture.journal")

    async def empty(app, pilot):
        await pilot.press("a")
        await settle(app, pilot)
        assert app.query_one("#alloc-empty").display
        assert "No allocation queues" in text(app, "#alloc-empty")
        assert not app.query_one("#queues-table").display

    run(empty, records=records(with_alloc=False), replay_path="fixture.journal")


@pytest.mark.timeout(60)
def test_timeline_keys_move_in_time_and_back_to_live():
    async def scenario(app, pilot):
        assert text(app, "#timeline").startswith("END ")  # replay: the end of the journal
        await pilot.press("o")  # earlier by half the window (the whole history: 19 s)
        await settle(app, pilot)
        assert app.view_end == pytest.approx(T0 + 9.5)
        assert text(app, "#timeline").startswith("PAST ")
        assert [r[:3] for r in rows(app, "#jobs-table")] == [["1", "array", "RUNNING"]]
        assert rows(app, "#tasks-table")[-1][:2] == ["6", "running"]
        await pilot.press("k")  # zoom in: the window halves
        await settle(app, pilot)
        assert app.span == pytest.approx(4.75)
        await pilot.press("o")
        await settle(app, pilot)
        assert app.view_end == pytest.approx(T0 + 9.5 - 4.75 / 2)
        await pilot.press("l", "l", "l")  # zoom out past the whole history: whole again
        await settle(app, pilot)
        assert app.span is None
        await pilot.press("p", "p", "p")
        await settle(app, pilot)
        assert app.view_end is None and text(app, "#timeline").startswith("END ")
        await pilot.press("o", "w")
        await settle(app, pilot)
        assert [r[2] for r in rows(app, "#workers-table")] == ["RUNNING", "RUNNING"]
        await pilot.press("r")
        await settle(app, pilot)
        assert app.view_end is None
        assert [r[2] for r in rows(app, "#workers-table")] == ["RUNNING", "CONNECTION LOST"]

    run(scenario, records=records(), replay_path="fixture.journal")


@pytest.mark.timeout(60)
def test_cancel_is_read_only_in_replay_and_pager_opens_the_failed_tasks_stderr(tmp_path,
                                                                               monkeypatch):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "8.err").write_text("boom\n")
    seen = tmp_path / "pager-saw"
    pager = tmp_path / "pager.sh"
    pager.write_text(f"#!/bin/sh\necho \"$@\" > {seen}\n")
    pager.chmod(pager.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PAGER", str(pager))

    async def scenario(app, pilot):
        await pilot.press("x")
        await settle(app, pilot)
        assert "Read-only" in text(app, "#notice")
        await pilot.press("2", *["down"] * 8, "e")
        await settle(app, pilot)
        assert seen.read_text().strip() == f"{tmp_path}/out/8.err"
        assert "Viewed" in text(app, "#notice")
        await pilot.press("s")  # its stdout file does not exist
        await settle(app, pilot)
        assert "8.out does not exist" in text(app, "#notice")
        os.environ["PAGER"] = str(tmp_path / "no-such-pager")
        await pilot.press("e")
        await settle(app, pilot)
        assert "Cannot run the pager" in text(app, "#notice")  # and the app goes on
        await pilot.press("w")
        await settle(app, pilot)
        assert app.screen_name == "workers"

    run(scenario, records=records(str(tmp_path)), replay_path="fixture.journal")


@pytest.mark.timeout(60)
def test_a_resync_rebuilds_the_model_with_a_notice():
    recs = records()

    async def scenario(app, pilot):
        assert len(app.timeline.live.jobs) == 2
        app.items.append(("reset", "The server dropped the event stream (lagged); "
                                   "resynchronised from its history"))
        app.items.append(("records", recs[:5]))
        app.items.append(("live",))
        await pilot.pause(0.3)
        assert "resynchronised" in text(app, "#notice")
        assert len(app.timeline.live.jobs) == 1 and app.timeline.live.n_events == 5
        await pilot.press("escape")
        await settle(app, pilot)
        assert text(app, "#notice") == ""

    run(scenario, records=recs)


@pytest.mark.timeout(60)
def test_a_long_history_is_folded_in_slices_and_quit_ends_the_app():
    from test_dashboard_model import _big_history

    recs = _big_history(30_000, 10)

    async def scenario(app, pilot):
        for _ in range(100):
            if app.first_frame_at is not None:
                break
            await pilot.pause(0.1)
        assert app.timeline.live.jobs[1].counts[2] == 30_000
        assert rows(app, "#jobs-table")[0][:3] == ["1", "big", "FINISHED"]
        assert len(rows(app, "#tasks-table")) == 1000  # capped; the rest counted
        assert "29000 tasks not listed" in text(app, "#counts-chart")
        await pilot.press("q")

    app = run(scenario, records=recs)
    assert app.return_code in (0, None)
