"""CPU time and peak memory of a running process, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcStats:
    """CPU seconds used, CPU share over a wall-clock span, and peak resident memory."""

    name: str
    cpu_s: float
    cpu_pct: float
    peak_rss_mb: float
    rss_mb: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, kb = line.split(":")
                values[key] = int(kb.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def sample(name: str, pid: int, wall_s: float) -> ProcStats:
    """Stats of one process; cpu_pct relative to wall_s."""
    cpu = cpu_seconds(pid)
    rss, peak = memory_mb(pid)
    return ProcStats(name, cpu, 100 * cpu / wall_s if wall_s > 0 else 0.0, peak, rss)
