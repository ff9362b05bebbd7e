"""Each operator input's bound: its `queue_size` (dora's default 10), as a node's input queue has (car.node.queues).

The runtime's receiving thread takes the node's events as they come and puts each on its
operator's cart, so the node's own input queues never fill: the bound is kept on the cart
instead, one lane per input (car.operators.scheduler.Lane). When an input has more than
`queue_size` events waiting for its operator, the oldest of them leaves the cart and is
counted as dropped (a `queue_size: 1` input keeps the latest by design: what it replaces
is counted as superseded), so an operator that falls behind (blocked in I/O, or slower
than its inputs) holds at most `queue_size` events of each input, and the frames they
hold, never a growing backlog. Drops are reported with the node's own (its log, its
totals, `car top`): car.node.api.Node.count_drops.
"""

from __future__ import annotations

from dataclasses import dataclass

from car.node.drops import DropFlag
from car.operators.scheduler import Lane


@dataclass(eq=False)
class InputBound:
    """One operator input's lane, the node's port it is, and what of its drops was reported."""

    port: str  # `OPID/input` (a single `operator:`'s own input name)
    lane: Lane
    reported: int = 0


class InputBounds:
    """The bounds of every operator input of one runtime."""

    def __init__(self, flag: DropFlag):
        """`flag`: the node's, set on each drop so the node reports it."""
        self._flag = flag
        self._bounds: list[InputBound] = []

    def lanes(self, inputs: dict[str, tuple[str, int]]) -> dict[str, Lane]:
        """One operator's lanes, by its input's name (its INPUT events go in them; others are never dropped):
        `inputs` gives each input's port and queue_size."""
        lanes = {}
        for name, (port, size) in inputs.items():
            bound = InputBound(port, Lane(size))
            self._bounds.append(bound)
            lanes[name] = bound.lane
        return lanes

    def pushed_out(self, lane: Lane) -> None:
        """`lane`'s oldest event was dropped for a newer one: the node reports it (unless that is by design)."""
        if lane.size > 1:
            self._flag.pending = True

    # -- counts, as the node reports its own (car.node.drops.DropSource) ------------------------------
    def drop_counts(self) -> dict[str, int]:
        """Events dropped so far, by `input NAME`."""
        return {f"input {b.port}": b.lane.pushed_out for b in self._bounds if b.lane.size > 1 and b.lane.pushed_out}

    def unreported_drops(self) -> list[str]:
        """What was dropped since the last report, as phrases."""
        parts = []
        for bound in self._bounds:
            dropped = bound.lane.pushed_out
            if bound.lane.size > 1 and dropped > bound.reported:
                parts.append(f"input `{bound.port}` (queue_size {bound.lane.size}): {dropped - bound.reported}")
                bound.reported = dropped
        return parts

    def superseded(self) -> int:
        """Events replaced by newer ones in `queue_size: 1` inputs (by design, not a loss to warn about)."""
        return sum(b.lane.pushed_out for b in self._bounds if b.lane.size == 1)
