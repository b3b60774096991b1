"""Automatic allocation, the server shell: the only place that runs `sbatch`/`qsub`/... .

The pure parts decide (`hyperqueue.autoalloc`: registry, backoff, `decide`) and render/parse
(`hyperqueue.batch`); this service feeds them and acts:

* **when**: `poke()` (new ready tasks, a worker came or went, a queue changed) wakes the loop;
  `decide()` then runs within `COALESCE` s, and at most once per `MIN_GAP` s under a stream of
  pokes; without pokes at least every `RECHECK` s and when a backoff delay ends. So the first
  `sbatch`/`qsub` for new work happens well within a second, and a burst of submits is one
  decision (the backlog bounds what it submits).
* **demand**: `core.waiting.waiting_summary` (the ready tasks no connected worker took).
* **submission**: the rendered script in `<instance>/autoalloc/<queue>[-name]/<NNN>/hq-submit.sh`,
  submitted by name from PATH with that directory as cwd (`trio.run_process`, bounded time).
* **tracking**: workers of an allocation are recognised on connect by their manager job id
  (`worker_connected` / `worker_lost`), and the managers are asked for the status of active
  allocations every `status_interval` s (`scontrol show job` / `qstat -f -F json -x`), at once
  after a restart (adopted allocations).
* **journal**: every registry event is a record `[time, "<type>", {fields}]` appended with the
  core's events (`AutoallocRecord`); `boot.restore` hands them back to `restore`.

Testing knobs (environment of `hq server start`; not for production use):
`HQ_AUTOALLOC_BACKOFF` (comma-separated delay ladder in seconds, starting with 0),
`HQ_AUTOALLOC_MAX_SUBMISSION_FAILURES`, `HQ_AUTOALLOC_MAX_ALLOCATION_FAILURES`,
`HQ_AUTOALLOC_STATUS_INTERVAL` (seconds between manager status checks).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time

import trio

from ..autoalloc import (
    AutoallocError, BackoffPolicy, Decision, QueueParams, Registry, WaitingTasks, decide,
    event_from_wire, event_to_wire, explain,
)
from ..autoalloc.state import FAILED, FINISHED, QUEUED, RUNNING
from ..batch import (
    JOBID_FILE, PBS, SCRIPT_NAME, SLURM, SLURM_INVALID_JOB, ManagerOutputError, WorkerCommand,
    allocation_dir, allocation_name, cancel_argv, parse_qsub_output, parse_qstat_json,
    parse_sbatch_output, parse_scontrol_status, render_script, submit_argv,
)
from ..common.hqpath import hq_executable
from ..core.events import Unknown
from ..core.waiting import waiting_summary

log = logging.getLogger("hq.autoalloc")

__all__ = ["AutoallocService", "AutoallocRecord", "is_autoalloc_kind", "policy_from_env"]

COALESCE = 0.05  # seconds: pokes arriving together make one decision
MIN_GAP = 0.5  # seconds between two decisions
RECHECK = 30.0  # seconds: decide at least this often
DEFAULT_STATUS_INTERVAL = 60.0
COMMAND_TIMEOUT = 60.0  # seconds a manager command may take
MAX_ERROR_TEXT = 2000

MANAGER_NAMES = {SLURM: "Slurm", PBS: "PBS"}


class AutoallocRecord(Unknown):
    """A registry event as a journal record: `[time, type, fields]` (types of
    `autoalloc.state.EVENT_TYPES`). Not in `core.events.KINDS`: the core's restore never sees
    it (`boot.restore` routes it here) and `journal prune` keeps it. Carried like any record
    the core does not know (`core.events.Unknown`)."""

    __slots__ = ()


def is_autoalloc_kind(kind) -> bool:
    from ..autoalloc.state import EVENT_TYPES

    return type(kind) is str and kind in EVENT_TYPES


def _env_float(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        v = float(text)
        if not 0 < v < 1e9:
            raise ValueError
        return v
    except ValueError:
        log.warning("Ignoring %s=%r: expected a positive number of seconds", name, text)
        return default


def policy_from_env() -> BackoffPolicy:
    """The backoff policy: upstream's, unless the testing variables change it."""
    default = BackoffPolicy()
    try:
        text = os.environ.get("HQ_AUTOALLOC_BACKOFF")
        delays = tuple(float(x) for x in text.split(",")) if text else default.delays
        subs = int(os.environ.get("HQ_AUTOALLOC_MAX_SUBMISSION_FAILURES")
                   or default.max_submission_failures)
        allocs = int(os.environ.get("HQ_AUTOALLOC_MAX_ALLOCATION_FAILURES")
                     or default.max_allocation_failures)
        return BackoffPolicy(delays, subs, allocs)
    except ValueError as e:
        log.warning("Ignoring the HQ_AUTOALLOC_* backoff settings: %s", e)
        return default


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."


class AutoallocService:
    def __init__(self, server, policy: BackoffPolicy | None = None):
        self.server = server
        self.registry = Registry(policy or policy_from_env())
        self.status_interval = _env_float("HQ_AUTOALLOC_STATUS_INTERVAL",
                                          DEFAULT_STATUS_INTERVAL)
        self.wakeup = trio.Event()
        self.decision: Decision | None = None
        self.decided_at: float | None = None
        self.worker_alloc: dict[int, str] = {}  # connected worker id -> allocation id
        self.last_error: dict[int, str] = {}  # queue id -> last submission error
        self.status_due = 0.0  # trio time of the next status check
        self.hq_path = hq_executable()
        self.running = False
        self.stopping = False  # the server is stopping: `shutdown` ends the allocations

    # -- journal -----------------------------------------------------------------------------
    def restore(self, records) -> None:
        """Replays journal records `(number, [time, type, fields])`.

        Raises:
            ValueError: "record N: why" for a record that does not fit the history.
        """
        for i, (_t, kind, payload) in records:
            try:
                if not isinstance(payload, dict) or "type" in payload:
                    raise ValueError(f"{kind} event: payload is not a map of its fields")
                self.registry.apply(event_from_wire({"type": kind, **payload}))
            except ValueError as e:
                raise ValueError(f"record {i}: {e}") from None
            except (TypeError, KeyError, AttributeError, IndexError, ArithmeticError,
                    RecursionError) as e:  # a corrupt record whatever it holds: refused
                raise ValueError(f"record {i}: {kind} event: {e.__class__.__name__}") from None
        n = sum(len(q.active_allocations()) for q in self.registry.queues.values())
        if self.registry.queues:
            log.info("Restored %d allocation queues (%d allocations queued or running)",
                     len(self.registry.queues), n)

    def _journal(self, events) -> None:
        if not events:
            return
        now = time.time()
        out = self.server.outbox.events
        for e in events:
            wire = event_to_wire(e)
            kind = wire.pop("type")
            out.append(AutoallocRecord(now, kind, wire))
        self.server.kick()
        self.poke()

    # -- triggers ----------------------------------------------------------------------------
    def poke(self) -> None:
        self.wakeup.set()

    def worker_connected(self, worker) -> None:
        cfg = worker.config
        if not cfg.manager_job_id or not cfg.manager:
            return
        a = self.registry.allocation(cfg.manager_job_id)
        if a is None:
            return
        q = self.registry.queues[a.queue_id]
        if q.params.manager != str(cfg.manager).lower():
            return
        self.worker_alloc[worker.id] = a.id
        try:
            events = self.registry.worker_connected(a.id, worker.id, time.time(),
                                                    tuple(cfg.resources))
        except AutoallocError as e:
            log.warning("Worker %d of allocation %s: %s", worker.id, a.id, e)
            return
        if a.state == RUNNING:
            log.info("Worker %d belongs to allocation %s of queue %d", worker.id, a.id, q.id)
        self._journal(events)

    def worker_lost(self, worker, reason) -> None:
        aid = self.worker_alloc.pop(worker.id, None)
        if aid is None or self.stopping:
            return
        try:
            events = self.registry.worker_lost(aid, worker.id, time.time(),
                                               crashed=reason.is_failure)
        except AutoallocError as e:
            log.warning("Worker %d of allocation %s: %s", worker.id, aid, e)
            return
        self._log_ends(events)
        self._journal(events)

    def _log_ends(self, events) -> None:
        from ..autoalloc import AllocationFailed, AllocationFinished, QueuePaused

        for e in events:
            if isinstance(e, AllocationFailed):
                log.warning("Allocation %s of queue %d failed", e.allocation_id, e.queue_id)
            elif isinstance(e, AllocationFinished):
                log.info("Allocation %s of queue %d finished", e.allocation_id, e.queue_id)
            elif isinstance(e, QueuePaused):
                log.warning("Allocation queue %d paused: %s", e.queue_id, e.reason)

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        self.running = True
        last = -1e9
        # adopted allocations (after a restart) are checked at once
        self.status_due = trio.current_time() if self._active() else (
            trio.current_time() + self.status_interval)
        while True:
            now = trio.current_time()
            timeout = RECHECK
            if self._active():
                timeout = min(timeout, self.status_due - now)
            wall = time.time()
            for q in self.registry.queues.values():
                t = q.backoff.next_attempt_at(self.registry.policy)
                if t is not None and t > wall:
                    timeout = min(timeout, t - wall + 0.01)
            with trio.move_on_after(max(0.0, timeout)):
                await self.wakeup.wait()
            if self._active() and trio.current_time() >= self.status_due:
                await self.refresh_status()
                self.status_due = trio.current_time() + self.status_interval
            if not self.registry.queues:
                self.wakeup = trio.Event()
                continue
            gap = last + MIN_GAP - trio.current_time()
            await trio.sleep(max(gap, COALESCE))
            self.wakeup = trio.Event()
            last = trio.current_time()
            await self.decide_and_submit()

    def _active(self) -> bool:
        return any(q.active_allocations() for q in self.registry.queues.values())

    def demand(self) -> list[WaitingTasks]:
        return [WaitingTasks(variants, n) for variants, n in waiting_summary(self.server.core)]

    def current_decision(self) -> Decision:
        """The decision for the current state (computed now: `alloc info` shows it)."""
        return decide(self.registry, self.demand(), time.time())

    async def decide_and_submit(self) -> None:
        if self.stopping:
            return
        self.server.flush()  # schedule first: what connected workers take is not demand
        now = time.time()
        d = decide(self.registry, self.demand(), now)
        self.decision, self.decided_at = d, now
        for qid, workers in d.submissions():
            await self.submit(qid, workers)

    # -- managers ------------------------------------------------------------------------------
    async def _run(self, argv: list[str], cwd: str | None) -> tuple[bool, str, str]:
        """Runs a manager command: (exit code 0, stdout, stderr); never raises."""
        try:
            with trio.move_on_after(COMMAND_TIMEOUT) as scope:
                p = await trio.run_process(argv, cwd=cwd, capture_stdout=True,
                                           capture_stderr=True, check=False,
                                           stdin=b"")
            if scope.cancelled_caught:
                return False, "", f"`{argv[0]}` did not finish within {COMMAND_TIMEOUT:g} s"
        except FileNotFoundError:
            return False, "", f"`{argv[0]}` was not found in PATH"
        except OSError as e:
            return False, "", f"cannot run `{argv[0]}`: {e.strerror or e}"
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        return p.returncode == 0, out, err

    def _server_dir(self) -> str:
        """The `--server-dir` of allocation workers: the instance directory (as upstream), or,
        when the server has a journal, the server directory itself, so that workers find the
        restarted server (a new instance of the same server: `hq-current`) and reconnect."""
        if self.server.journal is not None:
            return os.path.abspath(self.server.root)
        return self.server.instance_dir

    def _worker_command(self, p: QueueParams) -> WorkerCommand:
        return WorkerCommand(
            hq_path=self.hq_path, manager=p.manager, server_dir=self._server_dir(),
            idle_timeout=p.idle_timeout, time_limit=p.effective_worker_time_limit,
            on_server_lost=p.on_server_lost, worker_args=p.worker_args(),
            start_cmd=p.worker_start_cmd, stop_cmd=p.worker_stop_cmd,
            wrap_cmd=p.worker_wrap_cmd)

    def _script(self, p: QueueParams, nodes: int, name: str, directory: str,
                dry_run: bool = False) -> str:
        return render_script(p.manager, nodes=nodes, name=name, directory=directory,
                             walltime=p.time_limit, manager_args=p.additional_args,
                             worker_command=self._worker_command(p), dry_run=dry_run)

    async def _submit_script(self, manager: str, directory: str, hold: bool = False):
        """Submits `<directory>/hq-submit.sh`: (job id, None) or (None, error text)."""
        argv = submit_argv(manager, os.path.join(directory, SCRIPT_NAME))
        if hold and manager == SLURM:
            argv.insert(1, "--hold")
        ok, out, err = await self._run(argv, directory)
        if not ok:
            return None, _short(err or out) or f"`{argv[0]}` failed"
        try:
            job_id = parse_sbatch_output(out) if manager == SLURM else parse_qsub_output(out)
        except ManagerOutputError as e:
            return None, str(e)
        return job_id, None

    async def cancel(self, manager: str, job_id: str) -> bool:
        ok, _out, err = await self._run(cancel_argv(manager, job_id), None)
        if not ok:
            log.warning("Cannot cancel allocation %s: %s", job_id, _short(err))
        return ok

    async def submit(self, queue_id: int, workers: int) -> None:
        reg = self.registry
        q = reg.queues.get(queue_id)
        if q is None or not reg.can_submit(queue_id, time.time()):
            return
        p = q.params
        instance = self.server.instance_dir
        while True:
            counter = reg.next_counter(queue_id)
            directory = allocation_dir(instance, queue_id, p.name, counter)
            try:
                os.makedirs(os.path.dirname(directory), exist_ok=True)
                os.mkdir(directory)
                break
            except FileExistsError:
                continue  # after a restart: the counter is not journaled
            except OSError as e:
                self._submission_failed(queue_id, f"cannot create {directory}: {e.strerror}")
                return
        name = allocation_name(queue_id, p.name, counter)
        try:
            script = self._script(p, workers, name, directory)
            with open(os.path.join(directory, SCRIPT_NAME), "w") as f:
                f.write(script)
        except (OSError, ValueError) as e:
            self._submission_failed(queue_id, f"cannot write the script: {e}")
            return
        job_id, error = await self._submit_script(p.manager, directory)
        if error is not None:
            self._submission_failed(queue_id, error)
            return
        if self.stopping:  # the server began to stop while the manager answered
            await self.cancel(p.manager, job_id)
            return
        try:
            with open(os.path.join(directory, JOBID_FILE), "w") as f:
                f.write(job_id)
        except OSError:
            pass
        try:
            events = reg.allocation_submitted(queue_id, job_id, workers, directory, time.time())
        except AutoallocError as e:
            # the queue was removed or paused while the manager answered
            log.warning("Allocation %s is not needed any more (%s): cancelling it", job_id, e)
            await self.cancel(p.manager, job_id)
            return
        self.last_error.pop(queue_id, None)
        log.info("Queue %d: allocation %s submitted (%d worker%s)", queue_id, job_id, workers,
                 "" if workers == 1 else "s")
        self._journal(events)

    def _submission_failed(self, queue_id: int, error: str) -> None:
        if queue_id not in self.registry.queues:
            return
        log.warning("Queue %d: submission failed: %s", queue_id, error)
        self.last_error[queue_id] = error
        events = self.registry.submission_failed(queue_id, time.time())
        self._log_ends(events)
        self._journal(events)

    async def refresh_status(self) -> None:
        """Asks the managers about every queued/running allocation."""
        by_manager: dict[str, list[str]] = {}
        for q in list(self.registry.queues.values()):
            for a in q.active_allocations():
                by_manager.setdefault(q.params.manager, []).append(a.id)
        for manager, ids in by_manager.items():
            if manager == SLURM:
                for job_id in ids:
                    ok, out, err = await self._run(["scontrol", "show", "job", job_id], None)
                    try:
                        if not ok:
                            raise ManagerOutputError(_short(err) or SLURM_INVALID_JOB)
                        status = parse_scontrol_status(out)
                    except ManagerOutputError as e:
                        log.debug("Status of allocation %s: %s", job_id, e)
                        self._apply(self.registry.status_error(job_id, time.time()))
                        continue
                    self._apply(self.registry.manager_status(job_id, status, time.time()))
            else:
                ok, out, err = await self._run(["qstat", "-f", *ids, "-F", "json", "-x"], None)
                try:
                    statuses = parse_qstat_json(out)
                except ManagerOutputError as e:
                    log.debug("qstat: %s %s", e, _short(err))
                    statuses = {}
                for job_id in ids:
                    st = statuses.get(job_id)
                    if st is None:
                        self._apply(self.registry.status_error(job_id, time.time()))
                    else:
                        self._apply(self.registry.manager_status(job_id, st, time.time()))

    def _apply(self, events) -> None:
        self._log_ends(events)
        self._journal(events)

    # -- requests ------------------------------------------------------------------------------
    async def dry_run(self, p: QueueParams) -> dict:
        """Submits one trial allocation with the most workers (PBS on hold, Slurm held with
        `--hold`) and cancels it. Raises ValueError with the manager's error (the directory
        with the script is kept then)."""
        base = os.path.join(self.server.instance_dir, "autoalloc")
        os.makedirs(base, exist_ok=True)
        directory = tempfile.mkdtemp(prefix="dry-run-", dir=base)
        script = self._script(p, p.max_workers_per_alloc, "hq-dry-run", directory, dry_run=True)
        with open(os.path.join(directory, SCRIPT_NAME), "w") as f:
            f.write(script)
        job_id, error = await self._submit_script(p.manager, directory, hold=True)
        if error is not None:
            raise ValueError(f"Could not submit allocation: {error}\n"
                             f"The script is {os.path.join(directory, SCRIPT_NAME)}")
        await self.cancel(p.manager, job_id)
        shutil.rmtree(directory, ignore_errors=True)
        return {"job_id": job_id, "script": script}

    async def add_queue(self, params: QueueParams, dry_run: bool) -> dict:
        if dry_run:
            await self.dry_run(params)
        events = self.registry.add_queue(params)
        self._journal(events)
        qid = events[0].queue_id
        log.info("Allocation queue %d created (%s)", qid, MANAGER_NAMES[params.manager])
        return {"queue_id": qid, "warnings": params.warnings()}

    async def queue_action(self, queue_id: int, action: str, force: bool) -> dict:
        reg = self.registry
        if action == "pause":
            self._journal(reg.pause(queue_id))
            return {"message": f"Allocation queue {queue_id} successfully paused"}
        if action == "resume":
            self._journal(reg.resume(queue_id))
            self.last_error.pop(queue_id, None)
            return {"message": f"Allocation queue {queue_id} successfully resumed"}
        if action == "remove":
            manager = reg.queue(queue_id).params.manager
            events, cancel = reg.remove_queue(queue_id, force)
            self._journal(events)
            self.last_error.pop(queue_id, None)
            for a in cancel:
                await self.cancel(manager, a.id)
            return {"message": f"Allocation queue {queue_id} successfully removed"}
        raise ValueError(f"unknown allocation queue action {action!r}")

    async def shutdown(self) -> None:
        """Server stop: cancels every queued and running allocation and journals the end
        (FINISHED) of each one the manager cancelled, so that a restart shows it at once. From
        here on, workers that go away do not end allocations (their allocation was cancelled,
        which is not a failure; or its cancel failed and a restart asks the manager)."""
        self.stopping = True
        cancel = [(self.registry.queues[a.queue_id].params.manager, a.id)
                  for a in self.registry.cancel_all()]
        if cancel:
            log.info("Cancelling %d allocations", len(cancel))
        for manager, job_id in cancel:
            if await self.cancel(manager, job_id):
                self._journal(self.registry.cancelled_by_stop(job_id, time.time()))

    # -- views ---------------------------------------------------------------------------------
    def queue_view(self, q) -> dict:
        from ..core.resources import format_resources
        from ..core.views import resource_descriptor

        p = q.params
        declared = p.declared_resources()
        return {
            "id": q.id, "name": p.name, "state": q.state,
            "manager": MANAGER_NAMES[p.manager],
            "additional_args": list(p.additional_args), "backlog": p.backlog,
            "max_workers_per_alloc": p.max_workers_per_alloc, "timelimit": p.time_limit,
            "max_worker_count": p.max_worker_count, "worker_args": list(p.worker_args()),
            "known_worker_resources": (resource_descriptor(q.known_resources)
                                       if q.known_resources is not None else None),
            # for the cli table and `alloc info` (not in upstream's JSON)
            "pause_reason": q.pause_reason,
            # as the Resources column of `worker list` (F49)
            "resources_text": format_resources(
                q.known_resources if q.known_resources is not None else declared.values()),
            "params": p.to_wire(),
        }

    def list_view(self) -> dict:
        return {"queues": [self.queue_view(self.registry.queues[k])
                           for k in sorted(self.registry.queues)]}

    def info_view(self, queue_id: int, states: list[str] | None) -> dict:
        q = self.registry.queue(queue_id)
        wanted = {s.upper() for s in states} if states else None
        allocs = [a.to_json() for a in q.allocations.values()
                  if wanted is None or a.state in wanted]
        d = self.current_decision().queues[queue_id]
        decision = d.to_json()
        decision["paused"] = q.pause_reason
        decision["last_submission_error"] = self.last_error.get(queue_id)
        b = q.backoff
        decision["backoff"] = {"submission_failures": b.submission_failures,
                               "allocation_failures": b.allocation_failures,
                               "next_attempt_at": b.next_attempt_at(self.registry.policy)}
        lines = d.lines()
        if q.pause_reason:
            lines.append(f"Paused: {q.pause_reason}")
        if decision["last_submission_error"]:
            lines.append(f"Last submission error: {decision['last_submission_error']}")
        decision["lines"] = lines
        return {"queue": self.queue_view(q), "allocations": allocs, "decision": decision}

    def allocation_workdir(self, allocation_id: str) -> dict:
        a = self.registry.allocation(allocation_id)
        if a is None:
            raise ValueError(f"Allocation {allocation_id} not found")
        return {"workdir": a.workdir}

    def explain_task(self, requests) -> list[dict]:
        """For `hq task explain`: which queue could run a task with these variants."""
        if not self.registry.queues:
            return []
        return [{"queue_id": qid, "ok": ok, "reason": why}
                for qid, ok, why in explain(self.registry, WaitingTasks(tuple(requests), 1))]


ALLOC_STATES = (QUEUED, RUNNING, FINISHED, FAILED)
