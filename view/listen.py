"""A running graph's every output, handed to a function as it comes: what the live view and the Foxglove bridge
both stand on.

One subscriber (car.node.subscriber) and one receiving thread per part of the graph; each
message goes to `take(topic, value, metadata, stamp_ns)` on that thread. It ends when
every stream has closed, the run stopped, its daemon died, or `stop()`; a listener that
falls behind loses the oldest messages (counted in `lost`), never slows the graph.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from car.node.subscriber import Subscriber
from car.plan.running import RunningGraph
from car.plan.runs import pid_alive

Take = Callable[[str, Any, dict[str, Any], int], None]
QUEUE = 200  # messages a subscriber may fall behind before it loses the oldest


class Listener:
    """Subscribers to every output of `graph`, each message handed to `take` on a thread per part."""

    def __init__(self, graph: RunningGraph, take: Take, name: str):
        self.graph = graph
        self._take = take
        self._name = name
        self.lost = 0
        self.ended = False  # the run ended (not `stop()`)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Subscribe to every output, a receiving thread per part."""
        for part, sources in self.graph.sources_by_part(["*"]):
            subscriber = Subscriber(sources, part, queue_size=QUEUE)
            thread = threading.Thread(target=self._receive, args=(subscriber,), name=f"{self._name} {part.name}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """End the subscriptions."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _receive(self, subscriber: Subscriber) -> None:
        with subscriber:
            open_sources = set(subscriber.sources)
            while not self._stop.is_set() and open_sources and not subscriber.finished:
                event = subscriber.recv(0.2)
                if event is None:
                    here = subscriber.run.local
                    if here is not None and not pid_alive(here.pid):
                        break  # its daemon died without a word
                    continue
                if event.type == "INPUT":
                    stamp = event.timestamp.wall_ns if event.timestamp is not None else time.time_ns()
                    self._take(event.id, event.value, event.metadata, stamp)
                elif event.type == "INPUT_CLOSED":
                    open_sources.discard(event.id)
            self.lost += subscriber.dropped
        self.ended = not self._stop.is_set()
