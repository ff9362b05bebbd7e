"""The `car` command: check, graph, build, launch, list, stop and run-node.

Mistakes in what the user gave (a bad file, an unknown run) end with a message on stderr
and exit code 2; a run in which a node failed ends with exit code 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from car import affinity
from car.config import ENV_VAR
from car.daemon import COMPAT_DIR, Daemon
from car.extensions import command_names, launch_options, run_command
from car.graph import to_html, to_mermaid
from car.loader import load_dataflow
from car.logs import Terminal
from car.runs import RunError, create_run, find_run, list_runs, request
from car.spec import Dataflow, DataflowError, Problem

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake in what the user asked for; its message says what to do."""


def _load(path: str) -> Dataflow:
    try:
        return load_dataflow(path)
    except DataflowError as exc:
        _refuse(path, exc.problems)


def _refuse(path: str, problems: list[Problem]) -> NoReturn:
    for problem in problems:
        print(problem, file=sys.stderr)
    count = len(problems)
    raise UserError(f"{path}: {count} problem{'s' if count != 1 else ''}; nothing was started") from None


def cmd_check(args: argparse.Namespace) -> int:
    dataflow = _load(args.file)
    links = sum(len(n.inputs) for n in dataflow.nodes)
    print(f"{args.file}: ok ({len(dataflow.nodes)} nodes, {links} inputs)")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    dataflow = _load(args.file)
    if args.html:
        Path(args.html).write_text(to_html(dataflow), encoding="utf-8")
        print(f"wrote {args.html}")
    else:
        sys.stdout.write(to_mermaid(dataflow))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    dataflow = _load(args.file)
    for node in dataflow.nodes:
        if not node.build:
            continue
        print(f"car: building `{node.id}`: {node.build}", flush=True)
        cwd = dataflow.base_dir / node.working_dir if node.working_dir else dataflow.base_dir
        result = subprocess.run(node.build, shell=True, cwd=cwd)
        if result.returncode != 0:
            print(f"car: build of node `{node.id}` failed (exit code {result.returncode})", file=sys.stderr)
            return 1
    return 0


def _run_name(dataflow: Dataflow, name: str | None) -> str:
    if name:
        if "/" in name or not name.strip():
            raise UserError(f"--name `{name}` must be a plain name without `/`")
        return name
    base = f"{dataflow.file.stem}-{datetime.now():%Y%m%d-%H%M%S}"
    taken = {run.name for run in list_runs()}
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}-{k}"
    return name


def cmd_launch(args: argparse.Namespace) -> int:
    dataflow = _load(args.file)
    problems = affinity.check(dataflow)
    if problems:
        _refuse(args.file, problems)
    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be positive")
    extra_env: dict[str, str] = {}
    for provider_name, provider in launch_options():
        try:
            extra_env.update(provider.environment(args))
        except ValueError as exc:
            raise UserError(f"{provider_name} options: {exc}") from None
    name = _run_name(dataflow, args.name)
    out_dir = Path(args.out) / name
    run = create_run(name, str(dataflow.file), str(out_dir))
    terminal = Terminal([n.id for n in dataflow.nodes], quiet=args.quiet)
    machines = sorted({n.machine for n in dataflow.nodes if n.machine})
    if machines:
        terminal.say(
            f"running every node on this machine (deploy machines {', '.join(machines)} need `car coordinator`)"
        )
    daemon = Daemon(dataflow, run, terminal, grace=args.grace, extra_env=extra_env)
    terminal.say(f"run `{name}`: {len(dataflow.nodes)} nodes, logs in {out_dir}/")
    code = daemon.run(args.duration)
    for line in daemon.summary():
        terminal.say(line)
    return code


def cmd_list(args: argparse.Namespace) -> int:
    runs = list_runs()
    if not runs:
        print("no dataflow is running")
        return 0
    for run in runs:
        try:
            status = request(run, {"op": "list"})
            nodes = ", ".join(f"{n['id']}:{n['state']}" for n in status["nodes"])
            print(f"{run.name}  pid {run.pid}  up {status['uptime_s']} s  {run.dataflow}\n    {nodes}")
            for node in status["nodes"]:
                if node["status"]:
                    print(f"    {node['id']}: {node['status']}")
        except RunError as exc:
            print(f"{run.name}  pid {run.pid}  {run.dataflow}  ({exc})")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    run = find_run(args.name)
    request(run, {"op": "stop", "reason": "requested by `car stop`"})
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if all(r.run_id != run.run_id for r in list_runs()):
            print(f"stopped {run.name}")
            return 0
        time.sleep(0.05)
    raise UserError(f"run `{run.name}` (pid {run.pid}) is still stopping after {args.timeout:g} s")


def cmd_run_node(args: argparse.Namespace) -> int:
    run = find_run(args.run)
    answer = request(run, {"op": "node_config", "node": args.node})
    if not answer.get("ok"):
        raise UserError(str(answer.get("error")))
    config = answer["config"]
    command = list(args.command)
    if not command:
        print(f"export {ENV_VAR}='{config}'")
        return 0
    if command[0].endswith(".py"):
        command = [sys.executable, *command]
    env = dict(os.environ)
    env[ENV_VAR] = config
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(COMPAT_DIR), env.get("PYTHONPATH", "")]))
    try:
        code = subprocess.call(command, env=env)
    except OSError as exc:
        code = 127
        print(f"car: cannot start `{command[0]}`: {exc.strerror or exc}", file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    try:
        request(run, {"op": "exited", "node": args.node, "code": code})
    except RunError:
        pass  # the run has ended meanwhile
    return code


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `car`."""
    parser = argparse.ArgumentParser(prog="car", description="Run dora-style dataflows of nodes over ZeroMQ.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="check a dataflow file and report every problem")
    p.add_argument("file")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("graph", help="print a dataflow as Mermaid text")
    p.add_argument("file")
    p.add_argument("--html", metavar="OUT", help="write an HTML page that renders the graph")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("build", help="run the `build` command of every node")
    p.add_argument("file")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("launch", help="run a dataflow on this machine and show its output")
    p.add_argument("file")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--name", help="name of the run (default: FILE-DATE-TIME)")
    p.add_argument("--grace", type=float, default=2.0, metavar="S", help="seconds between STOP and SIGTERM (default 2)")
    p.add_argument("--out", default="out", metavar="DIR", help="logs go to DIR/NAME/NODE.log (default out)")
    p.add_argument("--quiet", action="store_true", help="do not echo node output (logs are still written)")
    for provider_name, provider in launch_options():
        provider.add_arguments(p.add_argument_group(f"{provider_name} options"))
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("list", help="list the dataflows running on this machine")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("stop", help="stop a running dataflow")
    p.add_argument("name", nargs="?", help="run name (default: the only running one)")
    p.add_argument("--timeout", type=float, default=15.0, metavar="S", help="wait at most S seconds")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser(
        "run-node",
        help="run a `path: dynamic` node by hand in a running dataflow",
        usage="car run-node NODE [--run NAME] [-- COMMAND [ARGS ...]]",
        epilog="Without a COMMAND, prints the environment variable to export before starting the node yourself.",
    )
    p.add_argument("node")
    p.add_argument("--run", help="run name (default: the only running one)")
    for name in command_names():
        sub.add_parser(name, help="added by an installed package: `car NAME --help` says more", add_help=False)
    p.set_defaults(func=cmd_run_node)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `car` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in command_names():  # a subcommand an installed package adds
        run_command(argv[0], argv[1:])
        return 0
    command: list[str] = []
    if "--" in argv:  # everything after `--` is the command `car run-node` starts
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    args = build_parser().parse_args(argv)
    args.command = command
    try:
        code: int = args.func(args)
        return code
    except (UserError, RunError) as exc:
        print(f"car: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
