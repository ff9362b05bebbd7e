"""dora 1.x's Python `Node`, on top of car's: the same methods, events and values.

Events are dicts as dora's are: `kind` ("dora", or "external" for merged streams),
`type`, `id`, `value` (a pyarrow array), `metadata` (with dora's `timestamp`, a UTC
datetime), `error`. STOP's id names its cause (MANUAL or ALL_INPUTS_CLOSED). `next(timeout)`
returns an ERROR event ("Receiver timed out") when nothing came in time, and None once
the stream has ended.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from car.compat.dora import logs, values
from car.compat.dora.sample import SampleHandler
from car.node.api import Event
from car.node.api import Node as _CarNode

TIMED_OUT = "Receiver timed out"
EXTERNAL_POLL_S = 0.005  # with merged external streams: how often next() looks at both


class Node(_CarNode):
    """A dora node: `for event in Node(): ...`, `node.send_output(id, pyarrow_array, metadata)`.

    `Node("id")` in a process started by hand (`python node.py`) joins the running dataflow
    whose dynamic node `id` waits, as dora's does; `daemon_port` is accepted and unused.
    """

    def __init__(self, node_id: str | None = None, daemon_port: int | None = None):
        super().__init__(node_id)
        self._external: queue.SimpleQueue[Any] | None = None
        self._receiver: concurrent.futures.ThreadPoolExecutor | None = None  # recv_async's one thread
        self._waiting: concurrent.futures.Future[dict[str, Any] | None] | None = None  # its wait under way
        logs.bridge(self)

    # -- receiving -------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:  # type: ignore[override]
        return self

    def __next__(self) -> dict[str, Any]:  # type: ignore[override]
        event = self._receive(None)
        if event is None:
            raise StopIteration
        return event

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:  # type: ignore[override]
        """The next event; an ERROR event after `timeout` seconds without one; None once the stream ended."""
        event = self._receive(timeout)
        if event is None and not self._ended():
            return {"kind": "dora", "type": "ERROR", "error": TIMED_OUT}
        return event

    def try_recv(self) -> dict[str, Any] | None:
        """The next event if one is there already, else None (never waits)."""
        return self._receive(0)

    def drain(self) -> list[dict[str, Any]]:
        """Every event that is there already (never waits)."""
        events = []
        while (event := self._receive(0)) is not None:
            events.append(event)
        return events

    def is_empty(self) -> bool:
        """Whether no event is there yet."""
        if self._external is not None and not self._external.empty():
            return False
        return not self._inbox.ready()

    async def recv_async(self, timeout: float | None = None) -> dict[str, Any] | None:
        """`await node.recv_async()`: the next event without blocking the event loop (see `next`).

        The wait runs on a thread of the node's own. When a call is cancelled
        (`asyncio.wait_for`), its wait goes on and the next call takes its event, so
        none is lost or reordered. Do not call `next` meanwhile from another thread.
        """
        if self._receiver is None:
            self._receiver = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"{self.id}-recv")
        if self._waiting is None or self._waiting.cancelled():
            self._waiting = self._receiver.submit(self.next, timeout)
        event = await asyncio.wrap_future(self._waiting)
        self._waiting = None
        return event

    def merge_external_events(self, subscription: Any) -> None:
        """Hand out the items of another stream among this node's events, as `{"kind": "external", "value": item}`.

        dora takes a ROS 2 subscription here; this takes any iterable, or any object
        with a blocking `next()` method (None: nothing this time), read on a thread.
        """
        items = self._external = self._external or queue.SimpleQueue()

        def pump() -> None:
            if hasattr(subscription, "next"):
                while not self._closed:
                    item = subscription.next()
                    if item is not None:
                        items.put(item)
            else:
                for item in subscription:
                    items.put(item)

        threading.Thread(target=pump, name=f"{self.id}-external", daemon=True).start()

    def _receive(self, timeout: float | None) -> dict[str, Any] | None:
        external = self._external
        if external is None:
            event = _CarNode.next(self, timeout)
            return None if event is None else as_dora(event)
        waited = 0.0
        while True:  # two sources to wait on: look at each in turn
            try:
                return {"kind": "external", "value": external.get_nowait()}
            except queue.Empty:
                pass
            step = EXTERNAL_POLL_S if timeout is None else max(0.0, min(EXTERNAL_POLL_S, timeout - waited))
            event = _CarNode.next(self, step)
            if event is not None:
                return as_dora(event)
            waited += step
            if self._ended() or (timeout is not None and waited >= timeout):
                return None

    def _ended(self) -> bool:
        return self._finished or self._closed

    # -- sending ------------------------------------------------------------------------
    def send_output(self, output_id: str, data: Any = None, metadata: dict[str, Any] | None = None) -> None:
        """Send a pyarrow array (or bytes) on a declared output; its Arrow type arrives unchanged."""
        self._send(output_id, data, values.to_send(data), metadata)

    def send_output_raw(
        self, output_id: str, data_length: int, metadata: dict[str, Any] | None = None
    ) -> SampleHandler:
        """A writable buffer of `data_length` bytes to fill and then send without a copy (`.send()`, or `with`).

        Readers get a UInt8Array. For readers on this machine the buffer is a slot of
        the output's shared memory, so the send only tells them where it is.
        """
        return SampleHandler(self, output_id, self.allocate_output(output_id, data_length, np.uint8), metadata)

    # -- about the node -------------------------------------------------------------------
    def dataflow_descriptor(self) -> dict[str, Any]:
        """The dataflow file this node runs in, parsed."""
        loaded = yaml.safe_load(Path(self.config.dataflow).read_text())
        return loaded if isinstance(loaded, dict) else {}

    def node_config(self) -> dict[str, Any]:
        """This node's inputs (id -> source) and outputs, as dora's `node_config()` gives them."""
        return {
            "inputs": {name: spec.source for name, spec in self.config.inputs.items()},
            "outputs": list(self.config.outputs),
        }

    def is_restart(self) -> bool:
        """Whether the daemon started this node again after it ended."""
        return self.config.restart_count > 0

    def restart_count(self) -> int:
        """How many times the daemon restarted this node (0 on its first run)."""
        return self.config.restart_count

    def timestamp(self) -> Any:
        """Now, on this node's hybrid logical clock, as a UTC datetime."""
        return values.timestamp_of(self._clock.now())

    # -- logs -------------------------------------------------------------------------------
    def log(self, level: str, message: str, target: str | None = None, fields: dict[str, str] | None = None) -> None:
        """A log line at `level` (error, warn, info, debug, trace), filtered by the node's `min_log_level`."""
        logs.emit(self, level, message, target, fields)

    def log_error(self, message: str) -> None:
        """`log("error", message)`."""
        logs.emit(self, "error", message)

    def log_warn(self, message: str) -> None:
        """`log("warn", message)`."""
        logs.emit(self, "warn", message)

    def log_info(self, message: str) -> None:
        """`log("info", message)`."""
        logs.emit(self, "info", message)

    def log_debug(self, message: str) -> None:
        """`log("debug", message)`."""
        logs.emit(self, "debug", message)

    def log_trace(self, message: str) -> None:
        """`log("trace", message)`."""
        logs.emit(self, "trace", message)

    def close(self) -> None:
        """Close the node (see car's Node.close), and recv_async's thread."""
        super().close()
        if self._receiver is not None:
            self._receiver.shutdown(wait=False, cancel_futures=True)


def as_dora(event: Event) -> dict[str, Any]:
    """A car event as the dict dora hands out."""
    if event.type == "INPUT":
        metadata = dict(event.metadata)
        metadata["timestamp"] = values.timestamp_of(event.timestamp)
        return {
            "kind": "dora",
            "type": "INPUT",
            "id": event.id,
            "value": values.received(event.value),
            "metadata": metadata,
        }
    converted: dict[str, Any] = {"kind": "dora", "type": event.type}
    if event.id:
        converted["id"] = event.id
    if event.type == "ERROR":
        converted["error"] = event.error
    return converted
