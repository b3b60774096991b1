"""`hq worker ...`"""

from __future__ import annotations

import os
import socket
import time

from ..client import calls
from ..errors import CommandError
from .common import COUNT, DURATION, ID, POSITIVE_DURATION, SELECTOR, missing_text, trio_run
from .context import connect, printer, server_root, setup_logging
from .flavour import click


@click.group()
def worker():
    """Manage workers."""


#: A CPU definition of kind sum (refused after parsing, F47: CPUs must have identity).
_CPU_SUM = object()


def _cpu_resource(text: str):
    """A `cpus` definition, or `_CPU_SUM` for a sum (`sum(5)`, or `0`: an empty sum).
    Raises ValueError on bad syntax."""
    from ..core.resources import parse_resource_def

    if text.strip() == "0":
        return _CPU_SUM
    d = parse_resource_def("cpusum", text)  # (any name that may be a sum)
    if d.kind == "sum":
        return _CPU_SUM
    return _held(parse_resource_def("cpus", text), text)


def _held(d, text: str):
    """`d` if this worker can hold its indices (one entry each): at most MAX_WORKER_INDICES."""
    from ..core.limits import MAX_WORKER_INDICES

    if d.kind != "sum" and d.count > MAX_WORKER_INDICES:
        raise ValueError(f"Invalid resource definition '{text}': too many indices "
                         f"(at most {MAX_WORKER_INDICES})")
    return d


def _name_of(d) -> str:
    return "cpus" if d is _CPU_SUM else d.name


def _parse_cpus(value):
    try:
        return _cpu_resource(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--cpus'")


class _MinUtilization(click.ParamType):
    """`--min-utilization`: a float in [0, 1] (upstream's value parser and its message)."""
    name = "FLOAT"

    def convert(self, value, param, ctx):
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail("invalid float literal", param, ctx)
        if not 0.0 <= v <= 1.0:
            self.fail("Minimal utilization has to be in the interval [0.0, 1.0].", param, ctx)
        return v


MIN_UTILIZATION = _MinUtilization()


@worker.command()
@click.option("--cpus", help="CPUs: N, NxM, [ids], [[group],[group]], range(a-b) "
              "(default: detected)")
@click.option("--resource", "resources", multiple=True, help="A resource pool NAME=DEF")
@click.option("--group", help="Worker group for multi-node tasks")
@click.option("--coupling", help="Groups of different resources that work well together: "
              "'cpus,gpus/nvidia' or 'cpus[0]:gpus/nvidia[0]=256,...'")
@click.option("--detect-resources", default="all",
              help="Which resources to detect: all, none, or cpus,mem,gpus/nvidia,gpus/amd")
@click.option("--no-hyper-threading", is_flag=True, help="Use one thread of each core")
@click.option("--idle-timeout", type=DURATION, help="Stop after being idle this long")
@click.option("--time-limit", type=DURATION, help="Stop after this long")
@click.option("--heartbeat", type=POSITIVE_DURATION, default="8s", help="Heartbeat period")
@click.option("--hostname", help="Hostname reported to the server")
@click.option("--work-dir", type=click.Path(file_okay=False), help="Working directory")
@click.option("--on-server-lost", type=click.Choice(["stop", "finish-running", "reconnect"]),
              default="stop", help="When the server goes away: kill tasks and exit (stop), let "
              "running tasks finish and exit (finish-running), or keep tasks running and "
              "reconnect to the restarted server (reconnect)")
@click.option("--reconnect-timeout", type=DURATION, default="5m",
              help="How long a `reconnect` worker keeps trying to reach the server")
@click.option("--manager", type=click.Choice(["detect", "none", "pbs", "slurm"]),
              default="detect", help="How to detect the batch allocation")
@click.option("--overview-interval", type=DURATION, help="Hardware overview period")
@click.option("--min-utilization", type=MIN_UTILIZATION, default=0.0)
@click.option("--retract-check-interval", type=DURATION, default="30s",
              help="How often queued tasks whose time request exceeds the remaining "
              "lifetime are given back to the server")
@click.option("--zero-spawn", is_flag=True, hidden=True,
              help="Benchmarking aid: complete tasks without starting processes")
def start(cpus, resources, group, coupling, detect_resources, no_hyper_threading, idle_timeout,
          time_limit, heartbeat, hostname, work_dir, on_server_lost, reconnect_timeout,
          manager, overview_interval, min_utilization, retract_check_interval, zero_spawn):
    """Start a worker that connects to the server and runs its tasks."""
    import tempfile

    from ..core.model import WorkerConfig
    from ..core.resources import ResourceDef, parse_resource_arg
    from ..worker.hwdetect import detect_resources as detect, parse_detect_spec
    from ..worker.batchdetect import detect_manager

    setup_logging()
    try:
        wanted = parse_detect_spec(detect_resources)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--detect-resources'")
    # Value parsing first (syntax errors exit 2, as clap's value parsers), then upstream's
    # checks in its order (F47), each exiting 1 before anything connects.
    cpu_def = _parse_cpus(cpus) if cpus is not None else None
    parsed = []
    for r in resources:
        name, _, text = r.partition("=")
        try:
            parsed.append(_cpu_resource(text) if name.strip() == "cpus" and _ == "="
                          else _held(parse_resource_arg(r), text))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="'--resource'")
    if cpu_def is not None and any(_name_of(d) == "cpus" for d in parsed):
        raise CommandError("Parameters --cpus and --resource cpus=... cannot be combined")
    if "cpus" not in wanted and cpu_def is None and not any(_name_of(d) == "cpus"
                                                           for d in parsed):
        raise CommandError("You have to specify --cpus explicitly when opting out of CPU automatic "
                      "detection")
    if cpu_def is _CPU_SUM or _CPU_SUM in parsed:
        raise CommandError("Resource kind `sum` cannot be used with CPUs. CPUs must have identity")
    if manager == "pbs" and "PBS_ENVIRONMENT" not in os.environ:
        raise CommandError("PBS_ENVIRONMENT not found. The process is not running under PBS")
    if manager == "slurm" and not (os.environ.get("SLURM_JOB_ID")
                                   or os.environ.get("SLURM_JOBID")):
        raise CommandError("SLURM_JOB_ID/SLURM_JOBID not found. The process is not running under "
                      "SLURM")
    defs: dict[str, ResourceDef] = {}
    if cpu_def is not None:
        defs["cpus"] = cpu_def
    for d in parsed:
        if d.name in defs:
            raise CommandError(f"Resource {d.name} defined twice")
        defs[d.name] = d
    detected = detect(wanted - set(defs), no_hyper_threading=no_hyper_threading)
    defs.update(_detected_defs(detected))
    ordered = _ordered_defs(defs)
    coupling_items = None
    if coupling:
        from ..core.resources import parse_coupling

        _check_coupling(coupling, ordered)
        try:
            coupling_items = parse_coupling(coupling, ordered)
        except ValueError as e:
            raise CommandError(str(e)) from None
    try:
        alloc = detect_manager(manager)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--manager'")
    if time_limit is None and alloc is not None:
        time_limit = alloc.time_limit
    if group is None:
        group = alloc.job_id if alloc is not None else "default"
    if work_dir is None:
        own_tmp = tempfile.mkdtemp(prefix="hq-worker")
        work_dir = os.path.join(own_tmp, "work")
    else:
        own_tmp = None
    os.makedirs(work_dir, exist_ok=True)
    config = WorkerConfig(
        hostname=hostname or socket.gethostname(), resources=ordered, group=group,
        time_limit=time_limit, heartbeat=heartbeat, idle_timeout=idle_timeout,
        work_dir=os.path.abspath(work_dir), on_server_lost=on_server_lost,
        manager=alloc.manager if alloc else None, manager_job_id=alloc.job_id if alloc else None,
        pid=os.getpid(), overview_interval=overview_interval, min_utilization=min_utilization,
        listen_address="", reconnect_timeout=reconnect_timeout, coupling=coupling_items)
    from functools import partial

    from ..worker.app import Worker, run_until_signal

    w = Worker(server_root(), config, zero_spawn=zero_spawn,
               retract_check_interval=retract_check_interval)

    class _Started:
        def started(self, value=None):
            printer().workers([_local_worker_view(config, w.worker_id)], detailed=True)

    try:
        return trio_run(partial(run_until_signal, w, task_status=_Started()))
    finally:
        if own_tmp is not None:  # the scratch dir we made ourselves goes with us
            import shutil

            shutil.rmtree(own_tmp, ignore_errors=True)


def _local_worker_view(config, worker_id) -> dict:
    from ..core.model import Worker as CoreWorker
    from ..core.views import worker_view

    w = CoreWorker(worker_id or 0, config, time.time())
    return worker_view(w, time.time())


def _check_coupling(text: str, defs: list) -> None:
    """Upstream's coupling errors (F47: after parsing, exit 1) for the `res[g]:res2[g][=w]`
    form: the parse errors, then the descriptor's. (The `cpus,gpus` form, ours, is checked by
    `parse_coupling`.)"""
    items = [x.strip() for x in text.split(",")]
    if all("[" not in x and ":" not in x for x in items):
        return
    by_name = {d.name: d for d in defs}

    def item(s: str) -> tuple[str, int]:
        name, sep, rest = s.strip().partition("[")
        if not sep:
            raise CommandError("Missing '['")
        if not rest.endswith("]"):
            raise CommandError("Missing ']'")
        index = rest[:-1]
        if name not in by_name:
            raise CommandError(f"Resource not found: {name}")
        if not (index.isascii() and index.isdigit()):
            raise CommandError(f"Invalid group index: {index}")
        return name, int(index)

    pairs = []
    for text_item in items:
        first, sep, rest = text_item.partition(":")
        if not sep:
            raise CommandError("Missing ':'")
        second, eq, weight = rest.partition("=")
        a, b = item(first), item(second)
        if eq and not (weight.strip().isascii() and weight.strip().isdigit()
                       and 0 < int(weight.strip()) < 65536):
            raise CommandError(f"Invalid weight: {weight}")
        pairs.append(tuple(sorted((a, b))))
    seen = set()
    for a, b in pairs:
        for name, group in (a, b):
            d = by_name[name]
            n_groups = len(d.groups) if d.kind == "groups" else 1
            if n_groups < 2:
                raise CommandError(f"Resource '{name}' has only a single group")
            if group >= n_groups:
                raise CommandError(f"Invalid group id {group} for resource '{name}'")
        if (a, b) in seen:
            raise CommandError("Repeated coupling definition")
        seen.add((a, b))


def _ordered_defs(defs: dict) -> list:
    """Resource pools in the order workers report them: sorted by name (F48)."""
    return [defs[k] for k in sorted(defs)]


@worker.command("list")
@click.option("--all", "all_", is_flag=True, help="Include offline workers")
@click.option("--filter", "filter_", type=click.Choice(["running", "offline"]))
def list_(all_, filter_):
    """List workers."""
    if all_ and filter_:
        raise click.UsageError("--all and --filter cannot be used together")
    with connect() as client:
        views = client.call(calls.worker_list(all_ or filter_ == "offline"))
    if filter_ == "offline":
        views = [v for v in views if v["state"] != "RUNNING"]
    views.sort(key=lambda v: v["id"])
    printer().workers(views, detailed=False)


@worker.command()
@click.argument("selector", type=SELECTOR)
def info(selector):
    """Show details of workers."""
    with connect() as client:
        found = client.call(calls.worker_info(selector.to_wire()))
    p = printer()
    for item in found.missing:  # ERROR records, exit 0 (F50)
        p.log("ERROR", missing_text(item, "Worker", "Workers", " not found"))
    if found.workers or not found.missing:
        p.workers(found.workers, detailed=True)
    else:
        p.ok()  # upstream prints nothing (json: `{}`, F5)


@worker.command()
@click.argument("selector", type=SELECTOR)
def stop(selector):
    """Stop workers."""
    with connect() as client:
        results = client.call(calls.stop_workers(selector.to_wire()))
    printer().worker_stop_results(results)


@worker.command()
@click.argument("worker_id", type=ID)
def address(worker_id):
    """Print the hostname of a worker."""
    from ..common.selectors import parse_selector

    with connect() as client:
        found = client.call(calls.worker_info(parse_selector(str(worker_id)).to_wire()))
    if not found.workers:
        raise CommandError(f"Worker {worker_id} not found")
    printer().line(found.workers[0]["configuration"]["hostname"])  # the same in every mode


@worker.command()
@click.argument("count", type=COUNT)
def wait(count):
    """Wait until at least COUNT workers are running."""
    while True:
        with connect() as client:
            n = len(client.call(calls.worker_list()))
        if n >= count:
            return
        time.sleep(0.2)


def _detected_defs(detected: dict) -> dict:
    """Resource pools from a `detect_resources` result, as `worker start` would define them."""
    from ..worker.hwdetect import detected_defs

    return {d.name: d for d in detected_defs(detected)}


@worker.command()
@click.option("--no-hyper-threading", is_flag=True)
def hwdetect(no_hyper_threading):
    """Show the resources a worker would detect on this machine."""
    from ..core.views import resource_descriptor
    from ..worker.hwdetect import DETECTABLE, detect_resources, detected_defs, format_hwdetect

    res = detect_resources(set(DETECTABLE), no_hyper_threading=no_hyper_threading)
    printer().hwdetect(lambda: format_hwdetect(res),
                       lambda: resource_descriptor(detected_defs(res)))


# -- deploy-ssh -----------------------------------------------------------------------------------
def _command_error(message: str) -> CommandError:
    """An error printed as the bare message (upstream's anyhow errors of client commands)."""
    return CommandError(message)


def load_hostfile(path: str) -> list[tuple[str, int | None]]:
    """`host` or `host:port` per line (trimmed; blank lines skipped), as upstream reads it.

    Raises:
        HqError: unreadable file, a bad port, or no host at all (upstream's texts).
    """
    try:
        with open(path) as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        cause = (f"{e.strerror} (os error {e.errno})" if isinstance(e, OSError) and e.errno
                 else "stream did not contain valid UTF-8")
        raise _command_error(f"Cannot load hostfile from {path}\n\nCaused by:\n    {cause}")
    hosts = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if ":" in line:
            host, port_text = line.rsplit(":", 1)
            hosts.append((host, _parse_port(line, port_text)))
        else:
            hosts.append((line, None))
    if not hosts:
        raise _command_error("The provided hostname is empty")
    return hosts


def _parse_port(line: str, text: str) -> int:
    """A u16 as Rust parses it; errors shown as Rust's `ParseIntError` debug form."""
    digits = text[1:] if text[:1] == "+" else text
    if not digits:
        kind = "Empty" if not text else "InvalidDigit"
    elif not digits.isascii() or not digits.isdigit():
        kind = "InvalidDigit"
    elif int(digits) > 65535:
        kind = "PosOverflow"
    else:
        return int(digits)
    raise _command_error(f"Cannot parse port from {line}: ParseIntError {{ kind: {kind} }}")


def _without_globals(args) -> list[str]:
    """`args` without hq's global options (`worker start` accepts them too)."""
    from .context import GLOBAL_FLAGS

    out = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in GLOBAL_FLAGS:
            skip = True
        elif a.partition("=")[0] in GLOBAL_FLAGS or a == "--debug":
            pass
        else:
            out.append(a)
    return out


@worker.command("deploy-ssh", context_settings={"ignore_unknown_options": True,
                                                "allow_interspersed_args": False})
@click.option("--show-output", is_flag=True, help="Show the output of the workers")
@click.argument("hostfile")
@click.argument("worker_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def deploy_ssh(ctx, show_output, hostfile, worker_args):
    """Start a worker on every host of HOSTFILE (`host` or `host:port` per line) over SSH,
    with WORKER_ARGS passed to `hq worker start`; wait until all of them end."""
    import logging
    import queue
    import shutil
    import subprocess
    import threading

    # The worker arguments must be valid `worker start` options (a usage error, exit 2).
    start.make_context("start", _without_globals(worker_args), parent=ctx.parent)
    setup_logging()
    log = logging.getLogger("hq")
    hosts = load_hostfile(hostfile)
    ssh = shutil.which("ssh")
    if ssh is None:
        raise _command_error("Cannot find `ssh` binary. Make sure that OpenSSH is installed.")
    ssh = os.path.abspath(ssh)
    from ..common.hqpath import hq_executable

    hq = hq_executable()
    out = None if show_output else subprocess.DEVNULL
    done: queue.Queue = queue.Queue()
    children = []
    try:
        for host, port in hosts:
            name = host if port is None else f"{host}:{port}"
            argv = [ssh, host, "-t", "-t", *(["-p", str(port)] if port is not None else []),
                    "--", hq, "worker", "start", *worker_args]
            try:
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            except OSError as e:
                raise _command_error(f"Cannot start ssh for `{name}`: {e.strerror}") from None
            children.append(p)
            log.info("Started worker process at `%s`", name)
            threading.Thread(target=lambda p=p, name=name: done.put((name, p.wait())),
                             daemon=True).start()
        failed = False
        for _ in children:
            while True:
                try:
                    name, code = done.get(timeout=0.5)
                    break
                except queue.Empty:
                    continue
            if code == 0:
                log.info("Worker at `%s` has ended successfully", name)
            else:
                failed = True
                log.error("Worker at `%s` has ended with an error: Worker exited with code %d",
                          name, code if code > 0 else -1)
        log.info("All workers have finished")
        if failed:
            raise _command_error("Some workers have ended with an error")
    except KeyboardInterrupt:
        log.info("SIGINT received, closing workers")
        return 0
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
                p.wait()
