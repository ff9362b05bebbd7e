"""The inbox's decisions, without its sockets: one bounded queue per input, every message in arrival order.

With `drop_oldest` the oldest message of an input is dropped when its queue is full; an
input with `queue_size: 1` keeps the latest by design, so what it replaces is counted as
superseded, not as a drop. The end of a source's stream closes the inputs it feeds
(INPUT_CLOSED), and STOP follows once every input is closed; STOP from the daemon is
queued once. `InputQueues` is the whole of that; car.node.inbox.Inbox adds the sockets
and the shared memory, overriding only `_hold_shared`, `_release`, `_unpack_shared` and
`return_credit` (a reader here has neither shared memory nor backpressure inputs).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from car.node.drops import DropFlag
from car.node.event import Event
from car.plan.config import InputConfig
from car.transport import control, wire
from car.transport.hlc import HybridLogicalClock, Timestamp
from car.transport.shm import Hold, StaleFrameError

_SHARED, _KIND_DATA = wire.SHARED, wire.KIND_DATA
_new_tuple = tuple.__new__  # makes a Timestamp without NamedTuple's __new__ (a Python function: 3x slower)


class Input:
    """One input: its queue, its bound, and what it lost."""

    __slots__ = (
        "closed",
        "credit_batch",
        "dropped",
        "last",
        "line",
        "name",
        "owed",
        "peer",
        "queue",
        "queue_size",
        "reported",
        "socket",
        "superseded",
        "superseding",
        "timeout",
        "timer",
    )

    def __init__(self, name: str, queue_size: int, timer: bool, timeout: float | None, line: int):
        self.name = name
        self.line = line  # this node's reader line in the source's shared-memory files
        self.queue_size = queue_size
        self.superseding = queue_size == 1  # keeps the latest by design: a replaced message is superseded
        self.timer = timer
        self.timeout = timeout
        self.queue: deque[list[Any]] = deque()
        self.dropped = 0  # lost to a full queue (a slow reader)
        self.superseded = 0  # replaced by a newer one in a queue_size 1 input
        self.reported = 0
        self.closed = False
        self.last = time.monotonic()
        self.socket: zmq.Socket[bytes] | None = None  # own ROUTER socket: backpressure inputs only
        self.peer = b""  # the sender's identity on that socket
        self.owed = 0  # credits consumed and not yet returned to the sender
        self.credit_batch = max(1, queue_size // 2)


class InputQueues:
    """Queues per input, events out (`pop`); the inbox's decisions. Messages come in through `_queue_message`."""

    def __init__(
        self,
        inputs: dict[str, InputConfig],
        clock: HybridLogicalClock,
        drops: DropFlag,
        on_end_of_stream: Callable[[str], None],
        on_control: Callable[[control.DaemonToNode], None],
    ):
        """One queue per input of `inputs`; `on_end_of_stream(source)` and `on_control(message)` take what is
        not data; `drops` is set when a full queue drops a message."""
        self._clock = clock
        self.drops = drops
        self._on_end_of_stream = on_end_of_stream
        self._on_control = on_control
        # Every queued message in arrival order: [input, header, payload, alive], or [None, Event, None, True]
        # for an event made here; `alive` goes False when its input's queue drops it. A list, not a record
        # class: made and taken once per message, a list costs 0.14 µs where a slotted class costs 0.48.
        self.pending: deque[list[Any]] = deque()
        self.stop_seen = False  # a STOP is queued (from the daemon, or all inputs closed)
        self.dataflow_stopping = False  # the daemon said STOP
        self.received = 0  # INPUT events handed out
        self.missed = 0  # messages dropped on the way to this subscriber, as its senders said (KIND_DROPPED)
        self.inputs: dict[str, Input] = {}
        self._routes: dict[bytes, list[Input]] = {}  # source -> inputs fed by the main socket
        self._by_source: dict[bytes, list[Input]] = {}  # source -> every input it feeds
        for name, spec in inputs.items():
            inp = Input(name, spec.queue_size, spec.source.startswith("dora/"), spec.input_timeout, spec.shm_line)
            self.inputs[name] = inp
            self._by_source.setdefault(spec.source.encode(), []).append(inp)
            if not spec.endpoint:  # a backpressure input has a socket of its own (car.node.inbox)
                self._routes.setdefault(spec.source.encode(), []).append(inp)
        self._timed = [i for i in self.inputs.values() if i.timeout]

    # -- what a back end with shared memory and backpressure does ---------------------------------
    def _hold_shared(self, header: bytes, line: int, readers: int) -> Any:
        """Hold the shared-memory slot a message names, for `readers` inputs (ValueError: none here)."""
        raise ValueError("this reader maps no shared memory")

    def _release(self, shared: Hold) -> None:
        """Let go of a held slot."""

    def _unpack_shared(self, header: bytes, shared: Hold) -> tuple[Any, ...]:
        """Decode a message whose array is in shared memory."""
        raise ValueError("this reader maps no shared memory")

    def return_credit(self, inp: Input) -> None:
        """Give a backpressure sender room for one more message."""

    # -- queueing ------------------------------------------------------------------------
    def queue_event(self, event: Event) -> None:
        """Queue an event made here (not a message), in arrival order with the messages."""
        self.pending.append([None, event, None, True])

    def _unreadable(self, exc: Exception) -> None:
        self.queue_event(Event("ERROR", error=f"dropped an unreadable message: {exc}"))

    def _queue_message(
        self, kind: int, vtype: int, source: bytes, header: bytes, payload: Any, own: Input | None
    ) -> None:
        """Queue a received message on the inputs it feeds, or act on it (end of stream, STOP, error, plan)."""
        if kind == _KIND_DATA:
            targets = (own,) if own is not None else self._routes.get(source, ())
            if vtype & _SHARED and targets:
                try:
                    payload = self._hold_shared(header, targets[0].line, len(targets))
                except (OSError, ValueError) as exc:
                    error = f"dropped a shared-memory message: {exc}"
                    self.pending.append([None, Event("ERROR", error=error), None, True])
                    return
            pending = self.pending
            for inp in targets:
                slot = [inp, header, payload, True]
                pending.append(slot)
                queue = inp.queue
                queue.append(slot)
                if inp.timeout:
                    inp.last = time.monotonic()
                inp.closed = False
                if len(queue) > inp.queue_size:
                    self._discard(queue.popleft())
                    if inp.superseding:
                        inp.superseded += 1
                    else:
                        inp.dropped += 1
                        self.drops.pending = True
                    if inp.socket is not None:
                        self.return_credit(inp)
        elif kind == wire.KIND_CLOSED:
            name = source.decode(errors="replace")
            if any(not inp.closed for inp in self._by_source.get(source, ())):
                self._on_end_of_stream(name)
            for inp in self._by_source.get(source, ()):
                self.close_input(inp, f"{name} closed")
        elif kind == wire.KIND_STOP:
            self.dataflow_stopping = True
            if not self.stop_seen:
                self.stop_seen = True
                self.pending.append([None, Event("STOP", id="MANUAL"), None, True])
        else:
            self._act_on(kind, header, payload)

    def _act_on(self, kind: int, header: bytes, payload: Any) -> None:
        """A message that is neither data, end of stream nor STOP: an error, a plan change, a drop count."""
        try:
            value = wire.decode(header, payload).value
        except wire.WireError as exc:
            self._unreadable(exc)
            return
        if kind == wire.KIND_ERROR:
            self.pending.append([None, Event("ERROR", error=str(value)), None, True])
        elif kind == wire.KIND_DROPPED and isinstance(value, int):
            self.missed += value
        elif kind == wire.KIND_CONTROL and isinstance(value, bytes):
            try:
                self._on_control(control.decode(value, control.DaemonToNode))
            except control.ControlError as exc:
                self.pending.append(
                    [None, Event("ERROR", error=f"a control message from the daemon: {exc}"), None, True]
                )
        else:
            self._unreadable(wire.WireError(f"unknown message kind {kind}"))

    def _discard(self, slot: list[Any]) -> None:
        """A queued message is dropped: let go of its shared-memory slot, if it has one."""
        slot[3] = False
        shared = slot[2]
        if type(shared) is Hold:
            self._release(shared)

    def close_input(self, inp: Input, reason: str) -> None:
        """No more messages on `inp`: INPUT_CLOSED, and STOP when every input is closed."""
        if inp.closed:
            return
        inp.closed = True
        self.pending.append([None, Event("INPUT_CLOSED", id=inp.name, error=reason), None, True])
        inputs = self.inputs.values()
        if not self.stop_seen and all(i.closed for i in inputs) and not any(i.timer for i in inputs):
            self.stop_seen = True
            self.pending.append([None, Event("STOP", id="ALL_INPUTS_CLOSED", error="all inputs closed"), None, True])

    def add_input(self, name: str, source: str, queue_size: int) -> None:
        """A new input (`car node connect`), fed through the main socket, without shared memory."""
        if name in self.inputs:
            return
        inp = Input(name, queue_size, source.startswith("dora/"), None, -1)
        self.inputs[name] = inp
        self._by_source.setdefault(source.encode(), []).append(inp)
        self._routes.setdefault(source.encode(), []).append(inp)

    def remove_input(self, name: str) -> None:
        """An input disconnected (`car node disconnect`): INPUT_CLOSED for it, and nothing more on it; the node
        goes on (it may be connected again), even with no input left."""
        inp = self.inputs.pop(name, None)
        if inp is None:
            return
        for table in (self._by_source, self._routes):
            for source, fed in list(table.items()):
                if inp in fed:
                    fed.remove(inp)
                    if not fed:
                        del table[source]
        for slot in self.pending:
            if slot[0] is inp:
                self._discard(slot)
        if not inp.closed:
            inp.closed = True
            self.pending.append([None, Event("INPUT_CLOSED", id=name, error="disconnected"), None, True])

    def expire_inputs(self) -> None:
        """Close the inputs whose `input_timeout` passed without a message."""
        now = time.monotonic()
        for inp in self._timed:
            if not inp.closed and inp.timeout and now >= inp.last + inp.timeout:
                self.close_input(inp, f"no message for {inp.timeout:g} s (input_timeout)")

    def pop(self) -> Event | None:
        """The next queued event, decoded; None when nothing is queued."""
        pending = self.pending
        while pending:
            inp, header, payload, alive = pending.popleft()
            if inp is None:
                return header  # type: ignore[no-any-return]  # an event made here, not a message
            if not alive:
                continue
            inp.queue.popleft()
            if inp.socket is not None:
                self.return_credit(inp)
            try:
                if type(payload) is Hold:  # in shared memory
                    _, source, value, metadata, wall, count = self._unpack_shared(header, payload)
                else:
                    _, source, value, metadata, wall, count = wire.unpack(header, payload)
            except StaleFrameError as exc:  # a subscriber fell behind: the slot was reused (see FrameWriter.subscribe)
                inp.dropped += 1
                return Event("ERROR", id=inp.name, error=f"dropped a message that was overwritten: {exc}")
            except (wire.WireError, ValueError, TypeError) as exc:
                return Event("ERROR", id=inp.name, error=f"dropped an unreadable message: {exc}")
            self._clock.observe(wall, count)
            self.received += 1
            return Event("INPUT", inp.name, value, metadata, _new_tuple(Timestamp, (wall, count)), source)
        return None

    def drop_counts(self) -> dict[str, int]:
        """Messages lost by full queues so far, by `input NAME`."""
        return {f"input {i.name}": i.dropped for i in self.inputs.values() if i.dropped}

    def superseded(self) -> int:
        """Messages replaced by newer ones in `queue_size: 1` inputs (by design, not a loss to warn about)."""
        return sum(i.superseded for i in self.inputs.values())

    def unreported_drops(self) -> list[str]:
        """What full queues dropped since the last report, as phrases."""
        parts = []
        for inp in self.inputs.values():
            if inp.dropped > inp.reported:
                parts.append(f"input `{inp.name}` (queue_size {inp.queue_size}): {inp.dropped - inp.reported}")
                inp.reported = inp.dropped
        return parts
