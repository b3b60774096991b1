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
from .table import horizontal_table, vertical_table


# ---------------------------------------------------------------------------------------------
# Formatting helpers


def iso(ts: float | None) -> str | None:
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
    """The `Resources` cell of job/task info: `name: request` lines; with several resource
    variants, each block is headed by `# Variant N` (1-based)."""
    def lines(v):
        return [r["resource"] + ": " + r["text"] for r in v["resources"]]

    if len(variants) <= 1:
        return "\n".join(lines(variants[0])) if variants else ""
    out = []
    for i, v in enumerate(variants, 1):
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


def short_name(name: str) -> str:
    if len(name) <= MAX_NAME:
        return name
    half = (MAX_NAME - 3) // 2
    return name[:half] + "..." + name[-(MAX_NAME - 3 - half):]


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


def job_detail_rows(d: dict) -> list:
    info = d["info"]
    submits = [s["array"] for s in d["submits"]]
    all_ids = ",".join(s["ids"] for s in submits)
    from ..core.ranges import IntRanges

    try:
        ids_text = IntRanges.parse(all_ids).to_text() if all_ids else ""
    except ValueError:
        ids_text = all_ids
    workers = d["workers"]
    workers_text = ", ".join(workers[:2]) + (f", ... ({len(workers)} total)"
                                             if len(workers) > 2 else "")
    rows = [("ID", info["id"]), ("Name", info["name"]), ("State", job_state_text(info)),
            ("Cancel Reason", info["cancel_reason"] or ""),
            ("Session", "open" if info["is_open"] else "closed"),
            ("Tasks", f"{info['task_count']}; Ids: {ids_text}"), ("Workers", workers_text)]
    if len(submits) == 1:
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
    if len(submits) == 1:
        rows.append(("Submission directory", d["submit_dir"]))
    start = d["started_at"]
    end = d["finished_at"] or (time.time() if start else None)
    rows.append(("Makespan", duration(end - start) if start else "0s"))
    return rows


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
        ("Worker", t.get("worker_hostname", "")),
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
    """A resource descriptor as JSON output shows it (without our exact wire form)."""
    return dict(descriptor, resources=[{k: x for k, x in r.items() if k != "wire"}
                                       for r in descriptor["resources"]])


def worker_resources_lines(view) -> str:
    """`worker info` Resources: one `name: summary` line per pool (`cpus: 4`, `mem: 1.95 GiB`,
    `cpus: 2x3 [coupled]`), as upstream."""
    from ..core.resources import ResourceDef, format_resources

    descriptor = view["configuration"]["resources"]
    defs = [ResourceDef.from_wire(r["wire"]) for r in descriptor["resources"]]
    return format_resources(defs, descriptor["coupling"]["weights"], "\n", ": ")


def client_log(level: str, message: str) -> None:
    """One client log record on stderr (F1): `2025-01-31T10:20:30Z INFO <message>`."""
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    sys.stderr.write(f"{ts}Z {level} {message}\n")
    sys.stderr.flush()


def worker_stop_log(results) -> None:
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
        ("Data provider", cfg["listen_address"] or "None"),
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

    # -- mode facts a command needs before it asks the server --
    #: `job info` asks for every task (json) or only the failed ones (the table shows those).
    job_info_task_states: list[str] | None = ["failed"]
    #: `hq run` may draw a live progress bar (on a terminal).
    shows_progress = False

    def require_text(self, what: str) -> None:
        """Raises for a command whose output is raw text when the mode cannot show it."""

    def task_page_printer(self):
        """A callback printing `task list` pages as they come, or None (print at the end)."""
        return None


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

    def job_info(self, jobs: list[dict]) -> None:
        for d in jobs:
            self.vertical(job_detail_rows(d))
            failed = d["tasks"]
            if failed:
                shown = failed[:5]
                self.horizontal(["Task ID", "Worker", "Error"],
                                [[t["id"], t.get("worker_hostname", ""), t.get("error", "")]
                                 for t in shown])
                extra = f" ({len(shown)} shown)" if len(shown) < len(failed) else ""
                self.line(f"{len(failed)} task{'s' if len(failed) != 1 else ''} failed.{extra}")

    def cancel_results(self, results) -> None:
        for jid, status, n, finished in results:
            if status == "canceled":
                self.line(f"Job {jid} canceled ({n} tasks canceled, {finished} tasks already "
                          "finished)")
            elif status == "not-found":
                self.line(f"Canceling job {jid} failed: job not found")
            else:
                self.line(f"Canceling job {jid} failed: all tasks are already finished")

    def wait_finished(self, jobs: list[dict], elapsed: float) -> None:
        counts: dict[str, int] = {}
        for j in jobs:
            counts[j["state"].lower()] = counts.get(j["state"].lower(), 0) + 1
        parts = ", ".join(f"{n} job{'s' if n != 1 else ''} {s}" for s, n in sorted(counts.items()))
        self.line(f"Wait finished in {duration(elapsed)}: {parts or 'no jobs'}")

    def close_results(self, results) -> None:
        for jid, status in results:
            if status == "closed":
                self.line(f"Job {jid} closed")
            elif status == "not-found":
                self.line(f"Closing job {jid} failed: job not found")
            else:
                self.line(f"Closing job {jid} failed: job is already closed")

    def forget_result(self, forgotten: int, ignored: int) -> None:
        text = f"{forgotten} job(s) were forgotten"
        if ignored:
            text += f", {ignored} were ignored due to wrong state or invalid ID"
        self.line(text)

    def task_ids(self, ids: dict[int, list[int]]) -> None:
        from ..core.ranges import compress_ids

        if len(ids) == 1:
            self.line(compress_ids(next(iter(ids.values()))))
        else:
            for jid, tids in ids.items():
                self.line(f"{jid}: {compress_ids(tids)}")

    # -- tasks --
    def task_list(self, jobs: list[dict], verbose: bool) -> None:
        multi = len(jobs) > 1
        rows = []
        for d in jobs:
            for t in d["tasks"]:
                row = [t["id"], t["state"].upper(), t.get("worker_hostname", ""),
                       task_makespan(t), task_error(t, verbose, 16)]
                rows.append(([d["info"]["id"]] if multi else []) + row)
        header = (["Job ID"] if multi else []) + ["Task ID", "State", "Worker", "Makespan",
                                                  "Error"]
        self.horizontal(header, rows)

    def task_info(self, d: dict, verbose: bool) -> None:
        from ..core.ranges import IntRanges

        submits = [s["array"] for s in d["submits"]]

        def submit_of(tid):
            for s in submits:
                if tid in IntRanges.parse(s["ids"]):
                    return s
            return submits[0]

        for t in d["tasks"]:
            self.vertical(task_info_rows(t, submit_of(t["id"]), verbose))

    def task_explain(self, task_id: int, ex: dict) -> None:
        deps = ex["dependencies"]
        if deps["total"]:
            if deps["pending"]:
                self.line(f"Task is waiting for {deps['pending']}/{deps['total']} dependencies.")
            else:
                self.line("All dependencies of the task are finished.")
        else:
            self.line("The task has no dependencies.")
        runnable = []
        rows = []
        n_var = ex["n_variants"]
        for w in ex["workers"]:
            ok = [v for v in w["variants"] if v["runnable"]]
            if ok:
                runnable.append(str(w["worker_id"]))
            if n_var > 1:
                verdict = f"Yes ({len(ok)}/{n_var} variants)" if ok else "No"
            else:
                verdict = "Yes" if ok else "No"
            first = True
            for v in w["variants"]:
                for item in v["items"] or [{"type": "", "provides": "", "request": "",
                                            "ok": True}]:
                    rows.append([w["worker_id"] if first else "", verdict if first else "",
                                 v["variant"] if n_var > 1 else "", item["type"],
                                 item["provides"], item["request"] + ("" if item["ok"]
                                                                      else "  (blocking)")])
                    first = False
        if runnable:
            self.line(f"The task can run on workers: {', '.join(runnable)}")
        else:
            self.line("The task cannot run on any connected worker.")
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
            self.line("  " + text)

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
        worker_stop_log(results)

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

    def job_info(self, jobs) -> None:
        pass

    def cancel_results(self, results) -> None:
        pass

    def wait_finished(self, jobs, elapsed) -> None:
        pass

    def task_page_printer(self):
        # Printed page by page as the server sends them: bounded memory, and the first lines
        # of a huge array come at once.
        def print_page(tasks):
            for t in tasks:
                self.line(f"{t['id']} {t['state'].upper()}")
        return print_page

    def task_info(self, d, verbose) -> None:
        pass

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

    def job_info(self, jobs) -> None:
        self.json(jsonify_times(jobs))

    def cancel_results(self, results) -> None:
        self.json([{"id": r[0], "result": r[1]} for r in results])

    def wait_finished(self, jobs, elapsed) -> None:
        pass

    def close_results(self, results) -> None:
        self.json([{"id": r[0], "result": r[1]} for r in results])

    def forget_result(self, forgotten, ignored) -> None:
        self.json({"forgotten": forgotten, "ignored": ignored})

    def task_ids(self, ids) -> None:
        self.json({str(jid): tids for jid, tids in ids.items()})

    def task_list(self, jobs, verbose) -> None:
        self.json({str(d["info"]["id"]): jsonify_times(d["tasks"]) for d in jobs})

    def task_info(self, d, verbose) -> None:
        self.json(jsonify_times(d["tasks"]))

    def task_explain(self, task_id, ex) -> None:
        self.json({"task_id": task_id, "explanation": ex})

    def workers(self, views, detailed) -> None:
        shown = []
        for v in views:
            v = jsonify_times(v)
            cfg = dict(v["configuration"])
            cfg.pop("resources_text", None)
            cfg["resources"] = public_descriptor(cfg["resources"])
            v["configuration"] = cfg
            shown.append(v)
        self.json(shown)

    def worker_stop_results(self, results) -> None:
        # upstream only logs (stderr) and prints nothing: `{}`
        worker_stop_log(results)
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


def make_printer(mode: str = "cli", colors: str = "auto") -> Printer:
    return PRINTERS[mode](colors)
