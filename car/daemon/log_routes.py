"""Log entries to the nodes that read them: `dora/logs[/LEVEL[/NODE]]` inputs and `send_logs_as` outputs.

Every line a node prints is a log entry (car.transport.logline). The threads that copy
node output (car.daemon.logs) hand each line to `take`, which queues it for the routes
that want it; the daemon's loop sends the queue (`flush`), as JSON strings, with the
daemon's own messages, so that no socket is used from two threads. A node never gets its
own entries: a reader that logs what it reads would otherwise feed itself forever.
"""

from __future__ import annotations

import queue
import time
from typing import NamedTuple

from car.daemon.notifier import Notifier
from car.plan.build import RunPlan
from car.spec.model import Dataflow
from car.transport import logline, wire


class LogRoute(NamedTuple):
    """Entries some readers take: from one node or all (`node` ""), at `level` or more severe."""

    source: bytes  # what the readers' input reads: dora/logs/... or NODE/OUTPUT (send_logs_as)
    node: str
    level: str
    readers: tuple[tuple[str, str], ...]  # (node id, receive endpoint) of each reader


class LogRoutes:
    """The log routes of one run."""

    def __init__(self, dataflow: Dataflow, plan: RunPlan, notifier: Notifier):
        self._notifier = notifier
        self._queue: queue.SimpleQueue[tuple[bytes, str, str]] = queue.SimpleQueue()  # (source, JSON, endpoint)
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
            if spec.send_logs_as:
                source = f"{spec.id}/{spec.send_logs_as}"
                of_output = tuple((r, plan.nodes[r].receive_endpoint) for r in plan.readers(source))
                if of_output:  # entries it logged, not the plain lines it printed
                    self.routes.append(LogRoute(source.encode(), spec.id, "trace", of_output))

    def take(self, node_id: str, line: str) -> None:
        """A line node `node_id` printed (from any thread): queued for each route that wants it."""
        entry = logline.parse(line)
        text = ""
        for route in self.routes:
            if (not route.node or route.node == node_id) and logline.at_least(entry.level, route.level):
                text = text or logline.to_json(entry, node_id, time.time_ns())
                for reader, endpoint in route.readers:
                    if reader != node_id:
                        self._queue.put((route.source, text, endpoint))

    def flush(self) -> None:
        """Send what is queued (from the daemon's loop)."""
        while True:
            try:
                source, text, endpoint = self._queue.get_nowait()
            except queue.Empty:
                return
            self._notifier.send(endpoint, wire.KIND_DATA, source, text)
