"""Hybrid logical clock: wall-clock time that never runs backwards across messages.

Every message carries `(wall_ns, counter)`. A node's clock moves to the larger of its
own wall clock and any timestamp it receives, so a reply is always ordered after the
message that caused it, even across machines whose clocks differ slightly.
"""

from __future__ import annotations

import time
from typing import NamedTuple


class Timestamp(NamedTuple):
    """A hybrid-logical-clock reading: wall time in ns since the epoch, then a tie-breaker."""

    wall_ns: int
    counter: int


class HybridLogicalClock:
    """The clock of one process (not thread-safe: use it from one thread)."""

    __slots__ = ("_count", "_wall")

    def __init__(self) -> None:
        self._wall = 0
        self._count = 0

    def now(self) -> Timestamp:
        """A new timestamp, later than every one this clock made or observed."""
        return Timestamp(*self.tick())

    def tick(self) -> tuple[int, int]:
        """Like now(), as a plain (wall_ns, counter) tuple: what goes on the wire, made cheaply."""
        wall = time.time_ns()
        if wall > self._wall:
            self._wall, self._count = wall, 0
        else:
            self._count += 1
        return self._wall, self._count

    def observe(self, wall_ns: int, counter: int) -> None:
        """Move the clock past a timestamp received from another process."""
        if wall_ns > self._wall:
            self._wall, self._count = wall_ns, counter + 1
        elif wall_ns == self._wall and counter >= self._count:
            self._count = counter + 1
