"""The one poll loop of the long-running processes: the coordinator, a machine's daemon and a run's daemon.

Each registers its sockets with what to do when one is readable, and its periodic work
(heartbeats, expiring requests, looking at processes), then runs the loop until its own
condition says it is done. The `zmq.Poller` is built once and changed only when a socket
comes or goes, and every pass is bounded by `tick_ms`, so a loop always ends by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

Clock = Callable[[], float]  # monotonic seconds


@dataclass
class Periodic:
    """Work done at most once every `period_s` (0: every pass), given the time of the pass."""

    period_s: float
    work: Callable[[float], None]
    due: float = 0.0


class PollLoop:
    """Sockets with their handlers, periodic work, and a loop over both."""

    def __init__(self, tick_ms: int, clock: Clock = time.monotonic):
        """`tick_ms`: the longest a pass waits for a socket before the periodic work runs."""
        self.tick_ms = tick_ms
        self._clock = clock
        self._poller = zmq.Poller()
        self._handlers: dict[Any, Callable[[], None]] = {}
        self._periodic: list[Periodic] = []

    def add(self, sock: Any, on_readable: Callable[[], None]) -> None:
        """Call `on_readable()` whenever `sock` (a ZeroMQ socket or a file descriptor) has something to read."""
        self._poller.register(sock, zmq.POLLIN)
        self._handlers[sock] = on_readable

    def remove(self, sock: Any) -> None:
        """Stop watching `sock` (it may be closed afterwards)."""
        if self._handlers.pop(sock, None) is not None:
            self._poller.unregister(sock)

    def every(self, period_s: float, work: Callable[[float], None]) -> None:
        """Run `work(now)` on the first pass and then at most once every `period_s` seconds (0: every pass)."""
        self._periodic.append(Periodic(period_s, work))

    def run_once(self, wait_ms: int | None = None) -> float:
        """One pass: wait up to `wait_ms` (default `tick_ms`) for sockets, handle the readable ones, then the
        periodic work that is due; the time of the pass."""
        wait = self.tick_ms if wait_ms is None else wait_ms
        ready: dict[Any, int] = {}
        if self._handlers:
            ready = dict(self._poller.poll(wait))
        else:  # nothing to watch: the pass still lasts its time
            time.sleep(wait / 1000)
        for sock in ready:
            handler = self._handlers.get(sock)
            if handler is not None:  # an earlier handler of this pass may have removed it
                handler()
        now = self._clock()
        for periodic in self._periodic:
            if now >= periodic.due:
                periodic.due = now + periodic.period_s
                periodic.work(now)
        return now

    def run(self, done: Callable[[float], bool]) -> None:
        """Pass after pass until `done(now)` says so (asked before each pass, with the time of the last)."""
        now = self._clock()
        while not done(now):
            now = self.run_once()
