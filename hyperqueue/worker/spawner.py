"""A pool of threads that run tasks' processes and chain straight into the next startable task.

Why threads: a spawn (vfork + exec) blocks its caller for a while and `wait` blocks until the
task ends. Doing both in plain threads keeps the event loop free, lets two spawns overlap on two
cores, and costs no trio task, cancel scope or pidfd per task.

Why chaining: when a task ends, the thread that ran it asks `after(run)` (the worker, under its
lock) to record the result, free the resources and hand back the next task that fits, and runs
that one itself. A stream of short tasks therefore needs no hand-off at all per task: no wake-up
of the event loop, no queue put/get between threads. The event loop is only woken to send the
batched results (see `Worker._writer`).
"""

from __future__ import annotations

import queue
import threading


class Spawner:
    def __init__(self, after):
        """`after(run)` is called in the spawner thread once `run` ended; it returns the next
        run for this thread, or None."""
        self._after = after
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, run) -> None:
        """Queues `run` (a `TaskRun`) for an idle thread; a thread is added when none is idle."""
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
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)

    def _loop(self) -> None:
        while True:
            run = self._jobs.get()
            if run is None:
                return
            while run is not None:
                run.execute()
                run = self._after(run)
            with self._lock:
                self._idle += 1
