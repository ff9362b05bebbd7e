"""The daemon's control socket: typed requests in, one handler per message type, replies out.

Nodes, the `car` command and subscribers talk to the daemon on one ROUTER socket
(car.transport.control). A request that cannot be read, or that no handler takes, is
answered with `Refused`, and the daemon goes on. A handler returns its reply, or None
when there is none (node reports) or it comes later (`reply_later`: a node's `Flush` is
answered once its readers have the end of its streams).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zmq

from car.transport import control

Handler = Callable[[Any, bytes], control.DaemonReply | None]  # (message, the asker's identity) -> reply


class ControlServer:
    """Answers the control socket of one run with the handlers it is given."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, handlers: dict[type[Any], Handler]):
        self._socket = ctx.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(endpoint)
        self._handlers = handlers

    def serve(self, wait_ms: int) -> None:
        """Wait up to wait_ms for requests; answer every one that is there."""
        if not self._socket.poll(wait_ms):
            return
        while True:
            try:
                identity, raw = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                continue  # not [identity, body]
            answer: control.DaemonReply | None
            try:
                message = control.decode(raw, control.ControlMessage)
                handler = self._handlers.get(type(message))
                if handler is None:
                    raise control.ControlError(f"the daemon does not take {type(message).__name__} messages")
                answer = handler(message, identity)
            except control.ControlError as exc:
                answer = control.Refused(f"bad request: {exc}")
            if answer is not None:
                self.reply_later(identity, answer)

    def reply_later(self, identity: bytes, answer: control.DaemonReply) -> None:
        """Answer the asker `identity` (a request whose handler returned None)."""
        self._socket.send_multipart([identity, control.encode(answer)])
