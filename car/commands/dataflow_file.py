"""`car check`, `car graph` and `car build`: what a dataflow file says, drawn, and its nodes built."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from car.cache.builds import Builder, Outcome, StepResult, steps_of
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
    parser.add_argument("--force", action="store_true", help="run every step, even those whose inputs are unchanged")
    parser.add_argument(
        "--machine",
        metavar="M",
        help="only the nodes placed on machine M, in their folders there (run on M: `car sync` does it)",
    )
    json_option(parser)


def cmd_build(args: argparse.Namespace) -> int:
    """Run every node's build (an operator node's: each operator's), step by step, skipping the steps whose inputs
    are unchanged and restoring their outputs (car.cache.builds); 1 when a step failed."""
    if args.machine:  # this is machine M, which does not share the dataflow file's folder
        dataflow = load_or_refuse(args.file, Placement(frozenset(), checking=args.machine, apart=args.machine))
        nodes = [node for node in dataflow.nodes if node.machine == args.machine]
    else:
        dataflow = load_or_refuse(args.file)
        nodes = list(dataflow.nodes)
    builder = Builder(force=args.force, say=lambda text: print(text, file=sys.stderr))
    rows = []
    failed = False
    for node in nodes:
        steps: list[StepResult] = []
        own_env = {**dataflow.env, **node.env}
        for step in (step for build in node.builds for step in steps_of(build)):
            if not args.json:
                where = f" (in {step.folder})" if step.folder else ""
                print(f"car: `{node.id}`: {step.command}{where}", flush=True)
            result = builder.step(node.id, step.command, dataflow.node_folder(node) / step.folder, own_env)
            steps.append(result)
            if not args.json:
                print(f"car: `{node.id}`: {_said(result)}", file=sys.stderr if result.exit_code else sys.stdout)
            if result.outcome is Outcome.FAILED:
                failed = True
                break
        if steps:
            rows.append(_node_row(node.id, steps))
        if failed:
            break
    if args.json:
        print(json.dumps({"nodes": rows}))
    return 1 if failed else 0


def _said(result: StepResult) -> str:
    if result.outcome is Outcome.FAILED:
        return f"failed (exit code {result.exit_code}); nothing of it is cached"
    if result.outcome is Outcome.CACHED:
        restored = f"; restored {', '.join(result.restored)}" if result.restored else ""
        return f"cached: its inputs are unchanged{restored}"
    return f"ran in {result.seconds:.2f} s ({'; '.join(result.why)})"


def _node_row(node: str, steps: list[StepResult]) -> dict[str, object]:
    """One node's build for --json: `failed` when a step failed, `ran` when one ran, else `cached`."""
    outcomes = {step.outcome for step in steps}
    outcome = next(o for o in (Outcome.FAILED, Outcome.RAN, Outcome.CACHED) if o in outcomes)
    return {
        "node": node,
        "outcome": outcome.value,
        "seconds": round(sum(step.seconds for step in steps), 3),
        "steps": [
            {
                "command": step.command,
                "outcome": step.outcome.value,
                "seconds": round(step.seconds, 3),
                "why": step.why,
                "restored": step.restored,
                "exit_code": step.exit_code,
            }
            for step in steps
        ],
    }
