"""The server directory: numbered instance directories, the `hq-current` link and `access.json`.

Blocking file I/O only (used by the CLI, the server and the worker alike).

The root decides who controls the server a client or worker talks to (`hq-current` and the
`access.json` it leads to hold the host, port and keys; a worker runs whatever that server
sends). So the root must be a directory owned by the user and not writable by group or
others; anything else is refused before `access.json` is read through it (and the read goes
through a descriptor of the checked directory, so the root cannot be swapped in between).
A root the server creates is 0700.
"""

from __future__ import annotations

import json
import os
import stat

from ..errors import AccessRecordError, ServerNotFound, UnsafeAccess
from ..version import __version__

CURRENT_LINK = "hq-current"
ACCESS_FILE = "access.json"
_UID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def default_server_dir() -> str:
    """`~/.hq-server`; without HOME, a per-user directory in TMPDIR (or /tmp)."""
    home = os.environ.get("HOME")
    if home:
        return os.path.join(home, ".hq-server")
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", f".hq-server-{os.geteuid()}")


def resolve_server_dir(path: str | None) -> str:
    """The absolute root server directory from a flag/env value (or the default)."""
    if not path:
        path = os.environ.get("HQ_SERVER_DIR") or default_server_dir()
    return os.path.abspath(os.path.expanduser(path))


def check_root_stat(root: str, st: os.stat_result) -> None:
    """Refuses a root that is not a directory owned by this user and closed to others.

    Raises:
        UnsafeAccess: with what is wrong and how to fix it.
    """
    uid = os.geteuid()
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeAccess(f"Server directory {root!r} is not a directory")
    if st.st_uid != uid:
        raise UnsafeAccess(
            f"Server directory {root!r} is owned by another user (uid {st.st_uid}, you are "
            f"uid {uid}); refusing to use it: its owner could direct you to their own server",
            "Use a directory of your own (--server-dir or HQ_SERVER_DIR).")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if mode & bit)
        raise UnsafeAccess(
            f"Server directory {root!r} is writable by {who} (mode {mode:04o}); refusing to "
            f"use it: anyone who can write there could direct you to their own server",
            f"Remove that permission (`chmod go-w {root}`) or use another directory.")


def check_root(root: str) -> None:
    """`check_root_stat` of an existing root (a symlink is followed).

    Raises:
        ServerNotFound: there is no such directory.
        UnsafeAccess: see `check_root_stat`.
    """
    try:
        st = os.stat(root)
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(root) from None
    check_root_stat(root, st)


def ensure_root(root: str) -> None:
    """The server's root: created 0700 if missing (with its parents), then checked.

    Raises:
        UnsafeAccess: see `check_root_stat`.
        OSError: it cannot be created.
    """
    parent = os.path.dirname(root)
    if parent:
        os.makedirs(parent, exist_ok=True)
    try:
        os.mkdir(root, 0o700)
    except FileExistsError:
        pass
    else:
        os.chmod(root, 0o700)  # the umask must not widen it
    check_root(root)


def _not_found(root: str) -> ServerNotFound:
    return ServerNotFound(
        f"No running instance of HQ found at {root!r}.",
        "Try to start a server with `hq server start` or use a different server directory.")


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
            text = f.read()
    except OSError as e:
        raise AccessRecordError(f"Cannot read access record {path}: {e.strerror}") from None
    except ValueError:
        raise AccessRecordError(f"Access record {path} is not valid JSON") from None
    return parse_access(text, path, check_version=check_version)


def parse_access(text: str, path: str, *, check_version: bool = True) -> dict:
    """Validates the text of an access record (`path` is for messages); see
    `read_access_file`."""
    try:
        record = json.loads(text)
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
        if key is not None and not (isinstance(key, str) and len(key) == 64
                                    and all(c in "0123456789abcdefABCDEF" for c in key)):
            raise AccessRecordError(f"Access record {path}: malformed secret key")
    return record


def load_access(root: str, section: str) -> tuple[dict, dict]:
    """The access record of the server in `root` and its `section` ("client" or "worker").

    The root is checked (`check_root_stat`) and the record read through a descriptor of it.
    The section must hold a key, or say explicitly (`"secret_key": null`, written by a
    server started with `--disable-<section>-authentication-and-encryption`) that this side
    runs without authentication and encryption.

    Raises:
        ServerNotFound: no access record there.
        UnsafeAccess: the root is unsafe, or the section has no `secret_key` entry.
        AccessRecordError: see `read_access_file`.
    """
    try:
        dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(root) from None
    except OSError as e:
        raise AccessRecordError(f"Cannot open server directory {root}: {e.strerror}") from None
    try:
        check_root_stat(root, os.fstat(dfd))
        name = ACCESS_FILE
        try:
            os.lstat(CURRENT_LINK, dir_fd=dfd)
            name = os.path.join(CURRENT_LINK, ACCESS_FILE)
        except FileNotFoundError:
            pass
        path = os.path.join(root, name)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dfd)
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(root) from None
        except OSError as e:
            raise AccessRecordError(f"Cannot read access record {path}: {e.strerror}") from None
    finally:
        os.close(dfd)
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(1 << 20)
    except OSError as e:
        raise AccessRecordError(f"Cannot read access record {path}: {e.strerror}") from None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise AccessRecordError(f"Access record {path} is not valid JSON") from None
    record = parse_access(text, path)
    sec = record.get(section)
    if sec is None:
        raise AccessRecordError(f"Access record {path} has no '{section}' section")
    if "secret_key" not in sec:
        raise UnsafeAccess(
            f"Access record {path} has no secret key for {section}s; refusing to connect "
            "without authentication and encryption",
            "A server started with "
            f"--disable-{section}-authentication-and-encryption records `\"secret_key\": null`.")
    return record, sec


def key_bytes(section: dict) -> bytes | None:
    key = section.get("secret_key")
    return None if key is None else bytes.fromhex(key)


def create_instance_dir(root: str) -> str:
    """Creates `<root>/NNN` (the next number) owner-only and returns its absolute path.

    Raises:
        UnsafeAccess: the root is unsafe (see `ensure_root`).
    """
    ensure_root(root)
    while True:
        # ASCII digits only: `str.isdigit()` also accepts e.g. "²", which int() refuses.
        numbers = [int(n) for n in os.listdir(root) if n.isascii() and n.isdigit()]
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
