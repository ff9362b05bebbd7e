"""Node output to the nodes that read it: `dora/logs[/LEVEL[/NODE]]` inputs, `send_logs_as` and `send_stdout_as`.

Every line a node prints is a log entry (car.transport.logline). The threads that copy
node output (car.daemon.logs) hand each line to `take`, which queues it for the routes
that want it; the daemon's loop sends the queue (`flush`), entries as JSON strings (the
lines themselves for `send_stdout_as`), as fast as readers take them: a burst waits in a
backlog of BACKLOG lines (the oldest go first when it is full, counted), with the
daemon's own messages, so that no socket is used from two threads. A node never gets its
own entries: a reader that logs what it reads would otherwise feed itself forever.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from typing import NamedTuple

from car.daemon.notifier import Notifier
from car.plan.build import RunPlan
from car.spec.model import Dataflow
from car.transport import logline, wire

BACKLOG = 10_000  # lines waiting for slow readers before the oldest are dropped


class LogRoute(NamedTuple):
    """Entries some readers take: from one node or all (`node` ""), at `level` or more severe."""

    source: bytes  # what the readers' input reads: dora/logs/... or NODE/OUTPUT (send_logs_as)
    node: str
    level: str
    readers: tuple[tuple[str, str], ...]  # (node id, receive endpoint) of each reader
    raw: bool = False  # the lines as printed (send_stdout_as), not entries as JSON


class LogRoutes:
    """The log routes of one run."""

    def __init__(self, dataflow: Dataflow, plan: RunPlan, notifier: Notifier):
        self._notifier = notifier
        self._queue: queue.SimpleQueue[tuple[bytes, str, str]] = queue.SimpleQueue()  # (source, text, endpoint)
        self._backlog: deque[tuple[bytes, str, str]] = deque()  # taken from the queue, not sent yet
        self.dropped = 0  # lines lost to a full backlog
        readers: dict[str, tuple[tuple[str, str], ...]] = {}
        for spec in dataflow.nodes:
            for inp in spec.inputs.values():
                if inp.is_log and spec.id in plan.nodes:
                    reader = (spec.id, plan.nodes[spec.id].receive_endpoint)
                    readers[inp.source] = (*readers.get(inp.source, ()), reader)
        self.routes: list[LogRoute] = []
        for source, of_source in readers.items():
            level, node = ([*source.split("/")[2:], "", ""])[:2]
            self.routes.append(LogRoute(source.encode(), node, level or "stdout", of_source))
        for spec in dataflow.nodes:
            for output, level, raw in ((spec.send_logs_as, "trace", False), (spec.send_stdout_as, "stdout", True)):
                source = f"{spec.id}/{output}"
                of_output = tuple((r, plan.nodes[r].receive_endpoint) for r in plan.readers(source)) if output else ()
                if of_output:  # send_logs_as: the entries it logged, not the plain lines it printed
                    self.routes.append(LogRoute(source.encode(), spec.id, level, of_output, raw))

    def take(self, node_id: str, line: str) -> None:
        """A line node `node_id` printed (from any thread): queued for each route that wants it."""
        entry = logline.parse(line)
        text = ""
        for route in self.routes:
            if (route.node and route.node != node_id) or not logline.at_least(entry.level, route.level):
                continue
            if not route.raw:
                text = text or logline.to_json(entry, node_id, time.time_ns())
            for reader, endpoint in route.readers:
                if reader != node_id:
                    self._queue.put((route.source, line if route.raw else text, endpoint))

    def flush(self) -> None:
        """Send what is queued, as far as its readers take it now (from the daemon's loop)."""
        if not self.routes:
            return  # nothing is ever queued (the daemon does not even hand lines to `take`)
        backlog = self._backlog
        while True:
            try:
                backlog.append(self._queue.get_nowait())
            except queue.Empty:
                break
            if len(backlog) > BACKLOG:
                backlog.popleft()
                self.dropped += 1
        full: set[str] = set()  # readers whose queue is full: the rest of theirs waits for the next flush
        kept: deque[tuple[bytes, str, str]] = deque()
        while backlog:
            source, text, endpoint = item = backlog.popleft()
            if endpoint in full or not self._notifier.try_send(endpoint, wire.KIND_DATA, source, text):
                full.add(endpoint)
                kept.append(item)
        self._backlog = kept
