"""The printers of the three output modes (cli / json / quiet) and their formatting helpers.

A command gets its results from the client library and hands them to the printer of the run
(`context.printer()`, chosen once from `--output-mode`); each result kind has one method, and
each mode decides how (or whether) to show it. Nothing else checks the output mode.

`QuietPrinter` is a `CliPrinter` that overrides only what quiet mode shows differently (several
results print the same lines in both modes).
"""

from __future__ import annotations

import sys
import time

from ..common.durations import format_duration
from .table import SpooledTable, horizontal_table, vertical_table
from . import logs


# ---------------------------------------------------------------------------------------------
# Formatting helpers


def iso(ts: float | None) -> str | None:
    """A JSON datetime as chrono serialises one (F5): RFC 3339 in UTC with a `Z`, and 0, 3, 6
    or 9 sub-second digits, as many as needed (`2025-01-31T10:20:30.123456Z`)."""
    if ts is None:
        return None
    from datetime import datetime, timezone

    # chrono's RFC 3339 in UTC: `Z`, and 0, 3 or 6 sub-second digits (upstream-facts F5)
    dt = datetime.fromtimestamp(ts, timezone.utc)
    us = dt.microsecond
    frac = "" if us == 0 else f".{us // 1000:03d}" if us % 1000 == 0 else f".{us:06d}"
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def local_time(ts: float | None, fmt: str = "%d.%m.%Y %H:%M:%S") -> str:
    if ts is None:
        return ""
    from datetime import datetime

    return datetime.fromtimestamp(ts).strftime(fmt)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "None"
    return format_duration(round(seconds, 3))


def resources_text(variants: list[dict]) -> str:
    """The `Resources` cell of job/task info (F39): `name: request` lines sorted by name, then
    `[weight: w]` for a non-default weight; a multi-node request is only `nodes: n`; with
    several resource variants, each block is headed by `# Variant N` (1-based), blocks
    separated by a blank line."""
    def lines(v):
        if v.get("n_nodes"):
            return [f"nodes: {v['n_nodes']}"]
        out = [r["resource"] + ": " + r["text"]
               for r in sorted(v["resources"], key=lambda r: r["resource"])]
        weight = v.get("weight", 1.0)
        if weight != 1.0:
            out.append(f"[weight: {weight:g}]")
        return out

    if len(variants) <= 1:
        return "\n".join(lines(variants[0])) if variants else ""
    out = []
    for i, v in enumerate(variants, 1):
        if i > 1:
            out.append("")
        out.append(f"# Variant {i}")
        out.extend(lines(v))
    return "\n".join(out)


def jsonify_times(obj, keys=("started_at", "finished_at", "submission_date", "started", "at",
                             "time")):
    """Converts epoch floats under the given keys to ISO strings, recursively (JSON mode)."""
    if isinstance(obj, dict):
        return {k: (iso(v) if k in keys and isinstance(v, (int, float)) and not isinstance(v, bool)
                    else jsonify_times(v, keys)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [jsonify_times(v, keys) for v in obj]
    return obj


MAX_NAME = 50


def short_name(name: str, limit: int = MAX_NAME) -> str:
    """A name longer than `limit` bytes as its first ceil((limit-3)/2) bytes, `...` and its
    last floor((limit-3)/2) bytes (F33; a character cut in two is dropped)."""
    data = name.encode()
    if len(data) <= limit:
        return name
    tail = (limit - 3) // 2
    head = limit - 3 - tail
    return (data[:head].decode(errors="ignore") + "..."
            + data[len(data) - tail:].decode(errors="ignore"))


def stdio_text(program: dict, channel: str) -> str:
    """Where `channel` ("stdout"/"stderr") of a submit's program goes, as job/task info show it."""
    if program.get(f"{channel}_streamed"):
        return "<Stream>"
    path = program[channel]
    if path is None:
        return "<None>"
    return path + (" (rm-if-finished)" if program[f"{channel}_rm_if_finished"] else "")


def job_state_text(info: dict) -> str:
    stats = info["task_stats"]
    if info["task_count"] == 1:
        return info["state"]
    lines = []
    for key in ("running", "waiting", "finished", "failed", "canceled", "aborted"):
        if stats[key]:
            lines.append(f"{key.upper()} ({stats[key]})")
    return "\n".join(lines) or info["state"]


def job_ids_text(d: dict) -> str:
    """The ids of `job info`'s Tasks row (F34): one array submit as it was given (`5,1,3`,
    `0-10:2`); otherwise every id, sorted and compressed into runs (`1-3,5`)."""
    from ..core.ranges import IntRanges, compress_ids

    submits = d["submits"]
    groups = d.get("submit_groups") or [[1, False]] * len(submits)
    if len(groups) == 1 and not groups[0][1] and submits:
        return submits[0]["array"]["ids"]
    ranges = None
    for s in submits:
        r = IntRanges.parse(s["array"]["ids"])
        ranges = r if ranges is None else ranges.union(r)
    return compress_ids(ranges.iter_sorted()) if ranges is not None else ""


def job_workers_text(workers: list[str]) -> str:
    """`job info` Workers row (F38): at most 2 hostnames, then `, … (<n> total)`."""
    text = ",".join(workers[:2])
    if len(workers) > 2:
        text += f", \u2026 ({len(workers)} total)"
    return text


def job_detail_rows(d: dict) -> list:
    info = d["info"]
    submits = [s["array"] for s in d["submits"]]
    groups = d.get("submit_groups") or [[1, False]] * len(submits)
    one_array = len(groups) == 1 and not groups[0][1] and len(submits) == 1
    ids_text = job_ids_text(d)
    rows = [("ID", info["id"]), ("Name", info["name"]), ("State", job_state_text(info)),
            ("Cancel Reason", info["cancel_reason"] or ""),
            ("Session", "open" if info["is_open"] else "closed"),
            ("Tasks", f"{info['task_count']}; Ids: {ids_text}" if ids_text
             else str(info["task_count"])),
            ("Workers", job_workers_text(d["workers"]))]
    if one_array:
        s = submits[0]
        p = s["program"]
        rows += [
            ("Resources", resources_text(s["resources"])),
            ("Pin", s["pin_mode"] or "none"),
            ("Priority", s["priority"]),
            ("Command", " ".join(p["args"])),
            ("Stdout", stdio_text(p, "stdout")),
            ("Stderr", stdio_text(p, "stderr")),
            ("Environment", "\n".join(f"{k}={v}" for k, v in p["env"].items())),
            ("Working directory", p["cwd"]),
            ("Task time limit", duration(s["time_limit"])),
            ("Crash limit", s["crash_limit"]),
        ]
    rows.append(("Submission date", local_time(d["submission_date"], "%Y-%m-%d %H:%M:%S")))
    if submits:
        rows.append(("Submission directory", d["submit_dir"]))
    # From the submission to the end (or now), as upstream measures it.
    start = d["submission_date"]
    end = d["finished_at"] if d["finished_at"] is not None else time.time()
    rows.append(("Makespan", duration(max(0.0, end - start))))
    return rows


def wait_counts(jobs: list[dict], n_invalid: int) -> dict[str, int]:
    """`job wait`'s outcome as upstream counts it: jobs finished, failed, canceled (canceled or
    aborted) and ids that name no job."""
    counts = {"finished": 0, "failed": 0, "canceled": 0, "invalid": n_invalid}
    for j in jobs:
        state = j["state"].lower()
        if state == "failed":
            counts["failed"] += 1
        elif state in ("canceled", "aborted"):
            counts["canceled"] += 1
        else:
            counts["finished"] += 1
    return counts


def task_worker_text(t: dict) -> str:
    """The Worker cell of a task (F41): a multi-node task lists every node, root first."""
    hosts = t.get("worker_hostnames")
    if hosts:
        return "\n".join(hosts)
    return t.get("worker_hostname", "")


def task_makespan(t: dict) -> str:
    start = t.get("started_at")
    if start is None:
        return ""
    end = t.get("finished_at") or time.time()
    return duration(end - start)


def task_error(t: dict, verbose: bool, limit: int) -> str:
    err = t.get("error") or ""
    if not verbose and len(err) > limit:
        return err[:limit] + "…"
    return err


def _task_stdio(t: dict, program: dict, channel: str) -> str:
    if "cwd" not in t:  # not started: upstream shows nothing
        return ""
    path = t.get(channel)
    return path if path and path != "<pipe>" else stdio_text(program, channel)


def task_info_rows(t: dict, s: dict, verbose: bool) -> list:
    """The vertical table of one task (`s`: the submit it belongs to)."""
    p = s["program"]
    return [
        ("Task ID", t["id"]), ("State", t["state"].upper()),
        ("Command", " ".join(p["args"])),
        ("Environment", "\n".join(f"{k}={v}" for k, v in p["env"].items())),
        ("Worker", task_worker_text(t)),
        ("Start", local_time(t.get("started_at"))),
        ("End", local_time(t.get("finished_at"))),
        ("Makespan", task_makespan(t)),
        # resolved paths for tasks that started; empty for the others (as upstream)
        ("Workdir", t.get("cwd", "")),
        ("Stdout", _task_stdio(t, p, "stdout")),
        ("Stderr", _task_stdio(t, p, "stderr")),
        ("Time limit", duration(s["time_limit"])),
        ("Resources", resources_text(s["resources"])),
        ("Priority", s["priority"]),
        ("Pin", s["pin_mode"] or "none"),
        ("Task dir", "yes" if s["task_dir"] else "no"),
        ("Crash limit", s["crash_limit"]),
        ("Dependencies", ",".join(str(x) for x in s["deps"])),
        ("Error", task_error(t, verbose, 237)),
    ]


def public_descriptor(descriptor: dict) -> dict:
    """A resource descriptor as JSON output shows it (F61): without our exact wire form, `size`
    as the raw integer amount (1/10000 units), coupling weights as index objects."""
    resources = []
    for r in descriptor["resources"]:
        r = {k: x for k, x in r.items() if k != "wire"}
        if "size" in r:
            r["size"] = round(r["size"] * 10000)
        resources.append(r)
    names = [r["name"] for r in resources]
    weights = []
    for w in descriptor["coupling"]["weights"]:
        if isinstance(w, dict):
            weights.append(w)
            continue
        a, ga, b, gb, weight = w
        weights.append({"resource1_idx": names.index(a) if a in names else a, "group1_idx": ga,
                        "resource2_idx": names.index(b) if b in names else b, "group2_idx": gb,
                        "weight": weight})
    return {"resources": resources, "coupling": {"weights": weights}}


# -- JSON shapes of upstream (F60, F62): exactly its keys, nothing of ours ---------------------

def public_stdio(program: dict, channel: str):
    if program.get(f"{channel}_streamed"):
        return "<pipe>"
    return program[channel]


def public_task_desc(s: dict) -> dict:
    """A submit's task description (TD of F62)."""
    p = s["program"]
    return {
        "program": {"args": p["args"], "env": p["env"], "cwd": p["cwd"],
                    "stdout": public_stdio(p, "stdout"), "stderr": public_stdio(p, "stderr")},
        "resources": [{"n_nodes": r["n_nodes"],
                       "resources": [{"resource": e["resource"], "request": e["request"]}
                                     for e in r["resources"]],
                       "min_time": float(r["min_time"]),
                       "weight": round(r["weight"] * 10000)} for r in s["resources"]],
        "pin_mode": s["pin_mode"],
        "priority": s["priority"],
        "time_limit": None if s["time_limit"] is None else float(s["time_limit"]),
        "task_dir": s["task_dir"],
        "crash_limit": s["crash_limit"],
    }


def public_submits(d: dict) -> list[dict]:
    """`submits`: `{"array": TD}` per array submit, `{"graph": [TD, ...]}` per task graph."""
    descs = [public_task_desc(s["array"]) for s in d["submits"]]
    groups = d.get("submit_groups") or [[1, False]] * len(descs)
    out, i = [], 0
    for n, graph in groups:
        part = descs[i:i + n]
        i += n
        out.append({"graph": part} if graph else {"array": part[0]})
    out.extend({"array": x} for x in descs[i:])  # (never: the groups cover every batch)
    return out


TASK_JSON_KEYS = ("id", "state", "cwd", "stdout", "stderr", "started_at", "worker", "workers",
                  "finished_at", "error")


def public_task(t: dict) -> dict:
    """A task as upstream's JSON shows it: `worker`, or `workers` for a multi-node task."""
    out = {k: t[k] for k in TASK_JSON_KEYS if k in t}
    if "workers" in out:
        out.pop("worker", None)
    return jsonify_times(out)


def public_job_info(info: dict) -> dict:
    return {k: info[k] for k in ("id", "name", "task_count", "task_stats", "is_open",
                                 "cancel_reason")}


def public_job_head(d: dict) -> dict:
    """A job of `job info` JSON without its last member, `tasks` (streamed after it)."""
    info = d["info"]
    stats = info["task_stats"]
    finished = None
    if stats["waiting"] + stats["running"] == 0:
        finished = d["finished_at"] or time.time()
    return {"info": public_job_info(info), "max_fails": d["max_fails"],
            "started_at": iso(d["submission_date"]), "finished_at": iso(finished),
            "submits": public_submits(d)}


def public_worker(v: dict, detailed: bool) -> dict:
    """A worker as upstream's `worker list` / `worker info` JSON shows it (F60)."""
    c = v["configuration"]
    last = v["last_task_started"]
    rt = v["runtime_info"]
    runtime = None
    if detailed and v["ended"] is None and rt is not None:
        if rt.get("multinode"):
            runtime = {"MultiNodeTask": {"main_node": rt["multinode"] == "main"}}
        else:
            runtime = {"SingleNodeTasks": {"assigned_tasks": rt["assigned_tasks"],
                                           "running_tasks": rt["running_tasks"],
                                           "is_reserved": bool(rt.get("is_reserved", False))}}
    return {
        "id": v["id"],
        "configuration": {
            "heartbeat_interval": c["heartbeat_interval"],
            "idle_timeout": c["idle_timeout"],
            "time_limit": c["time_limit"],
            "work_dir": c["work_dir"],
            "hostname": c["hostname"],
            "group": c["group"],
            "listen_address": c["listen_address"],
            "resources": public_descriptor(c["resources"]),
            "on_server_lost": c["on_server_lost"],
            "min_utilization": c["min_utilization"],
        },
        # upstream's JSON names the managers "PBS" and "Slurm" (F52)
        "allocation": v["allocation"] and {**v["allocation"], "manager": {"SLURM": "Slurm"}.get(
            v["allocation"]["manager"], v["allocation"]["manager"])},
        "runtime_info": runtime,
        "last_task_started": None if last is None else {
            "task_id": {"job_id": last["job"], "job_task_id": last["task"]},
            "time": iso(last["time"])},
        "started": iso(v["started"]),
        "ended": None if v["ended"] is None else {"at": iso(v["ended"]["at"])},
    }


def public_explain_item(item: dict) -> dict:
    """One requirement of `task explain` JSON (F63)."""
    def secs_nanos(x):
        whole = int(x)
        return {"secs": whole, "nanos": int(round((x - whole) * 1e9))}

    if item["type"] == "time":
        rem = item["remaining_time"]
        return {"Time": {"min_time": secs_nanos(item["min_time"]),
                         "remaining_time": None if rem is None else secs_nanos(rem)}}
    if item["type"] == "nodes":
        return {"WorkerGroup": {"n_nodes": item["n_nodes"], "group_size": item["group_size"]}}
    return {"Resources": {"resource": item["resource"], "request_amount": item["request_amount"],
                          "worker_amount": item["worker_amount"]}}


def explain_item_cells(item: dict) -> tuple[str, str, str]:
    """Type, Provides and Request cells of one requirement (F64)."""
    from ..core.resources import format_amount

    if item["type"] == "time":
        rem = item["remaining_time"]
        return ("time", "unknown" if rem is None else format_duration(int(rem)),
                format_duration(item["min_time"]))
    if item["type"] == "nodes":
        return "nodes", f"group size {item['group_size']}", str(item["n_nodes"])
    return (item["resource"], format_amount(item["worker_amount"]),
            format_amount(item["request_amount"]))


def explain_lines(ex: dict) -> tuple[list[str], list[list] | None]:
    """The two sentences of `task explain` and the rows of its table (None: no worker)."""
    from ..core.ranges import compress_ids

    deps = ex["dependencies"]
    name = f"{ex.get('job_id', '?')}@{ex['task_id']}"
    if not deps["total"]:
        first = f"Task {name} is ready to run because it has no dependencies."
    elif deps["pending"] == deps["total"]:  # (upstream's wording and condition)
        first = f"Task {name} is ready to run because its all {deps['total']} dependencies " \
                "are finished."
    else:
        first = (f"Task {name} is not ready to run, because {deps['pending']}/{deps['total']} "
                 "dependencies are not finished.")
    runnable = [w["worker_id"] for w in ex["workers"] if any(v["runnable"]
                                                            for v in w["variants"])]
    if runnable:
        k = len(runnable)
        second = f"The task can run on {k} worker{'s' if k != 1 else ''}: {compress_ids(runnable)}"
    else:
        second = "There is no worker where the task can run."
    if not ex["workers"]:
        return [first, second], None
    rows = []
    for w in ex["workers"]:
        variants = w["variants"]
        fitting = sum(1 for v in variants if v["runnable"])
        if not fitting:
            verdict = "No"
        elif len(variants) == 1:
            verdict = "Yes"
        else:
            verdict = f"Yes ({fitting}/{len(variants)})"
        first_row = True
        for v in variants:
            if not v["items"]:
                continue
            cells = [explain_item_cells(i) for i in v["items"]]
            rows.append([w["worker_id"] if first_row else "", verdict if first_row else "",
                         v["variant"], "\n".join(c[0] for c in cells),
                         "\n".join(c[1] for c in cells), "\n".join(c[2] for c in cells)])
            first_row = False
    return [first, second], rows


def worker_resources_lines(view) -> str:
    """`worker info` Resources: one `name: summary` line per pool (`cpus: 4`, `mem: 1.95 GiB`,
    `cpus: 2x3 [coupled]`), as upstream."""
    from ..core.resources import ResourceDef, format_resources

    descriptor = view["configuration"]["resources"]
    defs = [ResourceDef.from_wire(r["wire"]) for r in descriptor["resources"]]
    return format_resources(defs, descriptor["coupling"]["weights"], "\n", ": ")


def worker_stop_log(results, client_log) -> None:
    """`worker stop` (F51): one log record per worker, by id: INFO `Worker <id> stopped`, WARN
    `... failed; worker is already stopped`, ERROR `... failed; worker not found` / `<error>`.
    (Missing ids come one per id, or as one range text beyond `calls.MISSING_LINES`.)"""
    def key(row):
        wid = row[0]
        return wid if isinstance(wid, int) else int(str(wid).split("-")[0])

    for wid, text in sorted(results, key=key):
        if text == "stopped":
            client_log("INFO", f"Worker {wid} stopped")
        elif text == "worker is already stopped":
            client_log("WARN", f"Stopping worker {wid} failed; {text}")
        else:
            client_log("ERROR", f"Stopping worker {wid} failed; {text}")


def chrono_utc(ts: float) -> str:
    """A time as chrono serialises it: RFC 3339 in UTC with `Z` and 0, 3, 6 (or 9) digits of
    the second's fraction (`2025-01-31T10:20:30.123456Z`)."""
    from datetime import datetime, timezone

    t = datetime.fromtimestamp(ts, timezone.utc)
    us = t.microsecond
    frac = "" if us == 0 else f".{us // 1000:03d}" if us % 1000 == 0 else f".{us:06d}"
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def worker_runtime_text(rt: dict) -> str:
    """`worker info` Runtime Info (F50): `assigned tasks: A`, `; running tasks: R` only when
    R > 0; a node of a multi-node task: `running multinode task; main|secondary node`."""
    if rt.get("multinode"):
        return f"running multinode task; {rt['multinode']} node"
    text = f"assigned tasks: {rt['assigned_tasks']}"
    if rt["running_tasks"]:
        text += f"; running tasks: {rt['running_tasks']}"
    if rt.get("is_reserved"):
        text += "; reserved for a multi-node task"
    return text


def worker_detail_rows(v: dict) -> list:
    cfg = v["configuration"]
    alloc = v["allocation"] or {}
    rt = v["runtime_info"]
    last = v["last_task_started"]
    return [
        ("Worker", v["id"]),
        ("State", v["state"]),
        ("Hostname", cfg["hostname"]),
        ("Started", f'"{chrono_utc(v["started"])}"'),
        ("Data provider", cfg["listen_address"]),  # verbatim, as upstream (F50)
        ("Working directory", cfg["work_dir"]),
        ("Heartbeat", duration(cfg["heartbeat_interval"])),
        ("Idle timeout", duration(cfg["idle_timeout"])),
        ("Overview interval", duration(cfg["overview_interval"])),
        ("Resources", worker_resources_lines(v)),
        ("Time Limit", duration(cfg["time_limit"])),
        ("Process pid", "N/A" if cfg["pid"] is None else cfg["pid"]),
        ("Group", cfg["group"]),
        ("Manager", alloc.get("manager") or "None"),
        ("Manager Job ID", alloc.get("id") or "N/A"),
        ("Last task started",
         f'{last["job"]}@{last["task"]}; Time: "{chrono_utc(last["time"])}"' if last else ""),
        ("Runtime Info", worker_runtime_text(rt)),
    ]


SERVER_ROWS = [("Server UID", "server_uid"), ("Client host", "client_host"),
               ("Client port", "client_port"), ("Worker host", "worker_host"),
               ("Worker port", "worker_port"), ("Version", "version"), ("Pid", "pid"),
               ("Start date", "start_date"), ("Journal path", "journal_path")]

OUTPUT_LOG_CHANNELS = ("stdout", "stderr")
_CHUNK_BG = ("41", "42", "43", "44", "45", "46")  # background colours of `output-log show`


def human_size(n: int) -> str:
    """Upstream's `human_size`: `<n> B` below 2048 bytes, then KiB/MiB/GiB with 2 decimals."""
    if n < 2048:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 2048 or unit == "GiB":
            return f"{n:.2f} {unit}"


# ---------------------------------------------------------------------------------------------
# Printers


ALLOC_JSON_KEYS = ("id", "name", "state", "manager", "additional_args", "backlog",
                   "max_workers_per_alloc", "timelimit", "max_worker_count", "worker_args",
                   "known_worker_resources")
ALLOC_TIME_KEYS = ("queued_at", "started_at", "ended_at", "next_attempt_at")


def alloc_queue_rows(queues: list[dict]) -> list:
    return [[q["id"], q["state"], q["backlog"], q["max_workers_per_alloc"],
             q["max_worker_count"] if q["max_worker_count"] is not None else "None",
             duration(q["timelimit"]), q["manager"], q["resources_text"] or "<unknown>",
             q["name"] or "", " ".join(q["additional_args"])] for q in queues]


class Printer:
    """What every mode shares: the primitives (a line, a JSON document, tables) and the
    interface of results. Subclasses implement each result method for their mode."""

    mode = ""

    def __init__(self, colors: str = "auto"):
        self.colors = colors
        self.debug = False

    # -- primitives (also for output that is the same in every mode, e.g. a raw address) --
    def json(self, value) -> None:
        import json

        sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def line(self, text: str = "") -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def vertical(self, rows) -> None:
        self.line(vertical_table([(k, "" if v is None else str(v)) for k, v in rows]))

    def horizontal(self, header, rows) -> None:
        self.line(horizontal_table(header, [[str(c) for c in r] for r in rows]))

    def error(self, message: str) -> None:
        """The error a command ended with, as upstream prints it (the caller adds `Error: `
        where upstream has it)."""
        sys.stderr.write(f"{message}\n")
        sys.stderr.flush()

    def log(self, level: str, text: str) -> None:
        """A log record on stderr, in every mode, as upstream's env_logger writes it (F1)."""
        logs.write(level, text, self.debug)

    # -- job commands whose outcome upstream logs (F36, F37); JSON mode then prints `{}` --
    def cancel_results(self, results) -> None:
        if not results:
            self.log("INFO", "There is nothing to cancel")
        for jid, status, n, finished in results:
            if status == "canceled":
                self.log("INFO", f"Job {jid} canceled ({n} tasks canceled, {finished} tasks "
                                 "already finished)")
            elif status == "not-found":
                self.log("ERROR", f"Canceling job {jid} failed; job not found")
            else:
                self.log("ERROR", f"Canceling job {jid} failed; all tasks are already finished")

    def close_results(self, results) -> None:
        if not results:
            self.log("INFO", "There is nothing to close")
        for jid, status in results:
            if status == "closed":
                self.log("INFO", f"Job {jid} closed")
            elif status == "not-found":
                self.log("ERROR", f"Closing job {jid} failed; job not found")
            else:
                self.log("ERROR", f"Closing job {jid} failed; job is already closed")

    def forget_result(self, forgotten: int, ignored: int) -> None:
        text = f"{forgotten} {'job' if forgotten == 1 else 'jobs'} were forgotten"
        if ignored:
            text += f", {ignored} were ignored due to wrong state or invalid ID"
        self.log("INFO", text)

    # -- mode facts a command needs before it asks the server --
    #: `job info` asks for every task (json) or only the failed ones (the table shows those).
    job_info_task_states: list[str] | None = ["failed"]
    #: `hq run` may draw a live progress bar (on a terminal).
    shows_progress = False

    def require_text(self, what: str) -> None:
        """Raises for a command whose output is raw text when the mode cannot show it."""

    def write(self, text: str) -> None:
        """A piece of a result printed in parts (a Listing); flushed by `flush`."""
        sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


# -- long listings: printed while their pages of tasks arrive --------------------------------


class Listing:
    """A result shown while its tasks arrive page by page, in bounded memory (`job info`,
    `task list`, `task info`, `job task-ids` of a huge array). The command calls
    `start(jobs)` with the jobs found (`calls.job_info(on_start=...)`), `page(d, tasks)` for
    each page of each job in order (`on_page=`; every job's first page, maybe empty,
    included), then `finish()`. A printer fills in the hooks; a listing shows nothing by
    default (e.g. quiet `job info`)."""

    def __init__(self, printer: Printer):
        self.p = printer
        self._job: dict | None = None

    def start(self, jobs: list[dict]) -> None:
        """The jobs found (their tasks still to come)."""

    def page(self, d: dict, tasks: list[dict]) -> None:
        if d is not self._job:
            if self._job is not None:
                self.job_end(self._job)
            self._job = d
            self.job_start(d)
        self.tasks(d, tasks)

    def finish(self) -> None:
        if self._job is not None:
            self.job_end(self._job)
            self._job = None
        self.done()
        self.p.flush()

    # hooks
    def job_start(self, d: dict) -> None:
        pass

    def tasks(self, d: dict, tasks: list[dict]) -> None:
        pass

    def job_end(self, d: dict) -> None:
        pass

    def done(self) -> None:
        pass


class JsonListing(Listing):
    """The JSON document of a listing (one JsonStream for all of them): a `doc` ("[" or "{")
    holding, per job, the containers `job_opens(d)` gives (`[(kind, key, head), ...]`, the
    tasks go in the innermost; none: straight into the document), each task as `item(t)`.
    Byte for byte what `Printer.json` prints for the whole document."""

    def __init__(self, printer: Printer, doc: str, job_opens, item):
        from .jsonstream import JsonStream

        super().__init__(printer)
        self.w = JsonStream(printer.write)
        self.doc, self.job_opens, self.item = doc, job_opens, item

    def _open_doc(self) -> None:
        if self.w.depth == 0:
            self.w.open(self.doc)

    def job_start(self, d):
        self._open_doc()
        for kind, key, head in self.job_opens(d):
            self.w.open(kind, key, head)

    def tasks(self, d, tasks):
        item = self.item
        self.w.items([item(t) for t in tasks])

    def job_end(self, d):
        while self.w.depth > 1:
            self.w.close()

    def done(self):
        self._open_doc()  # no job: `[]` / `{}`
        self.w.close()
        self.w.end()


class CliJobInfo(Listing):
    """`job info`: per job its table, then up to 5 of its failed tasks and their count."""

    SHOWN = 5

    def job_start(self, d):
        self.shown: list[dict] = []
        self.n = 0

    def tasks(self, d, tasks):
        self.n += len(tasks)
        if len(self.shown) < self.SHOWN:
            self.shown.extend(tasks[:self.SHOWN - len(self.shown)])

    def job_end(self, d):
        p = self.p
        p.vertical(job_detail_rows(d))
        if self.n:
            shown = self.shown
            p.horizontal(["Task ID", "Worker", "Error"],
                         [[t["id"], task_worker_text(t), t.get("error", "")] for t in shown])
            # upstream's words: "tasks" whatever the count (`print_task_summary`)
            n_failed = d["info"].get("task_stats", {}).get("failed", self.n)
            extra = f" ({len(shown)} shown)" if len(shown) < n_failed else ""
            p.line(f"{n_failed} tasks failed.{extra}")


class CliTaskList(Listing):
    """`task list`: one table of every task (a `Job ID` column with several jobs); its rows
    wait in a SpooledTable (the widths depend on every row)."""

    def __init__(self, printer, verbose: bool):
        super().__init__(printer)
        self.verbose = verbose
        self.table: SpooledTable | None = None

    def start(self, jobs):
        self.multi = len(jobs) > 1
        self.table = SpooledTable((["Job ID"] if self.multi else [])
                                  + ["Task ID", "State", "Worker", "Makespan", "Error"])

    def tasks(self, d, tasks):
        verbose = self.verbose
        rows = [[t["id"], t["state"].upper(), task_worker_text(t), task_makespan(t),
                 task_error(t, verbose, 16)] for t in tasks]
        if self.multi:
            jid = d["info"]["id"]
            rows = [[jid, *r] for r in rows]
        self.table.add(rows)

    def done(self):
        if self.table is None:
            self.start([])
        self.table.write(self.p.write)


class CliTaskInfo(Listing):
    """`task info`: a table per task, as they come."""

    def __init__(self, printer, verbose: bool):
        super().__init__(printer)
        self.verbose = verbose

    def job_start(self, d):
        from ..core.ranges import IntRanges

        self.submits = [(IntRanges.parse(s["array"]["ids"]), s["array"]) for s in d["submits"]]

    def _submit_of(self, tid):
        for ids, s in self.submits:
            if tid in ids:
                return s
        return self.submits[0][1]

    def tasks(self, d, tasks):
        if tasks:
            self.p.write("".join(
                vertical_table([(k, "" if v is None else str(v)) for k, v in
                                task_info_rows(t, self._submit_of(t["id"]), self.verbose)])
                + "\n" for t in tasks))


class TaskIdsListing(Listing):
    """`job task-ids`: the ids of each job as runs of consecutive ids (they come ascending),
    printed at the end: `0-3,7` (one job) or `J: 0-3,7` per job."""

    def __init__(self, printer):
        super().__init__(printer)
        self.runs: dict[int, list[list[int]]] = {}

    def start(self, jobs):
        self.runs = {d["info"]["id"]: [] for d in jobs}

    def tasks(self, d, tasks):
        runs = self.runs[d["info"]["id"]]
        if not tasks:
            return
        first, last = tasks[0]["id"], tasks[-1]["id"]
        if last - first == len(tasks) - 1:  # ascending and distinct: one run (the usual page)
            if runs and runs[-1][1] + 1 == first:
                runs[-1][1] = last
            else:
                runs.append([first, last])
            return
        for t in tasks:
            tid = t["id"]
            if runs and runs[-1][1] + 1 == tid:
                runs[-1][1] = tid
            else:
                runs.append([tid, tid])

    def done(self):
        texts = {jid: ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
                 for jid, runs in self.runs.items()}
        if len(texts) == 1:
            self.p.line(next(iter(texts.values())))
        else:
            for jid, text in texts.items():
                self.p.line(f"{jid}: {text}")


class QuietTaskList(Listing):
    """`task list` in quiet mode: `ID STATE` per task, a page at a time."""

    def tasks(self, d, tasks):
        if tasks:
            self.p.write("".join(f"{t['id']} {t['state'].upper()}\n" for t in tasks))


class CliPrinter(Printer):
    """Tables and sentences for people."""

    mode = "cli"
    shows_progress = True

    def note(self, text: str) -> None:
        """A per-item outcome ("Job 5 not found") or a remark: a line on stdout, in cli mode
        only (it is a normal result, and callers often merge stderr into what they parse)."""
        self.line(text)

    def ok(self, text: str | None = None) -> None:
        """A command that succeeded with nothing to report but `text`."""
        if text is not None:
            self.line(text)

    def job_id(self, job_id: int, cli_text: str) -> None:
        self.line(cli_text)

    def submitted(self, job_id: int) -> None:
        self.job_id(job_id, f"Job submitted successfully, job ID: {job_id}")

    # -- jobs --
    def job_list(self, shown: list[dict], total: int, all_: bool, verbose: bool) -> None:
        header = ["ID", "Name", "State", "Tasks"] + (["Cancel Reason"] if verbose else [])
        rows = []
        for j in shown:
            row = [("*" if j["is_open"] else "") + str(j["id"]), short_name(j["name"]),
                   j["state"], j["task_count"]]
            if verbose:
                row.append(j["cancel_reason"] or "")
            rows.append(row)
        self.horizontal(header, rows)
        if any(j["is_open"] for j in shown):
            self.line("* = Open jobs")
        if not all_:
            verb = "is" if total == 1 else "are"
            noun = "job" if total == 1 else "jobs"
            self.line(f"There {verb} {total} {noun} in total. Use `--all` to display all jobs.")

    def job_summary(self, counts: dict[str, int]) -> None:
        self.horizontal(["Status", "Count"], [[s, n] for s, n in counts.items()])

    def job_info(self) -> Listing:
        return CliJobInfo(self)

    def wait_finished(self, jobs: list[dict], elapsed: float, n_invalid: int = 0) -> None:
        counts = wait_counts(jobs, n_invalid)
        parts = [f"{n} {'job' if n == 1 else 'jobs'} {what}" for what, n in counts.items() if n]
        self.log("INFO", f"Wait finished in {duration(elapsed)}: {', '.join(parts)}")

    def task_ids(self) -> Listing:
        return TaskIdsListing(self)

    # -- tasks --
    def task_list(self, verbose: bool) -> Listing:
        return CliTaskList(self, verbose)

    def task_info(self, verbose: bool) -> Listing:
        return CliTaskInfo(self, verbose)

    def task_explain(self, task_id: int, ex: dict) -> None:
        lines, rows = explain_lines(ex)
        for text in lines:
            self.line(text)
        if rows is not None:
            self.horizontal(["Worker Id", "Runnable", "Variant", "Type", "Provides", "Request"],
                            rows)
        queues = ex.get("queues")
        if queues:
            ok = [str(q["queue_id"]) for q in queues if q["ok"]]
            if ok:
                self.line(f"Allocation queues that could run the task: {', '.join(ok)}")
            else:
                self.line("No allocation queue could run the task.")
            for q in queues:
                if not q["ok"]:
                    self.line(f"  queue {q['queue_id']}: {q['reason']}")

    # -- automatic allocation --
    def alloc_list(self, queues: list[dict]) -> None:
        self.horizontal(["ID", "State", "Backlog size", "Max workers per alloc",
                         "Max worker count", "Timelimit", "Manager", "Worker resources", "Name",
                         "Args"], alloc_queue_rows(queues))

    def alloc_info(self, data: dict, explain: bool = False) -> None:
        rows = [[a["id"], a["status"], a["workdir"], a["target_worker_count"],
                 local_time(a["queued_at"]), local_time(a["started_at"]),
                 local_time(a["ended_at"])] for a in data["allocations"]]
        self.horizontal(["ID", "State", "Working directory", "Worker count", "Queue time",
                         "Start time", "Finish time"], rows)
        q = data["queue"]
        self.line(f"Queue {q['id']} ({q['state']}): why it submits (or not) now")
        for text in data["decision"]["lines"]:
            self.line("  " + text.rstrip("\n").replace("\n", "\n    "))

    # -- workers --
    def workers(self, views: list[dict], detailed: bool) -> None:
        if not detailed:
            rows = []
            for v in views:
                cfg = v["configuration"]
                alloc = v["allocation"] or {}
                rows.append([v["id"], v["state"], cfg["hostname"], cfg["resources_text"],
                             alloc.get("manager") or "None", alloc.get("id") or "N/A"])
            self.horizontal(["ID", "State", "Hostname", "Resources", "Manager",
                             "Manager Job ID"], rows)
            return
        for v in views:
            self.vertical(worker_detail_rows(v))

    def worker_stop_results(self, results) -> None:
        worker_stop_log(results, self.log)

    def hwdetect(self, text, descriptor) -> None:
        """`text`, `descriptor`: thunks giving the detected resources as text / a descriptor."""
        self.line(text())

    # -- server --
    def server_info(self, info: dict, with_dir: bool) -> None:
        rows = [("Server directory", info["server_dir"])] if with_dir else []
        for label, key in SERVER_ROWS:
            value = info.get(key)
            if key == "start_date" and value:
                from datetime import datetime

                value = datetime.fromisoformat(value).astimezone().strftime(
                    "%Y-%m-%d %H:%M:%S %Z")
            rows.append((label, "None" if value is None else value))
        self.vertical(rows)

    # -- hq run --
    def run_summary(self, job_id: int, n_tasks: int, stats: dict, failed: list[dict]) -> None:
        self.line(f"Job finished: {stats['finished']} finished, {stats['failed']} failed, "
                  f"{stats['canceled'] + stats['aborted']} canceled (of {n_tasks} tasks)")
        for t in failed[:20]:
            self.line(f"  task {t['id']} failed: {t.get('error', '')}")
        if len(failed) > 20:
            self.line(f"  ... and {len(failed) - 20} more failed tasks")

    # -- output-log --
    def log_summary(self, path: str, s: dict) -> None:
        self.vertical([  # upstream's rows (`print_summary`)
            ("Path", path),
            ("Files", s["n_files"]),
            ("Jobs", s["n_jobs"]),
            ("Tasks", s["n_tasks"]),
            ("Opened streams", s["n_opened"]),
            ("Stdout/stderr size",
             f"{human_size(s['stdout_size'])} / {human_size(s['stderr_size'])}"),
            ("Superseded streams", s["n_superseded"]),
            ("Superseded stdout/stderr size", f"{human_size(s['superseded_stdout_size'])} / "
                                              f"{human_size(s['superseded_stderr_size'])}"),
        ])

    def log_jobs(self, ids: list[int]) -> None:
        for job in ids:
            self.line(str(job))

    def log_chunks(self, chunks, widths=(1, 1)) -> None:
        # One header per chunk, ids zero-padded to the widths of the largest ids in the log;
        # a newline is added only when the chunk does not end with one (upstream's `show`).
        jw, tw = widths
        color = self.colors == "always" or (self.colors == "auto" and sys.stdout.isatty())
        parts = []
        for c in chunks:
            header = f"{c.job:0{jw}}.{c.task:0{tw}}:{c.channel}>"
            if color:
                header = f"\x1b[{_CHUNK_BG[(c.job * 31 + c.task) % len(_CHUNK_BG)]}m{header}\x1b[0m"
            text = c.data.decode("utf-8", "replace")
            parts.append(f"{header} {text}" if text.endswith("\n") else f"{header} {text}\n")
        sys.stdout.write("".join(parts))
        sys.stdout.flush()


class QuietPrinter(CliPrinter):
    """Only what a script needs: ids and states, one per line; silence where cli mode would
    describe. (Results not overridden here print as in cli mode.)"""

    mode = "quiet"
    shows_progress = False

    def note(self, text: str) -> None:
        pass

    def ok(self, text: str | None = None) -> None:
        pass

    def job_id(self, job_id: int, cli_text: str) -> None:
        self.line(str(job_id))

    def job_list(self, shown, total, all_, verbose) -> None:
        for j in shown:
            self.line(f"{j['id']} {j['state']}")

    def job_summary(self, counts) -> None:
        for s, n in counts.items():
            self.line(f"{s} {n}")

    def job_info(self) -> Listing:
        return Listing(self)

    def task_list(self, verbose) -> Listing:
        return QuietTaskList(self)

    def task_info(self, verbose) -> Listing:
        return Listing(self)

    def workers(self, views, detailed) -> None:
        if not detailed:
            for v in views:
                self.line(f"{v['id']} {v['state']}")

    def alloc_list(self, queues) -> None:
        for q in queues:
            self.line(f"{q['id']} {q['state']}")

    def alloc_info(self, data, explain: bool = False) -> None:
        for a in data["allocations"]:
            self.line(f"{a['id']} {a['status']}")

    def server_info(self, info, with_dir) -> None:
        if with_dir:
            self.line(info["server_dir"])

    def run_summary(self, job_id, n_tasks, stats, failed) -> None:
        pass

    def log_summary(self, path, s) -> None:
        pass


class JsonPrinter(Printer):
    """One JSON document per command (`--output-mode json`)."""

    mode = "json"
    job_info_task_states = None  # every task

    def error(self, message: str) -> None:
        self.json({"error": message})

    def note(self, text: str) -> None:
        pass

    def ok(self, text: str | None = None) -> None:
        self.json({})

    def require_text(self, what: str) -> None:
        from ..errors import HqError

        raise HqError(f"{what} does not support the JSON output mode")

    def job_id(self, job_id: int, cli_text: str) -> None:
        self.json({"id": job_id})

    def submitted(self, job_id: int) -> None:
        self.json({"id": job_id})

    def job_list(self, shown, total, all_, verbose) -> None:
        self.json([{k: v for k, v in j.items() if k != "state"} for j in shown])

    def job_summary(self, counts) -> None:
        self.json({s.capitalize(): n for s, n in counts.items()})

    def job_info(self) -> Listing:
        return JsonListing(self, "[", lambda d: [("{", None, public_job_head(d)),
                                                 ("[", "tasks", None)], public_task)

    def cancel_results(self, results) -> None:
        super().cancel_results(results)
        self.json({})

    def wait_finished(self, jobs, elapsed, n_invalid: int = 0) -> None:
        self.json({"duration": elapsed, **wait_counts(jobs, n_invalid)})

    def close_results(self, results) -> None:
        super().close_results(results)
        self.json({})

    def forget_result(self, forgotten, ignored) -> None:
        super().forget_result(forgotten, ignored)
        self.json({})

    def task_ids(self) -> Listing:
        return JsonListing(self, "{", lambda d: [("[", str(d["info"]["id"]), None)],
                           lambda t: t["id"])

    def task_list(self, verbose) -> Listing:
        return JsonListing(self, "{", lambda d: [("[", str(d["info"]["id"]), None)],
                           public_task)

    def task_info(self, verbose) -> Listing:
        return JsonListing(self, "[", lambda d: [], public_task)

    def task_explain(self, task_id, ex) -> None:
        deps = ex["dependencies"]
        explanation = {
            "n_task_deps": deps["total"], "n_waiting_deps": deps["pending"],
            "workers": [{"worker_id": w["worker_id"],
                         "variants": [[public_explain_item(i) for i in v["items"]]
                                      for v in w["variants"]]}
                        for w in ex["workers"]]}
        if ex.get("queues"):  # beyond upstream, only when allocation queues exist
            explanation["queues"] = ex["queues"]
        self.json({"task_id": {"job_id": ex.get("job_id"), "job_task_id": task_id},
                   "explanation": explanation})

    def workers(self, views, detailed) -> None:
        self.json([public_worker(v, detailed) for v in views])

    def worker_stop_results(self, results) -> None:
        # upstream only logs (stderr) and prints nothing: `{}`
        worker_stop_log(results, self.log)
        self.json({})

    def alloc_list(self, queues) -> None:
        self.json([{k: (public_descriptor(q[k]) if k == "known_worker_resources" and q[k]
                        else q[k]) for k in ALLOC_JSON_KEYS} for q in queues])

    def alloc_info(self, data, explain: bool = False) -> None:
        # Upstream's shape: an array of allocations. The queue's decision and its reasons (beyond
        # upstream) only with `--explain`, so scripts written for upstream keep working.
        if not explain:
            self.json(jsonify_times(data["allocations"], ALLOC_TIME_KEYS))
            return
        decision = {k: v for k, v in data["decision"].items() if k != "lines"}
        self.json(jsonify_times({"queue_id": data["queue"]["id"],
                                 "state": data["queue"]["state"],
                                 "allocations": data["allocations"], "decision": decision},
                                ALLOC_TIME_KEYS))

    def hwdetect(self, text, descriptor) -> None:
        # The resource descriptor, as `configuration.resources` of `worker list/info`.
        self.json(public_descriptor(descriptor()))

    def server_info(self, info, with_dir) -> None:
        shown = dict(info)
        shown.pop("instance_dir", None)
        if not with_dir:
            shown["server_dir"] = None
        if shown.get("start_date"):  # chrono's form (F5)
            from datetime import datetime

            shown["start_date"] = chrono_utc(datetime.fromisoformat(shown["start_date"])
                                             .timestamp())
        self.json(shown)

    def run_summary(self, job_id, n_tasks, stats, failed) -> None:
        self.json({"id": job_id, "task_count": n_tasks, "task_stats": stats,
                   "failed_tasks": [{"id": t["id"], "error": t.get("error")} for t in failed]})

    def log_summary(self, path, s) -> None:
        self.json({"filename": path, "summary": s})

    def log_jobs(self, ids) -> None:
        self.json(ids)

    def log_chunks(self, chunks, widths=(1, 1)) -> None:
        self.json([{"job": c.job, "task": c.task, "instance": c.instance,
                    "channel": OUTPUT_LOG_CHANNELS[c.channel] if c.channel < 2 else c.channel,
                    "time_ms": c.time_ms, "data": c.data.decode("utf-8", "replace")}
                   for c in chunks])


PRINTERS = {"cli": CliPrinter, "json": JsonPrinter, "quiet": QuietPrinter}


def make_printer(mode: str = "cli", colors: str = "auto", debug: bool = False) -> Printer:
    printer = PRINTERS[mode](colors)
    printer.debug = debug  # log records in the long form (`--debug`)
    return printer
