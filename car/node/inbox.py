"""The receiving side of a node (or subscriber): its sockets and shared memory, over the queues of car.node.queues.

Messages from nodes the daemon started on this machine, and timer ticks, arrive over
direct links (car.transport.direct). Everything else arrives on one ZeroMQ PULL socket
(plus one per `backpressure` input, whose sender waits for the credits returned here):
the daemon's other messages, nodes started by hand, and, for a subscriber, everything.
"""

from __future__ import annotations

import mmap
import select
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq

from car.node.drops import DropFlag
from car.node.event import Event
from car.node.queues import Input, InputQueues
from car.plan.config import TRANSIT_HWM, InputConfig
from car.transport import control, direct, wire
from car.transport.hlc import HybridLogicalClock
from car.transport.shm import FrameReader, Hold, finish_reader, reset_reader

if TYPE_CHECKING:  # zmq.auth costs every node 30 ms to import: only nodes with keys load it
    from car.transport.keys import Keys

DRAIN_BATCH = 256  # messages moved from a socket into the queues per receive, at most

_route = wire.route
_PAYLOAD_FRAME = wire.PAYLOAD_FRAME
_VALUE_TYPE, _VT_ARROW = ~(wire.PAYLOAD_FRAME | wire.SHARED) & 0xFF, wire.VT_ARROW


class Inbox(InputQueues):
    """Sockets in, queues per input (car.node.queues), events out (`next`, `pop`)."""

    def __init__(
        self,
        owner: str,
        receive_endpoint: str,
        inputs: dict[str, InputConfig],
        direct_fds: list[int],
        ctx: zmq.Context[zmq.Socket[bytes]],
        *,
        clock: HybridLogicalClock,
        drops: DropFlag,
        on_end_of_stream: Callable[[str], None],
        on_control: Callable[[control.DaemonToNode], None],
        remote_endpoint: str = "",
        keys: Keys | None = None,
    ):
        """`owner` names the node (or subscriber) in messages; the callbacks take what is not data. With
        `keys`, what it listens on over tcp:// (from other machines) takes only CurveZMQ peers."""
        super().__init__(inputs, clock, drops, on_end_of_stream, on_control)
        self._keys = keys
        self.owner = owner
        self._direct_in = [direct.open_end(fd, owner) for fd in direct_fds]
        self._direct_by_fd = {sock.fileno(): sock for sock in self._direct_in}
        largest = max((direct.largest_message(sock) for sock in self._direct_in), default=0)
        # anonymous memory: a page is touched only when a message reaches it (a bytearray would zero all of it)
        self._receive_buffer = mmap.mmap(-1, max(largest, 1))

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
        self._polled: list[Input] = []  # backpressure inputs, each with its own socket
        for name, spec in inputs.items():
            if spec.endpoint:
                inp = self.inputs[name]
                inp.socket = ctx.socket(zmq.ROUTER)
                inp.socket.setsockopt(zmq.LINGER, 0)
                self._bind_remote(inp.socket, spec.endpoint)
                self._polled.append(inp)
        self._fd_poll: select.poll | None = None  # with more than the main socket to wait on
        self._main_more = False  # the last drain of the main socket stopped before it was empty
        if self._polled or self._direct_in:
            self._fd_poll = select.poll()
            for zsock in [self.main] + [inp.socket for inp in self._polled if inp.socket is not None]:
                self._fd_poll.register(int(zsock.getsockopt(zmq.FD)), select.POLLIN)
            for fd in self._direct_by_fd:
                self._fd_poll.register(fd, select.POLLIN)

    def bind_remote(self, endpoint: str) -> None:
        """Receive also at `endpoint` (tcp://, nodes on other machines), on the main socket."""
        self._bind_remote(self.main, endpoint)

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

    def _hold_shared(self, header: bytes, line: int, readers: int) -> Any:
        """Hold the shared-memory slot the message names, for `readers` inputs on reader line `line`."""
        return self._frames.hold(wire.inline_payload(header), line, readers)

    def _release(self, shared: Hold) -> None:
        self._frames.release(shared[0], shared[1])

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

    def close(self) -> None:
        """This reader reads no more: its shared-memory lines hold nothing; close its direct links."""
        for prefix, line in self.shm_lines:
            finish_reader(prefix, line)
        for end in self._direct_in:
            end.close()
