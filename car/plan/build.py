"""The run plan of one machine: which nodes it runs, how they are wired, and who else listens.

`plan_machine` is the one function that turns a dataflow into what a daemon runs. A plan
holds the `NodeConfig` of each node deployed on its machine (`car launch`: every node).
Links to and from other machines go node to node over tcp://: `remote_keys` names what
a machine's nodes must listen on for readers elsewhere, and the `Wiring` a coordinator
gathers from every machine says where to bind and where to connect. While the run goes on, the plan gains and loses destinations:
`add_subscriber` and `remove_subscriber` change the outputs of the node configurations,
so a node that restarts (or a dynamic node that starts late) starts with the
subscribers of the moment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from car.plan.config import Destination, InputConfig, NodeConfig, OperatorConfig, SharedOutput
from car.spec.model import LOG_LEVELS, Dataflow, NodeSpec, QueuePolicy, RestartPolicy
from car.transport.shm import segment_dir, segment_prefix, slot_count

SUBSCRIBER_LINES = (
    4  # spare reader lines in each output's shared-memory files: frames reach that many subscribers without a copy
)


@dataclass(frozen=True)
class Wiring:
    """The tcp:// endpoints of a run split over machines, by key: a node (its receive socket for inputs
    from other machines) or `node/input` (a backpressure input from another machine: a socket of its own)."""

    listen: dict[str, str] = field(default_factory=dict)  # keys of this machine's nodes -> endpoint to bind
    reach: dict[str, str] = field(default_factory=dict)  # keys of other machines' nodes -> endpoint to connect to
    # With CurveZMQ (car.transport.keys): this machine's keys folder, the public key of the machine
    # behind each `reach` endpoint, and the public keys of the run's machines (who may send here).
    keys_dir: str = ""
    server_keys: dict[str, str] = field(default_factory=dict)
    peers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SubscriberTarget:
    """Where one subscribed output goes: the sending node's output and the destination it gained."""

    node: str
    output: str
    destination: Destination
    shm_prefix: str


@dataclass
class RunPlan:
    """What the daemon of `machine` runs."""

    machine: str
    run_id: str
    nodes: dict[str, NodeConfig]  # the nodes on this machine, by id

    def readers(self, source: str, elsewhere: bool = False) -> list[str]:
        """The nodes that read `source` (node/output of a node here), each once: those of this machine, or
        with `elsewhere` those on other machines."""
        node, _, output = source.partition("/")
        config = self.nodes.get(node)
        if config is None:
            return []
        seen: list[str] = []
        for dest in config.outputs.get(output, []):
            if not dest.subscription and dest.remote == elsewhere and dest.node not in seen:
                seen.append(dest.node)
        return seen

    def senders_to(self, reader: str) -> list[str]:
        """The nodes of this machine that send to node `reader` (here or elsewhere)."""
        return [
            node
            for node, config in self.nodes.items()
            if any(d.node == reader and not d.subscription for dests in config.outputs.values() for d in dests)
        ]

    def outputs(self) -> list[str]:
        """Every `node/output` of this machine's nodes."""
        return [f"{node}/{output}" for node, config in self.nodes.items() for output in config.outputs]

    def add_subscriber(
        self,
        subscription: str,
        source: str,
        endpoint: str,
        queue_size: int,
        shared: bool = True,
        server_key: str = "",
        keep: bool = False,
    ) -> SubscriberTarget:
        """Send `source` also to a subscriber at `endpoint` (`shared`: on this host, a reader of its shared memory;
        `server_key`: elsewhere over CurveZMQ; `keep`: it keeps frames); KeyError when no node here has that output."""
        node, _, output = source.partition("/")
        config = self.nodes[node]
        destinations = config.outputs[output]
        memory = config.shared[output]
        taken = {d.line for d in destinations if d.subscription}
        free = (k for k in range(memory.readers, memory.lines) if k not in taken)
        line = next(free, -1) if shared else -1
        dest = Destination.to_subscriber(endpoint, subscription, queue_size, line, server_key, keep)
        destinations.append(dest)
        return SubscriberTarget(node, output, dest, memory.prefix if line >= 0 else "")

    def remove_subscriber(self, subscription: str) -> list[SubscriberTarget]:
        """Forget a subscriber's destinations; the ones it had."""
        removed = []
        for node, config in self.nodes.items():
            for output, destinations in config.outputs.items():
                for dest in [d for d in destinations if d.subscription == subscription]:
                    destinations.remove(dest)
                    removed.append(SubscriberTarget(node, output, dest, config.shared[output].prefix))
        return removed


def _log_level(node: NodeSpec) -> str:
    """A node's `min_log_level`; a runtime node's is its most talkative operator's (each filters its own)."""
    if not node.operators:
        return node.min_log_level
    return max((op.min_log_level or "info" for op in node.operators), key=LOG_LEVELS.index)


def _apart(sender_cpus: tuple[int, ...], reader_cpus: tuple[int, ...]) -> bool:
    """Whether two nodes are pinned to CPUs they do not share, so that one runs while the other does."""
    return bool(sender_cpus and reader_cpus) and not set(sender_cpus) & set(reader_cpus)


def remote_keys(dataflow: Dataflow, machine: str) -> list[str]:
    """What the nodes of `machine` listen on for their readers on other machines (see `Wiring`)."""
    machines = {n.id: n.machine for n in dataflow.nodes}
    keys: list[str] = []
    for node in dataflow.nodes:
        if node.machine != machine:
            continue
        for name, inp in node.inputs.items():
            if inp.from_daemon or machines.get(inp.source_node, machine) == machine:
                continue
            key = f"{node.id}/{name}" if inp.queue_policy == QueuePolicy.BACKPRESSURE else node.id
            if key not in keys:
                keys.append(key)
    return keys


@dataclass(frozen=True)
class RunPlace:
    """Where a run's nodes find it: its id and name, its folder on this machine, its daemon's control socket."""

    run_id: str
    run_name: str
    run_dir: str
    control_endpoint: str


def node_config(
    node: NodeSpec, index: int, dataflow: Dataflow, place: RunPlace, wiring: Wiring | None = None
) -> NodeConfig:
    """One node's configuration, its links not yet made: `index` (unique in the run) names its sockets and
    shared-memory files; `wiring`: its tcp:// endpoints for other machines."""
    wiring = wiring or Wiring()
    run_dir = place.run_dir
    inputs = {}
    for j, (name, inp) in enumerate(node.inputs.items()):
        if node.operators and inp.source_node == node.id:
            continue  # from one of its own operators to another: its runtime hands the value over (car.operators)
        endpoint = ""
        if inp.queue_policy == QueuePolicy.BACKPRESSURE:
            endpoint = wiring.listen.get(f"{node.id}/{name}") or f"ipc://{run_dir}/n{index}i{j}.sock"
        inputs[name] = InputConfig(inp.source, inp.queue_size, inp.queue_policy, inp.input_timeout, endpoint)
    shm_dir = segment_dir(run_dir)
    return NodeConfig(
        node_id=node.id,
        run_id=place.run_id,
        run_name=place.run_name,
        dataflow=str(dataflow.file),
        receive_endpoint=f"ipc://{run_dir}/n{index}.sock",
        remote_endpoint=wiring.listen.get(node.id, ""),
        keys_dir=wiring.keys_dir,
        peers=list(wiring.peers),
        control_endpoint=place.control_endpoint,
        daemon_pid=os.getpid(),
        send_eos=node.restart_policy != RestartPolicy.ALWAYS,
        min_log_level=_log_level(node),
        output_types=dict(node.output_types),
        inputs=inputs,
        outputs={output: [] for output in node.outputs},
        shared={
            output: SharedOutput(segment_prefix(shm_dir, place.run_id, index, k), 0, 0, SUBSCRIBER_LINES)
            for k, output in enumerate(node.outputs)
        },
        operators=[
            OperatorConfig(
                op.id,
                op.python,
                op.port_prefix,
                {name: inp.source for name, inp in op.inputs.items()},
                list(op.outputs),
                op.send_stdout_as,
                op.send_logs_as,
                op.min_log_level,
                {name: inp.queue_size for name, inp in op.inputs.items()},
            )
            for op in node.operators
        ],
        restart_policy=node.restart_policy.value,
        max_restarts=node.max_restarts,
        restart_delay=node.restart_delay,
    )


def plan_machine(
    dataflow: Dataflow,
    run_id: str,
    run_name: str,
    run_dir: str,
    control_endpoint: str,
    machine: str | None = None,
    wiring: Wiring | None = None,
) -> RunPlan:
    """The plan of `machine` (None: every node runs here): endpoints (ipc:// in `run_dir`; tcp:// from
    `wiring` for links with other machines) and links.

    Each output of a node here gets shared-memory files for its large arrays (made when
    the first one is sent), with a reader line for each node here that reads it and
    SUBSCRIBER_LINES more for subscribers. Readers on other machines get whole messages.
    """
    wiring = wiring or Wiring()
    here = [n for n in dataflow.nodes if machine is None or n.machine == machine]
    local = {n.id for n in here}
    configs: dict[str, NodeConfig] = {}
    for index, node in enumerate(dataflow.nodes):
        if node.id in local:
            configs[node.id] = node_config(
                node, index, dataflow, RunPlace(run_id, run_name, run_dir, control_endpoint), wiring
            )
    plan = RunPlan(machine or "", run_id, configs)
    cpus = {node.id: node.cpu_affinity for node in dataflow.nodes}
    for receiver in configs.values():
        by_source: dict[str, Destination] = {}
        for name, input_config in receiver.inputs.items():
            source_node, _, output = input_config.source.partition("/")
            if input_config.source.startswith("dora/") or source_node not in configs:
                continue  # a timer, or a node on another machine
            destinations = configs[source_node].outputs[output]
            shared = configs[source_node].shared[output]
            dest = None if input_config.endpoint else by_source.get(input_config.source)
            if dest is None:
                endpoint = input_config.endpoint or receiver.receive_endpoint
                apart = _apart(cpus[source_node], cpus[receiver.node_id])
                backpressure = bool(input_config.endpoint)
                dest = Destination(
                    endpoint, receiver.node_id, [], backpressure, input_config.queue_size, shared.readers, apart=apart
                )
                shared.readers += 1
                destinations.append(dest)
                if not input_config.endpoint:
                    by_source[input_config.source] = dest
            dest.inputs.append(name)
            dest.queue_size = max(dest.queue_size, input_config.queue_size)
            input_config.shm_prefix, input_config.shm_line = shared.prefix, dest.line
    _wire_remote_readers(dataflow, configs, local, wiring)
    for config in configs.values():
        for output, destinations in config.outputs.items():
            shared = config.shared[output]
            shared.slots = slot_count([d.queue_size for d in destinations if not d.remote])
            shared.lines = shared.readers + SUBSCRIBER_LINES
    return plan


def _wire_remote_readers(dataflow: Dataflow, configs: dict[str, NodeConfig], local: set[str], wiring: Wiring) -> None:
    """Give this machine's outputs their readers on other machines: one destination per (output, reader),
    and one per backpressure input, at the endpoints the wiring says they listen on."""
    for spec in dataflow.nodes:
        if spec.id in local:
            continue
        by_source: dict[str, Destination] = {}
        for name, inp in spec.inputs.items():
            if inp.from_daemon or inp.source_node not in local:
                continue
            backpressure = inp.queue_policy == QueuePolicy.BACKPRESSURE
            key = f"{spec.id}/{name}" if backpressure else spec.id
            endpoint = wiring.reach.get(key)
            if endpoint is None:
                continue  # not wired (a plan for a look, without a coordinator)
            dest = None if backpressure else by_source.get(inp.source)
            if dest is None:
                server_key = wiring.server_keys.get(key, "")
                dest = Destination(
                    endpoint, spec.id, [], backpressure, inp.queue_size, remote=True, server_key=server_key
                )
                configs[inp.source_node].outputs[inp.source_output].append(dest)
                if not backpressure:
                    by_source[inp.source] = dest
            dest.inputs.append(name)
            dest.queue_size = max(dest.queue_size, inp.queue_size)
