"""TCP ports held for sockets that will listen on them, and the address this host is reached at."""

from __future__ import annotations

import socket


def reserve_port(host: str) -> tuple[socket.socket, int]:
    """A TCP port for a node to listen on at `host`, and the socket that holds it until the run ends.

    The socket is bound (with SO_REUSEADDR) but does not listen: no other bind to port 0 on
    this host gets the port meanwhile (two daemons on one host would otherwise race for
    ports they had just probed), while the node's own ZeroMQ bind, which listens, still
    can. `*` or an interface name (`wlan0`, which ZeroMQ binds and a socket cannot): on
    every address."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            probe.bind(("" if host == "*" else host, 0))
        except (OSError, UnicodeError):  # an interface name is not an address
            probe.bind(("", 0))
    except OSError:
        probe.close()
        raise
    port: int = probe.getsockname()[1]
    return probe, port


def address_toward(host: str) -> str:
    """This host's address on the route to `host` (which it is reached at from there); 127.0.0.1 for loopback."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((host, 9))  # a datagram socket sends nothing on connect: the kernel only picks the route
        address: str = probe.getsockname()[0]
        return address
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()
