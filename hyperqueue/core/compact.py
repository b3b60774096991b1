"""Finished tasks without records: runs of ids that share their start, end, worker, instance and
crash count (a *segment*), kept in flat arrays (no object per task).

A task that finished plainly (single node, no error) gives its record up as soon as it ends
(`reactor._complete`); what a view shows of it (state, instance, crash count, times, worker) is
read back from here (`FinishedTask`). Tasks that finish in the same reaction on the same worker
share a segment, and consecutive ids of one segment are one run, so a million-task array that
finished costs a few hundred kilobytes instead of hundreds of megabytes.

Pure and stdlib only (the `array` module); ids are ints in [0, MAX_ID].
"""

from __future__ import annotations

from array import array
from bisect import bisect_right

__all__ = ["FinishedRuns"]


class FinishedRuns:
    """Disjoint runs ``[start, end]`` of task ids, sorted by start, each pointing at a segment
    ``(start time, end time, worker id, instance, crash count)``."""

    __slots__ = ("starts", "ends", "segs", "t_start", "t_end", "worker", "instance", "crashes",
                 "count", "_keys", "_keys_end")

    def __init__(self):
        self.starts = array("q")
        self.ends = array("q")
        self.segs = array("q")
        self.t_start = array("d")
        self.t_end = array("d")
        self.worker = array("q")
        self.instance = array("q")
        self.crashes = array("q")
        self.count = 0
        # Segments of the latest end time: (start, worker, instance, crashes) -> index. Tasks
        # that end together mostly share one; older end times never get new tasks.
        self._keys: dict = {}
        self._keys_end: float | None = None

    def __len__(self) -> int:
        return self.count

    @property
    def n_runs(self) -> int:
        return len(self.starts)

    def segment(self, start: float, end: float, worker: int, instance: int,
                crashes: int) -> int:
        """The index of the segment with these values (made if needed)."""
        if end != self._keys_end:
            self._keys = {}
            self._keys_end = end
        key = (start, worker, instance, crashes)
        seg = self._keys.get(key)
        if seg is None:
            seg = len(self.t_start)
            self.t_start.append(start)
            self.t_end.append(end)
            self.worker.append(worker)
            self.instance.append(instance)
            self.crashes.append(crashes)
            self._keys[key] = seg
        return seg

    def add(self, first: int, last: int, seg: int) -> None:
        """Adds the ids ``first..last`` (none of them present yet) to segment `seg`, merging
        with the neighbouring runs of the same segment."""
        starts, ends, segs = self.starts, self.ends, self.segs
        n = len(starts)
        if n == 0 or first > ends[n - 1]:  # the common case: after every run
            self.count += last - first + 1
            if n and ends[n - 1] == first - 1 and segs[n - 1] == seg:
                ends[n - 1] = last
            else:
                starts.append(first)
                ends.append(last)
                segs.append(seg)
            return
        i = bisect_right(starts, first) - 1  # the run before, if any
        if i >= 0 and ends[i] >= first:
            raise ValueError(f"task {first} has finished already")
        j = i + 1  # the run after
        if j < n and starts[j] <= last:
            raise ValueError(f"task {starts[j]} has finished already")
        self.count += last - first + 1
        left = i >= 0 and ends[i] == first - 1 and segs[i] == seg
        right = j < n and starts[j] == last + 1 and segs[j] == seg
        if left and right:
            ends[i] = ends[j]
            del starts[j], ends[j], segs[j]
        elif left:
            ends[i] = last
        elif right:
            starts[j] = first
        else:
            starts.insert(j, first)
            ends.insert(j, last)
            segs.insert(j, seg)

    def find(self, task_id: int) -> int | None:
        """The segment of `task_id`, or None when it is not here."""
        starts = self.starts
        if not starts:
            return None
        i = bisect_right(starts, task_id) - 1
        if i >= 0 and task_id <= self.ends[i]:
            return self.segs[i]
        return None

    def __contains__(self, task_id) -> bool:
        return self.find(task_id) is not None

    def ids(self):
        """Every id, ascending."""
        for s, e in zip(self.starts, self.ends):
            yield from range(s, e + 1)

    def runs(self):
        """``(first, last, segment)`` of every run, ascending."""
        return zip(self.starts, self.ends, self.segs)

    def values(self, seg: int) -> tuple[float, float, int, int, int]:
        """``(start time, end time, worker id, instance, crash count)`` of a segment."""
        return (self.t_start[seg], self.t_end[seg], self.worker[seg], self.instance[seg],
                self.crashes[seg])
