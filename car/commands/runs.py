"""`car list`, `car stop` and `car run-node`: the dataflows running on this machine and the coordinator's, stopping
one, and running a `path: dynamic` node by hand."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import datetime

from car.commands import placed
from car.commands.common import UserError, coordinator_option, dataflow_option, json_option
from car.daemon.processes import with_compat_path
from car.plan.config import ENV_VAR
from car.plan.runs import RunError, RunInfo, ask, find_run, list_runs
from car.transport import control

PYTHON_NAMES = ("python", "python3", f"python3.{sys.version_info.minor}")


def list_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car list`."""
    json_option(parser)
    coordinator_option(parser)


def cmd_list(args: argparse.Namespace) -> int:
    """List the dataflows running on this machine (every run of this user, from any folder), and the
    coordinator's dataflows on every machine."""
    runs = [run for run in list_runs() if not run.machine]
    if args.json:
        print(
            json.dumps({"runs": [_run_json(run) for run in runs], "placed": placed.placed_json(args.coordinator_addr)})
        )
        return 0
    elsewhere = placed.list_placed(args.coordinator_addr)
    if not runs and not elsewhere:
        print("no dataflow is running")
        return 0
    for line in elsewhere:
        print(line)
    for run in runs:
        started = datetime.fromtimestamp(run.started).strftime("%Y-%m-%d %H:%M:%S")
        try:
            status = ask(run, control.ListRun(), control.RunStatus)
            nodes = ", ".join(f"{n.id}:{n.state}" for n in status.nodes)
            subscribers = f", {status.subscriptions} subscriber(s)" if status.subscriptions else ""
            print(
                f"{run.name}  pid {run.pid}  started {started}  up {status.uptime_s} s{subscribers}\n"
                f"    {run.dataflow}\n    {nodes}"
            )
            for node in status.nodes:
                if node.status:
                    print(f"    {node.id}: {node.status}")
        except RunError as exc:
            print(f"{run.name}  pid {run.pid}  started {started}  {run.dataflow}  ({exc})")
    return 0


def _run_json(run: RunInfo) -> dict[str, object]:
    """A run here as `car list --json` shows it (its nodes when it answers)."""
    entry: dict[str, object] = {"name": run.name, "run_id": run.run_id, "pid": run.pid, "dataflow": run.dataflow}
    try:
        status = ask(run, control.ListRun(), control.RunStatus)
        entry.update(uptime_s=status.uptime_s, subscriptions=status.subscriptions)
        entry["nodes"] = [asdict(n) for n in status.nodes]
    except RunError as exc:
        entry["error"] = str(exc)
    return entry


def stop_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car stop`."""
    dataflow_option(parser)
    json_option(parser)
    parser.add_argument("--timeout", type=float, default=15.0, metavar="S", help="wait at most S seconds")
    parser.add_argument("--grace", type=float, default=0.0, metavar="S", help="seconds between STOP and SIGTERM")
    coordinator_option(parser)


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop a running dataflow: one `car launch` runs on this machine, or one of the coordinator's."""
    try:
        run = find_run(args.dataflow)
    except RunError:
        stopped = placed.stop_placed(args.coordinator_addr, args.dataflow, args.grace, args.timeout)
        if stopped is None:
            raise
        print(json.dumps({"stopped": args.dataflow or "", "said": stopped}) if args.json else stopped)
        return 0
    ask(run, control.StopRun(grace=args.grace), control.Done)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if all(r.run_id != run.run_id for r in list_runs()):
            said = f"stopped {run.name} ({run.dataflow})"
            print(json.dumps({"stopped": run.name, "said": said}) if args.json else said)
            return 0
        time.sleep(0.05)
    raise UserError(f"run `{run.name}` (pid {run.pid}) is still stopping after {args.timeout:g} s")


def run_node_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car run-node`."""
    parser.add_argument("node")
    dataflow_option(parser)


def node_argv(command: list[str]) -> tuple[list[str], str]:
    """The command `car run-node` starts: a Python script, or `python ...`, runs with car's own interpreter."""
    if command[0].endswith(".py"):
        return [sys.executable, *command], ""
    if command[0] in PYTHON_NAMES:
        found = shutil.which(command[0])
        if found is None or os.path.realpath(found) != os.path.realpath(sys.executable):
            return [sys.executable, *command[1:]], f"running it with {sys.executable} (the Python car runs in)"
    return command, ""


def cmd_run_node(args: argparse.Namespace) -> int:
    """Run a `path: dynamic` node by hand in a running dataflow."""
    run = find_run(args.dataflow)
    config = ask(run, control.GetNodeConfig(args.node), control.NodeConfigText).config
    command = list(args.command)
    if not command:
        print(f"export {ENV_VAR}='{config}'")
        return 0
    command, note = node_argv(command)
    if note:
        print(f"car: {note}", file=sys.stderr)
    env = with_compat_path({**os.environ, ENV_VAR: config})
    try:
        code = subprocess.call(command, env=env)
    except OSError as exc:
        code = 127
        print(f"car: cannot start `{command[0]}`: {exc.strerror or exc}", file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    try:
        ask(run, control.NodeExited(args.node, code), control.Done)
    except RunError:
        pass  # the run has ended meanwhile
    return code
