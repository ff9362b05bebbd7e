"""The node API: `for event in Node(): ...` and `node.send_output(...)`.

Messages from nodes the daemon started on this machine, and timer ticks, arrive over
direct links (car.direct: one Unix socket pair per sender node, one from the daemon's
timers). Everything else arrives on one ZeroMQ PULL socket the node binds (plus one per
`backpressure` input): the daemon's other messages, nodes started by hand. The daemon is
not on the data path (its timer thread only sends ticks).
Received messages wait in one bounded queue per input: with `drop_oldest` the oldest
message of an input is dropped when its queue is full, with `backpressure` the sender
waits instead. Every drop is counted and reported, at most once a second and at exit.

Large payloads (more than 64 KiB) between nodes on this machine go through shared memory
(car.shm): the sender copies the payload once into a slot, the receiver gets a read-only
numpy view of that slot. `allocate_output` lends a node a slot to write a frame into, so
that even that copy goes. Small values travel inline, one message each.

Lifetime of a received array: it is a read-only view, valid for as long as you keep a
reference to it (or to any view made from it); nothing is copied. A node that holds more
frames than its queue_size + 2 makes the sender add slots (up to 64 in all); past that
the sender copies frames through the link, which is slower but still correct.
`value.copy()` a frame you want to keep for long.
"""

from __future__ import annotations

import atexit
import math
import mmap
import os
import platform
import select
import socket
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import zmq

from car import direct, wire
from car.config import RECONNECT_MS, TRANSIT_HWM, NodeConfig
from car.hlc import HybridLogicalClock, Timestamp
from car.runs import pid_alive
from car.shm import FrameReader, FrameWriter, StaleFrameError, finish_reader, reset_reader

# Notify first and copy after, so the reader's work overlaps the copy, only where the CPU
# makes stores visible in program order (x86): Python has no memory fences, and elsewhere
# (ARM, RISC-V) only the send's system call orders the copy before the notification. And
# only to readers pinned to other CPUs (Destination.apart): a reader that shares the
# sender's CPU (the kernel tends to wake it there) would preempt the sender, find the slot
# unfinished and hand the CPU back; there the copy comes first (measured: notify-first
# 6 % slower unpinned, 24 % faster pinned apart, for 921,600 B frames).
NOTIFY_FIRST = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686"}
DRAIN_BATCH = 256  # messages moved from a socket into the queues per receive, at most
DROP_REPORT_PERIOD_S = 1.0
SEND_RETRY_MS = 100  # a backpressure send re-checks for STOP this often
DAEMON_GONE_GRACE_S = 3.0
STATS_PERIOD_S = 1.0  # how often a node reports its message counts and status to the daemon
LINGER_MS = 1000  # at exit, how long queued messages may take to reach live readers
STOPPING_LINGER_MS = 100
FLUSH_TIMEOUT_S = 5.0  # a node that ends waits this long, at most, for its readers to take its last messages  # the same when the whole dataflow stops: readers are leaving too


class Event:
    """One event: `.type` is INPUT, INPUT_CLOSED, STOP or ERROR.

    Also readable as `event["type"]`, `event["id"]`, `event["value"]`,
    `event["metadata"]` like dora's events.
    """

    __slots__ = ("error", "id", "metadata", "source", "timestamp", "type", "value")

    def __init__(
        self,
        type: str,
        id: str = "",
        value: Any = None,
        metadata: dict[str, Any] | None = None,
        timestamp: Timestamp | None = None,
        source: str = "",
        error: str = "",
    ):
        self.type = type
        self.id = id
        self.value = value
        self.metadata = metadata if metadata is not None else {}
        self.timestamp = timestamp
        self.source = source
        self.error = error

    def __getitem__(self, key: str) -> Any:
        if key in Event.__slots__:
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        """Like dict.get."""
        return getattr(self, key) if key in Event.__slots__ else default

    def keys(self) -> tuple[str, ...]:
        """The keys `event[...]` answers."""
        return Event.__slots__

    def __contains__(self, key: object) -> bool:
        return key in Event.__slots__

    def __repr__(self) -> str:
        detail = f" id={self.id!r}" if self.id else ""
        if self.error:
            detail += f" error={self.error!r}"
        return f"<Event {self.type}{detail}>"


class _Input:
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
        "timeout",
        "timer",
    )

    def __init__(self, name: str, queue_size: int, timer: bool, timeout: float | None, line: int):
        self.name = name
        self.line = line  # this node's reader line in the source's shared-memory files
        self.queue_size = queue_size
        self.timer = timer
        self.timeout = timeout
        self.queue: deque[list[Any]] = deque()
        self.dropped = 0
        self.reported = 0
        self.closed = False
        self.last = time.monotonic()
        self.socket: zmq.Socket[bytes] | None = None  # own ROUTER socket: backpressure inputs only
        self.peer = b""  # the sender's identity on that socket
        self.owed = 0  # credits consumed and not yet returned to the sender
        self.credit_batch = max(1, queue_size // 2)


class _Link:
    __slots__ = ("backpressure", "credits", "direct", "dropped", "failed", "label", "local", "reported", "socket")

    def __init__(
        self,
        sock: zmq.Socket[bytes] | socket.socket,
        backpressure: bool,
        label: str,
        credits: int,
        local: bool,
    ):
        self.direct = sock if isinstance(sock, socket.socket) else None  # a direct link (car.direct)
        self.socket = sock if isinstance(sock, zmq.Socket) else None  # or a ZeroMQ socket
        self.failed = False  # a send failed for another reason than a full link (reported once)
        self.local = local  # the receiver maps this output's shared memory
        self.backpressure = backpressure
        self.label = label
        self.dropped = 0
        self.reported = 0
        self.credits = credits  # backpressure: messages the receiver still has room for


class UnknownOutputError(ValueError):
    """send_output was called with an output the dataflow file does not declare."""


class Node:
    """A node of a running dataflow, configured from the environment the daemon sets."""

    def __init__(self, node_id: str | None = None, *, config: NodeConfig | None = None):
        cfg = config or NodeConfig.from_env()
        if node_id is not None and node_id != cfg.node_id:
            raise ValueError(f"this process was started as node `{cfg.node_id}`, not `{node_id}`")
        self.id = cfg.node_id
        self.config = cfg
        self._direct_in = [direct.open_end(fd, self.id) for fd in cfg.direct_fds]
        self._direct_by_fd = {sock.fileno(): sock for sock in self._direct_in}
        largest = max((direct.largest_message(sock) for sock in self._direct_in), default=0)
        # anonymous memory: a page is touched only when a message reaches it (a bytearray would zero all of it)
        self._receive_buffer = mmap.mmap(-1, max(largest, 1))
        self._clock = HybridLogicalClock()
        self._ctx = zmq.Context()
        self._ctx.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        self._pending: deque[list[Any]] = deque()  # [input, header, payload, alive] or [None, Event, None, True]
        self._closed = False
        self._finished = False  # STOP was handed out: iteration is over
        self._stop_seen = False  # a STOP is queued (from the daemon, or all inputs closed)
        self._dataflow_stopping = False  # the daemon said STOP
        self._daemon_gone = False
        self._drops_pending = False
        self.sent = 0  # send_output calls, and INPUT events handed out
        self.received = 0
        self._status = ""
        self._next_drop_report = 0.0
        self._last_drop_report = time.monotonic()

        self._frames = FrameReader()
        self._shm_lines = {(spec.shm_prefix, spec.shm_line) for spec in cfg.inputs.values() if spec.shm_prefix}
        for prefix, line in self._shm_lines:  # before anything can arrive: see car.shm
            reset_reader(prefix, line)
        self._writers = {output: FrameWriter(sh.prefix, sh.readers, sh.slots) for output, sh in cfg.shared.items()}
        self.copied = 0  # large arrays sent through the socket because every shared-memory slot was held
        self._loans: dict[int, tuple[str, int, Any, weakref.ref[np.ndarray[Any, Any]]]] = {}  # see allocate_output

        self._main = self._ctx.socket(zmq.PULL)
        self._main.setsockopt(zmq.RCVHWM, TRANSIT_HWM)
        self._main.bind(cfg.receive_endpoint)
        self._inputs: dict[str, _Input] = {}
        self._routes: dict[bytes, list[_Input]] = {}  # source -> inputs fed by the main socket
        self._by_source: dict[bytes, list[_Input]] = {}  # source -> every input it feeds
        self._polled: list[_Input] = []  # backpressure inputs, each with its own socket
        for name, spec in cfg.inputs.items():
            inp = _Input(name, spec.queue_size, spec.source.startswith("dora/"), spec.input_timeout, spec.shm_line)
            self._inputs[name] = inp
            self._by_source.setdefault(spec.source.encode(), []).append(inp)
            if spec.endpoint:
                inp.socket = self._ctx.socket(zmq.ROUTER)
                inp.socket.setsockopt(zmq.LINGER, 0)
                inp.socket.bind(spec.endpoint)
                self._polled.append(inp)
            else:
                self._routes.setdefault(spec.source.encode(), []).append(inp)
        self._timed = [i for i in self._inputs.values() if i.timeout]
        self._fd_poll: select.poll | None = None  # with more than the main socket to wait on
        self._main_more = False  # the last drain of the main socket stopped before it was empty
        if self._polled or self._direct_in:
            self._fd_poll = select.poll()
            for zsock in [self._main] + [inp.socket for inp in self._polled if inp.socket is not None]:
                self._fd_poll.register(int(zsock.getsockopt(zmq.FD)), select.POLLIN)
            for fd in self._direct_by_fd:
                self._fd_poll.register(fd, select.POLLIN)

        self._sockets: dict[str, zmq.Socket[bytes]] = {}
        self._direct_out: dict[int, socket.socket] = {}
        self._outputs: dict[str, list[_Link]] = {}
        self._source_bytes: dict[str, bytes] = {}
        for output, destinations in cfg.outputs.items():
            self._source_bytes[output] = f"{self.id}/{output}".encode()
            links = []
            for dest in destinations:
                label = ", ".join(f"{dest.node}/{i}" for i in dest.inputs)
                if dest.fd >= 0:
                    end = self._direct_out.get(dest.fd)
                    if end is None:
                        end = self._direct_out[dest.fd] = direct.open_end(dest.fd, self.id)
                    links.append(_Link(end, False, label, dest.queue_size, True))
                    continue
                sock = self._sockets.get(dest.endpoint)
                if sock is None:
                    sock = self._ctx.socket(zmq.DEALER if dest.backpressure else zmq.PUSH)
                    sock.setsockopt(zmq.SNDHWM, TRANSIT_HWM)
                    sock.setsockopt(zmq.LINGER, LINGER_MS)
                    sock.connect(dest.endpoint)
                    self._sockets[dest.endpoint] = sock
                links.append(_Link(sock, dest.backpressure, label, dest.queue_size, dest.line >= 0))
            self._outputs[output] = links
        self._fill_first = {  # copy a large payload into its slot before the notification goes out
            output: not NOTIFY_FIRST or any(d.backpressure or (d.line >= 0 and not d.apart) for d in destinations)
            for output, destinations in cfg.outputs.items()
        }

        self._control = self._ctx.socket(zmq.DEALER)
        self._control.setsockopt(zmq.LINGER, LINGER_MS)
        self._control.connect(cfg.control_endpoint)
        self._control.send_json({"op": "ready", "node": self.id, "pid": os.getpid()})
        self._wake_watcher, self._watcher_wakes = os.pipe()
        self._watcher = threading.Thread(target=self._watch_daemon, name="car-daemon-watch", daemon=True)
        self._watcher.start()
        atexit.register(self.close)

    # -- receiving -----------------------------------------------------------------
    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        event = self._pop() if self._pending else None  # queued already: skip next()'s waiting logic
        if event is not None:
            return self._hand_out(event)
        event = self.next()
        if event is None:
            raise StopIteration
        return event

    def _hand_out(self, event: Event) -> Event:
        """Every event leaves through here (subclasses may adapt it): STOP ends iteration; drops are reported."""
        if event.type == "STOP":
            self._finished = True
        if self._drops_pending:
            self._report_drops(final=False)
        return event

    def next(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting at most `timeout` seconds (None: no limit).

        Returns None on timeout and once STOP has been handed out.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            event = self._pop()
            if event is not None:
                return self._hand_out(event)
            if self._finished or self._closed:
                return None
            if self._collect():
                continue
            if not self._wait(self._wait_ms(deadline)):
                self._expire_inputs()
                if deadline is not None and time.monotonic() >= deadline and not self._pending:
                    return None

    def _wait_ms(self, deadline: float | None) -> int | None:
        if deadline is None and not self._timed:
            return None
        now = time.monotonic()
        ends = [deadline] if deadline is not None else []
        ends += [i.last + i.timeout for i in self._timed if not i.closed and i.timeout]
        if not ends:
            return None
        return max(0, int((min(ends) - now) * 1000) + 1)

    def _collect(self) -> bool:
        """Queue what arrived while the node was busy, without waiting.

        This is where full queues drop their oldest messages. It runs only when the
        queues are empty, so a message that arrives while the node waits is handed
        out at once, without this step on its path. Direct links are looked at in
        `_wait`; the main ZeroMQ socket too, when its descriptor is polled (it signals
        every message that arrives after a drain that emptied the socket).
        """
        got = self._drain(self._main, None) if self._fd_poll is None or self._main_more else False
        for inp in self._polled:
            assert inp.socket is not None
            got = self._drain(inp.socket, inp) or got
        return got

    def _drain(self, sock: zmq.Socket[bytes], inp: _Input | None) -> bool:
        if sock is self._main:
            self._main_more = False
        if not int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:  # cheaper than a zmq.Again
            return False
        try:
            for _ in range(DRAIN_BATCH):
                self._receive_one(sock, inp, zmq.NOBLOCK)
        except zmq.Again:
            return True
        if sock is self._main:
            self._main_more = True  # stopped at DRAIN_BATCH: the socket may still hold messages
        return True

    def _wait(self, wait_ms: int | None) -> bool:
        """Wait up to wait_ms (None: no limit) for messages and queue them; False when none came."""
        if self._fd_poll is None:  # the main ZeroMQ socket only
            if wait_ms is not None and not self._main.poll(wait_ms):
                return False
            self._receive_one(self._main, None, 0)
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
                    kind, source = _route(data)
                except wire.WireError as exc:
                    self._unreadable(exc)
                    continue
                if data[2] & _PAYLOAD_FRAME:
                    self._queue_message(kind, source, *wire.split(data), None)
                else:
                    self._queue_message(kind, source, data, None, None)
        if zmq_ready:  # a ZeroMQ socket's descriptor only says "look": its EVENTS say what is there
            self._main_more = True
            self._collect()

    def _unreadable(self, exc: Exception) -> None:
        self._pending.append([None, Event("ERROR", error=f"dropped an unreadable message: {exc}"), None, True])

    def _receive_one(self, sock: zmq.Socket[bytes], own: _Input | None, flags: int) -> None:
        """Receive one message from a ZeroMQ socket and queue it (own: the backpressure input whose socket it is)."""
        if own is not None:  # a ROUTER socket: the sender's identity comes first
            own.peer = sock.recv(flags)
            flags = 0  # the rest of a message is there once its first part is
        header = sock.recv(flags)
        try:
            kind, source = _route(header)
        except wire.WireError as exc:
            while sock.rcvmore:  # the rest of the unreadable message
                sock.recv()
            self._unreadable(exc)
            return
        self._queue_message(kind, source, header, sock.recv(copy=False) if header[2] & _PAYLOAD_FRAME else None, own)

    def _queue_message(self, kind: int, source: bytes, header: bytes, payload: Any, own: _Input | None) -> None:
        """Queue a received message on the inputs it feeds, or act on it (end of stream, STOP, error)."""
        if kind == _KIND_DATA:
            targets = (own,) if own is not None else self._routes.get(source, ())
            if header[2] & _SHARED and targets:
                try:
                    payload = self._frames.hold(wire.inline_payload(header), targets[0].line, len(targets))
                except (OSError, ValueError) as exc:
                    error = f"dropped a shared-memory message: {exc}"
                    self._pending.append([None, Event("ERROR", error=error), None, True])
                    return
            pending = self._pending
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
                    inp.dropped += 1
                    self._drops_pending = True
                    if inp.socket is not None:
                        self._return_credit(inp)
        elif kind == wire.KIND_CLOSED:
            name = source.decode(errors="replace")
            if any(not inp.closed for inp in self._by_source.get(source, ())):
                self._tell_daemon({"op": "eos", "node": self.id, "source": name})
            for inp in self._by_source.get(source, ()):
                self._close_input(inp, f"{name} closed")
        elif kind == wire.KIND_STOP:
            self._dataflow_stopping = True
            if not self._stop_seen:
                self._stop_seen = True
                self._pending.append([None, Event("STOP"), None, True])
        elif kind == wire.KIND_ERROR:
            try:
                text = str(wire.decode(header, payload).value)
            except wire.WireError as exc:
                text = f"an unreadable error message: {exc}"
            self._pending.append([None, Event("ERROR", error=text), None, True])

    def _discard(self, slot: list[Any]) -> None:
        """A queued message is dropped: let go of its shared-memory slot, if it has one."""
        slot[3] = False
        shared = slot[2]
        if type(shared) is tuple:
            self._frames.release(shared[0], shared[1])

    def _close_input(self, inp: _Input, reason: str) -> None:
        if inp.closed:
            return
        inp.closed = True
        self._pending.append([None, Event("INPUT_CLOSED", id=inp.name, error=reason), None, True])
        inputs = self._inputs.values()
        if not self._stop_seen and all(i.closed for i in inputs) and not any(i.timer for i in inputs):
            self._stop_seen = True
            self._pending.append([None, Event("STOP", error="all inputs closed"), None, True])

    def _expire_inputs(self) -> None:
        now = time.monotonic()
        for inp in self._timed:
            if not inp.closed and inp.timeout and now >= inp.last + inp.timeout:
                self._close_input(inp, f"no message for {inp.timeout:g} s (input_timeout)")

    def _pop(self) -> Event | None:
        pending = self._pending
        while pending:
            inp, header, payload, alive = pending.popleft()
            if inp is None:
                return header  # type: ignore[no-any-return]  # an event made here, not a message
            if not alive:
                continue
            inp.queue.popleft()
            if inp.socket is not None:
                self._return_credit(inp)
            try:
                if type(payload) is tuple:  # in shared memory: (held, slot, seq, nbytes)
                    _, source, value, metadata, wall, count = self._unpack_shared(header, payload)
                else:
                    _, source, value, metadata, wall, count = wire.unpack(header, payload)
            except (wire.WireError, ValueError, TypeError, StaleFrameError) as exc:
                return Event("ERROR", id=inp.name, error=f"dropped an unreadable message: {exc}")
            self._clock.observe(wall, count)
            self.received += 1
            return Event("INPUT", inp.name, value, metadata, _new_tuple(Timestamp, (wall, count)), source)
        return None

    def _unpack_shared(self, header: bytes, shared: tuple[Any, int, int, int]) -> tuple[Any, ...]:
        """Decode a message whose array is in shared memory; the array keeps its slot until collected."""
        held, slot, seq, nbytes = shared
        frames = self._frames
        try:
            fields = wire.unpack(header, frames.array_buffer(held, slot, seq, nbytes))
        except BaseException:
            frames.release(held, slot)
            raise
        if type(fields[2]) is np.ndarray:
            frames.hand_to(fields[2], held, slot)  # the queue's hold on the slot passes to the array
        else:  # other values are copies
            frames.release(held, slot)
        return fields

    def _return_credit(self, inp: _Input) -> None:
        """Give a backpressure sender room for one more message (sent in batches)."""
        inp.owed += 1
        if inp.owed >= inp.credit_batch and inp.socket is not None:
            try:
                inp.socket.send_multipart([inp.peer, inp.owed.to_bytes(4, "little")], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # the sender is gone
            inp.owed = 0

    # -- sending ---------------------------------------------------------------------
    def _links(self, output_id: str) -> list[_Link]:
        """The links of an output, or a clear error naming the outputs the dataflow file declares."""
        links = self._outputs.get(output_id)
        if links is None:
            declared = ", ".join(self._outputs) or "none"
            raise UnknownOutputError(
                f"node `{self.id}` has no output `{output_id}` (declared: {declared}); "
                f"add it under `outputs:` of node `{self.id}` in {self.config.dataflow}"
            )
        return links

    def send_output(self, output_id: str, data: Any = None, metadata: dict[str, Any] | None = None) -> None:
        """Send `data` (numpy array, bytes, str, JSON-able value or None) on a declared output."""
        links = self._links(output_id)
        if self._closed:
            raise RuntimeError(f"node `{self.id}` is closed; it cannot send any more")
        frames = wire.encode(wire.KIND_DATA, self._source_bytes[output_id], self._clock.tick(), data, metadata)
        filling = None  # a shared-memory slot to fill after the notifications went out
        local = self._publish_loan(output_id, data, frames) if self._loans else None
        if local is None:
            local = frames
            if len(frames) == 2 and output_id in self._writers:
                local, filling = self._share(output_id, frames)
        self.sent += 1
        try:
            self._send_all(links, frames, local)
        finally:
            if filling is not None:
                filling.fill(memoryview(frames[1]))

    def allocate_output(self, output_id: str, shape: int | tuple[int, ...], dtype: Any = np.uint8) -> Any:
        """A writable array to fill and then send on `output_id` without any copy (for large arrays, e.g. frames).

        For readers on this machine the array lives in the output's shared memory, so
        `send_output(output_id, array)` only tells them where it is. After that send the
        array is read-only: allocate a new one for the next message (do not keep writable
        views of it). Where shared memory cannot be used (small arrays, no reader on this
        machine, every slot held by slow readers) it is an ordinary array, sent by copy.
        """
        self._links(output_id)
        dtype = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        nbytes = dtype.itemsize * math.prod(shape)
        writer = self._writers.get(output_id)
        if writer is None or nbytes <= wire.INLINE_MAX:
            return np.empty(shape, dtype)
        loan = writer.loan(nbytes)
        if loan is None:  # every slot held: an ordinary array, sent by copy
            return np.empty(shape, dtype)
        slot, buffer = loan
        array = np.ndarray(shape, dtype, buffer)
        key = id(array)
        segment = writer.segment

        def unsent(_: object) -> None:  # collected without being sent: the slot is free again
            if self._loans.pop(key, None) is not None and writer.segment is segment:
                writer.give_back(slot)

        self._loans[key] = (output_id, slot, segment, weakref.ref(array, unsent))
        return array

    def _send_all(self, links: list[_Link], frames: list[Any], local: list[Any]) -> None:
        for link in links:
            out = local if link.local else frames
            if link.direct is not None:
                try:
                    if len(out) == 1:
                        link.direct.send(out[0])
                    else:
                        link.direct.sendmsg(out)
                except BlockingIOError:
                    link.dropped += 1
                    self._drops_pending = True
                except OSError as exc:
                    self._send_failed(link, out, exc)
            elif not link.backpressure:
                try:
                    _send(link.socket, out, zmq.NOBLOCK)  # type: ignore[arg-type]  # a ZeroMQ link has a socket
                except zmq.Again:
                    link.dropped += 1
                    self._drops_pending = True
            else:
                self._send_waiting(link, out)

    def _send_failed(self, link: _Link, frames: list[Any], exc: OSError) -> None:
        """A direct link refused a message (other than for being full): count it, and say why once."""
        link.dropped += 1
        self._drops_pending = True
        if link.failed or link.direct is None:
            return
        link.failed = True
        size = sum(memoryview(frame).nbytes for frame in frames)
        print(
            f"car: node `{self.id}` cannot send a message of {size} bytes to {link.label} ({exc.strerror}): "
            f"it could not go through shared memory, and a link on this machine takes at most "
            f"{direct.largest_message(link.direct)} bytes (net.core.wmem_max); such messages are dropped",
            file=sys.stderr,
        )

    def _publish_loan(self, output_id: str, data: Any, frames: list[Any]) -> list[Any] | None:
        """If `data` is the array allocate_output lent for this output: publish it where it is; the notice to send."""
        loan = self._loans.get(id(data))
        writer = self._writers.get(output_id)
        array = loan[3]() if loan is not None else None
        if array is None or array is not data or loan is None or loan[0] != output_id:
            return None
        if writer is None or loan[2] is not writer.segment:
            return None
        del self._loans[id(data)]
        array.flags.writeable = False  # its readers have it now
        return [wire.shared(frames[0], writer.publish(loan[1], frames[1].nbytes))]

    def _share(self, output_id: str, frames: list[Any]) -> tuple[list[Any], FrameWriter | None]:
        """Reserve a shared-memory slot for a large array: the frame that tells readers where, and the
        writer to fill the slot once that frame is sent (at once, when a reader may make the send wait)."""
        writer = self._writers[output_id]
        descriptor = writer.reserve(memoryview(frames[1]))
        if descriptor is not None:
            notice = [wire.shared(frames[0], descriptor)]
            if not self._fill_first[output_id]:
                return notice, writer
            writer.fill(memoryview(frames[1]))
            return notice, None
        if not self.copied:
            print(
                f"car: node `{self.id}` output `{output_id}`: its readers hold every shared-memory slot "
                "(a reader is slow, not started, or keeps old frames); copying frames through the link meanwhile",
                file=sys.stderr,
            )
        self.copied += 1
        return frames, None

    def _send_waiting(self, link: _Link, frames: list[Any]) -> None:
        """Send once the receiver has granted room (a credit); wait for one if needed."""
        assert link.socket is not None  # backpressure links are ZeroMQ links
        while link.credits <= 0:
            if link.socket.poll(SEND_RETRY_MS):
                while True:
                    try:
                        link.credits += int.from_bytes(link.socket.recv(zmq.NOBLOCK), "little")
                    except zmq.Again:
                        break
            else:
                self._drain(self._main, None)  # keep our own queues moving, notice STOP
                if self._stop_seen or self._daemon_gone:
                    link.dropped += 1
                    self._drops_pending = True
                    return
        _send(link.socket, frames, 0)
        link.credits -= 1

    # -- drops ------------------------------------------------------------------------
    def drop_counts(self) -> dict[str, int]:
        """Messages dropped so far: `input NAME` (queue full) and `to NODE/INPUT` (link full)."""
        counts = {f"input {i.name}": i.dropped for i in self._inputs.values() if i.dropped}
        for links in self._outputs.values():
            for link in links:
                if link.dropped:
                    counts[f"to {link.label}"] = counts.get(f"to {link.label}", 0) + link.dropped
        return counts

    def _report_drops(self, final: bool) -> None:
        now = time.monotonic()
        if not final and now < self._next_drop_report:
            return
        parts = []
        for inp in self._inputs.values():
            if inp.dropped > inp.reported:
                parts.append(f"input `{inp.name}` (queue_size {inp.queue_size}): {inp.dropped - inp.reported}")
                inp.reported = inp.dropped
        for links in self._outputs.values():
            for link in links:
                if link.dropped > link.reported:
                    parts.append(f"to {link.label} (receiver not reading): {link.dropped - link.reported}")
                    link.reported = link.dropped
        if parts:
            span = now - self._last_drop_report
            print(f"car: node `{self.id}` dropped in the last {span:.1f} s: {'; '.join(parts)}", file=sys.stderr)
        self._last_drop_report = now
        self._next_drop_report = now + DROP_REPORT_PERIOD_S
        self._drops_pending = False

    # -- life cycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Tell the readers of every output that it is closed, report drops, release sockets."""
        if self._closed:
            return
        self._closed = True
        if self.config.send_eos and not self._dataflow_stopping:
            self._finish_outputs()
        for prefix, line in self._shm_lines:
            finish_reader(prefix, line)
        for writer in self._writers.values():
            writer.close()
        self._report_drops(final=True)
        totals = self.drop_counts()
        if totals:
            summary = ", ".join(f"{k}: {v}" for k, v in totals.items())
            print(f"car: node `{self.id}` dropped in total: {summary}", file=sys.stderr)
        self._tell_daemon({"op": "bye", "node": self.id, "drops": totals, "sent": self.sent, "received": self.received})
        os.write(self._watcher_wakes, b"x")
        if self._watcher is not threading.current_thread():
            self._watcher.join(timeout=2.0)
        self._ctx.destroy(linger=STOPPING_LINGER_MS if self._dataflow_stopping else LINGER_MS)
        for end in self._direct_in + list(self._direct_out.values()):
            end.close()

    def _finish_outputs(self) -> None:
        """Send end-of-stream on every link and wait until every reader has it.

        ZeroMQ discards what a lagging reader has not read yet when the sender goes
        away, so a node that ends waits (at most FLUSH_TIMEOUT_S) for the daemon to
        confirm that each reader got the end of each stream (or exited).
        """
        if not any(self._outputs.values()):
            return
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        stamp = self._clock.now()
        for output, links in self._outputs.items():
            frames = wire.encode(wire.KIND_CLOSED, self._source_bytes[output], stamp)
            for link in links:
                left_ms = max(0, int((deadline - time.monotonic()) * 1000))
                if link.direct is not None:
                    _send_direct_waiting(link.direct, frames[0], left_ms)
                elif link.socket is not None and link.socket.poll(left_ms, zmq.POLLOUT):
                    _send(link.socket, frames, zmq.NOBLOCK)
        answer = None
        try:
            self._control.send_json({"op": "flush", "node": self.id})
            while answer is None and self._control.poll(max(0, int((deadline - time.monotonic()) * 1000))):
                reply = self._control.recv_json()
                answer = reply if isinstance(reply, dict) and "pending" in reply else None
        except zmq.ZMQError:
            pass
        if not isinstance(answer, dict) or answer.get("pending"):
            readers = ", ".join(answer["pending"]) if isinstance(answer, dict) else "its readers"
            print(
                f"car: node `{self.id}` ends before {readers} read its last messages "
                f"(waited {FLUSH_TIMEOUT_S:g} s); those messages may be lost",
                file=sys.stderr,
            )

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_status(self, text: str) -> None:
        """A short line about what this node is doing; `car launch` shows it in its status line."""
        self._status = text

    def stop_dataflow(self, reason: str) -> None:
        """Ask the daemon to stop the whole dataflow (every node gets STOP), e.g. when a task is done."""
        self._tell_daemon({"op": "stop", "node": self.id, "reason": f"node `{self.id}`: {reason}", "reply": False})

    def _tell_daemon(self, message: dict[str, Any]) -> None:
        try:
            self._control.send_json(message, zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # no daemon to tell

    def dataflow_id(self) -> str:
        """The id of the running dataflow (dora-compatible name)."""
        return self.config.run_id

    def _watch_daemon(self) -> None:
        """Report message counts once a second; stop this node when its daemon is gone (even after SIGKILL)."""
        pid = self.config.daemon_pid
        try:
            fd = os.pidfd_open(pid) if pid else -1
        except OSError:
            fd = -1
        reporter = self._ctx.socket(zmq.DEALER)
        reporter.setsockopt(zmq.LINGER, 0)
        reporter.connect(self.config.control_endpoint)
        waits = [self._wake_watcher] + ([fd] if fd >= 0 else [])
        while True:
            ready = select.select(waits, [], [], STATS_PERIOD_S)[0]
            if self._wake_watcher in ready:  # the node is closing
                reporter.close()
                return
            if fd in ready or (pid and fd < 0 and not pid_alive(pid)):
                break
            try:
                stats = {"op": "stats", "node": self.id, "sent": self.sent, "received": self.received}
                reporter.send_json({**stats, "status": self._status}, zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # the daemon is busy; the next report will do
        reporter.close()
        self._daemon_gone = True
        try:
            sock = self._ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.config.receive_endpoint)
            sock.send_multipart(wire.encode(wire.KIND_STOP, b"", Timestamp(time.time_ns(), 0)), zmq.NOBLOCK)
            sock.close()
            print(f"car: the daemon (pid {pid}) is gone; stopping node `{self.id}`", file=sys.stderr)
        except (zmq.ZMQError, OSError):
            pass  # our stderr went with the daemon, or the node is closing anyway
        finally:
            time.sleep(DAEMON_GONE_GRACE_S)
            os._exit(1)


_route = wire.route
_PAYLOAD_FRAME, _SHARED, _KIND_DATA = wire.PAYLOAD_FRAME, wire.SHARED, wire.KIND_DATA
_new_tuple = tuple.__new__  # makes a Timestamp without NamedTuple's __new__ (a Python function: 3x slower)


def _send_direct_waiting(end: socket.socket, frame: bytes, wait_ms: int) -> None:
    """Send one message on a direct link, waiting up to wait_ms for room; give up after that."""
    room = select.poll()
    room.register(end.fileno(), select.POLLOUT)
    if room.poll(wait_ms):
        try:
            end.send(frame)
        except OSError:
            pass  # full again, or the reader's end is gone: its daemon tells it the stream ended


def _send(sock: zmq.Socket[bytes], frames: list[Any], flags: int) -> None:
    """Send one message: one frame, or a header and a large payload (both copied by pyzmq)."""
    if len(frames) == 1:
        sock.send(frames[0], flags)
    else:
        sock.send(frames[0], flags | zmq.SNDMORE)
        # Copied: a zero-copy frame still queued for a reader that died made the process crash at
        # exit (SIGSEGV in pyzmq's release of the buffer). Frames take this path only when every
        # shared-memory slot is held, or for large bytes.
        sock.send(frames[1], 0)  # accepted with its first part: does not block
