"""How the board's firmware keeps up: rounds of its main loop per second and the longest round (wall clock)."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class LoopStats:
    """Rounds counted with `tick()`; `pause()` where the loop stops on purpose (the REPL, a reset)."""

    rounds: int = 0
    seconds: float = 0.0  # counted time, pauses left out
    longest_s: float = 0.0
    _last: float | None = None

    def tick(self, now: float | None = None) -> None:
        """One round of the loop began (or ended) now."""
        now = time.monotonic() if now is None else now
        if self._last is not None:
            gap = now - self._last
            self.rounds += 1
            self.seconds += gap
            self.longest_s = max(self.longest_s, gap)
        self._last = now

    def add_round(self, took_s: float, period_s: float) -> None:
        """A round its caller timed: work of `took_s` in a cycle of `period_s` (the CPython back end's steps)."""
        self.rounds += 1
        self.seconds += period_s
        self.longest_s = max(self.longest_s, took_s)

    def pause(self) -> None:
        """The loop stopped: the time until the next tick does not count."""
        self._last = None

    def to_dict(self) -> dict[str, float]:
        """Rounds, their rate (Hz) and the longest (ms)."""
        return {
            "rounds": self.rounds,
            "rate_hz": round(self.rounds / self.seconds, 1) if self.seconds else 0.0,
            "longest_ms": round(self.longest_s * 1000, 2),
        }
