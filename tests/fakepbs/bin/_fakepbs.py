"""A fake PBS Pro for tests: `qsub`, `qstat`, `qdel`, `pbsdsh` on PATH, state in $HQ_FAKE_PBS_DIR.

Not a PBS: one host, no scheduling. What it keeps from PBS is what hq talks to:
* `qsub [opts] script` reads options from the command line and from the script's `#PBS` lines
  (until the first command line), prints `<seq>.fakepbs`, and starts the script unless held
  (`-h`). Options: -N -o -e -q -h -A -W -v -V -j -m -M -r and `-l select=N[:...]`,
  `-l walltime=[[H:]M:]S`. A queue not in $HQ_FAKE_PBS_QUEUES (comma list, default `workq`)
  fails as PBS does: `qsub: Unknown queue` on stderr, exit 170.
* A started job runs `bash <script>` in its own session with PBS_JOBID, PBS_JOBNAME,
  PBS_O_WORKDIR, PBS_QUEUE, PBS_NODEFILE, PBS_ENVIRONMENT=PBS_BATCH set, stdout/stderr to the
  -o/-e paths; it is killed at its walltime (Exit_status -29, as PBS's JOB_EXEC_KILL_WALLTIME).
  $HQ_FAKE_PBS_START_DELAY (seconds) keeps it in state Q that long first.
* `qstat -f [ids] -F json [-x]` prints PBS's JSON (`{"timestamp", "pbs_version", "pbs_server",
  "Jobs": {id: {...}}}`, `"key":value` with 4-space indent as PBS does); unknown ids:
  `qstat: Unknown Job Id <id>` on stderr, exit 153; finished ones without -x: exit 35.
* `qdel <ids>`: a queued/held job ends (F, no Exit_status), a running one gets SIGTERM
  (Exit_status 271 = 256 + SIGTERM, as PBS reports); finished: `qdel: Job has finished`, 35.
* `pbsdsh -- cmd...` runs cmd once per node of the job (PBS_TASKNUM=0..N-1) and waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

SERVER = "fakepbs"
VERSION = "2021.1.3"


def _dir() -> str:
    d = os.environ.get("HQ_FAKE_PBS_DIR")
    if not d:
        sys.stderr.write("fakepbs: HQ_FAKE_PBS_DIR is not set\n")
        sys.exit(2)
    os.makedirs(os.path.join(d, "jobs"), exist_ok=True)
    return d


@contextlib.contextmanager
def _locked():
    d = _dir()
    with open(os.path.join(d, "lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield d
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _path(d: str, job_id: str) -> str:
    return os.path.join(d, "jobs", job_id.split(".")[0] + ".json")


def _load(d: str, job_id: str):
    m = re.fullmatch(r"(\d+)(?:\.[A-Za-z0-9_.-]+)?", job_id)
    if not m:
        return None
    try:
        with open(_path(d, m.group(1))) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _save(d: str, job: dict) -> None:
    p = _path(d, job["id"])
    with open(p + ".tmp", "w") as f:
        json.dump(job, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(p + ".tmp", p)


def _ctime(t: float) -> str:
    return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(t))


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02}:{s % 3600 // 60:02}:{s % 60:02}"


def _walltime(text: str) -> int:
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(text)
    s = 0
    for p in parts:
        s = s * 60 + int(p)
    return s


# ------------------------------------------------------------------------------------- qsub

_NOARG = {"-h", "-V", "-z"}
_ARG = {"-N", "-o", "-e", "-q", "-A", "-W", "-v", "-j", "-m", "-M", "-r", "-l", "-S", "-P"}


def _parse_opts(tokens: list[str], opts: dict) -> None:
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t in _NOARG:
            opts[t] = True
            i += 1
        elif t in _ARG:
            if i + 1 >= len(tokens):
                raise ValueError(f"option requires an argument -- '{t[1:]}'")
            v = tokens[i + 1]
            if t == "-l":
                for item in v.split(","):
                    k, _, val = item.partition("=")
                    opts.setdefault("-l", {})[k] = val
            else:
                opts[t] = v
            i += 2
        else:
            raise ValueError(f"invalid option -- '{t.lstrip('-')[:1]}'")


def qsub(argv: list[str]) -> int:
    opts: dict = {}
    if not argv:
        sys.stderr.write("usage: qsub [-h] [-N name] [-o path] [-e path] [-l resources] script\n")
        return 2
    script = argv[-1]
    try:
        _parse_opts(argv[:-1], opts)
        with open(script) as f:
            text = f.read()
        directives: dict = {}
        for line in text.splitlines()[1 if text.startswith("#!") else 0:]:
            s = line.strip()
            if not s:
                continue
            if not s.startswith("#"):
                break
            if s.startswith("#PBS"):
                _parse_opts(s[4:].split(), directives)
    except OSError as e:
        sys.stderr.write(f"qsub: script file:: {e.strerror}\n")
        return 2
    except ValueError as e:
        sys.stderr.write(f"qsub: {e}\nusage: qsub [-h] [-N name] [-o path] [-e path] "
                         "[-l resources] script\n")
        return 2
    res = {**directives.get("-l", {}), **opts.get("-l", {})}
    merged = {**directives, **opts, "-l": res}
    queue = merged.get("-q", "workq")
    allowed = os.environ.get("HQ_FAKE_PBS_QUEUES", "workq").split(",")
    if queue not in allowed:
        sys.stderr.write("qsub: Unknown queue\n")
        return 170
    try:
        nodes = int(res.get("select", "1").split(":")[0])
        walltime = _walltime(res["walltime"]) if "walltime" in res else None
    except ValueError:
        sys.stderr.write("qsub: Illegal attribute or resource value Resource_List.select\n")
        return 188
    now = time.time()
    cwd = os.getcwd()
    with _locked() as d:
        seq_path = os.path.join(d, "seq")
        try:
            seq = int(open(seq_path).read()) + 1
        except (OSError, ValueError):
            seq = 1000
        with open(seq_path, "w") as f:
            f.write(str(seq))
        job_id = f"{seq}.{SERVER}"
        name = merged.get("-N", os.path.basename(script))
        job = {
            "id": job_id, "name": name, "state": "H" if merged.get("-h") else "Q",
            "queue": queue, "nodes": nodes, "walltime": walltime, "script": os.path.abspath(script),
            "cwd": cwd, "stdout": merged.get("-o", os.path.join(cwd, f"{name}.o{seq}")),
            "stderr": merged.get("-e", os.path.join(cwd, f"{name}.e{seq}")),
            "ctime": now, "mtime": now, "stime": None, "exit_status": None, "pid": None,
            "deleted": False, "argv": argv,
        }
        _save(d, job)
    if job["state"] == "Q":
        _spawn_runner(job_id)
    print(job_id)
    return 0


def _spawn_runner(job_id: str) -> None:
    subprocess.Popen([sys.executable, os.path.abspath(__file__), "run", job_id],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def run(job_id: str) -> int:
    delay = float(os.environ.get("HQ_FAKE_PBS_START_DELAY", "0") or 0)
    if delay:
        time.sleep(delay)
    d = _dir()
    nodefile = os.path.join(d, "jobs", job_id.split(".")[0] + ".nodes")
    with _locked():
        job = _load(d, job_id)
        if job is None or job["state"] != "Q":
            return 0  # deleted while queued
        with open(nodefile, "w") as f:
            f.write((socket.gethostname() + "\n") * job["nodes"])
        env = dict(os.environ, PBS_JOBID=job_id, PBS_JOBNAME=job["name"],
                   PBS_O_WORKDIR=job["cwd"], PBS_QUEUE=job["queue"], PBS_NODEFILE=nodefile,
                   PBS_ENVIRONMENT="PBS_BATCH", HQ_FAKE_PBS_NODES=str(job["nodes"]))
        out = open(job["stdout"], "ab")
        err = open(job["stderr"], "ab")
        proc = subprocess.Popen(["bash", job["script"]], cwd=job["cwd"], env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
        job.update(state="R", stime=time.time(), mtime=time.time(), pid=proc.pid)
        _save(d, job)
    killed = False
    try:
        rc = proc.wait(timeout=job["walltime"])
    except subprocess.TimeoutExpired:
        killed = True
        _kill_group(proc)
        rc = proc.wait()
    with _locked():
        job = _load(d, job_id)
        if killed:
            status = -29
        elif rc < 0:
            status = 256 - rc  # PBS: 256 + signal number
        else:
            status = rc
        job.update(state="F", exit_status=status, mtime=time.time(), pid=None)
        _save(d, job)
    return 0


def _kill_group(proc) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------ qstat


def _job_json(job: dict) -> dict:
    host = socket.gethostname()
    now = time.time()
    out = {
        "Job_Name": job["name"],
        "Job_Owner": f"{os.environ.get('USER', 'user')}@{host}",
        "job_state": job["state"],
        "queue": job["queue"],
        "server": SERVER,
        "Checkpoint": "u",
        "ctime": _ctime(job["ctime"]),
        "Error_Path": f"{host}:{job['stderr']}",
        "Hold_Types": "u" if job["state"] == "H" else "n",
        "Join_Path": "n",
        "Keep_Files": "n",
        "Mail_Points": "a",
        "mtime": _ctime(job["mtime"]),
        "Output_Path": f"{host}:{job['stdout']}",
        "Priority": 0,
        "qtime": _ctime(job["ctime"]),
        "Rerunable": "True",
        "Resource_List": {"ncpus": job["nodes"], "nodect": job["nodes"], "place": "scatter",
                          "select": str(job["nodes"])},
        "substate": {"Q": 10, "H": 20, "R": 42, "F": 92}[job["state"]],
        "Variable_List": {"PBS_O_WORKDIR": job["cwd"], "PBS_O_QUEUE": job["queue"],
                          "PBS_O_HOST": host},
        "euser": os.environ.get("USER", "user"),
        "queue_type": "E",
        "etime": _ctime(job["ctime"]),
        "Submit_arguments": " ".join(job["argv"]),
        "project": "_pbs_project_default",
    }
    if job["walltime"] is not None:
        out["Resource_List"]["walltime"] = _hms(job["walltime"])
    if job["stime"] is not None:
        end = now if job["state"] == "R" else job["mtime"]
        out["stime"] = _ctime(job["stime"])
        out["exec_host"] = "+".join(f"{host}/0" for _ in range(job["nodes"]))
        out["resources_used"] = {"cpupercent": 0, "cput": "00:00:00", "mem": "0kb",
                                 "ncpus": job["nodes"], "vmem": "0kb",
                                 "walltime": _hms(end - job["stime"])}
        out["run_count"] = 1
    if job["state"] == "F" and job["exit_status"] is not None:
        out["Exit_status"] = job["exit_status"]
    return out


def qstat(argv: list[str]) -> int:
    ids = [a for a in argv if not a.startswith("-") and a != "json"]
    flags = [a for a in argv if a.startswith("-")]
    if "-f" not in flags or "-F" not in flags or "json" not in argv:
        sys.stderr.write("fakepbs qstat: only `qstat -f [ids] -F json [-x]` is supported\n")
        return 2
    history = "-x" in flags
    d = _dir()
    jobs = {}
    rc = 0
    if not ids:
        ids = sorted(f[:-5] for f in os.listdir(os.path.join(d, "jobs")) if f.endswith(".json"))
        ids = [f"{i}.{SERVER}" for i in ids]
    for i in ids:
        job = _load(d, i)
        if job is None:
            sys.stderr.write(f"qstat: Unknown Job Id {i}\n")
            rc = 153
        elif job["state"] == "F" and not history:
            sys.stderr.write(f"qstat: {job['id']} Job has finished, use -x or -H to obtain "
                             "historical job information\n")
            rc = rc or 35
        else:
            jobs[job["id"]] = _job_json(job)
    doc = {"timestamp": int(time.time()), "pbs_version": VERSION, "pbs_server": SERVER}
    if jobs:
        doc["Jobs"] = jobs
    sys.stdout.write(json.dumps(doc, indent=4, separators=(",", ":")) + "\n")
    return rc


# ------------------------------------------------------------------------------------- qdel


def qdel(argv: list[str]) -> int:
    ids = [a for a in argv if not a.startswith("-")]
    if not ids:
        sys.stderr.write("usage: qdel [-W force] job_identifier...\n")
        return 2
    rc = 0
    for i in ids:
        with _locked() as d:
            job = _load(d, i)
            if job is None:
                sys.stderr.write(f"qdel: Unknown Job Id {i}\n")
                rc = 153
                continue
            if job["state"] == "F":
                sys.stderr.write(f"qdel: Job has finished {job['id']}\n")
                rc = rc or 35
                continue
            if job["state"] in ("Q", "H"):
                job.update(state="F", mtime=time.time(), deleted=True)
                _save(d, job)
                continue
            job["deleted"] = True
            _save(d, job)
            pid = job["pid"]
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
    return rc


# ----------------------------------------------------------------------------------- pbsdsh


def pbsdsh(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        sys.stderr.write("usage: pbsdsh [-c copies][-s][-v][-o] -- program [args...]\n")
        return 2
    n = int(os.environ.get("HQ_FAKE_PBS_NODES", "1"))
    procs = [subprocess.Popen(argv, env=dict(os.environ, PBS_TASKNUM=str(k)))
             for k in range(n)]
    return max(p.wait() for p in procs)


def main() -> int:
    tool = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    if tool == "_fakepbs.py":
        if args[:1] == ["run"]:
            return run(args[1])
        sys.stderr.write("usage: _fakepbs.py run <job id>\n")
        return 2
    return {"qsub": qsub, "qstat": qstat, "qdel": qdel, "pbsdsh": pbsdsh}[tool](args)


if __name__ == "__main__":
    sys.exit(main())
