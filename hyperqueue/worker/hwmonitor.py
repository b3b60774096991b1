"""Hardware overviews of a worker (`worker start --overview-interval`), as upstream collects
them: per-core CPU usage, memory, network counters, and GPU state read from `nvidia-smi` /
`rocm-smi` (called and parsed exactly as upstream's `hwmonitor/{nvidia,amd}.rs`).

The parsers are pure; `HwMonitor.sample()` reads /proc and runs the tools (call it from a
thread: it blocks).
"""

from __future__ import annotations

import json
import logging
import subprocess
import time

log = logging.getLogger("hq.worker")

NVIDIA_SMI = ["nvidia-smi", "--format=csv,noheader",
              "--query-gpu=pci.bus_id,utilization.gpu,memory.used,memory.total"]
ROCM_SMI = ["rocm-smi", "--json", "--showuse", "--showbus", "--showmemuse"]
TOOL_TIMEOUT = 10.0  # seconds


def _f32(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        return 0.0


def _memory(text: str) -> float:
    """`<num> [KiB|MiB|GiB]` in KiB (the unit only matters for the ratio)."""
    parts = text.strip().split()
    value = _f32(parts[0]) if parts else 0.0
    unit = parts[1] if len(parts) > 1 else "MiB"
    return value * {"KiB": 1, "MiB": 1024, "GiB": 1024 * 1024}.get(unit, 1024)


def parse_nvidia(output: str) -> dict:
    """`nvidia-smi` CSV lines: `bus id, util %, used mem, total mem` per GPU."""
    gpus = []
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        used, total = _memory(fields[2]), _memory(fields[3])
        gpus.append({"id": fields[0], "processor_usage": _f32(fields[1].replace("%", "")),
                     "mem_usage": used / total * 100.0 if total else 0.0})
    return {"gpus": gpus}


def parse_rocm(output: str) -> dict:
    """`rocm-smi --json` output: cards by name (sorted), each with `PCI Bus`, `GPU use (%)`
    and `GPU memory use (%)`."""
    data = json.loads(output)
    if not isinstance(data, dict):
        raise ValueError("unexpected rocm-smi output")
    gpus = []
    for name in sorted(data):
        card = data[name]
        if not isinstance(card, dict):
            continue
        gpus.append({"id": str(card.get("PCI Bus", "")),
                     "processor_usage": _f32(str(card.get("GPU use (%)", ""))),
                     "mem_usage": _f32(str(card.get("GPU memory use (%)", "")))})
    return {"gpus": gpus}


def _run(argv: list[str]) -> str:
    res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=TOOL_TIMEOUT)
    if res.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {res.returncode}: "
                           f"{res.stderr.decode(errors='replace').strip()}")
    return res.stdout.decode(errors="replace")


def _cpu_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies per core from /proc/stat."""
    out = []
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3:4].isdigit():
                    v = [int(x) for x in line.split()[1:]]
                    idle = v[3] + (v[4] if len(v) > 4 else 0)
                    out.append((sum(v) - idle, sum(v)))
    except OSError:
        pass
    return out


def _memory_usage() -> dict:
    total = free = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key == "MemTotal":
                    total = int(rest.split()[0]) * 1024
                elif key == "MemAvailable":
                    free = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"total": total, "free": free}


def _network_usage() -> dict:
    totals = dict.fromkeys(("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_errors",
                            "tx_errors"), 0)
    try:
        with open("/proc/net/dev") as f:
            for line in f.readlines()[2:]:
                _name, _, rest = line.partition(":")
                v = [int(x) for x in rest.split()]
                if len(v) >= 11:
                    totals["rx_bytes"] += v[0]
                    totals["rx_packets"] += v[1]
                    totals["rx_errors"] += v[2]
                    totals["tx_bytes"] += v[8]
                    totals["tx_packets"] += v[9]
                    totals["tx_errors"] += v[10]
    except (OSError, ValueError):
        pass
    return totals


class HwMonitor:
    """Samples the machine; GPU tools are run only for the GPU kinds the worker has."""

    def __init__(self, nvidia: bool, amd: bool):
        self.nvidia = nvidia
        self.amd = amd
        self._last_cpu = _cpu_times()

    def _gpus(self, wanted: bool, argv: list[str], parse) -> dict | None:
        if not wanted:
            return None
        try:
            return parse(_run(argv))
        except Exception as e:  # noqa: BLE001 - a broken tool costs its field, nothing else
            log.error("Cannot read the GPU state with %s: %s", argv[0], e)
            return None

    def sample(self) -> dict:
        now = _cpu_times()
        usage = []
        for (b0, t0), (b1, t1) in zip(self._last_cpu, now):
            usage.append(round(100.0 * (b1 - b0) / (t1 - t0), 3) if t1 > t0 else 0.0)
        self._last_cpu = now
        return {"state": {
            "cpu_usage": {"cpu_per_core_percent_usage": usage},
            "memory_usage": _memory_usage(),
            "network_usage": _network_usage(),
            "nvidia_gpus": self._gpus(self.nvidia, NVIDIA_SMI, parse_nvidia),
            "amd_gpus": self._gpus(self.amd, ROCM_SMI, parse_rocm),
            "timestamp": int(time.time()),
        }}


def for_resources(names) -> HwMonitor:
    names = set(names)
    return HwMonitor(nvidia="gpus/nvidia" in names, amd="gpus/amd" in names)


__all__ = ["HwMonitor", "for_resources", "parse_nvidia", "parse_rocm", "NVIDIA_SMI", "ROCM_SMI"]
