"""`car check`, `car graph` and `car build`: what a dataflow file says, drawn, and its nodes built."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from car.commands.common import check_writable, file_argument, json_option, load_or_refuse
from car.spec.drawing import to_html, to_mermaid
from car.spec.model import Placement


def check_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car check`."""
    file_argument(parser)
    json_option(parser)


def cmd_check(args: argparse.Namespace) -> int:
    """Check a dataflow file and report every problem, as `car start` would place it: nodes on machines
    whose daemons run here, or on the file's default machine, are local; the others need a `working_dir`."""
    dataflow = load_or_refuse(args.file)
    if dataflow.machines():
        from car.daemon.machine import local_machines  # the daemons on this host: only for a placed dataflow

        here = frozenset({dataflow.machine, *local_machines()})
        dataflow = load_or_refuse(args.file, Placement(here))
    links = sum(len(n.inputs) for n in dataflow.nodes)
    if args.json:
        nodes = [
            {"id": n.id, "machine": n.machine, "inputs": len(n.inputs), "outputs": list(n.outputs)}
            for n in dataflow.nodes
        ]
        print(json.dumps({"file": args.file, "ok": True, "nodes": nodes, "inputs": links}))
    else:
        print(f"{args.file}: ok ({len(dataflow.nodes)} nodes, {links} inputs)")
    return 0


def graph_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car graph`."""
    file_argument(parser)
    parser.add_argument("--html", metavar="OUT", help="write an HTML page that shows the graph (no network needed)")


def cmd_graph(args: argparse.Namespace) -> int:
    """Print a dataflow as Mermaid text, or write a page that shows it."""
    dataflow = load_or_refuse(args.file)
    if args.html:
        check_writable(args.html, "--html")
        Path(args.html).write_text(to_html(dataflow), encoding="utf-8")
        print(f"wrote {args.html}")
    else:
        sys.stdout.write(to_mermaid(dataflow))
    return 0


def build_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car build`."""
    file_argument(parser)


def cmd_build(args: argparse.Namespace) -> int:
    """Run every node's `build` command (an operator node's: each operator's) in the node's folder."""
    dataflow = load_or_refuse(args.file)
    for node in dataflow.nodes:
        for command in node.builds:
            print(f"car: building `{node.id}`: {command}", flush=True)
            result = subprocess.run(command, shell=True, cwd=dataflow.node_folder(node))
            if result.returncode != 0:
                print(f"car: build of node `{node.id}` failed (exit code {result.returncode})", file=sys.stderr)
                return 1
    return 0
