"""`car start` and `car machines`, and what `car list` and `car stop` do for the coordinator's dataflows."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from car.commands.common import coordinator_option, dataflow_text, json_option, load_or_refuse, say
from car.commands.sync import sync
from car.plan.coordinator_client import ask, control_endpoint
from car.plan.runs import RunError
from car.spec.model import Placement
from car.transport import cluster
from car.transport.discovery import DISCOVER_S, DiscoveryUnavailable, discover
from car.transport.keys import load_keys, trusted_publics
from car.transport.states import FlowState, PartState

FOLLOW_PERIOD_S = 0.3


def start_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car start`."""
    parser.add_argument("file", help="a dataflow file (YAML)")
    parser.add_argument("--name", default="", help="name of the run (default: FILE-DATE-TIME)")
    parser.add_argument(
        "--attach", action="store_true", help="follow its nodes' output until it ends (Ctrl-C stops it)"
    )
    parser.add_argument("--record", metavar="FILE.mcap", help="record on a machine of the run (a recorder node)")
    parser.add_argument("--record-machine", metavar="M", help="where --record writes (default: the first node's)")
    parser.add_argument("--topics", nargs="+", default=[], metavar="NODE/OUTPUT", help="with --record: only these")
    parser.add_argument(
        "--no-sync",
        action="store_true",
        help="start without first sending the machines their nodes' files and building there (`car sync`)",
    )
    coordinator_option(parser)


def cmd_start(args: argparse.Namespace) -> int:
    """Send the machines their nodes' files and build there (`car sync`), then start a dataflow on them."""
    from car.daemon.machine import local_machines

    here = local_machines()
    text = dataflow_text(args.file)
    dataflow = load_or_refuse(args.file, Placement(frozenset(here), checking=None))  # this host's: checked here
    if args.topics and not args.record:
        raise RunError("--topics says what --record records: give --record FILE.mcap too")
    if args.record:
        from car.recording.recorder import add_recorder  # the node's module: only when recording

        machine = args.record_machine or dataflow.nodes[0].machine
        text = add_recorder(text, dataflow, args.record, machine, args.topics)
    target, _ = control_endpoint(args.coordinator_addr)
    if not args.no_sync:
        sync(dataflow, text, target)  # every machine has its files and builds, or nothing starts
    message = cluster.StartDataflow(text, str(Path(args.file).resolve()), args.name, here, dataflow.modules)
    started = ask(target, message, cluster.Started, timeout=15.0)
    print(f"started {started.name} ({started.run_id}) on {', '.join(started.machines)}")
    if not args.attach:
        return 0
    return _attach(target, started.name)


def _attach(target: str, name: str) -> int:
    """Follow every node's log until the dataflow ends; Ctrl-C stops it first."""
    offsets: dict[str, int] = {}
    states: dict[str, str] = {}
    try:
        while True:
            flow = _flow(target, name)
            for part in flow.parts:
                if part.state == PartState.LOST != states.get(part.machine):
                    say(f"machine `{part.machine}` lost: its nodes' readers elsewhere get INPUT_CLOSED")
                elif states.get(part.machine) == PartState.LOST != part.state:
                    say(f"machine `{part.machine}` is back ({part.state})")
                states[part.machine] = part.state
                for node in part.nodes if part.state != PartState.LOST else []:
                    try:
                        _print_new(target, name, node.id, offsets)
                    except RunError:
                        pass  # its log is not readable now (its machine restarted): the rest goes on
            if flow.state.ended:
                print(f"car: {name} {flow.state}", file=sys.stderr)
                return 0 if flow.state == FlowState.FINISHED else 1
            time.sleep(FOLLOW_PERIOD_S)
    except KeyboardInterrupt:
        ask(target, cluster.StopDataflowNamed(name), cluster.Started)
        say(f"stopping {name}")
        while not _flow(target, name).state.ended:
            time.sleep(FOLLOW_PERIOD_S)
        return 130


def _flow(target: str, name: str) -> cluster.DataflowRow:
    flows = ask(target, cluster.ListDataflows(), cluster.Dataflows).dataflows
    for flow in reversed(flows):
        if name in (flow.name, flow.run_id):
            return flow
    raise RunError(f"the coordinator no longer knows dataflow `{name}`")


def _print_new(target: str, name: str, node: str, offsets: dict[str, int]) -> bool:
    """Print what node's log gained since last time; whether its run has ended."""
    chunk = ask(target, cluster.ReadLogs(name, node, offsets.get(node, 0)), cluster.LogChunk)
    offsets[node] = chunk.next_offset
    for line in chunk.text.splitlines():
        print(f"{node} | {line}", flush=True)
    return chunk.ended


def machines_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car machines`."""
    parser.add_argument(
        "--discover", action="store_true", help="list the coordinators and daemons that answer on the LAN (mDNS)"
    )
    parser.add_argument("--seconds", type=float, default=DISCOVER_S, metavar="S", help="--discover: listen this long")
    json_option(parser)
    coordinator_option(parser)


def cmd_machines(args: argparse.Namespace) -> int:
    """List the machines connected to the coordinator, or (--discover) what answers on the LAN."""
    if args.discover:
        return _discovered(args)
    target, _ = control_endpoint(args.coordinator_addr)
    machines = ask(target, cluster.ListMachines(), cluster.Machines).machines
    if args.json:
        print(json.dumps([asdict(m) for m in machines]))
        return 0
    if not machines:
        print("no machine is connected: start `car daemon --machine-id ID` on each")
        return 0
    print(
        f"{'MACHINE':<14} {'STATE':<10} {'ADDRESS':<16} {'HOST':<16} {'LAST SEEN':>9} {'OFFSET':>10} {'RTT':>8} {'RUNS':>4}"
    )
    for m in machines:
        print(
            f"{m.machine:<14} {m.state:<10} {m.address:<16} {m.host[:16]:<16} {m.last_seen_s:>8.1f}s "
            f"{m.offset_ms:>8.2f}ms {m.rtt_ms:>6.2f}ms {m.runs:>4}"
        )
    return 0


def _discovered(args: argparse.Namespace) -> int:
    """`car machines --discover`: coordinators and daemons that answer on the LAN, paired (trusted here) or not."""
    try:
        found = discover(args.seconds)
    except DiscoveryUnavailable as exc:
        raise RunError(str(exc)) from None
    keys = load_keys()
    trusted = trusted_publics(keys) if keys is not None else set()
    rows = [{**asdict(f), "paired": bool(f.public_key) and f.public_key in trusted} for f in found]
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print(f"nothing answered on the LAN within {args.seconds:g} s")
        return 0
    print(f"{'KIND':<12} {'NAME':<16} {'ADDRESS':<16} {'PORT':>6}  PAIRED")
    for row in rows:
        paired = "yes" if row["paired"] else ("no keys" if not row["public_key"] else "no")
        print(f"{row['kind']:<12} {row['name']:<16} {row['address']:<16} {row['port']:>6}  {paired}")
    return 0


def placed_dataflows(address: str | None) -> list[cluster.DataflowRow]:
    """The coordinator's dataflows ([] when no coordinator runs here and none was named)."""
    target, named = control_endpoint(address)
    return ask(target, cluster.ListDataflows(), cluster.Dataflows).dataflows if named else []


def placed_json(address: str | None) -> list[dict[str, object]]:
    """The coordinator's dataflows as `car list --json` shows them."""
    return [asdict(flow) for flow in placed_dataflows(address)]


def list_placed(address: str | None) -> list[str]:
    """What `car list` adds for the coordinator's dataflows."""
    lines = []
    for flow in placed_dataflows(address):
        lines.append(
            f"{flow.name}  {flow.run_id}  {flow.state}  up {flow.uptime_s} s  on {', '.join(p.machine for p in flow.parts)}"
        )
        lines.append(f"    {flow.file}")
        for part in flow.parts:
            nodes = ", ".join(f"{n.id}:{n.state}" for n in part.nodes) or "-"
            lines.append(f"    {part.machine} ({part.state}): {nodes}")
    return lines


def stop_placed(address: str | None, name: str | None, grace: float, timeout: float) -> str | None:
    """Stop a coordinator's dataflow and wait until it has ended: what to print; None when no coordinator
    runs here (and none was named); RunError when it has no such dataflow."""
    target, named = control_endpoint(address)
    if not named:
        return None
    started = ask(target, cluster.StopDataflowNamed(name or "", grace), cluster.Started)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _flow(target, started.run_id).state.ended:
            return f"stopped {started.name} on {', '.join(started.machines)}"
        time.sleep(0.1)
    raise RunError(f"dataflow `{started.name}` is still stopping after {timeout:g} s")
