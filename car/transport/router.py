"""A ROUTER socket that answers typed control messages (car.transport.control) with one handler per type.

The daemon's control socket (nodes, the `car` command and subscribers ask it) and the
coordinator's two sockets (daemons; the `car` command) are each one `Router`. A request
that cannot be read, or that no handler takes, is answered with the `refuse` reply, and
the server goes on. A handler returns its reply, or None when there is none (reports) or
it comes later (`reply_later`: a node's `Flush` is answered once its readers have the end
of its streams; the coordinator answers a CLI once the daemons have).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zmq

from car.transport import control

Handler = Callable[[Any, bytes], control.ControlMessage | None]  # (message, the asker's identity) -> reply


class Router:
    """Answers one ROUTER socket with the handlers it is given."""

    def __init__(
        self,
        sock: zmq.Socket[bytes],
        handlers: dict[type[Any], Handler],
        refuse: Callable[[str], control.ControlMessage],
        takes: type[control.ControlMessage] = control.ControlMessage,
    ):
        """`sock`: a bound ROUTER socket (the router owns it); `takes`: the direction of messages it reads."""
        self.socket = sock
        self._handlers = handlers
        self._refuse = refuse
        self._takes = takes
        self.addresses: dict[bytes, str] = {}  # an asker's identity -> where it connects from (tcp://: its IP)

    @classmethod
    def bind(
        cls,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        handlers: dict[type[Any], Handler],
        refuse: Callable[[str], control.ControlMessage],
        takes: type[control.ControlMessage] = control.ControlMessage,
    ) -> Router:
        """A router on a new ROUTER socket bound at `endpoint`."""
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(endpoint)
        return cls(sock, handlers, refuse, takes)

    def serve(self, wait_ms: int) -> None:
        """Wait up to wait_ms for requests; answer every one that is there."""
        if not self.socket.poll(wait_ms):
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
            answer: control.ControlMessage | None
            try:
                message = control.decode(frames[1].bytes, self._takes)
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
        try:
            self.socket.send_multipart([identity, control.encode(answer)], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the asker is gone (or not reading): nothing waits for this answer

    def close(self) -> None:
        """Close the socket."""
        self.socket.close(linger=0)
