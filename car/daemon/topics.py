"""What `car topic` asks a run's daemon: the outputs of its nodes, who reads them, and where an input is fed.

The daemon answers from the dataflow and its plan alone: it is not on the data path, so
rates, sizes and values are measured by the command itself, as a subscriber
(car.node.subscriber), only while someone looks.
"""

from __future__ import annotations

from dataclasses import dataclass

from car.daemon.subscriptions import Subscriptions
from car.plan.build import RunPlan
from car.spec.model import Dataflow, QueuePolicy
from car.transport import control


def describe_topics(dataflow: Dataflow, plan: RunPlan, subscriptions: Subscriptions) -> list[control.Topic]:
    """Every output of the nodes of `plan`, with the inputs that read it (on any machine) and its subscribers."""
    several = bool(dataflow.machines())
    topics = []
    for node in (n for n in dataflow.nodes if n.id in plan.nodes):
        for output in node.outputs:
            source = f"{node.id}/{output}"
            readers = [
                control.TopicReader(
                    reader.id, name, inp.queue_size, inp.queue_policy, reader.machine if several else ""
                )
                for reader in dataflow.nodes
                for name, inp in reader.inputs.items()
                if inp.source == source
            ]
            machine = node.machine if several else ""
            declared = node.output_types.get(output, "")
            topics.append(control.Topic(source, declared, machine, readers, len(subscriptions.of(source))))
    return topics


@dataclass(frozen=True)
class InputLocation:
    """Where a message for a node's input goes: the node's receive socket, and the source name the input is fed by."""

    endpoint: str
    source: str


def locate_input(dataflow: Dataflow, plan: RunPlan, node_id: str, input_name: str) -> InputLocation | control.Refused:
    """Where a message for `node_id`'s input `input_name` goes, or why it cannot be sent there."""
    config = plan.nodes.get(node_id)
    if config is None:
        here = ", ".join(plan.nodes) or "none"
        return control.Refused(f"no node `{node_id}` runs here (nodes: {here})")
    spec = dataflow.node(node_id)
    inp = spec.inputs.get(input_name)
    if inp is None:
        inputs = ", ".join(spec.inputs) or "none"
        return control.Refused(f"node `{node_id}` has no input `{input_name}` (inputs: {inputs})")
    if inp.queue_policy == QueuePolicy.BACKPRESSURE:
        return control.Refused(
            f"input `{node_id}/{input_name}` is a backpressure input: only its sender may feed it (its credits)"
        )
    return InputLocation(config.receive_endpoint, inp.source)
