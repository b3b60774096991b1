"""`%{NAME}` placeholders in task paths (pure string work, shared by the worker and the views)."""

from __future__ import annotations

import posixpath

KNOWN = ("JOB_ID", "TASK_ID", "INSTANCE_ID", "SUBMIT_DIR", "CWD", "SERVER_UID")


def fill(text: str, values: dict[str, str]) -> str:
    """Replaces the known placeholders present in `values`; others stay as they are."""
    if "%{" not in text:
        return text
    for name, value in values.items():
        text = text.replace("%{" + name + "}", value)
    return text


def placeholder_names(text: str) -> list[str]:
    """The names of the `%{NAME}` placeholders in `text`, in order."""
    out = []
    i = text.find("%{")
    while i != -1:
        j = text.find("}", i)
        if j == -1:
            break
        out.append(text[i + 2:j])
        i = text.find("%{", j)
    return out


def unknown_placeholders(text: str) -> list[str]:
    return [name for name in placeholder_names(text) if name not in KNOWN]


def resolve_task_paths(cwd: str, stdout: str | None, stderr: str | None, *, job_id: int,
                       task_id: int, instance: int, submit_dir: str,
                       server_uid: str) -> tuple[str, str | None, str | None]:
    """The absolute cwd, stdout and stderr of one task instance.

    A relative cwd is relative to the submit dir; relative stdout/stderr are relative to the task
    cwd (upstream's behaviour).
    """
    values = {"JOB_ID": str(job_id), "TASK_ID": str(task_id), "INSTANCE_ID": str(instance),
              "SUBMIT_DIR": submit_dir, "SERVER_UID": server_uid}
    cwd = posixpath.normpath(posixpath.join(submit_dir, fill(cwd, values)))
    values["CWD"] = cwd

    def path(p):
        if p is None:
            return None
        return posixpath.normpath(posixpath.join(cwd, fill(p, values)))

    return cwd, path(stdout), path(stderr)
