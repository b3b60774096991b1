"""Reading a stream directory (`hq output-log`): pure apart from reading the files.

A stream directory holds one `.hqs` file per worker (see `format.py`). Loading merges all of them
(optionally only those of one server instance) into streams keyed by
`(job, task, instance, channel)`. The highest instance id seen for a task is its *current*
instance; streams of older instances (the task was restarted) are *superseded* and only show up in
the summary.

A channel is *finished* when its closing record (an empty chunk) was read. A channel without any
record counts as finished when another channel of the same instance was closed (the task ended
without writing to it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from .format import STDERR, STDOUT, SUFFIX, StreamFormatError, TornHeaderError, decode

__all__ = ["StreamReadError", "Chunk", "Instance", "StreamLog", "load"]


class StreamReadError(ValueError):
    """The directory cannot be read as a stream log (no files, several servers, bad file)."""


@dataclass(frozen=True)
class Chunk:
    time_ms: int
    job: int
    task: int
    instance: int
    channel: int
    data: bytes
    seq: int  # global read order: ties in time keep it


@dataclass
class Instance:
    """One run of one task: its chunks per channel and the channels that were closed."""

    job: int
    task: int
    instance: int
    chunks: dict[int, list[Chunk]] = field(default_factory=dict)
    closed: set[int] = field(default_factory=set)

    def channels(self) -> set[int]:
        """Channels with at least one record (data or close)."""
        return set(self.chunks) | self.closed

    def size(self, channel: int) -> int:
        return sum(len(c.data) for c in self.chunks.get(channel, ()))

    def data(self, channel: int) -> bytes:
        return b"".join(c.data for c in self.chunks.get(channel, ()))

    def is_finished(self, channel: int) -> bool:
        if channel in self.closed:
            return True
        # never written to, but the instance ended (another channel was closed)
        return channel not in self.chunks and bool(self.closed)


@dataclass
class _File:
    path: str
    server_uid: str
    worker_id: int
    records: Iterator


def _read_files(path: str) -> list[_File]:
    try:
        names = sorted(n for n in os.listdir(path) if n.endswith(SUFFIX))
    except (FileNotFoundError, NotADirectoryError):
        raise StreamReadError("No log files found") from None
    except OSError as e:
        raise StreamReadError(f"Cannot read {path}: {e.strerror}") from None
    files = []
    for name in names:
        full = os.path.join(path, name)
        if not os.path.isfile(full):
            continue
        try:
            with open(full, "rb") as f:
                data = f.read()
        except OSError as e:
            raise StreamReadError(f"Cannot read {full}: {e.strerror}") from None
        try:
            header, records = decode(data)
        except TornHeaderError:
            continue  # the worker died while creating it: no records
        except StreamFormatError as e:
            raise StreamReadError(f"Cannot read {full}: {e}") from None
        files.append(_File(full, header["server_uid"], header["worker_id"], records))
    return files


class StreamLog:
    """All streams of one server instance found in a stream directory."""

    def __init__(self, path: str, server_uid: str, files: list[str]):
        self.path = path
        self.server_uid = server_uid
        self.files = files
        # (job, task) -> {instance id -> Instance}
        self.tasks: dict[tuple[int, int], dict[int, Instance]] = {}
        self._seq = 0

    def _add(self, time_ms, job, task, instance, channel, data) -> None:
        inst = self.tasks.setdefault((job, task), {}).get(instance)
        if inst is None:
            inst = self.tasks[(job, task)][instance] = Instance(job, task, instance)
        if not data:
            inst.closed.add(channel)
            return
        if channel in inst.closed:
            return  # data after the close record: ignored
        self._seq += 1
        inst.chunks.setdefault(channel, []).append(
            Chunk(time_ms, job, task, instance, channel, data, self._seq))

    # ------------------------------------------------------------------------------- queries

    def current(self, job: int, task: int) -> Instance | None:
        """The latest instance of a task, or None if the task is not in the log."""
        instances = self.tasks.get((job, task))
        if not instances:
            return None
        return instances[max(instances)]

    def _current_instances(self):
        for instances in self.tasks.values():
            yield instances[max(instances)]

    def _superseded_instances(self):
        for instances in self.tasks.values():
            latest = max(instances)
            for i, inst in instances.items():
                if i != latest:
                    yield inst

    def job_ids(self) -> list[int]:
        return sorted({job for job, _ in self.tasks})

    def has_job(self, job: int) -> bool:
        return any(j == job for j, _ in self.tasks)

    def task_ids(self, job: int) -> list[int]:
        return sorted(t for j, t in self.tasks if j == job)

    def summary(self) -> dict:
        n_streams = n_opened = stdout_size = stderr_size = 0
        for inst in self._current_instances():
            for ch in inst.channels():
                n_streams += 1
                if ch not in inst.closed:
                    n_opened += 1
            stdout_size += inst.size(STDOUT)
            stderr_size += inst.size(STDERR)
        n_superseded = sup_stdout = sup_stderr = 0
        for inst in self._superseded_instances():
            n_superseded += len(inst.channels())
            sup_stdout += inst.size(STDOUT)
            sup_stderr += inst.size(STDERR)
        return {
            "n_files": len(self.files),
            "n_jobs": len(self.job_ids()),
            "n_tasks": len(self.tasks),
            "n_streams": n_streams,
            "n_opened": n_opened,
            "stdout_size": stdout_size,
            "stderr_size": stderr_size,
            "n_superseded": n_superseded,
            "superseded_stdout_size": sup_stdout,
            "superseded_stderr_size": sup_stderr,
        }

    def chunks(self, job: int | None = None, channel: int | None = None) -> list[Chunk]:
        """Chunks of the current instances (optionally of one job / channel), sorted by time
        (ties keep the order in which they were read)."""
        out = []
        for inst in self._current_instances():
            if job is not None and inst.job != job:
                continue
            for ch, chunks in inst.chunks.items():
                if channel is None or ch == channel:
                    out.extend(chunks)
        out.sort(key=lambda c: (c.time_ms, c.seq))
        return out

    def is_finished(self, job: int, task: int, channel: int) -> bool:
        """Whether the channel of the current instance of a task was closed (False for a task
        not in the log)."""
        inst = self.current(job, task)
        return inst is not None and inst.is_finished(channel)

    def task_data(self, job: int, channel: int, tasks=None) -> list[tuple[int, bytes, bool]]:
        """`(task id, concatenated data, finished)` of the current instance of each task of
        `job`: by ascending task id, or the ids of `tasks` (an iterable) in the order given.

        Raises:
            StreamReadError: `Task <T> not found` for a selected id without a stream.
        """
        out = []
        for task in (self.task_ids(job) if tasks is None else tasks):
            inst = self.current(job, task)
            if inst is None:
                raise StreamReadError(f"Task {task} not found")
            out.append((task, inst.data(channel), inst.is_finished(channel)))
        return out

    def id_widths(self) -> tuple[int, int]:
        """Digits of the largest job id and of the largest task id in the whole log (`show`
        zero-pads the ids of every chunk header to these widths, as upstream)."""
        if not self.tasks:
            return 1, 1
        return (len(str(max(j for j, _ in self.tasks))),
                len(str(max(t for _, t in self.tasks))))


def load(path: str, server_uid: str | None = None) -> StreamLog:
    """Reads every `.hqs` file of the directory `path`.

    Raises:
        StreamReadError: no stream files (of `server_uid`, if given), files of several server
            instances without `server_uid`, or a file that is not a stream file.
    """
    files = _read_files(path)
    if not files:
        raise StreamReadError("No log files found")
    if server_uid is not None:
        files = [f for f in files if f.server_uid == server_uid]
        if not files:
            raise StreamReadError("No log files found")
    else:
        uids = sorted({f.server_uid for f in files})
        if len(uids) > 1:  # upstream's text, one uid per line
            raise StreamReadError(
                "Found streams from multiple server instances:\n" + "\n".join(uids)
                + "\nUse --server-uid=... to specify server uid")
        server_uid = uids[0]
    log = StreamLog(path, server_uid, [f.path for f in files])
    for f in files:
        for rec in f.records:
            log._add(*rec)
    return log
