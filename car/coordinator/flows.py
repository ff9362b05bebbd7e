"""The dataflows a coordinator has placed on machines: each one's parts, states, and who reads whom.

A `Flow` is a checked dataflow and its `PlacedPart`s, one per machine it names. The questions
the coordinator asks of the graph when a machine's nodes end or come back (which other
machines read what they send, which send to them) are answered here, from the dataflow
alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from car.spec.model import Dataflow
from car.transport import control
from car.transport.states import FlowState, PartState


@dataclass
class PlacedPart:
    """A dataflow's nodes on one machine."""

    machine: str
    state: PartState = PartState.PREPARING
    listen: dict[str, str] | None = None  # where its nodes listen for nodes elsewhere, once prepared
    nodes: list[control.NodeRow] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    ready: bool = False  # its nodes are ready


@dataclass(kw_only=True)
class Flow:
    """A dataflow placed on machines."""

    run_id: str
    name: str
    dataflow: Dataflow
    text: str  # the file as the CLI that started it read it
    parts: dict[str, PlacedPart]
    started: float
    state: FlowState = FlowState.STARTING
    asker: bytes = b""  # the CLI waiting for the start's answer
    deadline: float = 0.0  # by when every machine must have prepared it
    ended_at: float = 0.0
    adopted_at: float = 0.0  # when a daemon told this coordinator of it (it was started before a restart)

    def nodes_on(self, machine: str) -> list[str]:
        """The nodes on `machine`."""
        return [n.id for n in self.dataflow.nodes if n.machine == machine]

    def sources_on(self, machine: str) -> list[str]:
        """Every `node/output` of the nodes on `machine`."""
        return [f"{n.id}/{o}" for n in self.dataflow.nodes if n.machine == machine for o in n.outputs]

    def machine_of(self, node: str) -> str:
        """Where `node` runs ("" when the dataflow has no such node)."""
        return next((n.machine for n in self.dataflow.nodes if n.id == node), "")

    def senders_elsewhere(self, readers: list[str], machine: str) -> dict[str, list[str]]:
        """Machine -> those of `readers` (nodes on `machine`) its nodes send to, for the machines other than `machine`."""
        found: dict[str, list[str]] = {}
        for node in (n for n in self.dataflow.nodes if n.id in readers):
            for inp in node.inputs.values():
                sender_machine = "" if inp.from_daemon else self.machine_of(inp.source_node)
                if sender_machine not in ("", machine) and node.id not in found.get(sender_machine, []):
                    found.setdefault(sender_machine, []).append(node.id)
        return found

    def readers_elsewhere(self, sources: list[str], machine: str) -> dict[str, list[str]]:
        """Machine -> the `sources` its nodes read, for the machines other than `machine`."""
        wanted = set(sources)
        found: dict[str, list[str]] = {}
        for node in self.dataflow.nodes:
            if node.machine == machine:
                continue
            for inp in node.inputs.values():
                if inp.source in wanted and inp.source not in found.get(node.machine, []):
                    found.setdefault(node.machine, []).append(inp.source)
        return found

    def has_ended(self) -> bool:
        """Whether every part has ended (then the flow has: see `Coordinator._maybe_ended`)."""
        return not any(p.state.live for p in self.parts.values())

    def outcome(self) -> FlowState:
        """How the flow ended: failed when a part failed."""
        return FlowState.FAILED if any(p.state == PartState.FAILED for p in self.parts.values()) else FlowState.FINISHED


def unique_name(stem: str, taken: set[str], now: datetime) -> str:
    """A run name from the file's stem and the time, not one of `taken`."""
    base = f"{stem}-{now:%Y%m%d-%H%M%S}"
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}-{k}"
    return name
