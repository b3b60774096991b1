"""Measures the dashboard with a large history (not a test; run by hand):

    PYTHONPATH=. python tests/dashboard/measure_dashboard.py [N_TASKS] [N_WORKERS]

Writes a journal with N_TASKS tasks (started and finished) on N_WORKERS workers, starts a real
`hq server` from it, then runs the app headless (Pilot) on the live event stream and reports:
the time to the first frame with the whole history folded, the live-follow latency (a submit
until the job shows RUNNING in the model, through a real worker), and the same for a replay of
the journal file.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dash_fixture import write_journal  # noqa: E402
from hqenv import HqEnv  # noqa: E402
from test_dashboard_model import _big_history  # noqa: E402

from hyperqueue.dashboard.app import DashboardApp  # noqa: E402
from hyperqueue.dashboard.source import LiveSource, read_journal  # noqa: E402


async def first_frame(app, deadline=300.0):
    t0 = time.monotonic()
    async with app.run_test(size=(160, 50)) as pilot:
        while app.first_frame_at is None:
            await pilot.pause(0.02)
            if time.monotonic() - t0 > deadline:
                raise TimeoutError
        ff = app.first_frame_at - t0
        yield ff, pilot


async def live(sd: str, env: HqEnv):
    app = DashboardApp(source=LiveSource(sd), server_dir=sd)
    t0 = time.monotonic()
    async with app.run_test(size=(160, 50)) as pilot:
        while app.first_frame_at is None:
            await pilot.pause(0.02)
        ff = app.first_frame_at - t0
        first_any = app.first_draw_at - t0
        lat = []
        for i in range(3):
            t1 = time.monotonic()
            job = int(env.command(["submit", "--", "sleep", "0"], mode="quiet").strip())
            while not (job in app.timeline.live.jobs and
                       app.timeline.live.jobs[job].counts[2] == 1):
                await pilot.pause(0.01)
            lat.append(time.monotonic() - t1)
        await pilot.press("w")
        t2 = time.monotonic()
        await pilot.press("o")  # time travel: first look at the past replays to it
        tt = time.monotonic() - t2
        t3 = time.monotonic()
        await pilot.press("o")
        tt2 = time.monotonic() - t3
    return ff, first_any, lat, tt, tt2, app.timeline.live.n_events


def main():
    n_tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    n_workers = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    root = Path(tempfile.mkdtemp(prefix="hqdash-measure-"))
    journal = root / "journal.bin"
    recs = _big_history(n_tasks, n_workers)
    write_journal(journal, recs)
    print(f"history: {len(recs)} records, {n_tasks} tasks, {n_workers} workers; "
          f"load average {os.getloadavg()[0]:.2f}")
    t = time.monotonic()
    records, _w = read_journal(str(journal))
    app = DashboardApp(records=records, replay_path=str(journal))

    async def replay():
        t0 = time.monotonic()
        async with app.run_test(size=(160, 50)) as pilot:
            while app.first_frame_at is None:
                await pilot.pause(0.02)
            return app.first_frame_at - t0, app.first_draw_at - t0
    ff, first_any = asyncio.run(replay())
    print(f"replay: read {time.monotonic() - t - ff:.2f} s, first frame {first_any:.2f} s, "
          f"complete {ff:.2f} s")
    env = HqEnv(root)
    try:
        env.start_server("--journal", str(journal), timeout=300)
        env.start_worker(cpus="1")
        t = time.monotonic()
        res = env.run(["journal", "replay"], timeout=600)
        plain = time.monotonic() - t
        print(f"side by side: `hq journal replay` of the same history: {plain:.2f} s "
              f"({len(res.stdout.splitlines())} lines)")
        ff, first_any, lat, tt, tt2, n = asyncio.run(live(str(env.server_dir), env))
        print(f"live: first frame {first_any:.2f} s, complete {ff:.2f} s ({n} events); submit -> finished task shown: "
              + ", ".join(f"{x * 1000:.0f} ms" for x in lat)
              + f"; first step back in time {tt:.2f} s, next {tt2:.3f} s")
    finally:
        env.close()
    print(f"load average {os.getloadavg()[0]:.2f}")
    subprocess.run(["rm", "-rf", str(root)])


if __name__ == "__main__":
    main()
