"""What one machine's part of a run tells the parts on the other machines (a run a coordinator placed).

The part's daemon calls these as its nodes start and end; car.daemon.run_part sends them
to its machine's daemon, which passes them to the coordinator, which tells the machines
concerned (car.transport.cluster). `car launch` runs every node on one machine and has
no `Elsewhere`.
"""

from __future__ import annotations

from typing import Protocol

from car.transport.control import StreamEnd


class Elsewhere(Protocol):
    """The other machines of a run, as one machine's part sees them."""

    def part_ready(self) -> None:
        """Every node of this part is ready (the timers here then wait until every machine's are)."""

    def nodes_gone(self, nodes: list[str], sources: list[str]) -> None:
        """`nodes` here ended for good: their readers elsewhere get the end of `sources` (their outputs), and
        their senders elsewhere stop sending to them."""

    def nodes_back(self, nodes: list[str]) -> None:
        """`nodes` here started again (restarted, or a dynamic node run again): senders elsewhere resume."""

    def ends_delivered(self, ends: list[StreamEnd]) -> None:
        """Readers here have the end of these streams of nodes elsewhere (their senders wait for it)."""
