"""A port that answers typed control messages (car.transport.control) with one handler per type.

The daemon's control socket (nodes, the `car` command and subscribers ask it) and the
coordinator's two sockets (daemons; the `car` command) are each one port. A request
that cannot be read, or that no handler takes, is answered with the `refuse` reply, and
the server goes on. A handler returns its reply, or None when there is none (reports) or
it comes later (`reply_later`: a node's `Flush` is answered once its readers have the end
of its streams; the coordinator answers a CLI once the daemons have).

As python-can's `BusABC` does, `Port` implements the public methods once (`dispatch`,
`reply_later`) and a back end only sends bytes: `Router` over a ZeroMQ ROUTER socket,
`MemoryPort` in memory, for tests that drive a coordinator or a daemon in-process with
the very encoding the wire uses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

import zmq

from car.transport import control

Handler = Callable[[Any, bytes], control.ControlMessage | None]  # (message, the asker's identity) -> reply
Refuse = Callable[[str], control.ControlMessage]  # the reply to a request that cannot be taken
M = TypeVar("M", bound=control.ControlMessage)


class Port(ABC):
    """Answers requests of one direction with the handlers it is given; back ends send the bytes."""

    def __init__(
        self,
        handlers: dict[type[Any], Handler],
        refuse: Refuse,
        takes: type[control.ControlMessage] = control.ControlMessage,
    ):
        """`takes`: the direction of messages it reads (another is refused)."""
        self._handlers = handlers
        self._refuse = refuse
        self._takes = takes
        self.addresses: dict[bytes, str] = {}  # an asker's identity -> where it connects from (tcp://: its IP)

    def dispatch(self, identity: bytes, body: bytes) -> None:
        """Decode one request, hand it to its handler, and send the reply it returns (if any)."""
        answer: control.ControlMessage | None
        try:
            message = control.decode(body, self._takes)
            handler = self._handlers.get(type(message))
            if handler is None:
                raise control.ControlError(f"this side does not take {type(message).__name__} messages")
            answer = handler(message, identity)
        except control.ControlError as exc:
            answer = self._refuse(f"bad request: {exc}")
        if answer is not None:
            self.reply_later(identity, answer)

    def reply_later(self, identity: bytes, answer: control.ControlMessage) -> None:
        """Send `answer` to the asker `identity` (a request whose handler returned None, or a message of its own)."""
        self._send(identity, control.encode(answer))

    @abstractmethod
    def _send(self, identity: bytes, body: bytes) -> None:
        """Send one encoded message to `identity`; never raise (nothing waits for an answer that cannot go)."""

    def close(self) -> None:  # noqa: B027  # a back end that holds nothing keeps this
        """Release what the back end holds."""


class Router(Port):
    """A port on a bound ZeroMQ ROUTER socket (the router owns it)."""

    def __init__(
        self,
        sock: zmq.Socket[bytes],
        handlers: dict[type[Any], Handler],
        refuse: Refuse,
        takes: type[control.ControlMessage] = control.ControlMessage,
    ):
        """`sock`: a bound ROUTER socket."""
        super().__init__(handlers, refuse, takes)
        self.socket = sock

    @classmethod
    def bind(
        cls,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        handlers: dict[type[Any], Handler],
        refuse: Refuse,
        takes: type[control.ControlMessage] = control.ControlMessage,
    ) -> Router:
        """A router on a new ROUTER socket bound at `endpoint`."""
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(endpoint)
        return cls(sock, handlers, refuse, takes)

    def serve(self, wait_ms: int = 0) -> None:
        """Wait up to wait_ms for requests; answer every one that is there."""
        if wait_ms and not self.socket.poll(wait_ms):
            return
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) != 2:
                continue  # not [identity, body]
            identity = frames[0].bytes
            try:
                self.addresses[identity] = str(frames[1].get("Peer-Address"))
            except zmq.ZMQError:
                pass  # ipc:// peers have none
            self.dispatch(identity, frames[1].bytes)

    def _send(self, identity: bytes, body: bytes) -> None:
        try:
            self.socket.send_multipart([identity, body], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the asker is gone (or not reading): nothing waits for this answer

    def close(self) -> None:
        """Close the socket."""
        self.socket.close(linger=0)


class MemoryPort(Port):
    """A port in memory (as pyserial's `loop://`): requests go in with `deliver`, what it sends is kept in
    `sent`, both through the wire's encoding."""

    def __init__(
        self,
        handlers: dict[type[Any], Handler],
        refuse: Refuse,
        takes: type[control.ControlMessage] = control.ControlMessage,
    ):
        """A port with nothing sent yet."""
        super().__init__(handlers, refuse, takes)
        self.sent: list[tuple[bytes, control.ControlMessage]] = []  # (to whom, what), oldest first

    def deliver(self, identity: bytes, message: control.ControlMessage, address: str = "") -> None:
        """`message` arrives from `identity` (connecting from `address`), encoded as on the wire."""
        if address:
            self.addresses[identity] = address
        self.dispatch(identity, control.encode(message))

    def _send(self, identity: bytes, body: bytes) -> None:
        self.sent.append((identity, control.decode(body, control.ControlMessage)))

    def take(self, identity: bytes | None = None, kind: type[M] | None = None) -> list[Any]:
        """Remove and return what was sent (to `identity`, of type `kind`; None: any), oldest first."""
        taken: list[tuple[bytes, control.ControlMessage]] = []
        kept: list[tuple[bytes, control.ControlMessage]] = []
        for to, message in self.sent:
            wanted = (identity is None or to == identity) and (kind is None or isinstance(message, kind))
            (taken if wanted else kept).append((to, message))
        self.sent = kept
        return [message for _, message in taken]
