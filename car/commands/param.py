"""`car param list|get|set|describe NODE [NAME] [VALUE]`: a running node's declared parameters.

Nodes declare them through the node API (`Node.declare_parameter`: name, type, default,
range, description). `set` is checked by the daemon against the declaration (a bad
value is refused with what the parameter takes), kept for the node's restarts, and
reaches the node as a PARAMETER event, so a gain can be tuned while the car drives.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from car.commands.actions import Action, add_actions, run_action
from car.commands.common import coordinator_option, dataflow_option, json_option
from car.plan.running import GraphPart, find_graph
from car.plan.runs import RunError
from car.spec.parameters import Parameter
from car.transport import control


def _part(args: argparse.Namespace) -> GraphPart:
    return find_graph(args.dataflow, args.coordinator_addr).part_of(args.node)


def _parameters(part: GraphPart, node: str) -> control.Parameters:
    return part.ask(control.ListParameters(node), control.Parameters)


def _one(found: control.Parameters, node: str, name: str) -> Parameter:
    for parameter in found.parameters:
        if parameter.name == name:
            return parameter
    declared = ", ".join(p.name for p in found.parameters) or "none"
    raise RunError(f"node `{node}` has no parameter `{name}` (declared: {declared})")


def param_list(args: argparse.Namespace) -> int:
    """Every parameter the node declared, with its value."""
    found = _parameters(_part(args), args.node)
    if args.json:
        print(json.dumps({p.name: json.loads(found.values_json[p.name]) for p in found.parameters}))
        return 0
    if not found.parameters:
        print(f"node `{args.node}` declares no parameters")
    for parameter in found.parameters:
        print(f"{parameter.name} = {found.values_json[parameter.name]}  ({parameter.accepts()})")
    return 0


def param_get(args: argparse.Namespace) -> int:
    """One parameter's value, as JSON."""
    found = _parameters(_part(args), args.node)
    print(found.values_json[_one(found, args.node, args.name).name])
    return 0


def param_describe(args: argparse.Namespace) -> int:
    """One parameter's declaration: type, default, range, description."""
    found = _parameters(_part(args), args.node)
    parameter = _one(found, args.node, args.name)
    if args.json:
        print(json.dumps(asdict(parameter) | {"value_json": found.values_json[parameter.name]}))
        return 0
    print(f"Parameter: {parameter.name}")
    print(f"Type: {parameter.type}")
    print(f"Value: {found.values_json[parameter.name]} (default {parameter.default_json})")
    if parameter.has_range:
        print(f"Range: [{parameter.minimum:g}, {parameter.maximum:g}]")
    print(f"Description: {parameter.description or '-'}")
    return 0


def param_set(args: argparse.Namespace) -> int:
    """Give a parameter a new value in the running node (checked first; kept if the node restarts)."""
    part = _part(args)
    parameter = _one(_parameters(part, args.node), args.node, args.name)
    try:
        json.loads(args.value)
        value_json = args.value
    except json.JSONDecodeError:
        if parameter.type != "str":
            raise RunError(f"{args.value!r} is not {parameter.accepts()}") from None
        value_json = json.dumps(args.value)  # a bare word for a string parameter
    part.ask(control.SetParameter(args.node, args.name, value_json), control.Done)
    print(f"set {args.node} {args.name} = {value_json}")
    return 0


def _node(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("node")
    dataflow_option(parser)


def _named(parser: argparse.ArgumentParser) -> None:
    _node(parser)
    parser.add_argument("name")


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    _node(parser)
    json_option(parser)


def _describe_arguments(parser: argparse.ArgumentParser) -> None:
    _named(parser)
    json_option(parser)


def _set_arguments(parser: argparse.ArgumentParser) -> None:
    _named(parser)
    parser.add_argument("value", help="a JSON value (a bare word for a string parameter)")


PARAM_COMMANDS: list[Action] = [
    Action("list", "a node's parameters and their values", _list_arguments, param_list),
    Action("get", "one parameter's value", _named, param_get),
    Action("set", "set a parameter in the running node (checked, kept across restarts)", _set_arguments, param_set),
    Action("describe", "one parameter's type, default, range and description", _describe_arguments, param_describe),
]


def param_arguments(parser: argparse.ArgumentParser) -> None:
    """`car param`'s own actions."""
    add_actions(parser, PARAM_COMMANDS, coordinator_option)


def cmd_param(args: argparse.Namespace) -> int:
    """Run one `car param` action."""
    return run_action(args, PARAM_COMMANDS)
