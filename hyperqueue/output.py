"""Where a task's stdout and stderr go (upstream's `hyperqueue.output`).

A task's `stdout=` / `stderr=` is a path (str or Path; placeholders like `%{TASK_ID}` allowed),
a `StdioDef`, or None (no file). The default is `%{CWD}/%{TASK_ID}.stdout` (`.stderr`): next
to the task's working directory, without the `job-N/` folder the CLI uses.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal, Optional, Union

GenericPath = Union[Path, str]
FileOnCloseBehavior = Literal["none", "rm-if-finished"]


@dataclasses.dataclass
class StdioDef:
    """A stdout/stderr destination. `path` None: the default path; `on_close`
    "rm-if-finished": the file is removed when the task finishes successfully."""

    path: Optional[GenericPath]
    on_close: FileOnCloseBehavior

    @staticmethod
    def from_path(path: GenericPath) -> "StdioDef":
        return StdioDef(path=path, on_close="none")

    @staticmethod
    def remove_if_finished(path: Optional[GenericPath] = None) -> "StdioDef":
        return StdioDef(path=path, on_close="rm-if-finished")


Stdio = Union[GenericPath, StdioDef]


def default_output(ext: str) -> str:
    return "%{CWD}/%{TASK_ID}." + ext


def default_stdout() -> str:
    return default_output("stdout")


def default_stderr() -> str:
    return default_output("stderr")


def build_stdio(stdio, stream: str) -> Optional[StdioDef]:
    """A task's `stdout=`/`stderr=` argument as a StdioDef (None: no file)."""
    if isinstance(stdio, (str, Path)):
        return StdioDef.from_path(stdio)
    if isinstance(stdio, StdioDef):
        if stdio.on_close not in ("none", "rm-if-finished"):
            raise ValueError(f"Invalid `on_close` of `{stream}`: {stdio.on_close!r} "
                             "(expected 'none' or 'rm-if-finished')")
        return stdio
    if stdio is None:
        return None
    raise ValueError(f"Invalid value provided for `{stream}`: {type(stdio)}. Expected str, "
                     "Path or `StdioDef` or `None`.")
