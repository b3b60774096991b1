"""The progress bar of `Client.wait_for_jobs` on a terminal (rich, which the CLI already
depends on; upstream uses tqdm)."""

from __future__ import annotations


def pluralize(text: str, count: int) -> str:
    return text if count == 1 else f"{text}s"


class ProgressBar:
    """The wait progress on stderr (rich, which the CLI already depends on): tasks done of
    total and "k/n jobs completed"."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        self._progress = Progress(BarColumn(), MofNCompleteColumn(), TextColumn("tasks"),
                                  TimeElapsedColumn(), TextColumn("{task.description}"),
                                  console=Console(stderr=True), transient=False)
        self._task = None
        self._progress.start()

    def __call__(self, p) -> None:
        n = len(p.infos)
        completed = sum(1 for i in p.infos
                        if i["task_stats"]["waiting"] + i["task_stats"]["running"] == 0)
        text = f"{completed}/{n} {pluralize('job', n)} completed"
        if self._task is None:
            self._task = self._progress.add_task(text, total=p.total)
        self._progress.update(self._task, completed=p.done, total=p.total, description=text)

    def close(self) -> None:
        self._progress.stop()
