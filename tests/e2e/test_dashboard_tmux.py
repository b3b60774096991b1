"""`hq dashboard` in a real terminal (tmux) against a live server with a running job: switch
screens with keys, read them with capture-pane, cancel a job through the dialog, quit with `q`
and leave no process behind. Also the live source in the app (Pilot) against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hqenv import HqEnv, pid_alive, wait_until

TMUX = shutil.which("tmux")


class Tmux:
    """A private tmux server (own socket): never touches the user's sessions."""

    def __init__(self, root):
        self.socket = f"hqdash-{os.getpid()}-{int(time.monotonic() * 1000)}"
        self.root = root

    def __call__(self, *args, check=True) -> str:
        r = subprocess.run([TMUX, "-L", self.socket, *args], capture_output=True, text=True,
                           timeout=20)
        if check and r.returncode != 0:
            raise AssertionError(f"tmux {args}: {r.stderr}")
        return r.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "dash")

    def wait_for(self, *texts, timeout=30.0) -> str:
        def seen():
            s = self.screen()
            return s if all(t in s for t in texts) else None
        try:
            return wait_until(seen, timeout, 0.2, f"{texts} on the dashboard")
        except Exception:
            raise AssertionError(f"{texts} not shown; screen:\n{self.screen()}") from None

    def kill(self) -> None:
        self("kill-server", check=False)


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (.ci/run installs it)")
@pytest.mark.timeout(120)
def test_dashboard_in_tmux_against_a_live_server(hq_env: HqEnv, tmp_path):
    pytest.importorskip("textual", reason="textual (the dashboard extra) is not installed")
    hq_env.start_server()
    hq_env.start_worker("--overview-interval", "200ms", cpus="2")
    failing = hq_env.submit(["--name", "failing", "--", "bash", "-c", "echo oops >&2; exit 4"])
    hq_env.wait_job(failing)
    running = hq_env.submit(["--name", "longone", "--", "sleep", "100"])
    hq_env.wait_task_state(running, 0, "running")

    tmux = Tmux(tmp_path)
    cmd = " ".join(shlex.quote(a) for a in [*hq_env.hq, "--server-dir",
                                             str(hq_env.server_dir), "dashboard"])
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in hq_env.env.items()
                   if k in ("PYTHONPATH", "PATH", "HOME", "LANG", "LC_ALL"))
    try:
        tmux("new-session", "-d", "-s", "dash", "-x", "160", "-y", "50",
             f"cd {shlex.quote(str(hq_env.work_dir))} && env -u COLUMNS -u LINES "
             f"TERM=xterm-256color {env} {cmd}")
        pid = int(tmux("display-message", "-p", "-t", "dash", "#{pane_pid}").strip())
        jobs = tmux.wait_for("HyperQueue dashboard (live)", "longone", "RUNNING", "failing",
                             "FAILED", "LIVE")
        (tmp_path / "jobs.txt").write_text(jobs)
        tmux("send-keys", "-t", "dash", "w")
        workers = tmux.wait_for("Hostname", "RUNNING", "%  [")
        (tmp_path / "workers.txt").write_text(workers)
        tmux("send-keys", "-t", "dash", "i")
        detail = tmux.wait_for("CPU utilisation (node-global CPUs", "Configuration:",
                               "Overview interval: 0.2s", "Tasks on the worker (1)")
        (tmp_path / "worker-detail.txt").write_text(detail)
        tmux("send-keys", "-t", "dash", "BSpace", "a")
        allocs = tmux.wait_for("No allocation queues")
        (tmp_path / "allocations.txt").write_text(allocs)
        tmux("send-keys", "-t", "dash", "j", "o")
        tmux.wait_for("PAST ")
        tmux("send-keys", "-t", "dash", "r")
        tmux.wait_for("LIVE ")
        # cancel the running job (the second row) through the confirmation dialog
        tmux("send-keys", "-t", "dash", "Down", "x")
        tmux.wait_for(f"Cancel job {running} (longone)?")
        tmux("send-keys", "-t", "dash", "y")
        tmux.wait_for(f"Job {running} canceled (1 tasks).")
        wait_until(lambda: hq_env.job_info(running)["info"]["task_stats"]["canceled"] == 1,
                   20, 0.2, "the job canceled")
        tmux.wait_for("CANCELED")
        tmux("send-keys", "-t", "dash", "q")
        wait_until(lambda: not pid_alive(pid), 20, 0.1, "the dashboard to exit")
        assert tmux("has-session", "-t", "dash", check=False) == ""
    finally:
        tmux.kill()


@pytest.mark.timeout(90)
def test_live_source_follows_the_server_and_cancels_with_confirmation(hq_env: HqEnv):
    pytest.importorskip("textual", reason="textual (the dashboard extra) is not installed")
    from hyperqueue.dashboard.app import DashboardApp
    from hyperqueue.dashboard.source import LiveSource

    hq_env.start_server()
    hq_env.start_worker(cpus="1")
    first = hq_env.submit(["--", "true"])
    hq_env.wait_job(first)
    sd = str(hq_env.server_dir)

    async def main():
        source = LiveSource(sd)
        app = DashboardApp(source=source, server_dir=sd)
        async with app.run_test(size=(160, 50)) as pilot:
            async def until(fn, what, timeout=20.0):
                end = time.monotonic() + timeout
                while time.monotonic() < end:
                    await pilot.pause(0.1)
                    if fn():
                        return
                raise AssertionError(f"timed out waiting for {what}")

            await until(lambda: app.live_reached and 1 in app.timeline.live.jobs, "history")
            job = hq_env.submit(["--name", "live", "--", "sleep", "100"])
            await until(lambda: app.timeline.live.jobs.get(job) is not None and
                        app.timeline.live.jobs[job].state == "RUNNING", "live job")
            await pilot.press("down", "x")
            await pilot.pause()
            assert "Cancel job" in app.screen.query_one("#confirm-text").render().plain
            await pilot.press("n")
            await until(lambda: "not canceled" in app.w("notice").text, "kept")
            await pilot.press("x", "y")
            await until(lambda: app.timeline.live.jobs[job].state == "CANCELED", "canceled")
            assert f"Job {job} canceled" in app.w("notice").text
            assert source.streams == 1

    asyncio.run(main())


@pytest.mark.timeout(90)
def test_the_dashboard_asks_workers_for_overviews_streamed_not_journaled(hq_env: HqEnv,
                                                                          tmp_path):
    """F56: overviews a dashboard asks for are streamed but not stored; a worker's own
    `--overview-interval` ones are stored (and not duplicated by the dashboard's request)."""
    from hyperqueue.dashboard import source as src
    from hyperqueue.dashboard.source import LiveSource

    journal = tmp_path / "journal.bin"
    hq_env.start_server("--journal", str(journal))
    plain = hq_env.start_worker(cpus="1")
    hq_env.start_worker("--overview-interval", "300ms", cpus="1")
    old = src.OVERVIEW_INTERVAL
    src.OVERVIEW_INTERVAL = 0.2
    source = LiveSource(str(hq_env.server_dir))
    try:
        source.start()
        seen = {}

        def overviews():
            while source.items:
                item = source.items.popleft()
                if item[0] == "records":
                    for r in item[1]:
                        if r[1] == "worker-overview":
                            seen.setdefault(r[2]["id"], []).append(r)
            return len(seen.get(plain.worker_id, [])) >= 3 and seen.get(2)

        wait_until(overviews, 30, 0.1, "overviews of both workers")
        assert source.overview_requests >= 1
        state = seen[plain.worker_id][-1][2]["hw-state"]["state"]
        assert len(state["cpu_usage"]["cpu_per_core_percent_usage"]) >= 1
    finally:
        source.stop()
        src.OVERVIEW_INTERVAL = old
    hq_env.command(["journal", "flush"])
    exported = hq_env.command(["journal", "export", str(journal)])
    ids = [json.loads(line)["event"]["id"] for line in exported.splitlines()
           if '"worker-overview"' in line]
    assert ids and set(ids) == {2}, "only the worker's own overviews are journaled"
    # the request is checked like any other
    from hyperqueue.client.blocking import BlockingClient
    from hyperqueue.errors import HqError
    from hyperqueue.protocol import messages as m

    with BlockingClient(str(hq_env.server_dir)) as client:
        assert "2 workers" in client.request(m.OverviewsRequest(1.0, 5.0)).message
        with pytest.raises(HqError):  # an interval below the minimum: a malformed request
            client.request(m.OverviewsRequest(0.001, 5.0))
    assert len(hq_env.command(["worker", "list"], as_json=True)) == 2  # the server is fine


@pytest.mark.timeout(90)
def test_allocations_screen_shows_live_queues_and_the_servers_reasons(tmp_path):
    pytest.importorskip("textual", reason="textual (the dashboard extra) is not installed")
    from hqenv import clean_env

    from hyperqueue.dashboard.app import DashboardApp
    from hyperqueue.dashboard.source import LiveSource

    fake = Path(__file__).resolve().parent.parent / "fakepbs" / "bin"
    env = HqEnv(tmp_path, env=clean_env(PATH=f"{fake}:{os.environ['PATH']}",
                                        HQ_FAKE_PBS_DIR=str(tmp_path / "pbs")))
    try:
        env.start_server()
        res = env.run(["alloc", "add", "pbs", "--no-dry-run", "--time-limit", "1h",
                       "--name", "gpuq"])
        assert res.returncode == 0, res.stderr
        sd = str(env.server_dir)

        async def main():
            app = DashboardApp(source=LiveSource(sd), server_dir=sd)
            async with app.run_test(size=(160, 50)) as pilot:
                await pilot.press("a")
                end = time.monotonic() + 30
                while time.monotonic() < end:
                    await pilot.pause(0.2)
                    rows = [[str(c) for c in app.w("queues-table").get_row_at(i)]
                            for i in range(app.w("queues-table").row_count)]
                    if rows and rows[0][7] not in ("", "-"):
                        return rows
                raise AssertionError(f"no live reason: {rows}")

        rows = asyncio.run(main())
        assert rows[0][:4] == ["1", "gpuq", "pbs", "ACTIVE"]
        info = env.command(["alloc", "info", "1"])
        assert rows[0][7].split(";")[0].strip() in info, (rows[0][7], info)
    finally:
        env.close()


@pytest.mark.timeout(60)
def test_a_lagging_dashboard_is_dropped_and_resynchronises(tmp_path):
    """A real server (in this process, real TCP) whose subscribers may have no live event
    waiting (backlog 0): the first live event overflows it; the server drops the stream and
    goes on; the live source reconnects and delivers the whole history again (with that
    event), with a notice saying why."""
    import trio
    from hqenv import HQ, clean_env

    from hyperqueue.dashboard.model import Timeline
    from hyperqueue.dashboard.source import LiveSource
    from hyperqueue.server.app import Server

    root = str(tmp_path / "sd")
    server = Server(root, host="127.0.0.1", event_backlog=0)

    def hq(*args):
        r = subprocess.run([*HQ, "--server-dir", root, *args], capture_output=True, text=True,
                           env=clean_env(), timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    source = LiveSource(root)
    items = []

    def drained(pred):
        def check():
            while source.items:
                items.append(source.items.popleft())
            return pred()
        return check

    def body():
        try:
            wait_until(lambda: os.path.exists(os.path.join(root, "hq-current", "access.json")),
                       20, 0.05, "server start")
            source.start()
            wait_until(drained(lambda: ("live",) in items), 20, 0.05, "the live boundary")
            hq("submit", "--array", "1-100", "--", "true")  # no worker: all waiting
            wait_until(drained(lambda: any(i[0] == "reset" and i[1] for i in items)), 20,
                       0.05, "the resync")
            reset = next(i for i in items if i[0] == "reset" and i[1])
            assert "did not keep up" in reset[1] and "resynchronised" in reset[1]
            wait_until(drained(lambda: ("live",) in items[items.index(reset):]), 20, 0.05,
                       "the new history")
            tl = Timeline()
            for item in items[items.index(reset):]:
                if item[0] == "records":
                    tl.extend(item[1])
            assert tl.live.jobs[1].counts[0] == 100  # the new history has the submit
            assert source.streams == 2
            assert "1" in hq("job", "list", "--all")  # the server went on
        finally:
            source.stop()

    async def main():  # the server in this (main) thread, the client side in another
        async with trio.open_nursery() as n:
            n.start_soon(server.run)
            try:
                await trio.to_thread.run_sync(body)
            finally:
                server.stop()

    trio.run(main)
