"""The `car` command: one table of subcommands (`COMMANDS`), built-in and from installed packages.

Each row names a subcommand, says what it does, declares its arguments and points at its
handler, as mpremote's command table does; installed packages add rows through the
`car.commands` entry point (car.commands.extensions). Mistakes in what the user gave (a
bad file, an unknown run, an unknown option) end with a message on stderr and exit code
2; a run in which a node failed ends with exit code 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import car
from car.commands import logs, nodes, param, record, replay, several, top, topic
from car.commands.extensions import companions, extension_commands, launch_options
from car.daemon import affinity
from car.daemon.daemon import Daemon
from car.daemon.logs import Terminal
from car.daemon.machine import local_machines
from car.daemon.processes import with_compat_path
from car.plan.config import ENV_VAR
from car.plan.runs import RunError, ask, create_run, find_run, list_runs
from car.spec.graph import to_html, to_mermaid
from car.spec.loader import load_dataflow
from car.spec.model import Dataflow, DataflowError, Placement, Problem
from car.transport import control

EXIT_USER_ERROR = 2
PYTHON_NAMES = ("python", "python3", f"python3.{sys.version_info.minor}")


class UserError(Exception):
    """A mistake in what the user asked for; its message says what to do."""


@dataclass(frozen=True)
class Command:
    """One row of the command table."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None] | None  # None: it parses its own (`own_main`)
    handler: Callable[[argparse.Namespace], int] | None
    usage: str | None = None
    epilog: str | None = None
    own_main: Callable[[], Callable[[list[str]], None]] | None = None  # an installed package's command, loaded when run


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


# -- check, graph, build ---------------------------------------------------------------------


def _file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a dataflow file (YAML)")


def cmd_check(args: argparse.Namespace) -> int:
    """Check a dataflow file and report every problem, as `car start` would place it: nodes on machines
    whose daemons run here, or on the file's default machine, are local; the others need a `working_dir`."""
    dataflow = _load(args.file)
    if dataflow.machines():
        here = frozenset({dataflow.machine, *local_machines()})
        try:
            dataflow = load_dataflow(args.file, Placement(here))
        except DataflowError as exc:
            _refuse(args.file, exc.problems)
    links = sum(len(n.inputs) for n in dataflow.nodes)
    print(f"{args.file}: ok ({len(dataflow.nodes)} nodes, {links} inputs)")
    return 0


def _graph_arguments(parser: argparse.ArgumentParser) -> None:
    _file_argument(parser)
    parser.add_argument("--html", metavar="OUT", help="write an HTML page that shows the graph (no network needed)")


def cmd_graph(args: argparse.Namespace) -> int:
    """Print a dataflow as Mermaid text, or write a page that shows it."""
    dataflow = _load(args.file)
    if args.html:
        _check_writable(args.html, "--html")
        Path(args.html).write_text(to_html(dataflow), encoding="utf-8")
        print(f"wrote {args.html}")
    else:
        sys.stdout.write(to_mermaid(dataflow))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    """Run every node's `build` command in the dataflow's folder."""
    dataflow = _load(args.file)
    for node in dataflow.nodes:
        if not node.build:
            continue
        print(f"car: building `{node.id}`: {node.build}", flush=True)
        cwd = dataflow.node_folder(node)
        result = subprocess.run(node.build, shell=True, cwd=cwd)
        if result.returncode != 0:
            print(f"car: build of node `{node.id}` failed (exit code {result.returncode})", file=sys.stderr)
            return 1
    return 0


# -- launch ---------------------------------------------------------------------------------


def _check_writable(path: str, option: str) -> None:
    """A file `car` will write later: refuse now, before anything starts, if it cannot be written."""
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise UserError(f"{option} {path}: the folder {folder} does not exist; create it or pick another path")
    if not os.access(folder, os.W_OK):
        raise UserError(f"{option} {path}: the folder {folder} is not writable; pick another path")


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


def _launch_arguments(parser: argparse.ArgumentParser) -> None:
    _file_argument(parser)
    _run_arguments(parser)
    parser.add_argument("--topics", nargs="+", default=[], metavar="NODE/OUTPUT", help="with --record: only these")


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
    dataflow = _load(args.file)
    if args.topics and not args.record:
        raise UserError("--topics says what --record records: give --record FILE.mcap too")
    return _launch(dataflow, args, args.topics)


def _launch(dataflow: Dataflow, args: argparse.Namespace, record_topics: list[str]) -> int:
    """Run `dataflow` here as `args` (`_run_arguments`) say, recording `record_topics` (all: []) with --record."""
    problems = affinity.check(dataflow)
    if problems:
        _refuse(str(dataflow.file), problems)
    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be positive")
    extra_env: dict[str, str] = {}
    terminal_warnings: list[str] = []
    for provider_name, provider in launch_options():
        try:
            extra_env.update(provider.environment(args))
            terminal_warnings += provider.warnings(args)
        except ValueError as exc:
            raise UserError(f"{provider_name} options: {exc}") from None
    if args.record:
        record.check_output(Path(args.record))
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
    daemon = Daemon(dataflow, run, terminal, grace=args.grace, extra_env=extra_env)
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


def _replay_arguments(parser: argparse.ArgumentParser) -> None:
    replay.replay_arguments(parser)
    _run_arguments(parser)


def cmd_replay(args: argparse.Namespace) -> int:
    """Run a dataflow with recorded outputs played in place of the nodes that sent them."""
    recording = Path(args.recording)
    info = record.describe_file(recording, sizes=False)
    file = args.dataflow or replay.recorded_dataflow(recording, info)
    plan = replay.plan_replay(_load(file), recording, info, args)
    for node_id, topics in plan.played.items():
        print(f"car: `{node_id}` replayed from {recording}: {', '.join(topics)}", file=sys.stderr)
    if plan.silent:
        print(f"car: not in what is replayed, so never sent: {', '.join(plan.silent)}", file=sys.stderr)
    return _launch(plan.dataflow, args, [])


# -- running dataflows ------------------------------------------------------------------------


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    several.coordinator_option(parser)


def cmd_list(args: argparse.Namespace) -> int:
    """List the dataflows running on this machine (every run of this user, from any folder), and the
    coordinator's dataflows on every machine."""
    runs = [run for run in list_runs() if not run.machine]
    placed = several.list_placed(args.coordinator_addr)
    if not runs and not placed:
        print("no dataflow is running")
        return 0
    for line in placed:
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


def _stop_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="run name or id (default: the only running one; see `car list`)")
    parser.add_argument("--timeout", type=float, default=15.0, metavar="S", help="wait at most S seconds")
    parser.add_argument("--grace", type=float, default=0.0, metavar="S", help="seconds between STOP and SIGTERM")
    several.coordinator_option(parser)


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop a running dataflow: one `car launch` runs on this machine, or one of the coordinator's."""
    try:
        run = find_run(args.name)
    except RunError:
        stopped = several.stop_placed(args.coordinator_addr, args.name, args.grace, args.timeout)
        if stopped is None:
            raise
        print(stopped)
        return 0
    ask(run, control.StopRun(grace=args.grace), control.Done)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if all(r.run_id != run.run_id for r in list_runs()):
            print(f"stopped {run.name} ({run.dataflow})")
            return 0
        time.sleep(0.05)
    raise UserError(f"run `{run.name}` (pid {run.pid}) is still stopping after {args.timeout:g} s")


def _run_node_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("node")
    parser.add_argument("--run", help="run name (default: the only running one)")


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
    run = find_run(args.run)
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


def _doctor_main() -> Callable[[list[str]], None]:
    from car.commands import doctor  # strace, seccomp and the system-call tables: only for `car doctor`

    return doctor.main


COMMANDS: list[Command] = [
    Command("check", "check a dataflow file and report every problem", _file_argument, cmd_check),
    Command("graph", "print a dataflow as Mermaid text (or --html: a page)", _graph_arguments, cmd_graph),
    Command("build", "run the `build` command of every node", _file_argument, cmd_build),
    Command("launch", "run a dataflow on this machine and show its output", _launch_arguments, cmd_launch),
    Command("list", "list running dataflows: this machine's, and the coordinator's", _list_arguments, cmd_list),
    Command("stop", "stop a running dataflow", _stop_arguments, cmd_stop),
    Command(
        "start",
        "start a dataflow on the machines it names (a coordinator places it)",
        several.start_arguments,
        several.cmd_start,
    ),
    Command("node", "the nodes of a running graph: list, info, restart, stop", nodes.node_arguments, nodes.cmd_node),
    Command("param", "a running node's parameters: list, get, set, describe", param.param_arguments, param.cmd_param),
    Command(
        "top",
        "a live table of a running graph's nodes: CPU, memory, rates, drops, latency",
        top.top_arguments,
        top.cmd_top,
    ),
    Command(
        "topic",
        "look at a running graph's outputs: list, echo, hz, bw, info, pub",
        topic.topic_arguments,
        topic.cmd_topic,
    ),
    Command("record", "record a running graph's outputs into an MCAP file", record.record_arguments, record.cmd_record),
    Command(
        "replay",
        "run a dataflow with a recording's outputs in place of the nodes that sent them",
        _replay_arguments,
        cmd_replay,
    ),
    Command(
        "info",
        "what an MCAP recording holds: duration, channels, counts, rates",
        record.info_arguments,
        record.cmd_info,
    ),
    Command(
        "doctor",
        "check the car side of a graph against a target kernel (StarryOS): trace, compare, fail the gaps",
        None,
        None,
        own_main=_doctor_main,
    ),
    Command(
        "logs", "print a node's log, from this machine's run or wherever it runs", logs.logs_arguments, logs.cmd_logs
    ),
    Command(
        "machines", "list the machines connected to the coordinator", several.machines_arguments, several.cmd_machines
    ),
    Command(
        "coordinator",
        "run the coordinator of several machines' daemons",
        several.coordinator_arguments,
        several.cmd_coordinator,
    ),
    Command("daemon", "run this machine's daemon for a coordinator", several.daemon_arguments, several.cmd_daemon),
    Command(
        "up", "start a coordinator and this machine's daemon in the background", several.up_arguments, several.cmd_up
    ),
    Command(
        "keys", "make, trust and show the CurveZMQ keys of several machines", several.keys_arguments, several.cmd_keys
    ),
    Command(
        "down", "stop every dataflow, the daemons and the coordinator", several.coordinator_option, several.cmd_down
    ),
    Command(
        "run-node",
        "run a `path: dynamic` node by hand in a running dataflow",
        _run_node_arguments,
        cmd_run_node,
        usage="car run-node NODE [--run NAME] [-- COMMAND [ARGS ...]]",
        epilog="Without a COMMAND, prints the environment variable to export before starting the node yourself. "
        "`python ...` runs with the Python car runs in.",
    ),
]


def command_table() -> list[Command]:
    """Every subcommand: the built-in ones, then those installed packages add (`car.commands`)."""
    installed = [
        Command(name, "added by an installed package: `car NAME --help` says more", None, None, own_main=load)
        for name, load in extension_commands()
    ]
    return COMMANDS + [c for c in installed if c.name not in {b.name for b in COMMANDS}]


def build_parser(table: list[Command]) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The argument parser of `car`, and each subcommand's, from the command table."""
    parser = argparse.ArgumentParser(prog="car", description="Run dora-style dataflows of nodes on one machine.")
    parser.add_argument("--version", action="version", version=f"car {car.__version__}")
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    parsers = {}
    for command in table:
        p = sub.add_parser(
            command.name,
            help=command.help,
            usage=command.usage,
            epilog=command.epilog,
            add_help=command.arguments is not None,
        )
        if command.arguments is not None:
            command.arguments(p)
        parsers[command.name] = p
    return parser, parsers


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `car` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    table = command_table()
    rows = {command.name: command for command in table}
    row = rows.get(argv[0]) if argv else None
    if row is not None and row.own_main is not None:  # it parses its own arguments
        row.own_main()(argv[1:])
        return 0
    command: list[str] = []
    if "--" in argv:  # everything after `--` is the command `car run-node` starts
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    parser, parsers = build_parser(table)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # shown with the subcommand's usage, not the top level's
        parsers[args.subcommand].error(f"unrecognized arguments: {' '.join(unknown)}")
    args.command = command
    handler = rows[args.subcommand].handler
    assert handler is not None  # rows without a handler run their own main, above
    try:
        return handler(args)
    except (UserError, RunError) as exc:
        print(f"car: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
