"""A graph edited while it runs (`car node add|remove|replace|connect|disconnect`): what each edit changes.

Each function takes the running graph (`Dataflow`) and this machine's plan, checks the
edit as `car check` checks a file (the same words), changes the plan's configurations
(so a node that restarts starts with the graph as it is then) and returns an `Edit`: the
graph after it and what the daemon must do. Links made by an edit go over ZeroMQ,
without shared memory, and drop their oldest when full (the socket pairs and shared
memory of the run's start are made before any node starts). The daemon
(car.daemon.daemon) acts on the `Edit`; nothing here touches a process or a socket, so
tests drive it in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from car.plan.build import RunPlace, RunPlan, Wiring, node_config
from car.plan.config import InputConfig, NodeConfig, add_destination
from car.spec.model import Dataflow, InputSpec, NodeSpec, QueuePolicy
from car.spec.node_reader import valid_id
from car.spec.values import suggest
from car.transport import control
from car.transport.shm import slot_count


class EditRefused(Exception):
    """An edit that cannot be made; the message says why and what to do."""


@dataclass
class Edit:
    """An edit's outcome: the graph after it, and what the daemon does."""

    dataflow: Dataflow
    tell: list[tuple[str, control.DaemonToNode]] = field(default_factory=list)  # (running node, message)
    start: NodeSpec | None = None  # a node to start (added), with `config`
    config: NodeConfig | None = None
    stop: str = ""  # a node to stop for good (removed)
    restart: NodeSpec | None = None  # a node to start again with this spec and `config` (replaced)
    timers: list[tuple[str, str]] = field(default_factory=list)  # (timer source, node) that start ticking


def connect(dataflow: Dataflow, plan: RunPlan, source: str, node_id: str, name: str, queue_size: int) -> Edit:
    """Node `node_id` gains input `name` reading `source` (NODE/OUTPUT)."""
    reader = _reader(dataflow, plan, node_id, name)
    _check_source(dataflow, plan, source)
    spec = InputSpec(name, source, queue_size)
    edit = Edit(_with_node(dataflow, dataclasses.replace(reader, inputs={**reader.inputs, name: spec})))
    config = plan.nodes[node_id]
    config.inputs[name] = InputConfig(source, queue_size, QueuePolicy.DROP_OLDEST)
    edit.tell.append((node_id, control.AddInput(name, source, queue_size)))
    edit.tell += _send_to(plan, source, config, [name], queue_size)
    return edit


def listen_for(
    dataflow: Dataflow,
    plan: RunPlan,
    source: str,
    node_id: str,
    name: str,
    queue_size: int,
    new_endpoint: Callable[[], str],
) -> tuple[Edit, str]:
    """On the reader's machine, the first half of a connection across machines: node `node_id` gains input `name`
    reading `source` (a node elsewhere), and listens over tcp:// (at `new_endpoint()` unless it does already);
    the edit, and where it listens. The sender's machine does the other half (`add_reader`)."""
    reader = _reader(dataflow, plan, node_id, name)
    _check_source(dataflow, plan, source, elsewhere=True)
    spec = InputSpec(name, source, queue_size)
    edit = Edit(_with_node(dataflow, dataclasses.replace(reader, inputs={**reader.inputs, name: spec})))
    config = plan.nodes[node_id]
    config.inputs[name] = InputConfig(source, queue_size, QueuePolicy.DROP_OLDEST)
    edit.tell.append((node_id, control.AddInput(name, source, queue_size)))
    if not config.remote_endpoint:
        config.remote_endpoint = new_endpoint()
        edit.tell.append((node_id, control.Listen(config.remote_endpoint)))
    return edit, config.remote_endpoint


def add_reader(dataflow: Dataflow, plan: RunPlan, message: control.AddReader) -> Edit:
    """On the sender's machine, the second half of a connection across machines (see `listen_for`)."""
    node_id, _, output = message.source.partition("/")
    sender = plan.nodes.get(node_id)
    if sender is None or output not in sender.outputs:
        raise EditRefused(f"no node of machine `{plan.machine}` sends `{message.source}`")
    added = control.AddDestination(
        output, message.reader, message.endpoint, list(message.inputs), server_key=message.server_key, remote=True
    )
    add_destination(sender.outputs[output], added)
    return Edit(dataflow, tell=[(node_id, added)])


def remove_reader(dataflow: Dataflow, plan: RunPlan, source: str, reader: str) -> Edit:
    """On the sender's machine: stop sending `source` to node `reader` elsewhere (`car node disconnect`)."""
    return Edit(dataflow, tell=_stop_sending(plan, source, reader))


def disconnect(dataflow: Dataflow, plan: RunPlan, source: str, node_id: str, name: str) -> Edit:
    """Node `node_id` loses input `name`, which reads `source`."""
    reader = _here(dataflow, plan, node_id)
    spec = reader.inputs.get(name)
    if spec is None or spec.source != source:
        reads = [f"{s.source} -> {node_id}/{n}" for n, s in reader.inputs.items() if not s.from_daemon]
        hint = f"its inputs: {', '.join(reads) or 'none'}"
        raise EditRefused(f"node `{node_id}` has no input `{name}` reading `{source}` ({hint})")
    if reader.operators:
        raise EditRefused(f"node `{node_id}` runs operators: `car node replace {node_id} --from-yaml FILE` without it")
    inputs = {n: s for n, s in reader.inputs.items() if n != name}
    edit = Edit(_with_node(dataflow, dataclasses.replace(reader, inputs=inputs)))
    config = plan.nodes[node_id]
    config.inputs.pop(name, None)
    edit.tell.append((node_id, control.RemoveInput(name)))
    if not spec.from_daemon and not any(s.source == source for s in inputs.values()):
        edit.tell += _stop_sending(plan, source, node_id)
    return edit


def add(dataflow: Dataflow, plan: RunPlan, spec: NodeSpec, index: int, place: RunPlace, wiring: Wiring) -> Edit:
    """A node added (checked already: car.spec.loader.check_node); `index` no node of the run had; `wiring`: the
    run's keys and machines, for links to other machines."""
    _on_this_machine(plan, spec)
    config = node_config(spec, index, dataflow, place, wiring)
    for shared in config.shared.values():
        shared.slots = slot_count([])
    plan.nodes[spec.id] = config
    edit = Edit(dataclasses.replace(dataflow, nodes=(*dataflow.nodes, spec)), start=spec, config=config)
    _wire_inputs(edit, plan, spec, config, {})
    return edit


def replace(dataflow: Dataflow, plan: RunPlan, spec: NodeSpec, index: int, place: RunPlace, wiring: Wiring) -> Edit:
    """Node `spec.id` (its `index` in the run) takes a new definition (checked already): it starts again with it,
    and its readers see a gap, not an end."""
    _on_this_machine(plan, spec)
    old_spec = _here(dataflow, plan, spec.id)
    old = plan.nodes[spec.id]
    config = node_config(spec, index, dataflow, place, wiring)
    config.remote_endpoint = old.remote_endpoint  # it listens where it did (for nodes elsewhere)
    for output in config.outputs:
        if output in old.outputs:  # its readers here go on reading it
            config.outputs[output] = old.outputs[output]
            config.shared[output] = old.shared[output]
        else:
            config.shared[output].slots = slot_count([])
    config.restart_count = old.restart_count
    config.parameters = dict(old.parameters)
    plan.nodes[spec.id] = config
    edit = Edit(_with_node(dataflow, spec), restart=spec, config=config)
    kept = {name: inp for name, inp in old_spec.inputs.items() if spec.inputs.get(name) == inp}
    for name, inp in old_spec.inputs.items():
        if name not in kept and not inp.from_daemon and not any(i.source == inp.source for i in spec.inputs.values()):
            edit.tell += _stop_sending(plan, inp.source, spec.id)
    _wire_inputs(edit, plan, spec, config, kept)
    return edit


def remove(dataflow: Dataflow, plan: RunPlan, node_id: str) -> Edit:
    """Node `node_id` stops for good and leaves the graph (its readers get INPUT_CLOSED)."""
    spec = _here(dataflow, plan, node_id)
    edit = Edit(dataclasses.replace(dataflow, nodes=tuple(n for n in dataflow.nodes if n.id != node_id)), stop=node_id)
    for inp in spec.inputs.values():
        if not inp.from_daemon:
            edit.tell += _stop_sending(plan, inp.source, node_id)
    return edit


def _wire_inputs(edit: Edit, plan: RunPlan, spec: NodeSpec, config: NodeConfig, kept: dict[str, InputSpec]) -> None:
    """Senders here gain the node as a reader of its new inputs; timers start ticking to it."""
    for name, inp in spec.inputs.items():
        if name in kept:
            continue
        if inp.is_timer:
            edit.timers.append((inp.source, spec.id))
        elif not inp.from_daemon and inp.source_node != spec.id:
            edit.tell += _send_to(plan, inp.source, config, [name], inp.queue_size)


def _send_to(
    plan: RunPlan, source: str, reader: NodeConfig, inputs: list[str], queue_size: int
) -> list[tuple[str, control.DaemonToNode]]:
    """The sender of `source` (a node here) sends it to `reader` too: its destination, and the message to say so."""
    sender_id, _, output = source.partition("/")
    message = control.AddDestination(output, reader.node_id, reader.receive_endpoint, inputs, queue_size)
    add_destination(plan.nodes[sender_id].outputs[output], message)
    return [(sender_id, message)]


def _stop_sending(plan: RunPlan, source: str, reader: str) -> list[tuple[str, control.DaemonToNode]]:
    """The sender of `source` stops sending it to `reader` (when the sender is a node here)."""
    sender_id, _, output = source.partition("/")
    sender = plan.nodes.get(sender_id)
    if sender is None or output not in sender.outputs:
        return []
    sender.outputs[output][:] = [d for d in sender.outputs[output] if d.subscription or d.node != reader]
    return [(sender_id, control.RemoveDestination(output, reader))]


def _reader(dataflow: Dataflow, plan: RunPlan, node_id: str, name: str) -> NodeSpec:
    """The node here that gains input `name` (not an operator node; a name it has no input of)."""
    reader = _here(dataflow, plan, node_id)
    if reader.operators:
        raise EditRefused(
            f"node `{node_id}` runs operators, whose inputs are in its definition: "
            f"`car node replace {node_id} --from-yaml FILE` with the input added"
        )
    if not valid_id(name):
        raise EditRefused(f"input name `{name}` must not contain `/` or spaces")
    if name in reader.inputs:
        have = reader.inputs[name].source
        raise EditRefused(f"node `{node_id}` has an input `{name}` already (from `{have}`): pick another name")
    return reader


def _check_source(dataflow: Dataflow, plan: RunPlan, source: str, elsewhere: bool = False) -> None:
    """`source` is an output of a node of the graph (as `car check` says it): on this machine, or with `elsewhere`
    on another."""
    node_id, _, output = source.partition("/")
    if not node_id or not output or source.startswith("dora/"):
        raise EditRefused(f"`{source}` must look like `node/output` (a timer input goes in the node's definition)")
    outputs = {n.id: n.outputs for n in dataflow.nodes}
    if node_id not in outputs:
        raise EditRefused(
            f"there is no node `{node_id}` ({suggest(node_id, list(outputs)) or 'nodes: ' + ', '.join(outputs)})"
        )
    if output not in outputs[node_id]:
        declared = outputs[node_id]
        hint = suggest(output, declared) or f"`{node_id}` declares: {', '.join(declared) or 'none'}"
        raise EditRefused(f"`{node_id}` declares no output `{output}` ({hint})")
    if elsewhere and node_id in plan.nodes:
        raise EditRefused(f"node `{node_id}` runs on this machine too: connect it here")
    if not elsewhere and node_id not in plan.nodes:
        raise EditRefused(f"node `{node_id}` runs on another machine (car node connect asks both machines)")


def _here(dataflow: Dataflow, plan: RunPlan, node_id: str) -> NodeSpec:
    """The node `node_id` of the graph, on this machine."""
    try:
        spec = dataflow.node(node_id)
    except KeyError:
        known = [n.id for n in dataflow.nodes]
        raise EditRefused(
            f"the graph has no node `{node_id}` ({suggest(node_id, known) or 'nodes: ' + ', '.join(known)})"
        ) from None
    if node_id not in plan.nodes:
        raise EditRefused(f"node `{node_id}` runs on another machine: editing across machines is not supported yet")
    return spec


def _on_this_machine(plan: RunPlan, spec: NodeSpec) -> None:
    if plan.machine and spec.machine and spec.machine != plan.machine:
        raise EditRefused(
            f"node `{spec.id}` is for machine `{spec.machine}`: editing across machines is not supported yet"
        )
    for inp in spec.inputs.values():
        if not inp.from_daemon and inp.source_node != spec.id and inp.source_node not in plan.nodes:
            raise EditRefused(f"node `{spec.id}` reads `{inp.source}` from another machine: not supported yet")


def _with_node(dataflow: Dataflow, spec: NodeSpec) -> Dataflow:
    """The graph with `spec` in place of the node of its id."""
    return dataclasses.replace(dataflow, nodes=tuple(spec if n.id == spec.id else n for n in dataflow.nodes))
