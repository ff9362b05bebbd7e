"""`car launch` and `car replay`: run a dataflow on this machine (replayed: with a recording's outputs in place of
the nodes that sent them), with the terminal showing its nodes' output, until it ends or is stopped."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from car.commands import record, replay
from car.commands.common import UserError, file_argument, load_or_refuse, refuse
from car.commands.extensions import companions, launch_options
from car.daemon import affinity
from car.daemon.daemon import Daemon
from car.daemon.logs import Terminal
from car.plan.runs import create_run, list_runs
from car.recording.sink import check_output, describe_file
from car.spec.model import Dataflow


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


def launch_arguments(parser: argparse.ArgumentParser) -> None:
    file_argument(parser)
    _run_arguments(parser)
    parser.add_argument("--topics", nargs="+", default=[], metavar="NODE/OUTPUT", help="with --record: only these")
    parser.add_argument(
        "--hot-reload",
        action="store_true",
        help="when a node's or an operator's Python file changes: the operator is imported again in place, the node "
        "restarted; a file that does not import or compile leaves the old code running",
    )


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    """How a run goes on this machine (`car launch`, `car replay`)."""
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--name", help="name of the run (default: FILE-DATE-TIME)")
    parser.add_argument(
        "--grace", type=float, default=2.0, metavar="S", help="seconds between STOP and SIGTERM (default 2)"
    )
    parser.add_argument("--out", default="out", metavar="DIR", help="logs go to DIR/NAME/NODE.log (default out)")
    parser.add_argument("--quiet", action="store_true", help="do not echo node output (logs are still written)")
    parser.add_argument("--record", metavar="FILE.mcap", help="record every output from the first message (MCAP)")
    for provider_name, provider in launch_options():
        provider.add_arguments(parser.add_argument_group(f"{provider_name} options"))


def cmd_launch(args: argparse.Namespace) -> int:
    """Run a dataflow on this machine and show its output."""
    dataflow = load_or_refuse(args.file)
    if args.topics and not args.record:
        raise UserError("--topics says what --record records: give --record FILE.mcap too")
    return _launch(dataflow, args, args.topics, hot_reload=args.hot_reload)


def _launch(dataflow: Dataflow, args: argparse.Namespace, record_topics: list[str], hot_reload: bool = False) -> int:
    """Run `dataflow` here as `args` (`_run_arguments`) say, recording `record_topics` (all: []) with --record
    (`hot_reload`: car.daemon.reloads)."""
    problems = affinity.check(dataflow)
    if problems:
        refuse(str(dataflow.file), problems)
    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be positive")
    extra_env: dict[str, str] = {}
    terminal_warnings: list[str] = []
    for provider_name, provider in launch_options():
        try:
            extra_env.update(provider.environment(args))
            terminal_warnings += provider.warnings(args, dataflow)
        except ValueError as exc:
            raise UserError(f"{provider_name} options: {exc}") from None
    if args.record:
        check_output(Path(args.record))
        outputs = [f"{n.id}/{o}" for n in dataflow.nodes for o in n.outputs]
        for topic in record_topics:
            if topic not in outputs and not any(o.startswith(topic + "/") for o in outputs):
                raise UserError(f"--topics {topic}: {dataflow.file} has no such output ({', '.join(outputs)})")
    name = _run_name(dataflow, args.name)
    out_dir = Path(args.out) / name
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {args.out}: cannot create {out_dir} ({exc.strerror}); pick another folder") from None
    run = create_run(name, str(dataflow.file), str(out_dir))
    terminal = Terminal([n.id for n in dataflow.nodes], quiet=args.quiet)
    for warning in terminal_warnings:
        terminal.say(f"warning: {warning}")
    machines = dataflow.machines()
    if machines:
        terminal.say(f"the file places nodes on {', '.join(machines)}: all run here (`car start` places them)")
    daemon = Daemon(dataflow, run, terminal, grace=args.grace, extra_env=extra_env, hot_reload=hot_reload)
    terminal.say(f"run `{name}`: {len(dataflow.nodes)} nodes, logs in {out_dir}/")
    recorder = record.start_recorder(name, Path(args.record), record_topics) if args.record else None
    beside = [subprocess.Popen(command, start_new_session=True) for command in companions(args, name)]
    try:
        if recorder is None:
            code = daemon.run(args.duration)
        else:
            code = daemon.run(args.duration, record.JOIN_S, lambda: recorder.poll() is None)
    finally:
        recorded = record.finish_recorder(recorder) if recorder is not None else 0
        for process in beside:
            end_process(process)
    for line in daemon.summary():
        terminal.say(line)
    if recorded:
        terminal.say(f"the recording into {args.record} failed (exit code {recorded}): see its message above")
    return code or (1 if recorded else 0)


def end_process(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """End a process this one started (SIGTERM, then SIGKILL after `grace` seconds) and wait for it."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def replay_arguments(parser: argparse.ArgumentParser) -> None:
    replay.replay_arguments(parser)
    _run_arguments(parser)


def cmd_replay(args: argparse.Namespace) -> int:
    """Run a dataflow with recorded outputs played in place of the nodes that sent them."""
    recording = Path(args.recording)
    info = describe_file(recording, sizes=False)
    file = args.dataflow or replay.recorded_dataflow(recording, info)
    plan = replay.plan_replay(load_or_refuse(file), recording, info, args)
    for node_id, topics in plan.played.items():
        print(f"car: `{node_id}` replayed from {recording}: {', '.join(topics)}", file=sys.stderr)
    if plan.silent:
        print(f"car: not in what is replayed, so never sent: {', '.join(plan.silent)}", file=sys.stderr)
    return _launch(plan.dataflow, args, [])
