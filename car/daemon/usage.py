"""What a node costs and how fast it works, as `car top` shows it: from its reports and from /proc.

Rates come from the message counts a node reports (control.Stats, once a second, twice
while watched); CPU time (only while someone watches: `car top`) and resident memory
(when asked) from /proc/PID/stat and statm (none where the kernel has no /proc: the
figures stay 0).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from car.transport import control

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def cpu_and_memory(pid: int) -> tuple[float, int] | None:
    """A process's CPU time so far (seconds, user and system) and resident memory (bytes); None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces
        with open(f"/proc/{pid}/statm", "rb") as statm:
            resident = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    user, system = int(fields[11]), int(fields[12])  # utime and stime: fields 14 and 15 of stat(5)
    return (user + system) / CLOCK_TICKS, resident * PAGE_SIZE


@dataclass
class Usage:
    """A node's figures from its last two reports."""

    at: float = 0.0  # when the last report came (monotonic seconds)
    sent: int = 0
    received: int = 0
    cpu_s: float = 0.0  # CPU time at `cpu_at` (read from /proc only while the node is watched)
    cpu_at: float = 0.0
    sent_rate: float = 0.0
    received_rate: float = 0.0
    cpu_percent: float = 0.0
    dropped: int = 0
    latency_p50_ms: float = -1.0
    latency_p99_ms: float = -1.0

    @property
    def rate(self) -> float:
        """Messages per second, sent and received."""
        return self.sent_rate + self.received_rate

    def update(self, stats: control.Stats, pid: int, now: float) -> None:
        """A new report from the node arrived at `now`; `pid`: its process, to read its CPU time (0: not now)."""
        span = max(now - self.at, 1e-3)
        if self.at:
            self.sent_rate = (stats.sent - self.sent) / span
            self.received_rate = (stats.received - self.received) / span
        measured = cpu_and_memory(pid) if pid else None
        if measured is not None:
            if self.cpu_at:
                self.cpu_percent = max(0.0, (measured[0] - self.cpu_s) / max(now - self.cpu_at, 1e-3) * 100)
            self.cpu_s, self.cpu_at = measured[0], now
        self.at, self.sent, self.received, self.dropped = now, stats.sent, stats.received, stats.dropped
        measured_latency = stats.latency_p50_us >= 0  # while watched, and inputs arrived
        self.latency_p50_ms = round(stats.latency_p50_us / 1e3, 3) if measured_latency else -1.0
        self.latency_p99_ms = round(stats.latency_p99_us / 1e3, 3) if measured_latency else -1.0

    def restart(self) -> None:
        """The node started again: its counts and CPU time start from zero."""
        self.at = self.cpu_at = 0.0
