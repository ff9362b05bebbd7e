"""`car node list|info|restart|stop|add|remove|replace|connect|disconnect`: a running graph's nodes, one at a time.

`restart` stops one node (STOP, then SIGTERM after the run's grace period) and starts it
again while the rest of the graph runs on: its readers see a gap in its messages, not
the end of its streams, and its senders send to the new process (`ReaderBack`). `stop`
ends it for good: its readers get INPUT_CLOSED.

The graph can be edited while it runs, as dora 1.0's CLI does (car.daemon.edits): `add`
a node from a file with one node's definition, `remove` one, `replace` one with a new
definition (it restarts with it), `connect` an output to a new input of a node, and
`disconnect` it. Each edit is checked against the running graph with the words `car
check` uses, and refused whole when it does not check.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from car.commands.actions import Action, add_actions, run_action
from car.commands.common import UserError, coordinator_option, dataflow_option, json_option
from car.plan.running import GraphPart, find_graph
from car.plan.runs import RunError
from car.spec.model import DEFAULT_QUEUE_SIZE
from car.transport import control
from car.transport.states import NodeStatus

WAIT_S = 15.0  # how long restart and stop wait to see the node running again, or ended


def _status(part: GraphPart) -> control.RunStatus:
    return part.ask(control.ListRun(), control.RunStatus)


def _part(args: argparse.Namespace) -> GraphPart:
    return find_graph(args.dataflow, args.coordinator_addr).part_of(args.node)


def node_list(args: argparse.Namespace) -> int:
    """The nodes, their machine, state, pid, restarts and message rate."""
    rows = [
        (part.machine, n)
        for part, status in find_graph(args.dataflow, args.coordinator_addr).statuses()
        for n in status.nodes
    ]
    if args.json:
        print(json.dumps([{**asdict(n), "machine": machine} for machine, n in rows]))
        return 0
    width = max([len("NODE"), *(len(n.id) for _, n in rows)])
    print(f"{'NODE':<{width}}  {'MACHINE':<8} {'STATE':<10} {'PID':>7} {'RESTARTS':>8} {'MSG/S':>8}  STATUS")
    for machine, n in rows:
        print(
            f"{n.id:<{width}}  {machine or 'here':<8} {n.state:<10} {n.pid:>7} {n.restarts:>8} {n.rate:>8.1f}  {n.status}"
        )
    return 0


def node_info(args: argparse.Namespace) -> int:
    """One node: how it is started, its inputs and outputs, its state and its log."""
    info = _part(args).ask(control.DescribeNode(args.node), control.NodeDescription)
    if args.json:
        print(json.dumps(asdict(info)))
        return 0
    row = info.row
    print(f"Node: {row.id}  ({row.state}, pid {row.pid}, {row.restarts} restarts, {row.rate:.1f} msg/s)")
    if row.status:
        print(f"Status: {row.status}")
    print(f"Path: {info.path} {' '.join(info.args)}".rstrip())
    if info.operators:
        print(f"Operators: {', '.join(info.operators)} (tasks of one runtime process)")
    if info.machine:
        print(f"Machine: {info.machine}")
    print(f"Restart policy: {info.restart_policy}; critical: {'yes' if info.critical else 'no'}")
    print(f"Inputs: {len(info.inputs)}")
    for inp in info.inputs:
        print(f"  {inp.input} <- {inp.source}: queue_size {inp.queue_size}, {inp.queue_policy}")
    print(f"Outputs: {', '.join(info.outputs) or 'none'}")
    print(f"Log: {info.log}")
    return 0


def _wait_for(run: GraphPart, node: str, done: Callable[[control.NodeRow], bool], what: str) -> control.NodeRow:
    deadline = time.monotonic() + WAIT_S
    while True:
        row = next(n for n in _status(run).nodes if n.id == node)
        if done(row):
            return row
        if time.monotonic() > deadline:
            raise RunError(f"node `{node}` is {row.state}, not yet {what}, after {WAIT_S:g} s")
        time.sleep(0.1)


def _started_again(part: GraphPart, node: str, ask: control.ClientToDaemon) -> control.NodeRow:
    """Ask `part` to restart `node` (`ask`) and wait until it runs again (or ended: it may fail at once)."""
    before = next((n for n in _status(part).nodes if n.id == node), None)
    part.ask(ask, control.Done)
    restarts = before.restarts if before else 0

    def running(row: control.NodeRow) -> bool:
        return (row.restarts > restarts and row.state == NodeStatus.RUNNING) or row.state.ended

    return _wait_for(part, node, running, "running again")


def node_restart(args: argparse.Namespace) -> int:
    """Stop one node and start it again; the rest of the graph runs on."""
    run = _part(args)
    row = _started_again(run, args.node, control.RestartNode(args.node))
    print(f"restarted {args.node} in {run.name} (pid {row.pid}, restart {row.restarts})")
    return 0


def node_stop(args: argparse.Namespace) -> int:
    """Stop one node for good; its readers get INPUT_CLOSED, the rest runs on."""
    run = _part(args)
    run.ask(control.StopNode(args.node), control.Done)
    row = _wait_for(run, args.node, lambda r: r.state.ended, "stopped")
    print(f"stopped {args.node} in {run.name} ({row.state})")
    return 0


def _definition(path: str) -> str:
    """The text of a node's definition file (UserError when it cannot be read)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--from-yaml {path}: cannot read it ({getattr(exc, 'strerror', exc)})") from None


def _defined(text: str) -> dict[str, Any]:
    """The node a definition file holds, as plain data ({} when it does not read: its daemon says why, located)."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    node = loaded[0] if isinstance(loaded, list) and loaded else loaded
    return node if isinstance(node, dict) else {}


def _part_for(args: argparse.Namespace, node: dict[str, Any]) -> GraphPart:
    """The part of the graph a new node goes to: the only one, or its `deploy.machine`'s."""
    graph = find_graph(args.dataflow, args.coordinator_addr)
    if len(graph.parts) == 1 or not node:
        return graph.parts[0]
    deploy = node.get("deploy") or node.get("_unstable_deploy")
    machine = deploy.get("machine") if isinstance(deploy, dict) else None
    if not machine:
        machines = ", ".join(part.machine for part in graph.parts)
        raise UserError(
            f"dataflow `{graph.name}` runs on several machines ({machines}): give the node `deploy: {{machine: M}}`"
        )
    return graph.part_on(str(machine))


def _port(text: str, what: str) -> tuple[str, str]:
    node, _, port = text.partition("/")
    if not node or not port or "/" in port:
        raise UserError(f"{what} `{text}` must look like NODE/{'OUTPUT' if what == 'source' else 'INPUT'}")
    return node, port


def node_add(args: argparse.Namespace) -> int:
    """Add the node FILE defines to the running graph, and start it."""
    text = _definition(args.from_yaml)
    node = _defined(text)
    part = _part_for(args, node)
    part.ask(control.AddNode(text, args.from_yaml), control.Done)  # checked there: the node has an id
    node_id = str(node["id"])
    row = _wait_for(
        part, node_id, lambda r: r.state in (NodeStatus.RUNNING, NodeStatus.WAITING) or r.state.ended, "started"
    )
    print(f"added {node_id} to {part.name} ({row.state}, pid {row.pid})")
    return 0


def node_replace(args: argparse.Namespace) -> int:
    """Give a node a new definition from FILE; it starts again with it, the rest runs on."""
    part = _part(args)
    ask = control.AddNode(_definition(args.from_yaml), args.from_yaml, replacing=args.node)
    row = _started_again(part, args.node, ask)
    print(f"replaced {args.node} in {part.name} ({row.state}, pid {row.pid})")
    return 0


def node_remove(args: argparse.Namespace) -> int:
    """Stop a node for good and take it out of the graph; its readers get INPUT_CLOSED."""
    part = _part(args)
    part.ask(control.RemoveNode(args.node), control.Done)
    row = _wait_for(part, args.node, lambda r: r.state.ended, "stopped")
    print(f"removed {args.node} from {part.name} ({row.state})")
    return 0


def node_connect(args: argparse.Namespace) -> int:
    """Connect NODE/OUTPUT to a new input NODE/INPUT (on one machine, or across two: each does its half)."""
    sender, _ = _port(args.source, "source")
    node, name = _port(args.target, "target")
    graph = find_graph(args.dataflow, args.coordinator_addr)
    reader_part, sender_part = graph.part_of(node), graph.part_of(sender)
    if reader_part.machine == sender_part.machine:
        reader_part.ask(control.ConnectInput(args.source, node, name, args.queue_size), control.Done)
    else:
        listening = reader_part.ask(control.ListenFor(args.source, node, name, args.queue_size), control.Listening)
        endpoint = f"tcp://{graph.address_of(reader_part.machine)}:{listening.port}"
        sender_part.ask(control.AddReader(args.source, node, [name], endpoint, listening.server_key), control.Done)
    print(f"connected {args.source} -> {args.target}")
    return 0


def node_disconnect(args: argparse.Namespace) -> int:
    """Disconnect input NODE/INPUT from NODE/OUTPUT: it gets INPUT_CLOSED."""
    sender, _ = _port(args.source, "source")
    node, name = _port(args.target, "target")
    graph = find_graph(args.dataflow, args.coordinator_addr)
    reader_part, sender_part = graph.part_of(node), graph.part_of(sender)
    reader_part.ask(control.DisconnectInput(args.source, node, name), control.Done)
    if sender_part.machine != reader_part.machine:
        sender_part.ask(control.RemoveReader(args.source, node), control.Done)
    print(f"disconnected {args.source} -> {args.target}")
    return 0


def _node(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("node")
    dataflow_option(parser)


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    dataflow_option(parser)
    json_option(parser)


def _info_arguments(parser: argparse.ArgumentParser) -> None:
    _node(parser)
    json_option(parser)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from-yaml", required=True, metavar="FILE", help="one node's definition, as in a dataflow file"
    )
    dataflow_option(parser)


def _replace_arguments(parser: argparse.ArgumentParser) -> None:
    _node(parser)
    parser.add_argument("--from-yaml", required=True, metavar="FILE", help="its new definition (same id)")


def _connect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="NODE/OUTPUT")
    parser.add_argument("target", metavar="NODE/INPUT", help="a new input of that node")
    parser.add_argument(
        "--queue-size", type=int, default=DEFAULT_QUEUE_SIZE, metavar="N", help="its queue (default 10)"
    )
    dataflow_option(parser)


def _disconnect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="NODE/OUTPUT")
    parser.add_argument("target", metavar="NODE/INPUT")
    dataflow_option(parser)


NODE_COMMANDS: list[Action] = [
    Action("list", "the nodes: state, pid, restarts, message rate", _list_arguments, node_list),
    Action("info", "one node: command, inputs, outputs, state, log", _info_arguments, node_info),
    Action("restart", "stop one node and start it again; the rest runs on", _node, node_restart),
    Action("stop", "stop one node for good; its readers get INPUT_CLOSED", _node, node_stop),
    Action("add", "add a node (--from-yaml FILE) to the running graph", _add_arguments, node_add),
    Action("remove", "stop a node for good and take it out of the graph", _node, node_remove),
    Action("replace", "give a node a new definition (--from-yaml FILE); it restarts", _replace_arguments, node_replace),
    Action("connect", "connect NODE/OUTPUT to a new input NODE/INPUT", _connect_arguments, node_connect),
    Action("disconnect", "disconnect NODE/OUTPUT from the input NODE/INPUT", _disconnect_arguments, node_disconnect),
]


def node_arguments(parser: argparse.ArgumentParser) -> None:
    """`car node`'s own actions."""
    add_actions(parser, NODE_COMMANDS, coordinator_option)


def cmd_node(args: argparse.Namespace) -> int:
    """Run one `car node` action."""
    return run_action(args, NODE_COMMANDS)
