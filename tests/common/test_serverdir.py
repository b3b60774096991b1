"""The server directory: a root another user could control is refused before anything is read
through it, a new root is 0700, the HOME-less default is per user, instance numbers are ASCII
digits, and an access record without keys is refused unless it says keys are off."""

from __future__ import annotations

import json
import os
import stat

import pytest

from hyperqueue.common import serverdir
from hyperqueue.errors import AccessRecordError, ServerNotFound, UnsafeAccess

NOBODY = 65534


def _record(client_key="ab" * 32, worker_key="cd" * 32, drop=()):
    rec = serverdir.generate_access("127.0.0.1", 1234, 5678)
    rec["client"]["secret_key"] = client_key
    rec["worker"]["secret_key"] = worker_key
    for section in drop:
        del rec[section]["secret_key"]
    return rec


def _root_with(tmp_path, record, mode=0o700, name="root"):
    root = tmp_path / name
    root.mkdir()
    (root / "access.json").write_text(json.dumps(record))
    os.chmod(root, mode)
    return str(root)


def test_new_root_is_0700_whatever_the_umask(tmp_path):
    root = tmp_path / "a" / "b" / "sd"
    old = os.umask(0)
    try:
        serverdir.ensure_root(str(root))
        inst = serverdir.create_instance_dir(str(root))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(inst).st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o720, 0o1777])
def test_root_writable_by_group_or_others_is_refused(tmp_path, mode):
    root = _root_with(tmp_path, _record(), mode)
    with pytest.raises(UnsafeAccess, match="writable by") as e:
        serverdir.load_access(root, "client")
    assert "chmod go-w" in str(e.value)
    with pytest.raises(UnsafeAccess):
        serverdir.ensure_root(root)
    with pytest.raises(UnsafeAccess):
        serverdir.create_instance_dir(root)
    assert sorted(os.listdir(root)) == ["access.json"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_root_owned_by_another_user_is_refused(tmp_path):
    root = _root_with(tmp_path, _record(), 0o755)
    os.chown(root, NOBODY, NOBODY)
    with pytest.raises(UnsafeAccess, match=f"owned by another user \\(uid {NOBODY}"):
        serverdir.load_access(root, "worker")
    with pytest.raises(UnsafeAccess):
        serverdir.ensure_root(root)
    # a symlink of ours to it does not help: the directory itself is checked
    link = tmp_path / "link"
    link.symlink_to(root)
    with pytest.raises(UnsafeAccess):
        serverdir.load_access(str(link), "worker")


def test_unsafe_root_is_refused_before_its_access_record_is_read(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "access.json").write_text("not json")
    os.chmod(root, 0o777)
    with pytest.raises(UnsafeAccess):
        serverdir.load_access(str(root), "client")
    os.chmod(root, 0o755)
    with pytest.raises(AccessRecordError, match="not valid JSON"):
        serverdir.load_access(str(root), "client")


def test_missing_root_is_not_found(tmp_path):
    with pytest.raises(ServerNotFound):
        serverdir.load_access(str(tmp_path / "nope"), "client")
    (tmp_path / "file").write_text("")
    with pytest.raises(ServerNotFound):
        serverdir.load_access(str(tmp_path / "file"), "client")


def test_default_dir_without_home_is_per_user(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", "/home/someone")
    assert serverdir.default_server_dir() == "/home/someone/.hq-server"
    monkeypatch.delenv("HOME")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    fallback = serverdir.default_server_dir()
    assert fallback == os.path.join(str(tmp_path), f".hq-server-{os.geteuid()}")
    monkeypatch.setenv("HOME", "")
    assert serverdir.default_server_dir() == fallback
    monkeypatch.delenv("TMPDIR")
    assert serverdir.default_server_dir() == f"/tmp/.hq-server-{os.geteuid()}"


def test_instance_numbers_are_ascii_digits(tmp_path):
    root = tmp_path / "sd"
    root.mkdir(mode=0o700)
    for name in ("²", "٣", "012", "abc", "7x"):
        (root / name).mkdir()
    first = serverdir.create_instance_dir(str(root))
    assert os.path.basename(first) == "013"
    assert os.path.basename(serverdir.create_instance_dir(str(root))) == "014"


def test_section_without_key_is_refused_and_null_key_means_disabled(tmp_path):
    root = _root_with(tmp_path, _record(drop=("client",), worker_key=None))
    with pytest.raises(UnsafeAccess, match="has no secret key for clients") as e:
        serverdir.load_access(root, "client")
    assert "--disable-client-authentication-and-encryption" in str(e.value)
    _rec, section = serverdir.load_access(root, "worker")
    assert serverdir.key_bytes(section) is None  # explicitly off: `"secret_key": null`
    root2 = _root_with(tmp_path, _record(), name="root2")
    _rec, section = serverdir.load_access(root2, "client")
    assert serverdir.key_bytes(section) == bytes.fromhex("ab" * 32)


def test_malformed_key_is_refused(tmp_path):
    root = _root_with(tmp_path, _record(client_key="zz" * 32))
    with pytest.raises(AccessRecordError, match="malformed secret key"):
        serverdir.load_access(root, "client")


def test_access_is_read_through_hq_current(tmp_path):
    root = tmp_path / "sd"
    serverdir.ensure_root(str(root))
    inst = serverdir.create_instance_dir(str(root))
    rec = _record()
    serverdir.write_access_file(os.path.join(inst, serverdir.ACCESS_FILE), rec)
    serverdir.point_current_link(str(root), inst)
    (root / "access.json").write_text(json.dumps(_record(client_key="ef" * 32)))
    got, _section = serverdir.load_access(str(root), "client")
    assert got == rec
    serverdir.remove_current_link(str(root), inst)
    with pytest.raises(ServerNotFound):
        os.unlink(root / "access.json")
        serverdir.load_access(str(root), "client")
