"""A pool of threads that run tasks' processes, reporting completions back to trio in batches.

Why threads: a spawn (vfork + exec) blocks its caller for a while and `wait` blocks until the
task ends. Doing both in plain threads keeps the event loop free, lets two spawns overlap on two
cores, and costs no trio task, cancel scope or pidfd per task. Completions are handed back with
one `run_sync_soon` per batch, not per task.
"""

from __future__ import annotations

import queue
import threading


class Spawner:
    def __init__(self, token, on_done):
        """`on_done(runs)` is called in the trio thread with a batch of finished runs."""
        self._token = token
        self._on_done = on_done
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._done: list = []
        self._scheduled = False
        self._closed = False

    def submit(self, run) -> None:
        """Queues `run` (a `TaskRun`); a thread is added when none is idle."""
        with self._lock:
            if self._idle == 0:
                t = threading.Thread(target=self._loop, name="hq-spawner", daemon=True)
                self._threads.append(t)
                t.start()
            else:
                self._idle -= 1
        self._jobs.put(run)

    def close(self) -> None:
        """Lets the threads exit once their current run ends (they are daemons anyway)."""
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)

    def _loop(self) -> None:
        while True:
            run = self._jobs.get()
            if run is None:
                return
            run.execute()
            with self._lock:
                self._done.append(run)
                schedule = not self._scheduled
                self._scheduled = True
                self._idle += 1
            if schedule and not self._closed:
                try:
                    self._token.run_sync_soon(self._deliver)
                except RuntimeError:  # the trio run has ended
                    return

    def _deliver(self) -> None:
        with self._lock:
            batch, self._done = self._done, []
            self._scheduled = False
        if batch:
            self._on_done(batch)
