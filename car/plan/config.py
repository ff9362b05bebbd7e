"""What the daemon tells each node: its inputs, its outputs' destinations, its endpoints.

A `NodeConfig` travels to the node as JSON in the environment variable `CAR_NODE_CONFIG`
(set it yourself to run a node by hand; `car run-node` does it for you). `car.plan.build`
makes them, one run plan per machine.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from car.spec.model import QueuePolicy
from car.transport import control

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
    fd: int = -1  # the sender's end of a direct link to that node (car.transport.direct), set by the daemon; -1: ZeroMQ
    apart: bool = False  # sender and reader are pinned to CPUs they do not share (cpu_affinity)
    subscription: str = ""  # a subscriber (a process that joined the running graph), not a node
    remote: bool = False  # a reader on another machine (tcp://): sent whole, from the sender's buffer
    server_key: str = ""  # with CurveZMQ: the public key (Z85) of the reader's machine
    keep: bool = False  # a subscriber that keeps frames (a recorder): see car.transport.shm.FrameWriter.subscribe

    @classmethod
    def to_subscriber(
        cls, endpoint: str, subscription: str, queue_size: int, line: int, server_key: str = "", keep: bool = False
    ) -> Destination:
        """Where a subscriber gets an output: on this host (ipc://, shared-memory `line` or -1) or elsewhere (tcp://)."""
        remote = endpoint.startswith("tcp://")
        return cls(
            endpoint,
            subscription,
            [],
            queue_size=queue_size,
            line=line,
            subscription=subscription,
            remote=remote,
            server_key=server_key,
            keep=keep,
        )


def add_destination(destinations: list[Destination], added: control.AddDestination) -> Destination | None:
    """An output's destinations gain a node reader (an input connected while the graph runs): the new destination,
    or None when the reader had one already (which gains the inputs). One decision for the daemon's plan and the
    sending node's links."""
    for dest in destinations:
        if dest.node == added.reader and not dest.subscription:
            dest.inputs.extend(i for i in added.inputs if i not in dest.inputs)
            return None
    dest = Destination(
        added.endpoint,
        added.reader,
        list(added.inputs),
        queue_size=added.queue_size,
        remote=added.remote,
        server_key=added.server_key,
    )
    destinations.append(dest)
    return dest


@dataclass
class InputConfig:
    """How a node queues one input."""

    source: str
    queue_size: int
    queue_policy: QueuePolicy
    input_timeout: float | None = None
    endpoint: str = ""  # a socket of its own (credit-based flow control), for backpressure inputs only
    shm_prefix: str = ""  # the source output's shared-memory files (car.transport.shm), when it is on this machine
    shm_line: int = -1  # this reader's line in them


@dataclass
class SharedOutput:
    """Where an output puts large arrays for readers on this machine (see car.transport.shm)."""

    prefix: str
    readers: int  # the nodes reading it: lines 0 .. readers-1
    slots: int
    lines: int = 0  # lines in its files: the readers', then spare ones for subscribers (car.transport.shm)


@dataclass
class OperatorConfig:
    """One operator of a runtime node (car.operators): what its runtime loads, and how its ports are named."""

    id: str
    python: str  # its file, relative to the node's folder (where its runtime runs)
    port_prefix: str  # the node's ports are its own with this in front: `OPID/`, or "" for a single `operator:`
    inputs: dict[str, str] = field(default_factory=dict)  # its input -> source (node/output, timer, ...)
    outputs: list[str] = field(default_factory=list)
    send_stdout_as: str = ""
    send_logs_as: str = ""
    min_log_level: str = ""
    queue_sizes: dict[str, int] = field(
        default_factory=dict
    )  # its input -> events that may wait (car.operators.bounds)


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
    remote_endpoint: str = ""  # tcp:// where it also receives from nodes on other machines; "" when none
    keys_dir: str = ""  # with CurveZMQ across machines: its machine's keys folder (car.transport.keys)
    peers: list[str] = field(default_factory=list)  # with CurveZMQ: public keys of the machines that may send to it
    send_eos: bool = True  # False when the daemon restarts the node whenever it exits
    inputs: dict[str, InputConfig] = field(default_factory=dict)
    outputs: dict[str, list[Destination]] = field(default_factory=dict)
    shared: dict[str, SharedOutput] = field(default_factory=dict)  # output -> its shared-memory files
    direct_fds: list[int] = field(default_factory=list)  # the receiving ends of its direct links (car.transport.direct)
    restart_count: int = 0  # times the daemon started it again (set at each start)
    min_log_level: str = ""  # its `min_log_level` (dora's log levels); "" for the default, info
    output_types: dict[str, str] = field(default_factory=dict)  # output -> declared type URN, checked at send
    parameters: dict[str, str] = field(default_factory=dict)  # name -> value (JSON) set by `car param set`: kept
    operators: list[OperatorConfig] = field(default_factory=list)  # a runtime node's (car.operators)
    restart_policy: str = "never"  # its `restart_policy`: a runtime node restarts a failed operator in place
    max_restarts: int = 0
    restart_delay: float = 0.0

    def to_json(self) -> str:
        """Serialise for the environment."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> NodeConfig:
        """Parse what `to_json` wrote."""
        raw = json.loads(text)
        raw["inputs"] = {
            k: InputConfig(**{**v, "queue_policy": QueuePolicy(v["queue_policy"])}) for k, v in raw["inputs"].items()
        }
        raw["outputs"] = {k: [Destination(**d) for d in v] for k, v in raw["outputs"].items()}
        raw["shared"] = {k: SharedOutput(**v) for k, v in raw["shared"].items()}
        raw["operators"] = [OperatorConfig(**o) for o in raw.get("operators", [])]
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
