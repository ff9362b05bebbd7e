"""The run plan of one machine: which nodes it runs, how they are wired, and who else listens.

`plan_machine` is the one function that turns a dataflow into what a daemon runs. A plan
holds the `NodeConfig` of each node deployed on its machine (`car launch`: every node),
and lists the links to readers on other machines for a coordinator to resolve
(`remote_links`). While the run goes on, the plan gains and loses destinations:
`add_subscriber` and `remove_subscriber` change the outputs of the node configurations,
so a node that restarts (or a dynamic node that starts late) starts with the
subscribers of the moment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from car.plan.config import Destination, InputConfig, NodeConfig, SharedOutput
from car.spec.model import Dataflow
from car.transport.shm import segment_dir, segment_prefix, slot_count

SUBSCRIBER_LINES = (
    4  # spare reader lines in each output's shared-memory files: frames reach that many subscribers without a copy
)


@dataclass(frozen=True)
class RemoteLink:
    """An output of a node on this machine read by a node on another one (for a coordinator to wire)."""

    source: str  # node/output
    reader: str
    inputs: tuple[str, ...]
    machine: str


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
    remote_links: list[RemoteLink] = field(default_factory=list)

    def readers(self, source: str) -> list[str]:
        """The nodes of this machine that read `source` (node/output), each once."""
        node, _, output = source.partition("/")
        config = self.nodes.get(node)
        if config is None:
            return []
        seen: list[str] = []
        for dest in config.outputs.get(output, []):
            if not dest.subscription and dest.node not in seen:
                seen.append(dest.node)
        return seen

    def outputs(self) -> list[str]:
        """Every `node/output` of this machine's nodes."""
        return [f"{node}/{output}" for node, config in self.nodes.items() for output in config.outputs]

    def add_subscriber(self, subscription: str, source: str, endpoint: str, queue_size: int) -> SubscriberTarget:
        """Send `source` also to a subscriber at `endpoint`; KeyError when no node here has that output."""
        node, _, output = source.partition("/")
        config = self.nodes[node]
        destinations = config.outputs[output]
        shared = config.shared[output]
        taken = {d.line for d in destinations if d.subscription}
        line = next((k for k in range(shared.readers, shared.lines) if k not in taken), -1)
        dest = Destination(endpoint, subscription, [], queue_size=queue_size, line=line, subscription=subscription)
        destinations.append(dest)
        return SubscriberTarget(node, output, dest, shared.prefix if line >= 0 else "")

    def remove_subscriber(self, subscription: str) -> list[SubscriberTarget]:
        """Forget a subscriber's destinations; the ones it had."""
        removed = []
        for node, config in self.nodes.items():
            for output, destinations in config.outputs.items():
                for dest in [d for d in destinations if d.subscription == subscription]:
                    destinations.remove(dest)
                    removed.append(SubscriberTarget(node, output, dest, config.shared[output].prefix))
        return removed


def _apart(sender_cpus: tuple[int, ...], reader_cpus: tuple[int, ...]) -> bool:
    """Whether two nodes are pinned to CPUs they do not share, so that one runs while the other does."""
    return bool(sender_cpus and reader_cpus) and not set(sender_cpus) & set(reader_cpus)


def plan_machine(
    dataflow: Dataflow,
    run_id: str,
    run_name: str,
    run_dir: str,
    control_endpoint: str,
    machine: str | None = None,
) -> RunPlan:
    """The plan of `machine` (None: every node runs here): endpoints (ipc:// in `run_dir`) and links.

    Each output of a node here gets shared-memory files for its large arrays (made when
    the first one is sent), with a reader line for each node here that reads it and
    SUBSCRIBER_LINES more for subscribers.
    """
    here = [n for n in dataflow.nodes if machine is None or n.machine == machine]
    local = {n.id for n in here}
    machines = {n.id: n.machine for n in dataflow.nodes}
    configs: dict[str, NodeConfig] = {}
    shm_dir = segment_dir(run_dir)
    for index, node in enumerate(dataflow.nodes):
        if node.id not in local:
            continue
        inputs = {}
        for j, (name, inp) in enumerate(node.inputs.items()):
            endpoint = f"ipc://{run_dir}/n{index}i{j}.sock" if inp.queue_policy == "backpressure" else ""
            inputs[name] = InputConfig(inp.source, inp.queue_size, inp.queue_policy, inp.input_timeout, endpoint)
        configs[node.id] = NodeConfig(
            node_id=node.id,
            run_id=run_id,
            run_name=run_name,
            dataflow=str(dataflow.file),
            receive_endpoint=f"ipc://{run_dir}/n{index}.sock",
            control_endpoint=control_endpoint,
            daemon_pid=os.getpid(),
            send_eos=node.restart_policy != "always",
            min_log_level=node.min_log_level,
            output_types=dict(node.output_types),
            inputs=inputs,
            outputs={output: [] for output in node.outputs},
            shared={
                output: SharedOutput(segment_prefix(shm_dir, run_id, index, k), 0, 0)
                for k, output in enumerate(node.outputs)
            },
        )
    plan = RunPlan(machine or "", run_id, configs)
    cpus = {node.id: node.cpu_affinity for node in dataflow.nodes}
    remote: dict[tuple[str, str], list[str]] = {}
    for spec in dataflow.nodes:
        for name, inp in spec.inputs.items():
            source_node = inp.source.split("/", 1)[0]
            if not inp.is_timer and source_node in local and spec.id not in local:
                remote.setdefault((inp.source, spec.id), []).append(name)
    plan.remote_links = [
        RemoteLink(source, reader, tuple(names), machines[reader]) for (source, reader), names in remote.items()
    ]
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
    for config in configs.values():
        for output, destinations in config.outputs.items():
            shared = config.shared[output]
            shared.slots = slot_count([d.queue_size for d in destinations])
            shared.lines = shared.readers + SUBSCRIBER_LINES
    return plan
