"""The coordinator's process: its two ROUTER sockets (daemons; the `car` command), keys, signals, the loop.

The decisions are car.coordinator.coordinator's; this module only binds the sockets the
coordinator answers on and runs the one poll loop (car.transport.poll_loop) until a
shutdown (`car down`, or a signal) has finished.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import zmq

from car.coordinator.coordinator import Coordinator
from car.plan.signals import catch_stop_signals
from car.transport import control
from car.transport.keys import Keys, authenticator
from car.transport.poll_loop import PollLoop
from car.transport.router import Handler, Refuse, Router

LOOP_MS = 50
HEARTBEAT_IVL_MS = 1000  # ZMTP heartbeats: a dead TCP connection is noticed
HEARTBEAT_TIMEOUT_MS = 3000


def serve(
    daemon_endpoint: str,
    control_endpoint: str,
    *,
    heartbeat: float = 0.5,
    timeout: float = 3.0,
    say: Callable[[str], None] = print,
    keys: Keys | None = None,
) -> int:
    """Run a coordinator on the two endpoints until it is shut down; 0. With `keys`, both ports take only
    CurveZMQ peers whose public keys are trusted (car.transport.keys). zmq.ZMQError when it cannot bind."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    auth = authenticator(ctx, keys, say) if keys is not None else None

    def port(endpoint: str) -> Callable[[dict[type[Any], Handler], Refuse, type[control.ControlMessage]], Router]:
        def make(handlers: dict[type[Any], Handler], refuse: Refuse, takes: type[control.ControlMessage]) -> Router:
            sock = ctx.socket(zmq.ROUTER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
            if keys is not None:
                keys.serve(sock)
            sock.bind(endpoint)
            return Router(sock, handlers, refuse, takes)

        return make

    signals: list[int] = []
    try:
        coordinator = Coordinator(
            port(daemon_endpoint),
            port(control_endpoint),
            heartbeat=heartbeat,
            timeout=timeout,
            say=say,
            encrypted=keys is not None,
        )
        daemons, clients = coordinator.daemons, coordinator.clients
        assert isinstance(daemons, Router) and isinstance(clients, Router)
        catch_stop_signals(signals.append)
        say(f"coordinator {daemon_endpoint} (daemons), {control_endpoint} (car commands)")
        loop = PollLoop(LOOP_MS)
        loop.add(daemons.socket, daemons.serve)
        loop.add(clients.socket, clients.serve)

        def on_signal(_: float) -> None:
            if signals:
                coordinator.begin_shutdown(f"{signal.Signals(signals.pop()).name} received")

        loop.every(0.0, on_signal)
        loop.every(heartbeat, coordinator.ping)
        loop.every(0.0, coordinator.expire)
        loop.run(coordinator.done)
        coordinator.close()
    finally:
        if auth is not None:
            auth.stop()
        ctx.destroy(linger=200)
    return 0
