"""What the benchmarks read about a process they measure (Linux /proc)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_seconds", "rss_kb", "run_seconds", "sleeps"]


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process, all threads (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    """Resident set size in KiB (``VmRSS`` of ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def sleeps(pid: int) -> int:
    """How often the process's main thread has gone to sleep of its own accord
    (``voluntary_ctxt_switches``): for an event loop, each wait for I/O or a timer that found
    nothing ready, so per second its wake-ups."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def run_seconds(pid: int) -> float:
    """Time a process's threads spent on a CPU, to the nanosecond (``/proc/PID/task/*/
    schedstat``): for processes too light for :func:`cpu_seconds`' 10 ms clock ticks."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9
