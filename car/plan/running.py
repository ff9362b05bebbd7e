"""A running graph as the `car` commands reach it: its parts, each on this host or through the coordinator.

A `car launch` run is one part, here. A dataflow a coordinator placed has one part per
machine: a part whose daemon runs on this host is asked through its control socket
(car.plan.runs), any other through the coordinator, which passes the request to that
machine's daemon and the daemon to the part (`cluster.AskPart`). The commands that look
inside a graph (`car top`, `car topic`, `car param`, `car node`) ask `GraphPart`s and do not
care which way a request goes. The coordinator is asked only when one is named
(`--coordinator-addr`, `$CAR_COORDINATOR`) or runs on this host, so that a command about a
`car launch` run never waits for a coordinator that is not there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from car.plan.coordinator_client import ask as ask_coordinator
from car.plan.coordinator_client import control_endpoint
from car.plan.runs import RunError, RunInfo, list_runs, request
from car.transport import cluster, control
from car.transport.states import FlowState, PartState

R = TypeVar("R", bound=control.DaemonReply)


@dataclass
class GraphPart:
    """One machine's part of a running graph (the whole of a `car launch` run), and how to ask it."""

    name: str  # the dataflow's name
    run_id: str
    machine: str  # "" for a `car launch` run
    local: RunInfo | None  # on this host: its run folder and control socket
    coordinator: str = ""  # elsewhere: the coordinator that passes requests on
    machine_key: str = ""  # elsewhere, over CurveZMQ: the machine's public key (Z85), learnt from its answers

    def request(self, message: control.ClientToDaemon, timeout: float = 3.0) -> control.DaemonReply:
        """Send one request to the part and return its answer (RunError if none, or unreadable)."""
        if self.local is not None:
            return request(self.local, message, timeout)
        relayed = ask_coordinator(
            self.coordinator, cluster.AskPart(self.run_id, self.machine, control.encode(message)), cluster.PartReply
        )
        self.machine_key = relayed.machine_key
        try:
            return control.decode(relayed.reply, control.DaemonReply)
        except control.ControlError as exc:
            raise RunError(f"machine `{self.machine}` answered something this car cannot read: {exc}") from None

    def ask(self, message: control.ClientToDaemon, answer: type[R], timeout: float = 3.0) -> R:
        """`request`, expecting an answer of type `answer`; a refusal is a RunError with the part's reason."""
        reply = self.request(message, timeout)
        if isinstance(reply, control.Refused):
            raise RunError(reply.error)
        if not isinstance(reply, answer):
            raise RunError(f"run `{self.name}` answered {type(reply).__name__}, not {answer.__name__}")
        return reply


@dataclass
class RunningGraph:
    """A running dataflow's parts."""

    name: str
    parts: list[GraphPart] = field(default_factory=list)

    def statuses(self) -> list[tuple[GraphPart, control.RunStatus]]:
        """Each part with what it says of its nodes (`ListRun`)."""
        return [(part, part.ask(control.ListRun(), control.RunStatus)) for part in self.parts]

    def launch_env(self) -> dict[str, str]:
        """The environment `car launch`'s options gave every node (empty for a run `car start` placed)."""
        return {key: value for _, status in self.statuses() for key, value in status.launch_env.items()}

    def part_of(self, node: str) -> GraphPart:
        """The part that runs `node`; RunError naming the nodes there are."""
        if len(self.parts) == 1:
            return self.parts[0]  # it says itself which nodes it has when it refuses
        names: list[str] = []
        for part, status in self.statuses():
            if any(row.id == node for row in status.nodes):
                return part
            names += [row.id for row in status.nodes]
        raise RunError(f"dataflow `{self.name}` has no node `{node}` (nodes: {', '.join(names) or 'none'})")

    def part_on(self, machine: str) -> GraphPart:
        """The part that runs on `machine`; RunError naming the machines there are."""
        for part in self.parts:
            if part.machine == machine:
                return part
        names = ", ".join(part.machine for part in self.parts)
        raise RunError(f"dataflow `{self.name}` runs on no machine `{machine}` (machines: {names})")

    def address_of(self, machine: str) -> str:
        """The address other machines reach `machine` at: as its coordinator sees it (this host's when it runs
        here, or without a coordinator)."""
        coordinator = next((part.coordinator for part in self.parts if part.coordinator), "")
        target, named = control_endpoint(coordinator or None)
        if not named:
            return "127.0.0.1"
        for row in ask_coordinator(target, cluster.ListMachines(), cluster.Machines).machines:
            if row.machine == machine and row.address not in ("", "local"):
                return row.address
        return "127.0.0.1"

    def sources_by_part(self, wanted: list[str]) -> list[tuple[GraphPart, list[str]]]:
        """Each part with the sources of `wanted` (`node/output`, `node`, or `*`) its nodes send, leaving out
        parts that send none of them (one part: it gets them all and says itself what it lacks)."""
        if len(self.parts) == 1:
            return [(self.parts[0], wanted)]
        found = []
        for part in self.parts:
            outputs = [t.source for t in part.ask(control.ListTopics(), control.Topics).topics]
            mine = outputs if "*" in wanted else [s for s in wanted if s in outputs or _node_of(s, outputs)]
            if mine:
                found.append((part, mine))
        return found


def _node_of(source: str, outputs: list[str]) -> bool:
    """Whether `source` names a node (no `/`) that sends one of `outputs`."""
    return "/" not in source and any(o.startswith(source + "/") for o in outputs)


def find_graph(name: str | None, coordinator: str | None = None) -> RunningGraph:
    """The running dataflow called `name` (its name or run id), or the only one when `name` is None: a `car launch`
    run here, or a dataflow of the coordinator (`coordinator`, $CAR_COORDINATOR, or the one on this host), or
    else the parts of one that run here."""
    launched = [r for r in list_runs() if not r.machine]
    for run in launched:
        if name in (run.name, run.run_id):
            return RunningGraph(run.name, [GraphPart(run.name, run.run_id, "", run)])
    placed = _placed(coordinator)
    if placed is None:  # no coordinator to ask: what runs here
        placed = _placed_here()
    wanted = [g for g in placed if name is None or name == g.name or any(p.run_id == name for p in g.parts)]
    if name is None:
        every = [RunningGraph(r.name, [GraphPart(r.name, r.run_id, "", r)]) for r in launched] + placed
        if len(every) == 1:
            return every[0]
        if not every:
            raise RunError("no dataflow is running: start one with `car launch FILE` (or `car start FILE`)")
        raise RunError(f"several dataflows are running ({', '.join(g.name for g in every)}): name one")
    if wanted:
        return wanted[0]
    known = ", ".join([r.name for r in launched] + [g.name for g in placed]) or "none"
    raise RunError(f"no running dataflow named `{name}` (running: {known})")


def _placed(coordinator: str | None) -> list[RunningGraph] | None:
    """The coordinator's running dataflows, each part local when its daemon runs here; None without a coordinator."""
    target, named = control_endpoint(coordinator)
    if not named:
        return None
    flows = ask_coordinator(target, cluster.ListDataflows(), cluster.Dataflows).dataflows
    here = {(r.run_id, r.machine): r for r in list_runs() if r.machine}
    graphs = []
    for flow in (f for f in flows if f.state in (FlowState.RUNNING, FlowState.DEGRADED, FlowState.STOPPING)):
        parts = [
            GraphPart(flow.name, flow.run_id, p.machine, here.get((flow.run_id, p.machine)), target)
            for p in flow.parts
            if p.state in (PartState.RUNNING, PartState.UNKNOWN) or (flow.run_id, p.machine) in here
        ]
        graphs.append(RunningGraph(flow.name, parts))
    return graphs


def _placed_here() -> list[RunningGraph]:
    """The dataflows whose parts run on this host, grouped by run."""
    graphs: dict[str, RunningGraph] = {}
    for run in (r for r in list_runs() if r.machine):
        graph = graphs.setdefault(run.run_id, RunningGraph(run.name))
        graph.parts.append(GraphPart(run.name, run.run_id, run.machine, run))
    return list(graphs.values())
