"""What the daemon tells each node: its inputs, its outputs' destinations, its endpoints.

A `NodeConfig` travels to the node as JSON in the environment variable `CAR_NODE_CONFIG`
(set it yourself to run a node by hand; `car run-node` does it for you). `plan_run`
assigns the endpoints of one run, so two runs never share a socket.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

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
    hwm: int = TRANSIT_HWM  # backpressure: the receiver's queue_size, the sender's credits


@dataclass
class InputConfig:
    """How a node queues one input."""

    source: str
    queue_size: int
    queue_policy: str
    input_timeout: float | None = None
    endpoint: str = ""  # a socket of its own (credit-based flow control), for backpressure inputs only


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

    def to_json(self) -> str:
        """Serialise for the environment."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> NodeConfig:
        """Parse what `to_json` wrote."""
        raw = json.loads(text)
        raw["inputs"] = {k: InputConfig(**v) for k, v in raw["inputs"].items()}
        raw["outputs"] = {k: [Destination(**d) for d in v] for k, v in raw["outputs"].items()}
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


def plan_run(
    dataflow: Dataflow, run_id: str, run_name: str, run_dir: str, control_endpoint: str
) -> dict[str, NodeConfig]:
    """Assign every node's endpoints (ipc:// sockets in `run_dir`) and wire outputs to inputs."""
    configs: dict[str, NodeConfig] = {}
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
        )
    for receiver in configs.values():
        shared: dict[str, Destination] = {}
        for name, spec in receiver.inputs.items():
            if spec.source.startswith("dora/"):
                continue
            source_node, output = spec.source.split("/", 1)
            destinations = configs[source_node].outputs[output]
            if spec.endpoint:
                hwm = spec.queue_size
                destinations.append(Destination(spec.endpoint, receiver.node_id, [name], True, hwm))
            elif spec.source in shared:
                shared[spec.source].inputs.append(name)
            else:
                shared[spec.source] = Destination(receiver.receive_endpoint, receiver.node_id, [name])
                destinations.append(shared[spec.source])
    return configs
