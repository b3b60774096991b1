"""Files and directories of a server: journal prune, journal write failures, crashes, the server
directory root, and access records without keys (real `hq` processes over 127.0.0.1)."""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from hqenv import HQ, Process, wait_until

NOBODY = 65534
BIG_ARG = "x" * 8000  # makes each job-created record ~8 KB


def _journal_jobs(env) -> set[int]:
    return {j["id"] for j in env.command(["job", "list", "--all"], as_json=True)}


def _stop_server(env, server) -> None:
    env.command(["server", "stop"])
    assert server.wait(10) == 0, server.stderr()


# -- journal prune ------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_prune_writes_0600_and_follows_no_planted_symlink(hq_env):
    journal = hq_env.root / "journal.bin"
    victim = hq_env.root / "victim"
    victim.write_bytes(b"precious")
    server = hq_env.start_server("--journal", str(journal))
    hq_env.start_worker()
    done = hq_env.submit(["--", "true"])
    hq_env.wait_job(done)
    os.chmod(journal, 0o644)
    planted = [journal.with_name("journal.bin.tmp"), journal.with_name(".journal.bin.tmp")]
    for p in planted:
        p.symlink_to(victim)
    live = hq_env.submit(["--cpus", "8", "--", "true"])  # cannot run on a 1-cpu worker
    out = hq_env.command(["journal", "prune"])
    assert "events dropped" in out
    assert stat.S_IMODE(os.lstat(journal).st_mode) == 0o600
    assert not journal.is_symlink()
    assert victim.read_bytes() == b"precious"
    assert all(p.is_symlink() for p in planted)
    leftovers = [p.name for p in hq_env.root.iterdir() if p.name.startswith(".journal.bin")]
    assert leftovers == [".journal.bin.tmp"]
    _stop_server(hq_env, server)
    hq_env.start_server("--journal", str(journal))
    assert _journal_jobs(hq_env) == {live}  # the finished job was pruned, the live one kept


def _submit_request(n_cpus: int = 8):
    from hyperqueue.core.model import DEFAULT_CRASH_LIMIT, ProgramDef, TaskTemplate
    from hyperqueue.core.resources import UNIT, ResourceRequest, ResourceRequestEntry
    from hyperqueue.protocol import messages as m

    request = ResourceRequest([ResourceRequestEntry("cpus", n_cpus * UNIT, "compact")], 0,
                              0.0, UNIT)
    template = TaskTemplate(ProgramDef(["true"]), request, None, 0, DEFAULT_CRASH_LIMIT, None)
    return m.SubmitRequest("hammer", None, "/tmp", None, [[template, "0", None, []]])


@pytest.mark.timeout(120)
def test_jobs_submitted_while_pruning_survive_kill9(hq_env):
    from hyperqueue.client.blocking import BlockingClient
    from hyperqueue.protocol import messages as m

    journal = hq_env.root / "journal.bin"
    server = hq_env.start_server("--journal", str(journal))
    worker = hq_env.start_worker()
    done = hq_env.submit(["--array", "1-20", "--", "true"])
    hq_env.wait_job(done)
    hq_env.command(["worker", "stop", str(worker.worker_id)], allow_stderr=True)
    worker.wait(15)

    root = str(hq_env.server_dir)
    stop = threading.Event()
    prunes = []
    submitted = []
    errors = []

    def prune_loop():
        try:
            with BlockingClient(root) as client:
                while not stop.is_set():
                    prunes.append(client.request(m.JournalRequest("prune"), timeout=30))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def submit_loop(n):
        try:
            with BlockingClient(root) as client:
                for _ in range(n):  # waiting jobs (8 cpus): live, never pruned
                    submitted.append(client.request(_submit_request(), timeout=30).job_id)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    pruner = threading.Thread(target=prune_loop)
    pruner.start()
    submitters = [threading.Thread(target=submit_loop, args=(150,)) for _ in range(3)]
    for t in submitters:
        t.start()
    for t in submitters:
        t.join(90)
    stop.set()
    pruner.join(30)
    assert not errors, errors
    assert len(submitted) == 450 and len(prunes) >= 5, (len(submitted), len(prunes))
    server.signal(signal.SIGKILL)
    server.wait(10)
    restarted = hq_env.start_server("--journal", str(journal))
    assert restarted.poll() is None
    jobs = _journal_jobs(hq_env)
    assert done not in jobs  # pruned
    missing = sorted(set(submitted) - jobs)
    assert not missing, f"{len(missing)} submitted jobs lost: {missing[:20]}"


# -- journal write failure ----------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_journal_write_failure_stops_the_server_cleanly(hq_env):
    journal = hq_env.root / "journal.bin"
    server = hq_env.start_server("--journal", str(journal))
    worker = hq_env.start_worker()  # on-server-lost: stop
    first = hq_env.submit(["--cpus", "8", "--", "true"])
    # The file-size limit: writing the journal past it fails with EFBIG (Python ignores
    # SIGXFSZ), as a full disk would with ENOSPC.
    limit = os.path.getsize(journal) + 40_000
    resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (limit, limit))
    accepted = [first]
    for _ in range(20):
        res = hq_env.run(["--output-mode", "quiet", "submit", "--cpus", "8", "--", "echo",
                          BIG_ARG])
        if res.returncode != 0:
            break
        accepted.append(int(res.stdout))
    else:
        pytest.fail("the journal never failed")
    assert server.wait(15) == 1
    err = server.stderr()
    assert f"Cannot write the journal {journal}: File too large (EFBIG)" in err, err
    assert "Traceback" not in err
    assert "Cannot start the server" not in err
    assert "stopped because it cannot write its journal" in err
    assert not os.path.lexists(hq_env.server_dir / "hq-current")
    assert worker.wait(15) == 1  # told, as on a normal stop
    assert "Traceback" not in worker.stderr()
    # restart (without the limit): every submit that was answered is there
    hq_env.start_server("--journal", str(journal))
    assert _journal_jobs(hq_env) >= set(accepted)


# -- crash --------------------------------------------------------------------------------------


CRASHING_SERVER = """
import sys
from hyperqueue.server import app
import trio

async def _housekeeping(self):
    await trio.sleep(0.5)
    raise RuntimeError("boom from housekeeping")

app.Server._housekeeping = _housekeeping
from hyperqueue.cli.main import main
main(sys.argv[1:])
"""


@pytest.mark.timeout(60)
def test_server_crash_logs_its_traceback(hq_env):
    out, err = hq_env.root / "crash.out", hq_env.root / "crash.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        popen = subprocess.Popen(
            [sys.executable, "-c", CRASHING_SERVER, "--server-dir", str(hq_env.server_dir),
             "server", "start", "--host", "127.0.0.1"],
            stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=hq_env.env,
            cwd=str(hq_env.work_dir))
    proc = Process("crashing-server", popen, out, err)
    hq_env.processes.append(proc)
    assert proc.wait(20) == 1
    text = proc.stderr()
    assert " ERROR The server crashed" in text, text  # env_logger levels (F1)
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: boom from housekeeping" in text
    assert "_housekeeping" in text  # the frame that raised
    assert "Error: The server crashed: RuntimeError: boom from housekeeping" in text
    assert not os.path.lexists(hq_env.server_dir / "hq-current")


# -- the server directory root ------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["mode-0777", "owner-nobody"])
def test_unsafe_root_is_refused_by_server_clients_and_workers(hq_env, how):
    if how == "owner-nobody" and os.geteuid() != 0:
        pytest.skip("chown needs root")
    sd = hq_env.server_dir
    hq_env.start_server()
    hq_env.command(["job", "list"])  # fine while the root is safe
    if how == "mode-0777":
        os.chmod(sd, 0o777)
        expected = "is writable by group and others (mode 0777)"
    else:
        os.chown(sd, NOBODY, NOBODY)
        expected = f"is owned by another user (uid {NOBODY}"
    out = hq_env.command(["job", "list"], expect_fail=True)
    assert expected in out and "Traceback" not in out, out
    t0 = time.monotonic()
    res = hq_env.run(["worker", "start", "--cpus", "1"], timeout=30)
    assert res.returncode == 1 and expected in res.stderr, res.stderr
    assert time.monotonic() - t0 < 10  # refused at once, not retried
    before = sorted(os.listdir(sd))
    server2 = hq_env.start_server(wait=False)
    assert server2.wait(15) == 1
    assert expected in server2.stderr()
    assert sorted(os.listdir(sd)) == before  # nothing created


@pytest.mark.timeout(60)
def test_without_home_the_default_root_is_per_user(hq_env):
    tmpdir = hq_env.root / "tmp"
    tmpdir.mkdir()
    env = {k: v for k, v in hq_env.env.items() if k not in ("HOME", "HQ_SERVER_DIR")}
    env["TMPDIR"] = str(tmpdir)
    root = tmpdir / f".hq-server-{os.geteuid()}"
    server = hq_env._spawn("server", ["server", "start", "--host", "127.0.0.1"], env=env)
    wait_until(lambda: (root / "hq-current" / "access.json").exists() or server.poll(),
               20, 0.05, "server start")
    assert server.poll() is None, server.stderr()
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    res = subprocess.run(HQ + ["--output-mode", "json", "server", "info"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["pid"] == server.pid
    subprocess.run(HQ + ["server", "stop"], env=env, capture_output=True, timeout=30)
    assert server.wait(10) == 0
    if os.geteuid() == 0:  # another user's directory at the fallback path is refused
        os.chown(root, NOBODY, NOBODY)
        res = subprocess.run(HQ + ["server", "start", "--host", "127.0.0.1"], env=env,
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 1 and "owned by another user" in res.stderr, res.stderr


@pytest.mark.timeout(60)
def test_non_ascii_digit_directories_are_ignored(hq_env):
    sd = hq_env.server_dir
    sd.mkdir(mode=0o700)
    for name in ("²", "٣", "004"):
        (sd / name).mkdir()
    hq_env.start_server()
    assert os.path.realpath(sd / "hq-current") == str((sd / "005").resolve())


# -- access records without keys ----------------------------------------------------------------


def _copy_access(env, name: str, change) -> str:
    record = json.loads((env.server_dir / "hq-current" / "access.json").read_text())
    change(record)
    d = env.root / name
    d.mkdir()
    (d / "access.json").write_text(json.dumps(record))
    return str(d)


@pytest.mark.timeout(60)
def test_access_records_without_keys_are_refused(hq_env):
    gen = hq_env.root / "gen"
    gen.mkdir()
    hq_env.command(["server", "generate-access", str(gen / "access.json"), "--host",
                    "127.0.0.1", "--client-port", "0", "--worker-port", "0"])
    record = json.loads((gen / "access.json").read_text())
    for side in ("client", "worker"):
        keyless = json.loads(json.dumps(record))
        keyless[side]["secret_key"] = None
        path = hq_env.root / f"keyless-{side}.json"
        path.write_text(json.dumps(keyless))
        res = hq_env.run(["server", "start", "--host", "127.0.0.1", "--access-file",
                          str(path)])
        assert res.returncode == 1, res.stderr
        assert f"has no secret key for {side}s" in res.stderr
        assert f"--disable-{side}-authentication-and-encryption" in res.stderr
    assert not os.path.lexists(hq_env.server_dir / "hq-current")

    hq_env.start_server()
    no_client_key = _copy_access(hq_env, "no-client-key",
                                 lambda r: r["client"].pop("secret_key"))
    out = hq_env.command(["job", "list"], expect_fail=True, server_dir=no_client_key)
    assert "has no secret key for clients" in out and "Traceback" not in out, out
    no_worker_key = _copy_access(hq_env, "no-worker-key",
                                 lambda r: r["worker"].pop("secret_key"))
    t0 = time.monotonic()
    res = hq_env.run(["worker", "start", "--cpus", "1"], server_dir=no_worker_key, timeout=30)
    assert res.returncode == 1 and "has no secret key for workers" in res.stderr, res.stderr
    assert time.monotonic() - t0 < 10
    # a keyless client cannot talk to the (keyed) server either
    null_client_key = _copy_access(hq_env, "null-client-key",
                                   lambda r: r["client"].update(secret_key=None))
    out = hq_env.command(["job", "list"], expect_fail=True, server_dir=null_client_key)
    assert "Authentication mismatch" in out, out


@pytest.mark.timeout(90)
@pytest.mark.parametrize("side", ["client", "worker"])
def test_disable_flags_really_disable_one_side(hq_env, side):
    other = "worker" if side == "client" else "client"
    server = hq_env.start_server(f"--disable-{side}-authentication-and-encryption")
    err = server.stderr()
    assert (f"AUTHENTICATION AND ENCRYPTION OF {side.upper()} CONNECTIONS ARE DISABLED"
            in err), err
    assert f"AUTHENTICATION AND ENCRYPTION OF {other.upper()}" not in err
    access = json.loads((hq_env.server_dir / "hq-current" / "access.json").read_text())
    assert access[side]["secret_key"] is None
    assert len(access[other]["secret_key"]) == 64
    # both sides work: the disabled one without a key, the other with its key
    hq_env.start_worker()
    job = hq_env.submit(["--", "true"])
    hq_env.wait_job(job)
    # the disabled side refuses a peer that insists on a key ...
    keyed = _copy_access(hq_env, "keyed", lambda r: r[side].update(secret_key="ab" * 32))
    # ... and the other side still requires its key
    keyless_other = _copy_access(hq_env, "keyless-other",
                                 lambda r: r[other].update(secret_key=None))
    for sd, who in ((keyed, side), (keyless_other, other)):
        if who == "client":
            out = hq_env.command(["job", "list"], expect_fail=True, server_dir=sd)
        else:
            res = hq_env.run(["worker", "start", "--cpus", "1"], server_dir=sd, timeout=30)
            assert res.returncode == 1
            out = res.stderr
        assert "Authentication mismatch" in out, out
    assert len(hq_env.command(["worker", "list"], as_json=True)) == 1
