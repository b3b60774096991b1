"""Task directories (`--task-dir`, every Python function task, multi-node tasks).

A task directory is made in the worker's work dir for one task under a name no other task
gets, is empty when the task starts (`HQ_TASK_DIR`), and is gone after the task (the worker
reads `hq-error` first). On some file systems creating and removing a directory costs
milliseconds of wall time (ext4 mounted with online `discard`, as on the machine the benchmarks
run on: `mkdir` ~0.2 ms, `rmdir` ~2.6 ms, 40 µs of it CPU), which a spawner thread would pay
per task, while renaming one costs ~10 µs. So a directory the task left as it was made (still
a directory of ours with mode 0700, holding nothing but files) is emptied (unlinks are cheap)
and renamed into a hidden pool in the work dir (`.hq-task-dirs/`); a later task's directory is
one of those renamed to its fresh name. Anything else is removed as before. At most
`MAX_KEPT` are pooled; `close` removes them when the worker stops.
"""

from __future__ import annotations

import itertools
import os
import shutil
import stat
import tempfile

MAX_KEPT = 64
POOL = ".hq-task-dirs"


class TaskDirs:
    """Thread-safe (list pop/append and the counter under the GIL)."""

    def __init__(self, work_dir: str):
        self.work_dir = work_dir
        self.pool = os.path.join(work_dir, POOL)
        self.kept: list[str] = []  # pooled directories (empty)
        self.uid = os.getuid()
        self.counter = itertools.count()
        self.names = iter(tempfile._RandomNameSequence())  # mkdtemp's names
        self.pool_made = False

    def take(self) -> str:
        """A new, empty directory for one task."""
        try:
            pooled = self.kept.pop()
        except IndexError:
            return tempfile.mkdtemp(prefix="t", dir=self.work_dir)
        # longer than mkdtemp's names (no clash with them) and unique in this worker
        path = os.path.join(self.work_dir, f"t{next(self.names)}{next(self.counter)}")
        try:
            os.rename(pooled, path)
            return path
        except OSError:
            shutil.rmtree(pooled, ignore_errors=True)
            return tempfile.mkdtemp(prefix="t", dir=self.work_dir)

    def give_back(self, path: str) -> None:
        """After the task's end (its process group killed): the directory is gone from its
        path; kept (emptied) for another task when it is as it was made."""
        try:
            st = os.lstat(path)
            if (len(self.kept) < MAX_KEPT and stat.S_ISDIR(st.st_mode) and st.st_uid == self.uid
                    and stat.S_IMODE(st.st_mode) == 0o700):
                with os.scandir(path) as it:
                    entries = list(it)
                if not any(e.is_dir(follow_symlinks=False) for e in entries):
                    for e in entries:
                        os.unlink(e.path)
                    if not self.pool_made:
                        os.makedirs(self.pool, mode=0o700, exist_ok=True)
                        self.pool_made = True
                    pooled = os.path.join(self.pool, str(next(self.counter)))
                    os.rename(path, pooled)
                    self.kept.append(pooled)
                    return
        except OSError:
            pass
        shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        self.kept = []
        if self.pool_made:
            shutil.rmtree(self.pool, ignore_errors=True)
            self.pool_made = False
