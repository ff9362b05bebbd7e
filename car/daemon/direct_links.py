"""The direct links of one run (car.transport.direct): which node pairs get a socket pair, made by the daemon."""

from __future__ import annotations

import resource
import socket

from car.plan.config import NodeConfig
from car.plan.runs import RunError
from car.spec.model import TIMER_PREFIX
from car.transport import direct


class DirectLinks:
    """The socket pairs of one run, created by the daemon; `fds(node)` are the ends a node inherits."""

    def __init__(self, configs: dict[str, NodeConfig], dynamic: set[str]):
        """Give every ZeroMQ-free destination (not backpressure, neither end dynamic) a socket pair.

        Sets `Destination.fd` (the sender's end) and `NodeConfig.direct_fds` (the receiver's ends);
        `timer_ends` holds the daemon's end of a pair to every node that reads a timer. `unavailable` says why
        every link stays on ZeroMQ (None: they do not). RunError when the kernel refuses a pair (too many open
        files, say), with every pair made so far closed.
        """
        self._sockets: list[socket.socket] = []
        self._fds: dict[str, list[int]] = {node: [] for node in configs}
        self.timer_ends: dict[str, socket.socket] = {}  # node id -> the end the daemon's timers send on
        self.unavailable = direct.unavailable()
        if self.unavailable is not None:
            return
        try:
            self._make(configs, dynamic)
        except OSError as exc:
            made = len(self._sockets) // 2
            self.close()
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            raise RunError(
                f"cannot make the run's direct links: socketpair failed after {made} pairs ({exc.strerror or exc}); "
                f"each link takes two file descriptors: raise the open-file limit (`ulimit -n`, now {soft})"
            ) from None

    def _make(self, configs: dict[str, NodeConfig], dynamic: set[str]) -> None:
        for node, config in configs.items():
            if node not in dynamic and any(i.source.startswith(TIMER_PREFIX) for i in config.inputs.values()):
                self.timer_ends[node] = self._pair(None, config)
                self.timer_ends[node].setblocking(False)
        pairs: dict[tuple[str, str], int] = {}  # (sender, receiver) -> the sender's end
        for sender, config in configs.items():
            for destinations in config.outputs.values():
                for dest in destinations:
                    if dest.backpressure or dest.remote or sender in dynamic or dest.node in dynamic:
                        continue
                    fd = pairs.get((sender, dest.node))
                    if fd is None:
                        fd = pairs[(sender, dest.node)] = self._pair(sender, configs[dest.node]).fileno()
                    dest.fd = fd

    def _pair(self, sender: str | None, receiver: NodeConfig) -> socket.socket:
        """A socket pair from `sender` (None: the daemon itself) to `receiver`; the sending end."""
        ends = direct.pair()
        self._sockets += ends
        sending, receiving = (end.fileno() for end in ends)
        if sender is not None:
            self._fds[sender].append(sending)
        self._fds[receiver.node_id].append(receiving)
        receiver.direct_fds.append(receiving)
        return ends[0]

    def fds(self, node: str) -> list[int]:
        """The file descriptors node `node` must inherit."""
        return self._fds.get(node, [])

    def close(self) -> None:
        """Close the daemon's copies of every end (at the end of the run)."""
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
