"""The sending side of a node: its outputs, the links to their readers, shared memory, drops.

One class per transport, each implementing `Link`: a `DirectLink` (a socket pair,
car.transport.direct), a `PushLink` (ZeroMQ PUSH: nodes started by hand, nodes without
direct links), a `CreditLink` (ZeroMQ DEALER with credit-based flow control:
`backpressure` inputs) and a `SubscriberLink` (ZeroMQ PUSH to a process that joined the
running graph). Each sends one message whole or counts a drop.

The outbox gains and loses subscriber links while the node runs (`add_subscriber`,
`remove_subscriber`); with none, sending costs what it always did. It also sets aside the
links to a reader that ended for good (`reader_gone`: a backpressure send no longer waits
for it) and takes them back when that reader starts again (`reader_back`). These plan
changes are applied by the node between sends (car.node.api), never during one: a
backpressure send that waits for credits reads the node's inbox, and only learns there
that its reader has gone (`Outbox.leaving`).
"""

from __future__ import annotations

import math
import platform
import select
import socket
import sys
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import zmq

from car.node.drops import DropFlag
from car.plan.config import TRANSIT_HWM, Destination, NodeConfig, add_destination
from car.transport import control, direct, wire
from car.transport.hlc import HybridLogicalClock
from car.transport.shm import FrameWriter

if TYPE_CHECKING:  # zmq.auth costs every node 30 ms to import: only nodes with keys load it
    from car.transport.keys import Keys

# Notify first and copy after, so the reader's work overlaps the copy, only where the CPU
# makes stores visible in program order (x86): Python has no memory fences, and elsewhere
# (ARM, RISC-V) only the send's system call orders the copy before the notification. And
# only to readers pinned to other CPUs (Destination.apart): a reader that shares the
# sender's CPU (the kernel tends to wake it there) would preempt the sender, find the slot
# unfinished and hand the CPU back; there the copy comes first (measured: notify-first
# 6 % slower unpinned, 24 % faster pinned apart, for 921,600 B frames).
NOTIFY_FIRST = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686"}
SEND_RETRY_MS = 100  # a backpressure send re-checks for STOP this often
LINGER_MS = 1000  # at exit, how long queued messages may take to reach live readers
REMOTE_HWM = 100  # messages in transit to a reader on another machine before the sender drops (frames are large)


class UnknownOutputError(ValueError):
    """send_output was called with an output the dataflow file does not declare."""


class Link(ABC):
    """One reader (or subscriber) of an output, and what was dropped on the way to it."""

    __slots__ = ("dropped", "label", "local", "reader", "reported")

    def __init__(self, label: str, local: bool, reader: str = ""):
        self.label = label
        self.local = local  # the reader maps this output's shared memory: it gets the short notice
        self.reader = reader  # the reading node ("" for a subscriber)
        self.dropped = 0
        self.reported = 0

    @abstractmethod
    def send(self, frames: list[Any], outbox: Outbox) -> None:
        """Send one message, or count a drop; never raise."""

    @abstractmethod
    def finish(self, frames: list[Any], wait_ms: int) -> None:
        """Send the end of the stream, waiting up to wait_ms for room."""

    def close(self) -> None:  # noqa: B027  # a link that owns nothing of its own keeps this
        """Release what this link alone owns."""

    def restart(self) -> None:  # noqa: B027  # a link without flow control keeps this
        """The reader started again: what was in transit to its old process is lost."""


class DirectLink(Link):
    """A socket pair to a node on this machine: a send is one datagram or, when it is full, a drop."""

    __slots__ = ("end", "failed")

    def __init__(self, end: socket.socket, label: str, reader: str):
        super().__init__(label, True, reader)
        self.end = end
        self.failed = False  # a send failed for another reason than a full link (reported once)

    def send(self, frames: list[Any], outbox: Outbox) -> None:
        try:
            if len(frames) == 1:
                self.end.send(frames[0])
            else:
                self.end.sendmsg(frames)
        except BlockingIOError:
            self.dropped += 1
            outbox.drops.pending = True
        except OSError as exc:
            self._refused(frames, exc, outbox)

    def _refused(self, frames: list[Any], exc: OSError, outbox: Outbox) -> None:
        """The link refused a message (other than for being full): count it, and say why once."""
        self.dropped += 1
        outbox.drops.pending = True
        if self.failed:
            return
        self.failed = True
        size = sum(memoryview(frame).nbytes for frame in frames)
        print(
            f"car: node `{outbox.node_id}` cannot send a message of {size} bytes to {self.label} ({exc.strerror}): "
            f"it could not go through shared memory, and a link on this machine takes at most "
            f"{direct.largest_message(self.end)} bytes (net.core.wmem_max); such messages are dropped",
            file=sys.stderr,
        )

    def finish(self, frames: list[Any], wait_ms: int) -> None:
        room = select.poll()
        room.register(self.end.fileno(), select.POLLOUT)
        if room.poll(wait_ms):
            try:
                self.end.send(frames[0])
            except OSError:
                pass  # full again, or the reader's end is gone: its daemon tells it the stream ended


class PushLink(Link):
    """A ZeroMQ PUSH socket (shared by every output going to the same endpoint): full means a drop.

    `copy` False (a reader on another machine, over tcp://): a large payload goes out from the
    sender's own buffer, which ZeroMQ keeps alive until it has been sent."""

    __slots__ = ("copy", "socket")

    def __init__(self, sock: zmq.Socket[bytes], label: str, local: bool, reader: str = "", copy: bool = True):
        super().__init__(label, local, reader)
        self.socket = sock
        self.copy = copy

    def send(self, frames: list[Any], outbox: Outbox) -> None:
        try:
            send_frames(self.socket, frames, zmq.NOBLOCK, self.copy)
        except zmq.Again:
            self.dropped += 1
            outbox.drops.pending = True

    def finish(self, frames: list[Any], wait_ms: int) -> None:
        if self.socket.poll(wait_ms, zmq.POLLOUT):
            try:
                send_frames(self.socket, frames, zmq.NOBLOCK)
            except zmq.Again:
                pass


class CreditLink(PushLink):
    """A `backpressure` input's own socket: the sender waits for room (credits) instead of dropping."""

    __slots__ = ("credits", "room")

    def __init__(self, sock: zmq.Socket[bytes], label: str, local: bool, reader: str, room: int, copy: bool = True):
        super().__init__(sock, label, local, reader, copy)
        self.room = room  # the reader's queue size
        self.credits = room  # messages the reader still has room for

    def send(self, frames: list[Any], outbox: Outbox) -> None:
        """Send once the reader has granted room (a credit); wait for one if needed, unless the node is
        stopping (a drop) or the reader ended for good (its daemon says so, see `Outbox.reader_gone`)."""
        while self.credits <= 0:
            if not outbox.gave_up and self.socket.poll(SEND_RETRY_MS):
                self._take_credits()
            elif outbox.gave_up or outbox.stopping():  # give up, and from now on do not wait at all
                outbox.gave_up = True
                self.dropped += 1
                outbox.drops.pending = True
                return
            elif self.reader in outbox.leaving:  # learnt while `stopping()` read the daemon's messages
                return
        send_frames(self.socket, frames, 0, self.copy)
        self.credits -= 1

    def _take_credits(self) -> int:
        """Add the credits the reader has sent; how many."""
        taken = 0
        while True:
            try:
                taken += int.from_bytes(self.socket.recv(zmq.NOBLOCK), "little")
            except zmq.Again:
                self.credits += taken
                return taken

    def restart(self) -> None:
        """The reader's queue is new and empty: its whole room is ours (credits of the old process are void)."""
        self._take_credits()
        self.credits = self.room


class SubscriberLink(PushLink):
    """A subscriber's socket (its own): full means a drop, and the subscriber is told how many it missed.

    The count travels in-band: before the next message that gets through, a
    `wire.KIND_DROPPED` message says how many were dropped since the last one.
    """

    __slots__ = ("line", "missed", "subscription")

    def __init__(self, sock: zmq.Socket[bytes], subscription: str, line: int):
        super().__init__(sock, f"subscriber {subscription}", line >= 0)  # reader "": no node
        self.subscription = subscription
        self.line = line  # its reader line in the output's shared-memory files, or -1
        self.missed = 0  # dropped since the subscriber was last told

    def send(self, frames: list[Any], outbox: Outbox) -> None:
        try:
            if self.missed:
                notice = wire.encode(wire.KIND_DROPPED, b"", (0, 0), self.missed)
                send_frames(self.socket, notice, zmq.NOBLOCK)
                self.missed = 0
            send_frames(self.socket, frames, zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            self.missed += 1

    def finish(self, frames: list[Any], wait_ms: int) -> None:
        try:  # a subscriber that is not reading is not waited for
            send_frames(self.socket, frames, zmq.NOBLOCK)
        except zmq.Again:
            pass

    def close(self) -> None:
        """Close it, giving what is still queued (the last messages) LINGER_MS to reach the subscriber: closed at
        once, a busy machine's recorder lost a run's last messages, uncounted."""
        self.socket.close(linger=LINGER_MS)


class Loan(NamedTuple):
    """A shared-memory slot lent to the node by `allocate_output`, until its array is sent or collected."""

    output: str
    slot: int
    segment: Any
    array: weakref.ref[np.ndarray[Any, Any]]


class SetAside(NamedTuple):
    """A link to a reader that ended for good, kept for when it starts again."""

    output: str
    link: Link


class Outbox:
    """A node's outputs: their links, their shared-memory rings, lent slots, and what was dropped."""

    def __init__(
        self,
        config: NodeConfig,
        ctx: zmq.Context[zmq.Socket[bytes]],
        clock: HybridLogicalClock,
        drops: DropFlag,
        stopping: Callable[[], bool],
        keys: Keys | None = None,
    ):
        """`stopping`: called while a backpressure send waits for room; it keeps the node's own
        receiving going and says whether the node is stopping (then the send gives up). `keys`:
        for links to other machines over CurveZMQ."""
        self.node_id = config.node_id
        self._keys = keys
        self.dataflow = config.dataflow
        self._ctx = ctx
        self._clock = clock
        self.drops = drops
        self.stopping = stopping
        self.gave_up = False  # a backpressure send gave up waiting because the node is stopping
        self.leaving: set[str] = set()  # readers the daemon said ended, until the node applies it (reader_gone)
        self.closed = False
        self.sent = 0  # send_output calls
        self.copied = 0  # large arrays sent through the socket because every shared-memory slot was held
        self._sockets: dict[str, zmq.Socket[bytes]] = {}
        self._direct_out: dict[int, socket.socket] = {}
        self._source_bytes = {output: self.id_of(output).encode() for output in config.outputs}
        self._writers = {o: FrameWriter(sh.prefix, sh.readers, sh.slots, sh.lines) for o, sh in config.shared.items()}
        self._destinations = config.outputs
        self.outputs: dict[str, list[Link]] = {}
        for output, destinations in config.outputs.items():
            self.outputs[output] = [self._link(dest, output) for dest in destinations]
        self._refresh()
        self.loans: dict[int, Loan] = {}  # see allocate
        self._set_aside: list[SetAside] = []  # links to readers that ended (reader_gone)

    def id_of(self, output: str) -> str:
        """`node/output`: the source name readers see."""
        return f"{self.node_id}/{output}"

    def _link(self, dest: Destination, output: str) -> Link:
        label = ", ".join(f"{dest.node}/{i}" for i in dest.inputs)
        if dest.subscription:
            own = self._ctx.socket(zmq.PUSH)
            own.setsockopt(zmq.SNDHWM, max(1, dest.queue_size))
            own.setsockopt(zmq.LINGER, 0)
            if dest.server_key:
                if self._keys is None:
                    raise RuntimeError(f"node `{self.node_id}` has no keys to reach {dest.endpoint} over CurveZMQ")
                self._keys.connect_to(own, dest.server_key.encode())
            own.connect(dest.endpoint)
            writer = self._writers.get(output)
            if writer is not None and dest.line >= 0:
                writer.subscribe(dest.line, dest.keep)
            return SubscriberLink(own, dest.subscription, dest.line if writer is not None else -1)
        if dest.fd >= 0:
            end = self._direct_out.get(dest.fd)
            if end is None:
                end = self._direct_out[dest.fd] = direct.open_end(dest.fd, self.node_id)
            return DirectLink(end, label, dest.node)
        sock = self._sockets.get(dest.endpoint)
        if sock is None:
            sock = self._ctx.socket(zmq.DEALER if dest.backpressure else zmq.PUSH)
            # to another machine: no more in transit than the reader queues (frames are large, networks slow)
            sock.setsockopt(zmq.SNDHWM, REMOTE_HWM if dest.remote else TRANSIT_HWM)
            sock.setsockopt(zmq.LINGER, LINGER_MS)
            if dest.server_key:
                if self._keys is None:
                    raise RuntimeError(f"node `{self.node_id}` has no keys to reach {dest.endpoint} over CurveZMQ")
                self._keys.connect_to(sock, dest.server_key.encode())
            sock.connect(dest.endpoint)
            self._sockets[dest.endpoint] = sock
        if dest.backpressure:
            return CreditLink(sock, label, dest.line >= 0, dest.node, dest.queue_size, copy=not dest.remote)
        return PushLink(sock, label, dest.line >= 0, dest.node, copy=not dest.remote)

    def _refresh(self) -> None:
        """Recompute what depends on the set of links: which outputs share memory, and in which order."""
        self._sharing = {o for o, links in self.outputs.items() if o in self._writers and any(x.local for x in links)}
        self._fill_first = {  # copy a large payload into its slot before the notification goes out
            output: not NOTIFY_FIRST
            or any(d.backpressure or (d.line >= 0 and not d.apart and not d.subscription) for d in destinations)
            for output, destinations in self._destinations.items()
        }

    # -- subscribers ----------------------------------------------------------------------
    def add_subscriber(
        self,
        output: str,
        subscription: str,
        endpoint: str,
        queue_size: int,
        line: int,
        server_key: str = "",
        keep: bool = False,
    ) -> None:
        """Send `output` also to a subscriber (again: nothing changes); `server_key`: one elsewhere over CurveZMQ;
        `keep`: one that keeps frames (car.transport.shm.FrameWriter.subscribe)."""
        links = self.outputs.get(output)
        if links is None or any(isinstance(x, SubscriberLink) and x.subscription == subscription for x in links):
            return
        dest = Destination.to_subscriber(endpoint, subscription, queue_size, line, server_key, keep)
        self._destinations[output].append(dest)
        links.append(self._link(dest, output))
        self._refresh()

    def remove_subscriber(self, output: str, subscription: str) -> None:
        """Stop sending `output` to a subscriber."""
        links = self.outputs.get(output, [])
        for link in [x for x in links if isinstance(x, SubscriberLink) and x.subscription == subscription]:
            links.remove(link)
            writer = self._writers.get(output)
            if writer is not None and link.line >= 0:
                writer.unsubscribe(link.line)
            link.close()
        self._destinations[output][:] = [d for d in self._destinations[output] if d.subscription != subscription]
        self._refresh()

    # -- readers connected and disconnected while the graph runs (`car node connect|disconnect|add`) -----
    def add_destination(self, added: control.AddDestination) -> None:
        """Send an output also to a node (over ZeroMQ, without shared memory; over tcp:// to one elsewhere); again:
        its inputs are added (car.plan.config.add_destination)."""
        links = self.outputs.get(added.output)
        if links is None:
            return
        dest = add_destination(self._destinations[added.output], added)
        if dest is not None:
            links.append(self._link(dest, added.output))
            self._refresh()

    def remove_destination(self, output: str, reader: str) -> None:
        """Stop sending `output` to node `reader`."""
        links = self.outputs.get(output, [])
        links[:] = [x for x in links if isinstance(x, SubscriberLink) or x.reader != reader]
        self._destinations[output][:] = [d for d in self._destinations[output] if d.subscription or d.node != reader]
        self._refresh()

    # -- readers that end and start again ----------------------------------------------------
    def reader_gone(self, reader: str) -> None:
        """Node `reader` ended for good: its links are set aside (between sends: see the module's docstring)."""
        self.leaving.discard(reader)
        for output, links in self.outputs.items():
            self._set_aside += [SetAside(output, x) for x in links if x.reader == reader]
            links[:] = [x for x in links if x.reader != reader]
        self._refresh()

    def reader_restarted(self, reader: str) -> None:
        """Node `reader` started again: its links here are as for a new reader (`Link.restart`: a backpressure send
        waiting for the old process's credits has the new one's whole room). Safe during a send."""
        self.leaving.discard(reader)
        for links in self.outputs.values():
            for link in links:
                if link.reader == reader:
                    link.restart()

    def reader_back(self, reader: str) -> None:
        """Node `reader` started again after it had ended for good: its links set aside are back, each as for a new
        reader (between sends: see the module's docstring)."""
        self.leaving.discard(reader)
        for aside in [a for a in self._set_aside if a.link.reader == reader]:
            self._set_aside.remove(aside)
            aside.link.restart()
            self.outputs[aside.output].append(aside.link)
        self._refresh()

    # -- sending ---------------------------------------------------------------------------
    def links(self, output_id: str) -> list[Link]:
        """The links of an output, or a clear error naming the outputs the dataflow file declares."""
        links = self.outputs.get(output_id)
        if links is None:
            declared = ", ".join(self.outputs) or "none"
            raise UnknownOutputError(
                f"node `{self.node_id}` has no output `{output_id}` (declared: {declared}); "
                f"add it under `outputs:` of node `{self.node_id}` in {self.dataflow}"
            )
        return links

    def send(self, output_id: str, data: Any, metadata: dict[str, Any] | None) -> None:
        """Send `data` on a declared output to every link."""
        links = self.links(output_id)
        if self.closed:
            raise RuntimeError(f"node `{self.node_id}` is closed; it cannot send any more")
        if not links:  # nobody reads it (yet): nothing to encode
            self.sent += 1
            return
        frames = wire.encode(wire.KIND_DATA, self._source_bytes[output_id], self._clock.tick(), data, metadata)
        filling = None  # a shared-memory slot to fill after the notifications went out
        local = self._publish_loan(output_id, data, frames) if self.loans else None
        if local is not None and any(not link.local for link in links):
            # The payload is the lent slot, lent again once the readers here let go of it, while a message to
            # another machine may still wait in ZeroMQ (sent without a copy): those get a copy of their own.
            frames = [frames[0], memoryview(frames[1]).tobytes()]
        if local is None:
            local = frames
            if len(frames) == 2 and output_id in self._sharing:
                local, filling = self._share(output_id, frames)
        self.sent += 1
        try:
            for link in links:
                link.send(local if link.local else frames, self)
        finally:
            if filling is not None:
                filling.fill(memoryview(frames[1]))

    def allocate(self, output_id: str, shape: int | tuple[int, ...], dtype: Any = np.uint8) -> Any:
        """A writable array for `output_id`, in its shared memory when readers here map it (see Node.allocate_output)."""
        self.links(output_id)
        dtype = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        nbytes = dtype.itemsize * math.prod(shape)
        writer = self._writers.get(output_id)
        if writer is None or output_id not in self._sharing or nbytes <= wire.INLINE_MAX:
            return np.empty(shape, dtype)
        loan = writer.loan(nbytes)
        if loan is None:  # every slot held: an ordinary array, sent by copy
            return np.empty(shape, dtype)
        slot, buffer = loan
        array = np.ndarray(shape, dtype, buffer)
        key = id(array)
        segment = writer.segment

        def unsent(_: object) -> None:  # collected without being sent: the slot is free again
            if self.loans.pop(key, None) is not None and writer.segment is segment:
                writer.give_back(slot)

        self.loans[key] = Loan(output_id, slot, segment, weakref.ref(array, unsent))
        return array

    def _publish_loan(self, output_id: str, data: Any, frames: list[Any]) -> list[Any] | None:
        """If `data` is the array allocate lent for this output: publish it where it is; the notice to send."""
        loan = self.loans.get(id(data))
        writer = self._writers.get(output_id)
        array = loan.array() if loan is not None else None
        if array is None or array is not data or loan is None or loan.output != output_id:
            return None
        if writer is None or loan.segment is not writer.segment:
            return None
        del self.loans[id(data)]
        array.flags.writeable = False  # its readers have it now
        return [wire.shared(frames[0], writer.publish(loan.slot, frames[1].nbytes))]

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
                f"car: node `{self.node_id}` output `{output_id}`: its readers hold every shared-memory slot "
                "(a reader is slow, not started, or keeps old frames); copying frames through the link meanwhile",
                file=sys.stderr,
            )
        self.copied += 1
        return frames, None

    # -- drops and the end ---------------------------------------------------------------------
    def drop_counts(self) -> dict[str, int]:
        """Messages dropped on links so far, by `to NODE/INPUT` (or `to subscriber ID`)."""
        counts: dict[str, int] = {}
        for links in self.outputs.values():
            for link in links:
                if link.dropped:
                    counts[f"to {link.label}"] = counts.get(f"to {link.label}", 0) + link.dropped
        return counts

    def unreported_drops(self) -> list[str]:
        """What was dropped on node links since the last report, as phrases (subscribers are told in-band)."""
        parts = []
        for links in self.outputs.values():
            for link in links:
                if link.dropped > link.reported and not isinstance(link, SubscriberLink):
                    parts.append(f"to {link.label} (receiver not reading): {link.dropped - link.reported}")
                link.reported = link.dropped
        return parts

    def finish(self, wait_until: Callable[[], int]) -> bool:
        """Send end-of-stream on every link; False when there was nothing to send it on.

        `wait_until()`: milliseconds left to wait for room on a link.
        """
        if not any(self.outputs.values()):
            return False
        stamp = self._clock.now()
        for output, links in self.outputs.items():
            frames = wire.encode(wire.KIND_CLOSED, self._source_bytes[output], stamp)
            for link in links:
                link.finish(frames, wait_until())
        return True

    def close(self) -> None:
        """Unmap the shared-memory rings and close the sockets this outbox owns."""
        self.closed = True
        for writer in self._writers.values():
            writer.close()
        for links in self.outputs.values():
            for link in links:
                link.close()
        for end in self._direct_out.values():
            end.close()


def send_frames(sock: zmq.Socket[bytes], frames: list[Any], flags: int, copy: bool = True) -> None:
    """Send one message: one frame, or a header and a large payload (copied by pyzmq unless `copy` is False)."""
    if len(frames) == 1:
        sock.send(frames[0], flags)
    else:
        sock.send(frames[0], flags | zmq.SNDMORE)
        # Copied on this machine: a zero-copy frame still queued for a reader that died made the process
        # crash at exit (SIGSEGV in pyzmq's release of the buffer). Frames take this path here only when
        # every shared-memory slot is held, or for large bytes. To another machine the payload is not
        # copied: the node closes its context (Node.close) before the interpreter ends.
        sock.send(frames[1], 0, copy=copy)  # accepted with its first part: does not block
