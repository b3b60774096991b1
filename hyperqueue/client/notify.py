"""Task notifications: `hq task notify` (inside a task, through its worker's local socket) and
the `--on-notify` callback of a waiting `hq submit` (upstream-facts.md F74, F75)."""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import subprocess
import sys

from ..errors import HqError

MAX_MESSAGE = 1024  # bytes (as upstream)

log = logging.getLogger("hq")


def _command_error(message: str) -> HqError:
    """An error printed as the bare message (upstream's anyhow errors of client commands)."""
    return getattr(sys.modules[HqError.__module__], "CommandError", HqError)(message)


def send_notification(message: str, env=os.environ) -> None:
    """Sends `message` to the worker running this task (checks in upstream's order).

    Raises:
        HqError: the message is too long, there is no (well-formed) HQ_ACCESS_KEY, or the
            worker refused or could not be reached.
    """
    data = message.encode("utf-8", "surrogateescape")
    if len(data) > MAX_MESSAGE:
        raise _command_error(f"Notify message limit exceeded, message len: {len(data)}, "
                             f"limit: {MAX_MESSAGE}")
    key = env.get("HQ_ACCESS_KEY")
    if key is None:
        raise _command_error("HQ_ACCESS_KEY variable not found. "
                             "Are you running this command inside a task?")
    path, sep, token = key.rpartition(":")
    if not sep or not path or not token:
        raise _command_error("Value of HQ_ACCESS_KEY has a wrong format")
    try:
        job, task = int(env.get("HQ_JOB_ID", "")), int(env.get("HQ_TASK_ID", ""))
        instance = int(env.get("HQ_INSTANCE_ID", "0"))
    except ValueError:
        raise _command_error("HQ_JOB_ID/HQ_TASK_ID variables not found. "
                             "Are you running this command inside a task?") from None
    request = json.dumps({"token": token, "job": job, "task": task, "instance": instance,
                          "message": data.decode("utf-8", "replace")}).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(path)
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
    except OSError as e:
        raise _command_error(f"Cannot send the notification to the worker: "
                             f"{e.strerror or e}") from None
    if reply != b"ok":
        raise _command_error(f"The notification was refused: "
                             f"{reply.decode('utf-8', 'replace') or 'no answer'}")


def on_notify_command(text: str) -> list[str]:
    """The callback program and its arguments: shell rules, the whole text if they fail."""
    try:
        return shlex.split(text)
    except ValueError:
        return [text]


def run_callback(argv: list[str], job_id: int, task_id: int, worker_id: int,
                 message: bytes) -> None:
    """Runs one `--on-notify` callback to completion: `argv + [message]` with HQ_JOB_ID,
    HQ_TASK_ID and HQ_WORKER_ID; a failure is only logged (WARN)."""
    env = dict(os.environ, HQ_JOB_ID=str(job_id), HQ_TASK_ID=str(task_id),
               HQ_WORKER_ID=str(worker_id))
    arg = os.fsdecode(message) if message else ""
    try:
        status = subprocess.run([*argv, arg], env=env, stdin=subprocess.DEVNULL).returncode
    except OSError as e:
        reason = f"{e.strerror} (os error {e.errno})" if e.errno else str(e)
        log.warning("Failed to run on_notify callback: %s", reason)
        return
    if status != 0:  # as Rust's ExitStatus shows itself
        shown = f"exit status: {status}" if status > 0 else f"signal: {-status}"
        log.warning("on_notify callback finished with exit code: %s", shown)


def wait_with_notifications(client, selector_wire, on_note, without_close: bool = False):
    """Waits for the jobs like `calls.wait_jobs`, calling `on_note(job, task, worker,
    message)` for each notification in arrival order (the next one is read only once it
    returns). Returns the jobs' final infos."""
    from ..errors import RequestFailed
    from ..protocol import messages as m
    from ..protocol.errors import ConnectionClosed, ProtocolError

    conn = client.conn
    try:
        conn.settimeout(None)
        conn.send(m.encode(m.WaitNotifyRequest(selector_wire, without_close)))
        while True:
            resp = client.receive()
            if isinstance(resp, m.TaskNotification):
                on_note(resp.job_id, resp.task_id, resp.worker_id, resp.message)
                continue
            if isinstance(resp, m.ErrorResponse):
                raise RequestFailed(resp.message)
            if isinstance(resp, m.JobsResponse):
                return resp.jobs
            raise HqError(f"Protocol error: unexpected {type(resp).__name__}")
    except (ConnectionClosed, OSError) as e:
        raise HqError(f"Connection to the server was lost: {e or 'closed'}") from None
    except ProtocolError as e:
        raise HqError(f"Protocol error: {e}") from None
