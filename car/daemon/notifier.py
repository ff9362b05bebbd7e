"""The daemon's own messages to nodes' and subscribers' receive sockets (STOP, CLOSED, control).

One PUSH socket per receive endpoint, made on first use. A send never waits: a receiver
that is not reading (its queue of 100 is full) loses the message, and the terminal says so.
A subscriber on another host listens as a CurveZMQ server when there are keys (`secure`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zmq

from car.transport import wire
from car.transport.hlc import HybridLogicalClock
from car.transport.keys import Keys

QUEUE = 100  # messages waiting for one receiver before the daemon gives up on it


class Notifier:
    """Sends wire frames from the daemon; `say` reports one that could not be delivered."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], say: Callable[[str], None], keys: Keys | None = None):
        """`keys`: this machine's, to reach receivers that are CurveZMQ servers (`secure`)."""
        self._ctx = ctx
        self._say = say
        self._keys = keys
        self._clock = HybridLogicalClock()
        self._sockets: dict[str, zmq.Socket[bytes]] = {}
        self._servers: dict[str, str] = {}  # endpoint -> its public key (Z85)

    def secure(self, endpoint: str, server_key: str) -> None:
        """The receiver at `endpoint` is a CurveZMQ server with this public key (a subscriber elsewhere)."""
        self._servers[endpoint] = server_key

    def send(self, endpoint: str, kind: int, source: bytes, value: Any = None) -> None:
        """One message to the receive socket at `endpoint`, never waiting (said on the terminal when it is lost)."""
        if not self.try_send(endpoint, kind, source, value):
            self._say(f"{endpoint} is not reading; a control message was not delivered")

    def try_send(
        self, endpoint: str, kind: int, source: bytes, value: Any = None, metadata: dict[str, Any] | None = None
    ) -> bool:
        """One message to the receive socket at `endpoint` if its queue has room: whether it went."""
        sock = self._sockets.get(endpoint)
        if sock is None:
            sock = self._ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, QUEUE)
            server_key = self._servers.get(endpoint)
            if server_key and self._keys is not None:
                self._keys.connect_to(sock, server_key.encode())
            sock.connect(endpoint)
            self._sockets[endpoint] = sock
        try:
            sock.send_multipart(wire.encode(kind, source, self._clock.now(), value, metadata), zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def forget(self, endpoint: str) -> None:
        """Close the socket to a receiver that has gone (a subscriber that left)."""
        self._servers.pop(endpoint, None)
        sock = self._sockets.pop(endpoint, None)
        if sock is not None:
            sock.close()
