"""`car top [-d NAME] [--once] [--json]`: a live table of a running graph's nodes, as `top` is of processes.

Per node: CPU % (of one CPU), resident memory, messages out and in per second, drops by
queue bounds (and superseded), p50/p99 time from its inputs' timestamps to their
receipt, restarts, machine and the node's own status line (a pilot's safety stop, say). While `car top` runs it asks the nodes to measure their
inputs' latency (`Watch`): they do so only while someone watches, and stop a few
seconds after it ends. On a terminal the table redraws in place; otherwise (or with
`--once`, which prints JSON) it prints plain lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass

from car.commands.common import coordinator_option, dataflow_option, json_option
from car.plan.running import RunningGraph, find_graph
from car.transport import control

REFRESH_S = 1.0
WATCH_S = 3.0  # each refresh asks the nodes to go on measuring for this long
FIRST_REPORT_S = 0.3  # a watched node reports at once, then every 0.25 s: by then each has, unless busy
ONCE_WAIT_S = 2.5  # --once waits at most this long for every running node's latency


@dataclass(frozen=True)
class Snapshot:
    """One look at every part of a graph: its nodes, each with the machine it runs on ("" for `car launch`)."""

    name: str
    uptime_s: float
    subscriptions: int
    nodes: list[tuple[str, control.NodeRow]]


def watched(graph: RunningGraph) -> Snapshot:
    """Ask every part to go on measuring (`Watch`), and what its nodes measured so far."""
    for part in graph.parts:
        part.ask(control.Watch(WATCH_S), control.Done)
    statuses = graph.statuses()
    return Snapshot(
        graph.name,
        max(status.uptime_s for _, status in statuses),
        sum(status.subscriptions for _, status in statuses),
        [(part.machine, row) for part, status in statuses for row in status.nodes],
    )


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f}M" if count else "-"


def _latency(p50: float, p99: float) -> str:
    return f"{p50:.2f}/{p99:.2f}" if p50 >= 0 else "-"


def table(snapshot: Snapshot) -> list[str]:
    """The lines of one refresh."""
    width = max([len("NODE"), *(len(n.id) for _, n in snapshot.nodes)])
    lines = [
        f"{snapshot.name}: {len(snapshot.nodes)} nodes, up {snapshot.uptime_s:.0f} s, "
        f"{snapshot.subscriptions} subscribers",
        f"{'NODE':<{width}}  {'STATE':<9} {'CPU%':>6} {'RSS':>7} {'OUT/S':>8} {'IN/S':>8} {'DROPS':>6} "
        f"{'SUPERSEDED':>10} {'LAT ms p50/p99':>15} {'RESTARTS':>8}  {'MACHINE':<8} STATUS",
    ]
    for machine, n in snapshot.nodes:
        lines.append(
            f"{n.id:<{width}}  {n.state:<9} {n.cpu_percent:>6.1f} {_megabytes(n.rss_bytes):>7} "
            f"{n.sent_rate:>8.1f} {n.received_rate:>8.1f} {n.dropped:>6} {n.superseded:>10} "
            f"{_latency(n.latency_p50_ms, n.latency_p99_ms):>15} {n.restarts:>8}  {machine or 'here':<8} {n.status}"
        )
    return lines


def top_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car top`."""
    dataflow_option(parser)
    parser.add_argument("--once", action="store_true", help="measure once, print, and stop")
    json_option(parser)
    parser.add_argument("--count", type=int, default=0, help="stop after N refreshes (default: until Ctrl-C)")
    coordinator_option(parser)


def _first_look(graph: RunningGraph) -> Snapshot:
    """The first snapshot once every node that receives has measured its latency (at most ONCE_WAIT_S)."""
    watched(graph)
    time.sleep(FIRST_REPORT_S)
    deadline = time.monotonic() + ONCE_WAIT_S
    snapshot = watched(graph)
    while time.monotonic() < deadline and any(
        n.state == "running" and n.latency_p50_ms < 0 and n.received_rate > 0 for _, n in snapshot.nodes
    ):  # a busy node reads the request late; one that receives nothing never has a latency
        time.sleep(0.1)
        snapshot = watched(graph)
    return snapshot


def cmd_top(args: argparse.Namespace) -> int:
    """Show the nodes of a running graph, refreshed once a second."""
    graph = find_graph(args.dataflow, args.coordinator_addr)
    snapshot = _first_look(graph)
    count = 1 if args.once else args.count
    live = sys.stdout.isatty() and not args.json
    shown = 0
    while True:
        lines = table(snapshot)
        if args.json:  # one JSON object per refresh
            nodes = [{**asdict(n), "machine": machine} for machine, n in snapshot.nodes]
            print(json.dumps({"name": snapshot.name, "uptime_s": snapshot.uptime_s, "nodes": nodes}))
        elif live:
            sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
        else:
            print("\n".join(lines))
        sys.stdout.flush()
        shown += 1
        if count and shown >= count:
            return 0
        time.sleep(REFRESH_S)
        snapshot = watched(graph)
