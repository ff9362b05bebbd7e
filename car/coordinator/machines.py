"""The machines a coordinator knows: each daemon's identity, heartbeat and clock offset.

The coordinator pings every machine each `heartbeat` seconds; a machine whose answer has
not come for `timeout` seconds is lost (longer while it starts a run's nodes: starting
many Python processes at once can starve its daemon of the CPU for longer than that on a
small computer; measured: 4.1 s, 64 nodes on 2 cores).
"""

from __future__ import annotations

from dataclasses import dataclass

STARTING_TIMEOUT_S = 15.0  # how long a machine starting a run's nodes may be silent
LOCAL_ADDRESSES = ("", "127.0.0.1", "::1")  # a daemon beside the coordinator connects from one of these


@dataclass(kw_only=True)
class Machine:
    """A daemon the coordinator knows."""

    id: str
    identity: bytes  # its DEALER socket's identity on the daemon port
    host: str  # its host name, as it says
    address: str  # where it connects from ("" over ipc://)
    pid: int
    last_seen: float  # monotonic seconds of its last sign of life
    offset_ns: int = 0  # its wall clock minus the coordinator's
    rtt_ns: int = 0
    lost: bool = False
    public_key: str = ""  # its CurveZMQ key (Z85), when it joined with keys
    starting_until: float = 0.0  # while it starts a run's nodes, the longer STARTING_TIMEOUT_S applies

    @property
    def local(self) -> bool:
        """Whether the daemon runs beside the coordinator."""
        return self.address in LOCAL_ADDRESSES

    def silent_too_long(self, now: float, timeout: float) -> bool:
        """Whether a connected machine has been silent past its limit now (then it is lost)."""
        limit = max(timeout, STARTING_TIMEOUT_S) if now < self.starting_until else timeout
        return not self.lost and now - self.last_seen > limit

    def answered(self, sent_ns: int, daemon_ns: int, now_ns: int, now: float) -> bool:
        """A heartbeat's answer: the round trip and clock offset; True when it had been lost."""
        self.rtt_ns = now_ns - sent_ns
        self.offset_ns = daemon_ns - (sent_ns + now_ns) // 2
        self.last_seen = now
        was_lost, self.lost = self.lost, False
        return was_lost
