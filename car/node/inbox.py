"""The receiving side of a node (or subscriber): its sockets, one bounded queue per input, drops.

Messages from nodes the daemon started on this machine, and timer ticks, arrive over
direct links (car.transport.direct). Everything else arrives on one ZeroMQ PULL socket
(plus one per `backpressure` input): the daemon's other messages, nodes started by hand,
and, for a subscriber, everything. With `drop_oldest` the oldest message of an input is
dropped when its queue is full; an input with `queue_size: 1` keeps the latest by design,
so what it replaces is counted as superseded, not as a drop. `backpressure` inputs make
the sender wait instead.
"""

from __future__ import annotations

import mmap
import select
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq

from car.node.event import Event
from car.node.links import DropFlag
from car.plan.config import TRANSIT_HWM, InputConfig
from car.transport import control, direct, wire
from car.transport.hlc import HybridLogicalClock, Timestamp
from car.transport.shm import FrameReader, Hold, StaleFrameError, finish_reader, reset_reader

if TYPE_CHECKING:  # zmq.auth costs every node 30 ms to import: only nodes with keys load it
    from car.transport.keys import Keys

DRAIN_BATCH = 256  # messages moved from a socket into the queues per receive, at most

_route = wire.route
_PAYLOAD_FRAME, _SHARED, _KIND_DATA = wire.PAYLOAD_FRAME, wire.SHARED, wire.KIND_DATA
_VALUE_TYPE, _VT_ARROW = ~(wire.PAYLOAD_FRAME | wire.SHARED) & 0xFF, wire.VT_ARROW
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


class Inbox:
    """Sockets in, queues per input, events out (`pop`, `wait`)."""

    def __init__(
        self,
        owner: str,
        receive_endpoint: str,
        inputs: dict[str, InputConfig],
        direct_fds: list[int],
        ctx: zmq.Context[zmq.Socket[bytes]],
        clock: HybridLogicalClock,
        drops: DropFlag,
        on_end_of_stream: Callable[[str], None],
        on_control: Callable[[control.DaemonToNode], None],
        remote_endpoint: str = "",
        keys: Keys | None = None,
    ):
        """`owner` names the node (or subscriber) in messages; the callbacks take what is not data. With
        `keys`, what it listens on over tcp:// (from other machines) takes only CurveZMQ peers."""
        self._keys = keys
        self.owner = owner
        self._clock = clock
        self.drops = drops
        self._on_end_of_stream = on_end_of_stream
        self._on_control = on_control
        self._direct_in = [direct.open_end(fd, owner) for fd in direct_fds]
        self._direct_by_fd = {sock.fileno(): sock for sock in self._direct_in}
        largest = max((direct.largest_message(sock) for sock in self._direct_in), default=0)
        # anonymous memory: a page is touched only when a message reaches it (a bytearray would zero all of it)
        self._receive_buffer = mmap.mmap(-1, max(largest, 1))
        # Every queued message in arrival order: [input, header, payload, alive], or [None, Event, None, True]
        # for an event made here; `alive` goes False when its input's queue drops it. A list, not a record
        # class: made and taken once per message, a list costs 0.14 µs where a slotted class costs 0.48.
        self.pending: deque[list[Any]] = deque()
        self.stop_seen = False  # a STOP is queued (from the daemon, or all inputs closed)
        self.dataflow_stopping = False  # the daemon said STOP
        self.received = 0  # INPUT events handed out
        self.missed = 0  # messages dropped on the way to this subscriber, as its senders said (KIND_DROPPED)

        self._frames = FrameReader()
        self.shm_lines = {(spec.shm_prefix, spec.shm_line) for spec in inputs.values() if spec.shm_prefix}
        for prefix, line in self.shm_lines:  # before anything can arrive: see car.transport.shm
            reset_reader(prefix, line)

        self.main = ctx.socket(zmq.PULL)
        self.main.setsockopt(zmq.RCVHWM, TRANSIT_HWM)
        self.main.bind(receive_endpoint)
        if remote_endpoint:  # nodes on other machines send here (tcp://)
            try:
                self._bind_remote(self.main, remote_endpoint)
            except zmq.ZMQError as exc:
                self.main.close(linger=0)
                raise RuntimeError(
                    f"{owner} cannot listen on {remote_endpoint} for nodes on other machines: {exc}"
                ) from None
        self.inputs: dict[str, Input] = {}
        self._routes: dict[bytes, list[Input]] = {}  # source -> inputs fed by the main socket
        self._by_source: dict[bytes, list[Input]] = {}  # source -> every input it feeds
        self._polled: list[Input] = []  # backpressure inputs, each with its own socket
        for name, spec in inputs.items():
            inp = Input(name, spec.queue_size, spec.source.startswith("dora/"), spec.input_timeout, spec.shm_line)
            self.inputs[name] = inp
            self._by_source.setdefault(spec.source.encode(), []).append(inp)
            if spec.endpoint:
                inp.socket = ctx.socket(zmq.ROUTER)
                inp.socket.setsockopt(zmq.LINGER, 0)
                self._bind_remote(inp.socket, spec.endpoint)
                self._polled.append(inp)
            else:
                self._routes.setdefault(spec.source.encode(), []).append(inp)
        self._timed = [i for i in self.inputs.values() if i.timeout]
        self._fd_poll: select.poll | None = None  # with more than the main socket to wait on
        self._main_more = False  # the last drain of the main socket stopped before it was empty
        if self._polled or self._direct_in:
            self._fd_poll = select.poll()
            for zsock in [self.main] + [inp.socket for inp in self._polled if inp.socket is not None]:
                self._fd_poll.register(int(zsock.getsockopt(zmq.FD)), select.POLLIN)
            for fd in self._direct_by_fd:
                self._fd_poll.register(fd, select.POLLIN)

    def _bind_remote(self, sock: zmq.Socket[bytes], endpoint: str) -> None:
        """Bind `sock` at `endpoint`; a tcp:// one (from other machines) as a CurveZMQ server when there are keys."""
        if endpoint.startswith("tcp://") and self._keys is not None:
            self._keys.serve(sock)  # applies to this bind only: the ipc:// ones before stay plain
        sock.bind(endpoint)

    # -- waiting ------------------------------------------------------------------------
    def next(self, timeout: float | None, ended: bool) -> Event | None:
        """The next event, waiting at most `timeout` seconds (None: no limit); None on timeout, or at once
        when nothing is queued and the reader has `ended` (STOP handed out, or closed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            event = self.pop()
            if event is not None:
                return event
            if ended:
                return None
            if self.collect():
                continue
            if not self.wait(self.wait_ms(deadline)):
                self.expire_inputs()
                if deadline is not None and time.monotonic() >= deadline and not self.pending:
                    return None

    def ready(self) -> bool:
        """Whether an event can be had without waiting (what has arrived is queued first)."""
        if not any(slot[3] for slot in self.pending):
            self.collect()
            self.wait(0)
        return any(slot[3] for slot in self.pending)

    def wait_ms(self, deadline: float | None) -> int | None:
        """How long to wait for the next message: until `deadline` or the next input timeout."""
        if deadline is None and not self._timed:
            return None
        now = time.monotonic()
        ends = [deadline] if deadline is not None else []
        ends += [i.last + i.timeout for i in self._timed if not i.closed and i.timeout]
        if not ends:
            return None
        return max(0, int((min(ends) - now) * 1000) + 1)

    def collect(self) -> bool:
        """Queue what arrived while the node was busy, without waiting.

        This is where full queues drop their oldest messages. It runs only when the
        queues are empty, so a message that arrives while the node waits is handed
        out at once, without this step on its path. Direct links are looked at in
        `wait`; the main ZeroMQ socket too, when its descriptor is polled (it signals
        every message that arrives after a drain that emptied the socket).
        """
        got = self.drain_main() if self._fd_poll is None or self._main_more else False
        for inp in self._polled:
            assert inp.socket is not None
            got = self._drain(inp.socket, inp) or got
        return got

    def drain_main(self) -> bool:
        """Queue what waits on the main socket; whether anything did."""
        return self._drain(self.main, None)

    def _drain(self, sock: zmq.Socket[bytes], inp: Input | None) -> bool:
        if sock is self.main:
            self._main_more = False
        if not int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:  # cheaper than a zmq.Again
            return False
        try:
            for _ in range(DRAIN_BATCH):
                self._receive_one(sock, inp, zmq.NOBLOCK)
        except zmq.Again:
            return True
        if sock is self.main:
            self._main_more = True  # stopped at DRAIN_BATCH: the socket may still hold messages
        return True

    def wait(self, wait_ms: int | None) -> bool:
        """Wait up to wait_ms (None: no limit) for messages and queue them; False when none came."""
        if self._fd_poll is None:  # the main ZeroMQ socket only
            if wait_ms is not None and not self.main.poll(wait_ms):
                return False
            self._receive_one(self.main, None, 0)
            return True
        ready = self._fd_poll.poll(wait_ms)
        if not ready:
            return False
        self._take(ready, 1)
        ready = self._fd_poll.poll(0)  # more behind it: queue it all, so that full queues drop their oldest
        if ready:
            self._take(ready, DRAIN_BATCH)
        return True

    def _take(self, ready: list[tuple[int, int]], most: int) -> None:
        """Queue up to `most` messages from each direct link `ready` names; look at the ZeroMQ sockets if it names one.

        One message costs one receive; draining a link costs one more (the one that finds it empty).
        """
        zmq_ready = False
        buffer = self._receive_buffer
        for fd, _ in ready:
            sock = self._direct_by_fd.get(fd)
            if sock is None:
                zmq_ready = True
                continue
            for _ in range(most):
                try:
                    size = sock.recv_into(buffer)
                except BlockingIOError:
                    break
                data = buffer[:size]  # a copy: the buffer takes the next message
                try:
                    kind, vtype, source = _route(data)
                except wire.WireError as exc:
                    self._unreadable(exc)
                    continue
                if vtype & _PAYLOAD_FRAME:
                    self._queue_message(kind, vtype, source, *wire.split(data), None)
                else:
                    self._queue_message(kind, vtype, source, data, None, None)
        if zmq_ready:  # a ZeroMQ socket's descriptor only says "look": its EVENTS say what is there
            self._main_more = True
            self.collect()

    def _unreadable(self, exc: Exception) -> None:
        self.queue_event(Event("ERROR", error=f"dropped an unreadable message: {exc}"))

    def queue_event(self, event: Event) -> None:
        """Queue an event made here (not a message), in arrival order with the messages."""
        self.pending.append([None, event, None, True])

    def _receive_one(self, sock: zmq.Socket[bytes], own: Input | None, flags: int) -> None:
        """Receive one message from a ZeroMQ socket and queue it (own: the backpressure input whose socket it is)."""
        if own is not None:  # a ROUTER socket: the sender's identity comes first
            own.peer = sock.recv(flags)
            flags = 0  # the rest of a message is there once its first part is
        header = sock.recv(flags)
        try:
            kind, vtype, source = _route(header)
        except wire.WireError as exc:
            while sock.rcvmore:  # the rest of the unreadable message
                sock.recv()
            self._unreadable(exc)
            return
        payload = sock.recv(copy=False) if vtype & _PAYLOAD_FRAME else None
        self._queue_message(kind, vtype, source, header, payload, own)

    # -- queueing ------------------------------------------------------------------------
    def _queue_message(
        self, kind: int, vtype: int, source: bytes, header: bytes, payload: Any, own: Input | None
    ) -> None:
        """Queue a received message on the inputs it feeds, or act on it (end of stream, STOP, error, plan)."""
        if kind == _KIND_DATA:
            targets = (own,) if own is not None else self._routes.get(source, ())
            if vtype & _SHARED and targets:
                try:
                    payload = self._frames.hold(wire.inline_payload(header), targets[0].line, len(targets))
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
            self._frames.release(shared[0], shared[1])

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

    def _unpack_shared(self, header: bytes, shared: Hold) -> tuple[Any, ...]:
        """Decode a message whose array is in shared memory; the array keeps its slot until collected."""
        held, slot, seq, nbytes = shared
        frames = self._frames
        try:
            buffer: Any = frames.array_buffer(held, slot, seq, nbytes)
            if header[2] & _VALUE_TYPE == _VT_ARROW:  # the Arrow array's buffers will keep this view alive
                buffer = np.frombuffer(buffer, np.uint8)
            fields = wire.unpack(header, buffer)
        except BaseException:
            frames.release(held, slot)
            raise
        if type(fields[2]) is np.ndarray:
            frames.hand_to(fields[2], held, slot)  # the queue's hold on the slot passes to the array
        elif type(buffer) is np.ndarray:
            frames.hand_to(buffer, held, slot)  # an Arrow array over the slot: held while any view of it lives
        else:  # other values are copies
            frames.release(held, slot)
        return fields

    def return_credit(self, inp: Input) -> None:
        """Give a backpressure sender room for one more message (sent in batches)."""
        inp.owed += 1
        if inp.owed >= inp.credit_batch and inp.socket is not None:
            try:
                inp.socket.send_multipart([inp.peer, inp.owed.to_bytes(4, "little")], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # the sender is gone
            inp.owed = 0

    # -- counts and the end ------------------------------------------------------------------
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

    def close(self) -> None:
        """This reader reads no more: its shared-memory lines hold nothing; close its direct links."""
        for prefix, line in self.shm_lines:
            finish_reader(prefix, line)
        for end in self._direct_in:
            end.close()
