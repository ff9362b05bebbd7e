"""Join a running graph: receive what `node/output`s send, as a node input would.

    from car.node.subscriber import Subscriber

    with Subscriber(["camera/image", "controller"]) as sub:   # `node/output`, `node` (all), or `*`
        for event in sub:                                      # INPUT, INPUT_CLOSED, STOP
            print(event.id, event.value, event.metadata, event.timestamp)

Any process can subscribe to a running dataflow (found by name, or the only one running):
the recorder, the live view, `car topic echo`. Each event has the value, metadata and
timestamp a node input gets (`event.id` is the `node/output` it came from). On the host
of the sending nodes, arrays over 64 KiB arrive through the sender's shared memory as
read-only views, without a copy. From another host (a part of a coordinator's dataflow
that runs elsewhere, car.plan.running) the subscriber listens on tcp:// (CurveZMQ with this
host's keys, letting in only that machine), its requests go through the coordinator, and
it renews its subscription every few seconds: one that stops renewing is ended there. A subscription is bounded by `queue_size`: a slow
subscriber loses the oldest messages, a stuck one loses what its sender could not hand
it, and the sender never waits for it; `dropped` counts both. A frame's shared-memory slot
may be reused before a slow subscriber takes it (a counted drop too); a recorder asks for
`keep_frames`, and the senders then grow their rings rather than reuse a slot it lacks.
Closing (or exiting, or being killed) ends the subscription; the daemon cleans up after a
subscriber that died.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import zmq
from zmq.auth.thread import ThreadAuthenticator

from car.node.drops import DropFlag
from car.node.event import Event
from car.node.inbox import Inbox
from car.plan.config import RECONNECT_MS, InputConfig
from car.plan.running import GraphPart, find_graph
from car.plan.runs import RunError
from car.spec.model import QueuePolicy
from car.transport import control
from car.transport.hlc import HybridLogicalClock
from car.transport.keys import authenticator, load_keys
from car.transport.ports import address_toward, reserve_port

DEFAULT_QUEUE_SIZE = 10
LEASE_S = 10.0  # from another host: the subscription ends there unless renewed within this time
RENEW_S = 3.0  # ... and is renewed this often


class Subscriber:
    """A subscription to outputs of a running dataflow."""

    def __init__(
        self,
        sources: list[str],
        run: str | GraphPart | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        keep_frames: bool = False,
    ):
        """Subscribe to `sources` of the run named `run` (None: the only one running), or of one part of a run;
        RunError if refused. Of a dataflow on several machines, `sources` are of one machine's part.
        `keep_frames` (a recorder): the senders on this host keep each frame in their shared memory until this
        subscriber has it, while their rings can grow (car.transport.shm.FrameWriter.subscribe)."""
        self.run: GraphPart = run if isinstance(run, GraphPart) else _part_for(sources, run)
        self._closed = False
        self._finished = False
        self._auth: ThreadAuthenticator | None = None
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._ctx.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        keys, probe = None, None
        if self.run.local is not None:
            self.endpoint = f"ipc://{self.run.local.folder}/sub-{os.getpid()}-{secrets.token_hex(3)}.sock"
            receive, remote = self.endpoint, ""
            request = control.Subscribe(os.getpid(), self.endpoint, list(sources), queue_size, keep=keep_frames)
        else:  # the senders are on another host: they connect here over tcp://
            keys = load_keys()
            host = address_toward(urlsplit(self.run.coordinator).hostname or "127.0.0.1")
            probe, port = reserve_port(host)  # held until the inbox listens on it
            self.endpoint = remote = f"tcp://{host}:{port}"
            receive = f"inproc://subscriber-{secrets.token_hex(4)}"  # the daemon's own messages come over tcp too
            key = keys.public.decode() if keys is not None else ""
            request = control.Subscribe(0, self.endpoint, list(sources), queue_size, LEASE_S, key, keep_frames)
        try:
            reply = self.run.ask(request, control.Subscribed)
        except BaseException:
            if probe is not None:
                probe.close()
            self._ctx.destroy(linger=0)
            raise
        self.id = reply.subscription
        self._leaving = threading.Event()
        self._renewer: threading.Thread | None = None
        if self.run.local is None:  # held however long the subscriber takes between reads
            self._renewer = threading.Thread(target=self._renew, name=f"renew {self.id}", daemon=True)
            self._renewer.start()
        self.sources = [out.source for out in reply.outputs]
        inputs = {
            out.source: InputConfig(
                out.source, queue_size, QueuePolicy.DROP_OLDEST, shm_prefix=out.shm_prefix, shm_line=out.line
            )
            for out in reply.outputs
        }
        self._drops = DropFlag()
        try:
            if keys is not None:  # only the machine the coordinator vouched for may send here
                self._auth = authenticator(self._ctx, keys, peers=[self.run.machine_key])
            self._inbox = Inbox(
                f"subscriber {self.id}",
                receive,
                inputs,
                [],
                self._ctx,
                clock=HybridLogicalClock(),
                drops=self._drops,
                on_end_of_stream=lambda _source: None,  # the daemon waits for no subscriber at the end of a stream
                on_control=lambda _message: None,  # nor changes its plan
                remote_endpoint=remote,
                keys=keys,
            )
        except BaseException:
            self._leave()
            self._stop_auth()
            self._ctx.destroy(linger=0)
            raise
        finally:
            if probe is not None:
                probe.close()
        self._inbox.main.setsockopt(zmq.RCVHWM, max(1, queue_size))

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        event = self.recv()
        if event is None:
            raise StopIteration
        return event

    def recv(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting at most `timeout` seconds (None: no limit); None on timeout and after STOP."""
        event = self._inbox.next(timeout, self._finished or self._closed)
        if event is not None and event.type == "STOP":
            self._finished = True
        return event

    @property
    def finished(self) -> bool:
        """The run said STOP (it is ending): `recv` returns None from now on."""
        return self._finished

    @property
    def dropped(self) -> int:
        """Messages this subscriber lost: the oldest, from its full queue, and those its senders could not hand it."""
        return sum(self._inbox.drop_counts().values()) + self._inbox.missed

    def close(self) -> None:
        """End the subscription (the daemon also notices a subscriber that exited without closing)."""
        if self._closed:
            return
        self._closed = True
        self._inbox.close()
        self._leave()
        self._stop_auth()
        self._ctx.destroy(linger=0)

    def _renew(self) -> None:
        """Renew the subscription every RENEW_S until it is closed (from another host; requests are thread-safe)."""
        while not self._leaving.wait(RENEW_S):
            try:
                self.run.ask(control.Renew(self.id), control.Done)
            except RunError:  # the run ended, or the coordinator is away a moment: its lease says what happens
                pass

    def _leave(self) -> None:
        self._leaving.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            self.run.ask(control.Unsubscribe(self.id), control.Done)
        except (RunError, zmq.ZMQError):  # the run has ended: nothing is left to undo
            pass

    def _stop_auth(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _part_for(sources: list[str], run: str | None) -> GraphPart:
    """The part of the run named `run` whose nodes send `sources` (all of them on one machine)."""
    graph = find_graph(run)
    if len(graph.parts) == 1:
        return graph.parts[0]
    nodes = {source.partition("/")[0] for source in sources}
    if "*" in nodes or len(nodes) != 1:
        raise RunError(f"dataflow `{graph.name}` runs on several machines: subscribe to one node's outputs at a time")
    return graph.part_of(nodes.pop())
