"""The daemon's timers: `dora/timer/...` inputs, ticking without drift.

One thread serves every timer of a run. Tick k of a timer is due at start + k x period
(absolute deadlines, so errors never accumulate); when the thread falls behind by more
than a period, the missed ticks are skipped and counted rather than sent in a burst.

The thread sleeps with `time.sleep` (clock_nanosleep to an absolute deadline), at most
STOP_CHECK_S at a time, never in a timed wait on a lock or event: under glibc such a wait is
a futex with an absolute deadline, which some kernels (StarryOS, `car doctor`) take as
relative, so a timer would never tick there.
"""

from __future__ import annotations

import heapq
import socket
import threading
import time

import zmq

from car.spec.model import parse_timer
from car.transport import wire
from car.transport.hlc import HybridLogicalClock

STOP_CHECK_S = 0.05  # the longest sleep between looks at whether the timers stop


class Timers(threading.Thread):
    """Sends timer ticks to the nodes that are ready for them."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        subscribers: dict[str, list[str]],
        endpoints: dict[str, str],
        direct: dict[str, socket.socket],
    ):
        """`direct`: the daemon's end of a socket pair to a node (car.transport.direct); other nodes get ticks over ZeroMQ."""
        super().__init__(name="car-timers", daemon=True)
        self._ctx = ctx
        self._subscribers = subscribers  # timer source -> node ids
        self._endpoints = endpoints  # node id -> receive endpoint
        self._direct = direct
        self._ready: set[str] = set()
        self._added: list[tuple[str, str, str]] = []  # (source, node, endpoint) added while the run goes on
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self.skipped = 0  # ticks skipped because the thread fell behind
        self.undelivered: dict[str, int] = {}  # node id -> ticks its full queue refused

    def enable(self, node_id: str) -> None:
        """Start sending ticks to a node (it has bound its sockets)."""
        with self._lock:
            self._ready.add(node_id)

    def disable(self, node_id: str) -> None:
        """Stop sending ticks to a node (it exited)."""
        with self._lock:
            self._ready.discard(node_id)

    def add(self, source: str, node_id: str, endpoint: str) -> None:
        """Send `source`'s ticks to node `node_id` too (added while the run goes on: `car node add`), once it is
        enabled; within STOP_CHECK_S."""
        with self._lock:
            self._added.append((source, node_id, endpoint))

    def stop(self) -> None:
        """End the thread and wait for it."""
        self._stop_event.set()
        if self.is_alive():
            self.join()

    def _socket(self, node_id: str) -> zmq.Socket[bytes]:
        sock = self._ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 100)
        sock.connect(self._endpoints[node_id])
        return sock

    def run(self) -> None:
        sockets = {}
        for node_id in {n for ids in self._subscribers.values() for n in ids} - set(self._direct):
            sockets[node_id] = self._socket(node_id)
        clock = HybridLogicalClock()
        start = time.monotonic_ns()
        periods = {source: parse_timer(source) for source in self._subscribers}
        heap = [(start + period, 1, source) for source, period in periods.items()]
        heapq.heapify(heap)
        sources = {source: source.encode() for source in self._subscribers}
        try:
            while not self._stop_event.is_set():
                if self._added:
                    with self._lock:
                        added, self._added = self._added, []
                    for source, node_id, endpoint in added:
                        self._endpoints[node_id] = endpoint
                        if node_id not in sockets and node_id not in self._direct:
                            sockets[node_id] = self._socket(node_id)
                        if source not in periods:
                            periods[source] = parse_timer(source)
                            sources[source] = source.encode()
                            k = (time.monotonic_ns() - start) // periods[source] + 1  # its next tick from now
                            heapq.heappush(heap, (start + k * periods[source], k, source))
                        with self._lock:
                            readers = self._subscribers.setdefault(source, [])
                            if node_id not in readers:
                                readers.append(node_id)
                if not heap:
                    time.sleep(STOP_CHECK_S)  # no timer yet: one may be added
                    continue
                due, k, source = heap[0]
                wait = (due - time.monotonic_ns()) / 1e9
                if wait > 0:
                    time.sleep(min(wait, STOP_CHECK_S))
                    continue  # due now, or stopping: look again
                period = periods[source]
                frames = wire.encode(wire.KIND_DATA, sources[source], clock.now())
                with self._lock:
                    targets = [n for n in self._subscribers[source] if n in self._ready]
                for node_id in targets:
                    end = self._direct.get(node_id)
                    try:
                        if end is not None:
                            end.send(frames[0])
                        else:
                            sockets[node_id].send_multipart(frames, zmq.NOBLOCK)
                    except (zmq.Again, BlockingIOError):
                        self.undelivered[node_id] = self.undelivered.get(node_id, 0) + 1
                k += 1
                late = (time.monotonic_ns() - (start + k * period)) // period
                if late > 0:
                    self.skipped += late
                    k += late
                heapq.heapreplace(heap, (start + k * period, k, source))
        finally:
            for sock in sockets.values():
                sock.close()
