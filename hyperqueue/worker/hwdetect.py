"""Hardware detection for `hq worker start` and `hq worker hwdetect`.

Everything here reads the system through injectable roots (`sysfs_root`, `proc_root`, `environ`,
`affinity`) so that tests can point it at a fake tree. Nothing here imports trio or spawns processes
(we deliberately do not run `nvidia-smi`).

The result of detection is a plain description, ordered like `DETECTABLE`::

    {"cpus": [[0, 1], [2, 3]], "mem": 24000, "gpus/nvidia": ["0", "1"]}

* `cpus`: NUMA groups of CPU ids (list of lists of ints, never empty when present),
* `mem`: memory in MiB (int, a "sum" resource),
* `gpus/nvidia`, `gpus/amd`: device labels (list of str).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping

logger = logging.getLogger(__name__)

DETECTABLE = ("cpus", "mem", "gpus/nvidia", "gpus/amd")

_NODE_DIR = re.compile(r"^node(\d+)$")


# --------------------------------------------------------------------------------------------- cpus


def parse_cpulist(text: str) -> list[int]:
    """Parse the kernel cpulist syntax (`0`, `0-3,8-11`, empty).

    Args:
        text: content of a sysfs `cpulist` / `thread_siblings_list` file (whitespace is ignored).

    Returns:
        The sorted, de-duplicated CPU ids; `[]` for an empty list.

    Raises:
        ValueError: on malformed input (e.g. `a`, `3-1`, `1,,2`).
    """
    text = text.strip()
    if not text:
        return []
    cpus: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        start, sep, end = item.partition("-")
        try:
            if not sep:
                cpus.add(_cpu_id(start))
                continue
            first, last = _cpu_id(start), _cpu_id(end)
        except ValueError:
            raise ValueError(f"invalid cpu list {text!r}: bad item {item!r}") from None
        if last < first:
            raise ValueError(f"invalid cpu list {text!r}: descending range {item!r}")
        cpus.update(range(first, last + 1))
    return sorted(cpus)


def _cpu_id(text: str) -> int:
    text = text.strip()
    if not text.isdigit():  # also rejects "", "+1", "-1"
        raise ValueError(text)
    return int(text)


def _default_affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


def _read_numa_nodes(sysfs_root: str) -> list[list[int]] | None:
    """CPU lists of NUMA nodes sorted by node number; None when the info is missing or unreadable."""
    node_root = os.path.join(sysfs_root, "devices", "system", "node")
    try:
        names = os.listdir(node_root)
    except OSError:
        return None
    nodes: list[tuple[int, str]] = []
    for name in names:
        m = _NODE_DIR.match(name)
        if m:
            nodes.append((int(m.group(1)), name))
    if not nodes:
        return None
    nodes.sort()
    result = []
    for _, name in nodes:
        path = os.path.join(node_root, name, "cpulist")
        try:
            with open(path, encoding="ascii") as f:
                result.append(parse_cpulist(f.read()))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            logger.warning("cannot read NUMA node cpu list %s (%s); ignoring NUMA layout", path, exc)
            return None
    return result


def _first_siblings(allowed: set[int], sysfs_root: str) -> set[int]:
    """The CPUs of `allowed` that are the smallest allowed id among their hyper-thread siblings."""
    keep = set()
    for cpu in allowed:
        path = os.path.join(
            sysfs_root, "devices", "system", "cpu", f"cpu{cpu}", "topology", "thread_siblings_list"
        )
        try:
            with open(path, encoding="ascii") as f:
                siblings = set(parse_cpulist(f.read()))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            # Without topology info the CPU is treated as its own core rather than silently lost.
            logger.warning("cannot read %s (%s); keeping cpu %d", path, exc, cpu)
            siblings = set()
        siblings = (siblings & allowed) | {cpu}
        if cpu == min(siblings):
            keep.add(cpu)
    return keep


def detect_cpus(
    *,
    no_hyper_threading: bool = False,
    sysfs_root: str = "/sys",
    affinity: Iterable[int] | None = None,
) -> list[list[int]]:
    """Detect the CPUs this process may use, grouped by NUMA node.

    Groups come from `<sysfs_root>/devices/system/node/node*/cpulist` in node order, each filtered by
    the affinity mask; empty groups are dropped. Without NUMA info (or when it does not cover every
    allowed CPU, which happens in some containers) the result is one group of all allowed CPUs, so a
    CPU the process may use is never lost.

    Args:
        no_hyper_threading: keep only the first (smallest allowed id) sibling of each physical core,
            read from `<sysfs_root>/devices/system/cpu/cpu<N>/topology/thread_siblings_list`.
        sysfs_root: where sysfs is mounted.
        affinity: allowed CPU ids; default `os.sched_getaffinity(0)`.

    Returns:
        Non-empty list of non-empty, sorted groups of CPU ids.
    """
    return _detect_cpu_groups(no_hyper_threading, sysfs_root, affinity)[0]


def _detect_cpu_groups(no_hyper_threading, sysfs_root, affinity) -> tuple[list[list[int]], bool]:
    """`detect_cpus`, and whether the groups are the NUMA nodes (not the fallback)."""
    allowed = set(_default_affinity() if affinity is None else affinity)
    if not allowed:  # cannot happen for a running process; keep the result non-empty anyway
        raise ValueError("empty CPU affinity mask")
    if no_hyper_threading:
        allowed = _first_siblings(allowed, sysfs_root)

    nodes = _read_numa_nodes(sysfs_root)
    if nodes is not None:
        groups = [[cpu for cpu in node if cpu in allowed] for node in nodes]
        groups = [g for g in groups if g]
        covered = {cpu for g in groups for cpu in g}
        if covered == allowed and sum(len(g) for g in groups) == len(covered):
            return groups, True
        logger.warning(
            "NUMA layout in %s does not match the CPU affinity mask; using one CPU group", sysfs_root
        )
    return [sorted(allowed)], False


# ---------------------------------------------------------------------------------------------- mem


def detect_memory_mib(
    *, environ: Mapping[str, str] = os.environ, proc_root: str = "/proc"
) -> int | float | None:
    """Detect the memory available to the worker in MiB.

    Returns:
        `SLURM_MEM_PER_NODE` (MiB) when set to a positive integer, else `MemTotal` of
        `<proc_root>/meminfo` in MiB (the fraction kept to 4 digits, as upstream), else None
        when neither is available.
    """
    slurm = environ.get("SLURM_MEM_PER_NODE")
    if slurm is not None:
        value = slurm.strip()
        # Slurm's --mem=0 means "all memory of the node": total RAM is the right answer then.
        if value.isdigit() and int(value) > 0:
            return int(value)
        if value != "0":
            logger.warning("ignoring invalid SLURM_MEM_PER_NODE=%r", slurm)
    path = os.path.join(proc_root, "meminfo")
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    parts = line.split()
                    amount = int(parts[1])
                    unit = parts[2].lower() if len(parts) > 2 else "b"
                    factor = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}[unit]
                    # MiB with the fraction kept (to the 4 digits of a resource amount)
                    mib = round(amount * factor / (1024 * 1024), 4)
                    return int(mib) if mib == int(mib) else mib
    except (OSError, ValueError, IndexError, KeyError) as exc:
        logger.warning("cannot read total memory from %s (%s)", path, exc)
        return None
    logger.warning("no MemTotal line in %s", path)
    return None


# --------------------------------------------------------------------------------------------- gpus


def _labels_from_env(name: str, environ: Mapping[str, str]) -> list[str] | None:
    """Comma-separated device labels of env var `name`; None when unset; empty (a WARN) when a
    label repeats."""
    value = environ.get(name)
    if value is None:
        return None
    labels: list[str] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        if item in labels:
            # upstream skips a value with duplicates altogether
            logger.warning("%s contains duplicate values (%r); it is ignored", name, value)
            return []
        labels.append(item)
    return labels


def detect_gpus(
    *, environ: Mapping[str, str] = os.environ, proc_root: str = "/proc"
) -> dict[str, list[str]]:
    """Detect GPUs without running any vendor tool.

    * `gpus/nvidia`: labels from `CUDA_VISIBLE_DEVICES` (indices or UUIDs; a value with
      duplicates is skipped with a warning);
    * `gpus/amd`: labels from `ROCR_VISIBLE_DEVICES` (the same way);
    * if neither variable yields a GPU: "0".."n-1" (a `GpuIdRange`) for the n entries of
      `<proc_root>/driver/nvidia/gpus/` as `gpus/nvidia` (upstream, F53).

    Returns:
        Only the kinds with at least one device, e.g. `{"gpus/nvidia": ["0", "1"]}`.
    """
    result: dict[str, list[str]] = {}
    nvidia = _labels_from_env("CUDA_VISIBLE_DEVICES", environ)
    amd = _labels_from_env("ROCR_VISIBLE_DEVICES", environ)
    if nvidia:
        result["gpus/nvidia"] = nvidia
    if amd:
        result["gpus/amd"] = amd
    if not result:
        # neither variable yields a GPU (unset, empty or skipped): upstream counts the
        # driver's entries and makes an nvidia *range* 0..n-1 (F53)
        try:
            count = len(os.listdir(os.path.join(proc_root, "driver", "nvidia", "gpus")))
        except OSError:
            count = 0
        if count:
            result["gpus/nvidia"] = GpuIdRange(str(i) for i in range(count))
    return result


class GpuIdRange(list):
    """GPU ids 0..n-1 counted from `/proc/driver/nvidia/gpus` (not named by a variable):
    `worker start` and `hwdetect` define them as a range pool (`range(0-2)`, `[0]`)."""


# ------------------------------------------------------------------------------------ selection/all


def parse_detect_spec(text: str) -> set[str]:
    """Parse the value of `--detect-resources`.

    Args:
        text: `all`, `none`, or a comma list of names from `DETECTABLE` (spaces around names allowed).

    Returns:
        The set of resource names to detect.

    Raises:
        ValueError: for an empty spec or an unknown name; the message lists the allowed values.
    """
    spec = text.strip()
    if spec == "all":
        return set(DETECTABLE)
    if spec == "none":
        return set()
    allowed = "all, none, or a comma-separated list of " + ", ".join(DETECTABLE)
    names = [item.strip() for item in spec.split(",")]
    if not spec or any(not name for name in names):
        raise ValueError(f"invalid --detect-resources value {text!r}: expected {allowed}")
    unknown = [name for name in names if name not in DETECTABLE]
    if unknown:
        raise ValueError(
            f"unknown resource {unknown[0]!r} in --detect-resources: expected {allowed}"
        )
    return set(names)


def detect_resources(
    detect: Iterable[str],
    *,
    no_hyper_threading: bool = False,
    sysfs_root: str = "/sys",
    proc_root: str = "/proc",
    environ: Mapping[str, str] = os.environ,
    affinity: Iterable[int] | None = None,
) -> dict[str, object]:
    """Detect the requested resources.

    Args:
        detect: names from `DETECTABLE` (e.g. the result of `parse_detect_spec`).
        no_hyper_threading, sysfs_root, affinity: see `detect_cpus`.
        proc_root, environ: see `detect_memory_mib` and `detect_gpus`.

    Returns:
        `{name: value}` in `DETECTABLE` order for requested names that were found: `cpus` is always
        present when requested (groups of CPU ids; a flat list for a single NUMA node); `mem` is omitted if unknown; GPU kinds are omitted if absent.

    Raises:
        ValueError: for a name not in `DETECTABLE`.
    """
    wanted = set(detect)
    unknown = wanted - set(DETECTABLE)
    if unknown:
        raise ValueError(f"cannot detect {sorted(unknown)}; detectable: {', '.join(DETECTABLE)}")
    result: dict[str, object] = {}
    if "cpus" in wanted:
        groups, numa = _detect_cpu_groups(no_hyper_threading, sysfs_root, affinity)
        # One NUMA node: a flat list of CPU ids (upstream makes it a list resource); else
        # groups (several nodes, or the fallback without NUMA information: one group).
        result["cpus"] = groups[0] if numa and len(groups) == 1 else groups
    if "mem" in wanted:
        mem = detect_memory_mib(environ=environ, proc_root=proc_root)
        if mem is not None:
            result["mem"] = mem
    if wanted & {"gpus/nvidia", "gpus/amd"}:
        gpus = detect_gpus(environ=environ, proc_root=proc_root)
        for name in ("gpus/nvidia", "gpus/amd"):
            if name in wanted and name in gpus:
                result[name] = gpus[name]
    return result


# ------------------------------------------------------------------------------------------- output


def detected_defs(detected: Mapping[str, object]) -> list:
    """Resource pools (`ResourceDef`) from a `detect_resources` result, as `worker start` defines
    them, in upstream's detection order (cpus, gpus/nvidia, gpus/amd, mem; F53): CPUs of one
    NUMA node are a list, of several nodes groups, without NUMA information a range (a list if
    the allowed ids are not contiguous from 0); GPUs a list of labels; mem a sum in MiB."""
    from ..core.resources import ResourceDef, UNIT

    defs = []
    for name in ("cpus", "gpus/nvidia", "gpus/amd", "mem"):
        value = detected.get(name)
        if value is None:
            continue
        if name == "cpus":
            if value and not _is_groups(value):  # one NUMA node
                defs.append(ResourceDef("cpus", "list", [[str(c) for c in value]]))
            elif len(value) == 1:
                ids = value[0]
                if ids == list(range(len(ids))):
                    defs.append(ResourceDef.range_of("cpus", 0, len(ids) - 1))
                else:
                    defs.append(ResourceDef("cpus", "list", [[str(c) for c in ids]]))
            else:
                defs.append(ResourceDef("cpus", "groups",
                                        [[str(c) for c in g] for g in value]))
        elif name == "mem":
            defs.append(ResourceDef("mem", "sum", size=round(float(value) * UNIT)))
        elif isinstance(value, GpuIdRange):
            defs.append(ResourceDef.range_of(name, 0, len(value) - 1))
        else:
            defs.append(ResourceDef(name, "list", [list(value)]))
    return defs


def format_hwdetect(resources: Mapping[str, object]) -> str:
    """The cli output of `hq worker hwdetect` as upstream prints it (F53), e.g.::

        Summary:
        cpus: 2x4
        gpus/nvidia: 2
        mem: 23.44 GiB

        Full Description:
        cpus: [[0,1,2,3],[4,5,6,7]]
        gpus/nvidia: [0,1]
        mem: sum(24000)

    (the summaries of `worker info`, then each pool's kind: `[a,b]`, `[[..],[..]]`, `range(a-b)`
    or `[x]`, `sum(n)`). The text ends with a newline (upstream's last line is empty).
    """
    from ..core.resources import format_resources

    defs = detected_defs(resources)
    return ("Summary:\n" + format_resources(defs, (), "\n", ": ") + "\n\nFull Description:\n"
            + "".join(f"{d.name}: {d.kind_text()}\n" for d in defs))


def _is_groups(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(g, list) for g in value)
