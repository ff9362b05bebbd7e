"""What the daemon tells each node: its inputs, its outputs' destinations, its endpoints.

A `NodeConfig` travels to the node as JSON in the environment variable `CAR_NODE_CONFIG`
(set it yourself to run a node by hand; `car run-node` does it for you). `plan_run`
assigns the endpoints of one run, so two runs never share a socket.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from car.shm import segment_dir, segment_prefix, slot_count
from car.spec import Dataflow

ENV_VAR = "CAR_NODE_CONFIG"

# Messages a drop_oldest link holds in transit (sender and receiver pipes) before the
# sender counts drops; the receiver drains the link into its input queues on every
# receive, so this is only reached when a node stops reading altogether.
TRANSIT_HWM = 1000

# How soon a socket retries a connect that failed because its peer has not bound yet
# (ZeroMQ's default, 100 ms, would hold back the first messages of every run).
RECONNECT_MS = 10


@dataclass
class Destination:
    """One socket an output's messages go to."""

    endpoint: str
    node: str
    inputs: list[str]
    backpressure: bool = False
    queue_size: int = TRANSIT_HWM  # the longest queue of its inputs (backpressure: the sender's credits)
    line: int = -1  # the reader's line in the output's shared-memory files (-1: not on this machine)
    fd: int = -1  # the sender's end of a direct link to that node (car.direct), set by the daemon; -1: ZeroMQ
    apart: bool = False  # sender and reader are pinned to CPUs they do not share (cpu_affinity)


@dataclass
class InputConfig:
    """How a node queues one input."""

    source: str
    queue_size: int
    queue_policy: str
    input_timeout: float | None = None
    endpoint: str = ""  # a socket of its own (credit-based flow control), for backpressure inputs only
    shm_prefix: str = ""  # the source output's shared-memory files (car.shm), when it is on this machine
    shm_line: int = -1  # this reader's line in them


@dataclass
class SharedOutput:
    """Where an output puts large arrays for readers on this machine (see car.shm)."""

    prefix: str
    readers: int
    slots: int


@dataclass
class NodeConfig:
    """Everything a node needs to join a running dataflow."""

    node_id: str
    run_id: str
    run_name: str
    dataflow: str
    receive_endpoint: str
    control_endpoint: str
    daemon_pid: int
    send_eos: bool = True  # False when the daemon restarts the node whenever it exits
    inputs: dict[str, InputConfig] = field(default_factory=dict)
    outputs: dict[str, list[Destination]] = field(default_factory=dict)
    shared: dict[str, SharedOutput] = field(default_factory=dict)  # output -> its shared-memory files
    direct_fds: list[int] = field(default_factory=list)  # the receiving ends of its direct links (car.direct)

    def to_json(self) -> str:
        """Serialise for the environment."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> NodeConfig:
        """Parse what `to_json` wrote."""
        raw = json.loads(text)
        raw["inputs"] = {k: InputConfig(**v) for k, v in raw["inputs"].items()}
        raw["outputs"] = {k: [Destination(**d) for d in v] for k, v in raw["outputs"].items()}
        raw["shared"] = {k: SharedOutput(**v) for k, v in raw["shared"].items()}
        return cls(**raw)

    @classmethod
    def from_env(cls) -> NodeConfig:
        """The configuration the daemon put in the environment, or a clear error."""
        text = os.environ.get(ENV_VAR)
        if not text:
            raise RuntimeError(
                f"{ENV_VAR} is not set: this node must be started by `car launch`, "
                "or by hand with `car run-node NODE -- COMMAND` while the dataflow runs"
            )
        return cls.from_json(text)


def _apart(sender_cpus: tuple[int, ...], reader_cpus: tuple[int, ...]) -> bool:
    """Whether two nodes are pinned to CPUs they do not share, so that one runs while the other does."""
    return bool(sender_cpus and reader_cpus) and not set(sender_cpus) & set(reader_cpus)


def plan_run(
    dataflow: Dataflow, run_id: str, run_name: str, run_dir: str, control_endpoint: str
) -> dict[str, NodeConfig]:
    """Assign every node's endpoints (ipc:// sockets in `run_dir`) and wire outputs to inputs.

    Every node runs on this machine, so each output that has readers gets shared-memory
    files for its large arrays, and each of its destinations a reader line in them.
    """
    configs: dict[str, NodeConfig] = {}
    shm_dir = segment_dir(run_dir)
    for index, node in enumerate(dataflow.nodes):
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
            inputs=inputs,
            outputs={output: [] for output in node.outputs},
            shared={
                output: SharedOutput(segment_prefix(shm_dir, run_id, index, k), 0, 0)
                for k, output in enumerate(node.outputs)
            },
        )
    cpus = {node.id: node.cpu_affinity for node in dataflow.nodes}
    for receiver in configs.values():
        by_source: dict[str, Destination] = {}
        for name, spec in receiver.inputs.items():
            if spec.source.startswith("dora/"):
                continue
            source_node, output = spec.source.split("/", 1)
            destinations = configs[source_node].outputs[output]
            shared = configs[source_node].shared[output]
            dest = None if spec.endpoint else by_source.get(spec.source)
            if dest is None:
                endpoint = spec.endpoint or receiver.receive_endpoint
                apart = _apart(cpus[source_node], cpus[receiver.node_id])
                dest = Destination(
                    endpoint, receiver.node_id, [], bool(spec.endpoint), spec.queue_size, shared.readers, apart=apart
                )
                shared.readers += 1
                destinations.append(dest)
                if not spec.endpoint:
                    by_source[spec.source] = dest
            dest.inputs.append(name)
            dest.queue_size = max(dest.queue_size, spec.queue_size)
            spec.shm_prefix, spec.shm_line = shared.prefix, dest.line
    for config in configs.values():
        for output, destinations in config.outputs.items():
            config.shared[output].slots = slot_count([d.queue_size for d in destinations])
        config.shared = {output: shared for output, shared in config.shared.items() if shared.readers}
    return configs
