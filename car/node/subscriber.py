"""Join a running graph: receive what `node/output`s send, as a node input would.

    from car.node.subscriber import Subscriber

    with Subscriber(["camera/image", "controller"]) as sub:   # `node/output`, `node` (all), or `*`
        for event in sub:                                      # INPUT, INPUT_CLOSED, STOP
            print(event.id, event.value, event.metadata, event.timestamp)

Any process on the machine can subscribe to a running dataflow (found by name, or the only
one running): the recorder, the live view, `car topic echo`, a daemon of another machine.
Each event has the value, metadata and timestamp a node input gets (`event.id` is the
`node/output` it came from); arrays over 64 KiB arrive through the sender's shared memory
as read-only views, without a copy. A subscription is bounded by `queue_size`: a slow
subscriber loses the oldest messages, a stuck one loses what its sender could not hand
it, and the sender never waits for it; `dropped` counts both. Closing (or exiting, or
being killed) ends the subscription; the daemon cleans up after a subscriber that died.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import zmq

from car.node.event import Event
from car.node.inbox import Inbox
from car.node.links import DropFlag
from car.plan.config import RECONNECT_MS, InputConfig
from car.plan.runs import RunError, RunInfo, ask, find_here
from car.transport import control
from car.transport.hlc import HybridLogicalClock

DEFAULT_QUEUE_SIZE = 10


class Subscriber:
    """A subscription to outputs of a running dataflow."""

    def __init__(self, sources: list[str], run: str | RunInfo | None = None, queue_size: int = DEFAULT_QUEUE_SIZE):
        """Subscribe to `sources` of the run named `run` (None: the only one running here); RunError if refused."""
        self.run: RunInfo = run if isinstance(run, RunInfo) else find_here(run)
        self.endpoint = f"ipc://{self.run.folder}/sub-{os.getpid()}-{secrets.token_hex(3)}.sock"
        self._closed = False
        self._finished = False
        reply = ask(
            self.run,
            control.Subscribe(os.getpid(), self.endpoint, list(sources), queue_size),
            control.Subscribed,
        )
        self.id = reply.subscription
        self.sources = [out.source for out in reply.outputs]
        inputs = {
            out.source: InputConfig(out.source, queue_size, "drop_oldest", shm_prefix=out.shm_prefix, shm_line=out.line)
            for out in reply.outputs
        }
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._ctx.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        self._drops = DropFlag()
        try:
            self._inbox = Inbox(
                f"subscriber {self.id}",
                self.endpoint,
                inputs,
                [],
                self._ctx,
                HybridLogicalClock(),
                self._drops,
                lambda _source: None,  # the daemon waits for no subscriber at the end of a stream
                lambda _message: None,  # nor changes its plan
            )
        except BaseException:
            self._leave()
            raise
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
        self._ctx.destroy(linger=0)

    def _leave(self) -> None:
        try:
            ask(self.run, control.Unsubscribe(self.id), control.Done)
        except (RunError, zmq.ZMQError):  # the run has ended: nothing is left to undo
            pass

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
