"""JSON-shaped views of the core's state, as upstream's `--output-mode json` shows them.

The server answers queries with these plain structures; the CLI prints them as JSON as they are,
or renders tables from them. Times are floats (epoch seconds) here; the CLI formats them.
"""

from __future__ import annotations

from .model import (
    CRASH_LIMIT_NEVER_RESTART,
    CRASH_LIMIT_UNLIMITED,
    JOB_STATE_NAMES,
    Job,
    Task,
    TaskBatch,
    TaskState,
    Worker,
)
from bisect import bisect_right

from .placeholders import resolve_task_paths
from .resources import ALL
from .state import Core, FinishedTask, unmaterialized_state

_STATE_BY_NAME = {
    "waiting": (TaskState.WAITING, TaskState.ASSIGNED),
    "running": (TaskState.RUNNING,),
    "finished": (TaskState.FINISHED,),
    "failed": (TaskState.FAILED,),
    "canceled": (TaskState.CANCELED,),
    "aborted": (TaskState.ABORTED,),
}


# (Finished tasks mostly give their record up: `Job.done`.)
_ONLY_WITH_RECORDS = frozenset({TaskState.RUNNING, TaskState.FAILED})


def job_info(job: Job) -> dict:
    return {
        "id": job.id,
        "name": job.name,
        "task_count": job.n_tasks,
        "task_stats": job.task_stats(),
        "is_open": job.is_open,
        "cancel_reason": job.cancel_reason,
        "state": JOB_STATE_NAMES[job.state()],
    }


def crash_limit_view(limit: int):
    if limit == CRASH_LIMIT_UNLIMITED:
        return "unlimited"
    if limit == CRASH_LIMIT_NEVER_RESTART:
        return "never-restart"
    return limit


def request_view(request) -> list[dict]:
    entries = []
    for e in request.entries:
        if e.amount == ALL:
            req = "All"
        else:
            key = {"compact": "Compact", "compact!": "ForceCompact", "tight": "Tight",
                   "tight!": "ForceTight", "scatter": "Scatter"}[e.policy]
            req = {key: e.amount}
        entries.append({"resource": e.name, "request": req, "text": e.to_text()})
    return [{"n_nodes": request.n_nodes, "resources": entries, "min_time": request.min_time,
             "weight": request.weight / 10000}]


def batch_view(batch: TaskBatch) -> dict:
    t = batch.template
    p = t.program
    return {
        "ids": batch.ids.to_text(),
        "resources": [request_view(r)[0] for r in t.requests],
        "priority": t.priority,
        "program": {
            "args": p.args,
            "env": p.env,
            "cwd": p.cwd,
            "stdout": p.stdout.path,
            "stderr": p.stderr.path,
            "stdout_rm_if_finished": p.stdout.rm_if_finished,
            "stderr_rm_if_finished": p.stderr.rm_if_finished,
            "stdout_streamed": p.stdout.streamed,
            "stderr_streamed": p.stderr.streamed,
            "stream": p.stream,
        },
        "pin_mode": {"omp": "openmp"}.get(t.pin, t.pin),
        "crash_limit": crash_limit_view(t.crash_limit),
        "task_dir": p.task_dir,
        "time_limit": t.time_limit,
        "deps": list(batch.deps),
        "has_stdin": p.stdin is not None,
    }


def task_view(core: Core, job: Job, task: Task | None, task_id: int, state: TaskState,
              batch: TaskBatch) -> dict:
    out = {"id": task_id, "state": state.public_name}
    if task is None:
        return out
    out["instance"] = task.instance
    out["crash_count"] = task.crash_count
    if task.start_time is not None:
        p = batch.template.program
        cwd, stdout, stderr = resolve_task_paths(
            p.cwd, p.stdout.path, p.stderr.path, job_id=job.id, task_id=task_id,
            instance=task.instance, submit_dir=batch.submit_dir, server_uid=core.server_uid)
        out["cwd"] = cwd
        out["stdout"] = "<pipe>" if p.stdout.streamed else stdout
        out["stderr"] = "<pipe>" if p.stderr.streamed else stderr
        out["started_at"] = task.start_time
        if task.worker is not None:
            out["worker"] = task.worker.id
            out["worker_hostname"] = task.worker.config.hostname
            nodes = task.started_nodes
            if nodes is not None and len(nodes) > 1:  # multi-node: every node, root first
                out["workers"] = [n[0] for n in nodes]
                out["worker_hostnames"] = [n[1] for n in nodes]
    if task.end_time is not None and state.is_terminal:
        out["finished_at"] = task.end_time
    if task.error is not None:
        out["error"] = task.error
    return out


#: Task views in one answer (the CLI asks for the next page with `TaskPageRequest`).
TASK_PAGE = 10_000
#: Task ids examined for one answer: a state filter may skip most of a huge array, and every
#: answer must stay short so the server keeps serving others between pages.
TASK_SCAN = 100_000


def _wanted_states(states: list[str] | None):
    if states is None:
        return None
    return {s for name in states for s in _STATE_BY_NAME.get(name, ())}


def sorted_record_ids(job: Job) -> list[int]:
    """The ids of the job's task records, ascending. Cached on the job: records are only ever
    added (in dict order), so an update sorts the old list plus the new ids (linear)."""
    cache = job.sorted_record_ids
    n = len(job.tasks)
    if cache is None or len(cache) != n:
        if cache is None:
            cache = sorted(job.tasks)
        else:
            from itertools import islice

            cache = cache + list(islice(job.tasks, len(cache), None))
            cache.sort()
        job.sorted_record_ids = cache
    return cache


def job_tasks_page(core: Core, job: Job, ids=None, states: list[str] | None = None,
                   after: int = -1, limit: int = TASK_PAGE,
                   scan: int = TASK_SCAN) -> tuple[list[dict], int | None]:
    """Views of the job's tasks with an id greater than `after` (all, or those in the
    `IntRanges` `ids`), ascending, and where to continue: `(views, next_after)`, with
    `next_after` None when nothing is left. At most `limit` views and `scan` examined ids:
    bounded work, whatever the size of the arrays (they are walked as ranges, never expanded).
    """
    wanted = _wanted_states(states)
    out: list[dict] = []
    scanned = 0
    if wanted is not None and wanted <= _ONLY_WITH_RECORDS:
        # Running, finished and failed tasks always have records: no need to walk the arrays
        # (`job info` of a million-task job asks for the failed ones only).
        tids = sorted_record_ids(job)
        tasks = job.tasks
        for i in range(bisect_right(tids, after), len(tids)):
            tid = tids[i]
            scanned += 1
            task = tasks[tid]
            if task.state in wanted and (ids is None or tid in ids):
                out.append(task_view(core, job, task, tid, task.state, task.batch))
            if len(out) >= limit or scanned >= scan:
                return out, (tid if i + 1 < len(tids) else None)
        return out, None
    candidates = job.all_ids() if ids is None else ids.intersection(job.all_ids())
    tasks = job.tasks
    done = job.done
    workers = core.workers
    last = None
    for tid in candidates.iter_sorted(after):
        if last is not None:
            return out, last  # the page is full and there is more
        scanned += 1
        task = tasks.get(tid)
        if task is not None:
            state = task.state
        else:
            seg = done.find(tid) if done.count else None
            if seg is not None:
                state = TaskState.FINISHED
                if wanted is None or state in wanted:
                    values = done.values(seg)
                    task = FinishedTask(job, tid, values, workers.get(values[2]))
            else:
                state = unmaterialized_state(job, tid)
        if wanted is None or state in wanted:
            out.append(task_view(core, job, task, tid, state,
                                 task.batch if task is not None else None))
        if len(out) >= limit or scanned >= scan:
            last = tid
    return out, None


def job_tasks(core: Core, job: Job, ids=None, states: list[str] | None = None) -> list[dict]:
    """Views of all the job's tasks (or the given ids), ascending. Unbounded: for tests and
    small jobs; the server answers clients page by page (`job_tasks_page`)."""
    out: list[dict] = []
    after = -1
    while True:
        page, after = job_tasks_page(core, job, ids, states, after)
        out.extend(page)
        if after is None:
            return out


def job_detail(core: Core, job: Job, with_tasks: bool, task_ids=None,
               task_states: list[str] | None = None, task_limit: int = TASK_PAGE) -> dict:
    """The job's details with its first page of tasks; `tasks_next` is where the next page
    starts (`TaskPageRequest`), None when `tasks` holds them all. `task_limit` 0 sends no
    tasks and `tasks_next` -1 (start from the beginning)."""
    if not with_tasks:
        tasks, nxt = [], None
    elif task_limit <= 0:
        tasks, nxt = [], -1
    else:
        tasks, nxt = job_tasks_page(core, job, task_ids, task_states, -1, task_limit)
    return {
        "info": job_info(job),
        "max_fails": job.max_fails,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "submission_date": job.submit_date,
        "submit_dir": job.submit_dir,
        "workers": _distinct_hostnames(job),
        "submits": [{"array": batch_view(b)} for b in job.batches],
        # Per submit: [number of batches, is a task graph] (JSON output groups `submits`).
        "submit_groups": [[n, graph] for n, graph in job.submits],
        "tasks": tasks,
        "tasks_next": nxt,
    }


def _distinct_hostnames(job: Job) -> list[str]:
    """The hostnames of the workers that ran the job's tasks, ordered by worker id."""
    return list(dict.fromkeys(host for _, host in sorted(job.workers_used.items())))


def worker_view(worker: Worker, now: float) -> dict:
    c = worker.config
    running = worker.n_running
    assigned = len(worker.tasks)
    last = None
    if worker.last_task_started is not None:
        j, t, at = worker.last_task_started
        last = {"job": j, "task": t, "time": at}
    return {
        "id": worker.id,
        "state": worker.state.label,
        "configuration": {
            "heartbeat_interval": c.heartbeat,
            "hostname": c.hostname,
            "idle_timeout": c.idle_timeout,
            "listen_address": c.listen_address,
            "resources": resource_descriptor(c.resources, c.coupling),
            "resources_text": _resources_text(c.resources, c.coupling),
            "time_limit": c.time_limit,
            "work_dir": c.work_dir,
            "group": c.group,
            "on_server_lost": c.on_server_lost,
            "min_utilization": c.min_utilization,
            "overview_interval": c.overview_interval,
            "pid": c.pid,
        },
        "allocation": ({"manager": c.manager, "id": c.manager_job_id}
                       if c.manager else None),
        "started": worker.started_at,
        "ended": {"at": worker.ended_at} if worker.ended_at is not None else None,
        "runtime_info": _runtime_info(worker, assigned, running),
        "last_task_started": last,
    }


def _runtime_info(worker: Worker, assigned: int, running: int) -> dict:
    info = {"assigned_tasks": assigned, "running_tasks": running}
    if worker.mn_reserved:  # held free for a waiting multi-node task (F50)
        info["is_reserved"] = True
    mn = worker.mn_task
    if mn is not None:
        info["multinode"] = "main" if mn.worker is worker else "secondary"
    return info


def resource_descriptor(resources, coupling=()) -> dict:
    """Upstream's resource descriptor: the pools and the coupling weights."""
    return {"resources": [resource_json(r) for r in resources],
            "coupling": {"weights": [list(x) for x in coupling]}}


def resource_json(r) -> dict:
    """Upstream's JSON shape of a resource pool, plus its exact wire form."""
    out = {"name": r.name, "kind": r.kind}
    if r.kind == "range":
        out.update(start=r.start, end=r.end)
    elif r.kind == "sum":
        out["size"] = r.size / 10000
    elif r.kind == "list":
        out["values"] = list(r.groups[0])
    else:
        out["groups"] = [list(g) for g in r.groups]
    out["wire"] = r.to_wire()
    return out


def _resources_text(resources, coupling=()) -> str:
    from .resources import format_resources

    return format_resources(resources, coupling)


def debug_dump(core) -> dict:
    """`hq server debug-dump`: the scheduler's state as upstream's dump shapes it,
    `{"tako": {"workers": [...], "worker_groups": [{"name", "workers"}], "tasks": [...]}}`.
    Workers are the running ones; tasks are those with their own record that have not ended
    (waiting tasks still in compact array form have none and are not listed)."""
    workers = []
    groups: dict[str, list[int]] = {}
    for w in sorted(core.workers.values(), key=lambda w: w.id):
        if not w.is_running:
            continue
        groups.setdefault(w.config.group, []).append(w.id)
        workers.append({
            "id": w.id,
            "hostname": w.config.hostname,
            "group": w.config.group,
            "resources": resource_descriptor(w.config.resources, w.config.coupling),
            "load": dict(w.load),
            "capacity": dict(w.capacity),
            "assigned_tasks": sorted([{"job_id": t.job.id, "job_task_id": t.id}
                                      for t in w.tasks],
                                     key=lambda t: (t["job_id"], t["job_task_id"])),
            "n_running": w.n_running,
            "stopping": w.stopping,
            "reserved_for_multinode": w.mn_task is not None,
        })
    tasks = []
    for job in sorted(core.jobs.values(), key=lambda j: j.id):
        for t in sorted(job.tasks.values(), key=lambda t: t.id):
            if t.state.is_terminal:
                continue
            tasks.append({
                "id": {"job_id": job.id, "job_task_id": t.id},
                "state": t.state.public_name,
                "instance": t.instance,
                "crash_count": t.crash_count,
                "priority": t.batch.template.priority,
                "worker": t.worker.id if t.worker is not None else None,
                "nodes": [n.id for n in t.nodes] if t.nodes is not None else None,
                "deps_pending": t.deps_pending,
            })
    return {"tako": {
        "workers": workers,
        "worker_groups": [{"name": g, "workers": ids} for g, ids in sorted(groups.items())],
        "tasks": tasks,
    }}
