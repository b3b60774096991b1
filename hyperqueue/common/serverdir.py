"""The server directory: numbered instance directories, the `hq-current` link and `access.json`.

Blocking file I/O only (used by the CLI, the server and the worker alike).
"""

from __future__ import annotations

import json
import os

from ..errors import AccessRecordError, ServerNotFound
from ..version import __version__

CURRENT_LINK = "hq-current"
ACCESS_FILE = "access.json"
_UID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def default_server_dir() -> str:
    home = os.environ.get("HOME")
    base = home if home else os.environ.get("TMPDIR", "/tmp")
    return os.path.join(base, ".hq-server")


def resolve_server_dir(path: str | None) -> str:
    """The absolute root server directory from a flag/env value (or the default)."""
    if not path:
        path = os.environ.get("HQ_SERVER_DIR") or default_server_dir()
    return os.path.abspath(os.path.expanduser(path))


def active_dir(root: str) -> str:
    """`<root>/hq-current` when it exists, else the root itself (a dir holding access.json)."""
    link = os.path.join(root, CURRENT_LINK)
    if os.path.lexists(link):
        return link
    return root


def new_server_uid() -> str:
    import secrets  # not at module level: clients never need it (start-up time)

    return "".join(secrets.choice(_UID_ALPHABET) for _ in range(6))


def generate_access(host: str, client_port: int, worker_port: int,
                    server_uid: str | None = None, *, client_host: str | None = None,
                    worker_host: str | None = None) -> dict:
    """A fresh access record with two independent random 32-byte keys."""
    import secrets

    return {
        "version": __version__,
        "server_uid": server_uid or new_server_uid(),
        "client": {"host": client_host or host, "port": client_port,
                   "secret_key": secrets.token_bytes(32).hex()},
        "worker": {"host": worker_host or host, "port": worker_port,
                   "secret_key": secrets.token_bytes(32).hex()},
    }


def write_access_file(path: str, record: dict) -> None:
    """Creates `path` exclusively with mode 0400 (fails if it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def read_access_file(path: str, *, check_version: bool = True) -> dict:
    """Reads and validates an access record.

    Raises:
        AccessRecordError: unreadable, malformed, or of another version.
    """
    try:
        with open(path) as f:
            record = json.load(f)
    except OSError as e:
        raise AccessRecordError(f"Cannot read access record {path}: {e.strerror}") from None
    except ValueError:
        raise AccessRecordError(f"Access record {path} is not valid JSON") from None
    if not isinstance(record, dict):
        raise AccessRecordError(f"Access record {path} is malformed")
    version = record.get("version")
    if check_version and version != __version__:
        raise AccessRecordError(
            f"Access record contains version {version}, but the current version is "
            f"{__version__}")
    for section in ("client", "worker"):
        sec = record.get(section)
        if sec is None:
            continue
        if not (isinstance(sec, dict) and isinstance(sec.get("host"), str)
                and isinstance(sec.get("port"), int)):
            raise AccessRecordError(f"Access record {path}: malformed '{section}' section")
        key = sec.get("secret_key")
        if key is not None and not (isinstance(key, str) and len(key) == 64):
            raise AccessRecordError(f"Access record {path}: malformed secret key")
    return record


def load_access(root: str, section: str) -> tuple[dict, dict]:
    """The access record of the server in `root` and its `section` ("client" or "worker").

    Raises:
        ServerNotFound: no access record there.
        AccessRecordError: see `read_access_file`.
    """
    path = os.path.join(active_dir(root), ACCESS_FILE)
    if not os.path.exists(path):
        raise ServerNotFound(
            f"No running instance of HQ found at {root!r}.",
            "Try to start a server with `hq server start` or use a different server directory.")
    record = read_access_file(path)
    sec = record.get(section)
    if sec is None:
        raise AccessRecordError(f"Access record {path} has no '{section}' section")
    return record, sec


def key_bytes(section: dict) -> bytes | None:
    key = section.get("secret_key")
    return None if key is None else bytes.fromhex(key)


def create_instance_dir(root: str) -> str:
    """Creates `<root>/NNN` (the next number) owner-only and returns its absolute path."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    while True:
        numbers = [int(n) for n in os.listdir(root) if n.isdigit()]
        path = os.path.join(root, f"{max(numbers, default=0) + 1:03d}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:  # another server raced us to this number
            continue
        os.chmod(path, 0o700)  # the umask must not widen it
        return path


def point_current_link(root: str, instance: str) -> None:
    """Atomically replaces `<root>/hq-current` with a link to `instance`."""
    link = os.path.join(root, CURRENT_LINK)
    tmp = f"{link}.{os.getpid()}.tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(instance, tmp)
    os.replace(tmp, link)


def remove_current_link(root: str, instance: str) -> None:
    """Removes `hq-current` if it still points at `instance` (a newer server may own it)."""
    link = os.path.join(root, CURRENT_LINK)
    try:
        if os.readlink(link) == instance:
            os.unlink(link)
    except OSError:
        pass
