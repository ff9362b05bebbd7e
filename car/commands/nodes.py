"""`car node list|info|restart|stop`: the nodes of a running graph, one at a time.

`restart` stops one node (STOP, then SIGTERM after the run's grace period) and starts it
again while the rest of the graph runs on: its readers see a gap in its messages, not
the end of its streams, and its senders send to the new process (`ReaderBack`). `stop`
ends it for good: its readers get INPUT_CLOSED.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict

from car.commands.actions import Action, add_actions, run_action
from car.commands.common import coordinator_option, dataflow_option, json_option
from car.plan.running import GraphPart, find_graph
from car.plan.runs import RunError
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


def node_restart(args: argparse.Namespace) -> int:
    """Stop one node and start it again; the rest of the graph runs on."""
    run = _part(args)
    before = next((n for n in _status(run).nodes if n.id == args.node), None)
    run.ask(control.RestartNode(args.node), control.Done)
    restarts = before.restarts if before else 0
    row = _wait_for(run, args.node, lambda r: r.restarts > restarts and r.state == NodeStatus.RUNNING, "running again")
    print(f"restarted {args.node} in {run.name} (pid {row.pid}, restart {row.restarts})")
    return 0


def node_stop(args: argparse.Namespace) -> int:
    """Stop one node for good; its readers get INPUT_CLOSED, the rest runs on."""
    run = _part(args)
    run.ask(control.StopNode(args.node), control.Done)
    row = _wait_for(run, args.node, lambda r: r.state.ended, "stopped")
    print(f"stopped {args.node} in {run.name} ({row.state})")
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


NODE_COMMANDS: list[Action] = [
    Action("list", "the nodes: state, pid, restarts, message rate", _list_arguments, node_list),
    Action("info", "one node: command, inputs, outputs, state, log", _info_arguments, node_info),
    Action("restart", "stop one node and start it again; the rest runs on", _node, node_restart),
    Action("stop", "stop one node for good; its readers get INPUT_CLOSED", _node, node_stop),
]


def node_arguments(parser: argparse.ArgumentParser) -> None:
    """`car node`'s own actions."""
    add_actions(parser, NODE_COMMANDS, coordinator_option)


def cmd_node(args: argparse.Namespace) -> int:
    """Run one `car node` action."""
    return run_action(args, NODE_COMMANDS)
