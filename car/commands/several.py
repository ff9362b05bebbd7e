"""The `car` commands for graphs on several machines: coordinator, daemon, up/down, start, machines, keys.

Their rows are in the command table (car.commands.cli); `car list` and `car stop` show
and stop these dataflows too.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from car.plan.coordinator_client import ask, control_endpoint, coordinator_file, endpoint, local_coordinator
from car.plan.runs import RunError, pid_alive, runtime_root
from car.spec.loader import load_dataflow
from car.spec.model import DataflowError, Placement
from car.transport import cluster
from car.transport.keys import COORDINATOR, Keys, KeysError, create_keys, keys_dir, load_keys, trust
from car.transport.states import FlowState, MachineState, PartState

LOOPBACK = "127.0.0.1"
UP_WAIT_S = 10.0
DOWN_WAIT_S = 20.0  # how long `car down` waits for the coordinator to have stopped every run
FOLLOW_PERIOD_S = 0.3


def state_root() -> Path:
    """Where daemons keep run logs by default: `$XDG_STATE_HOME/car/runs` (~/.local/state/car/runs)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "car" / "runs"


def _say(text: str) -> None:
    print(f"car: {text}", file=sys.stderr, flush=True)


# -- car coordinator ---------------------------------------------------------------------------


def coordinator_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car coordinator`."""
    parser.add_argument(
        "--bind", default=LOOPBACK, metavar="ADDR", help=f"the address to listen on (default {LOOPBACK})"
    )
    parser.add_argument(
        "--daemon-port",
        type=int,
        default=cluster.DAEMON_PORT,
        metavar="PORT",
        help="daemons connect here (default 53290)",
    )
    parser.add_argument(
        "--control-port",
        type=int,
        default=cluster.CONTROL_PORT,
        metavar="PORT",
        help="car commands connect here (default 6012)",
    )
    parser.add_argument(
        "--heartbeat", type=float, default=0.5, metavar="S", help="seconds between heartbeats (default 0.5)"
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, metavar="S", help="a daemon silent this long is lost (default 3)"
    )


def _keys_for(option: str, address: str) -> Keys | None:
    """This host's keys; listening at `address` beyond loopback without them is refused."""
    try:
        keys = load_keys()
    except KeysError as exc:
        raise RunError(str(exc)) from None
    if keys is None and address not in (LOOPBACK, "localhost"):
        raise RunError(
            f"{option} {address}: listening beyond this machine needs keys: run `car keys init` "
            f"(see `car keys --help`), or stay on {LOOPBACK}"
        )
    return keys


def cmd_coordinator(args: argparse.Namespace) -> int:
    """Run the coordinator in the foreground."""
    if args.heartbeat <= 0 or args.timeout <= args.heartbeat:
        raise RunError("--heartbeat must be positive and --timeout longer than it")
    keys = _keys_for("--bind", args.bind)
    daemons = f"tcp://{args.bind}:{args.daemon_port}"
    controls = f"tcp://{args.bind}:{args.control_port}"
    from car.coordinator import server  # only this command needs it: others start faster

    if keys is not None:
        _say(f"CurveZMQ on: daemons and car commands need keys {keys.trusted} trusts")
    announced = not local_coordinator()  # the first coordinator on this host says where it listens
    if announced:
        coordinator_file().write_text(json.dumps({"pid": os.getpid(), "control": controls}))
    try:
        return server.serve(daemons, controls, heartbeat=args.heartbeat, timeout=args.timeout, say=_say, keys=keys)
    except OSError as exc:  # zmq.ZMQError is one
        raise RunError(f"cannot listen on {daemons} and {controls}: {exc}; pick other ports") from None
    finally:
        if announced:
            coordinator_file().unlink(missing_ok=True)


# -- car daemon ---------------------------------------------------------------------------------


def daemon_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car daemon`."""
    parser.add_argument(
        "--machine-id", required=True, metavar="ID", help="this machine's name in `deploy: {machine: ID}`"
    )
    parser.add_argument(
        "--coordinator-addr",
        default=f"{LOOPBACK}:{cluster.DAEMON_PORT}",
        metavar="HOST[:PORT]",
        help=f"the coordinator's daemon port (default {LOOPBACK}:{cluster.DAEMON_PORT})",
    )
    parser.add_argument(
        "--listen",
        default=LOOPBACK,
        metavar="ADDR",
        help=f"where nodes listen for nodes on other machines (default {LOOPBACK})",
    )
    parser.add_argument(
        "--advertise",
        default="",
        metavar="HOST",
        help="the address other machines reach this one at (default: as the coordinator sees it)",
    )
    parser.add_argument(
        "--out", default=None, metavar="DIR", help=f"run logs go to DIR/NAME/NODE.log (default {state_root()})"
    )
    parser.add_argument(
        "--lost-grace",
        type=float,
        default=10.0,
        metavar="S",
        help="without the coordinator for S seconds, stop this machine's runs (default 10)",
    )


def cmd_daemon(args: argparse.Namespace) -> int:
    """Run a machine's daemon in the foreground."""
    if not args.machine_id or "/" in args.machine_id or any(c.isspace() for c in args.machine_id):
        raise RunError(f"--machine-id `{args.machine_id}` must be a plain name without `/` or spaces")
    keys = _keys_for("--listen", args.listen)
    if keys is not None:
        try:
            keys.peer(COORDINATOR)
        except KeysError as exc:
            raise RunError(str(exc)) from None
    out = Path(args.out) if args.out else state_root()
    from car.daemon.machine import MachineDaemon  # only this command needs it: others start faster

    daemon = MachineDaemon(
        args.machine_id,
        endpoint(args.coordinator_addr, cluster.DAEMON_PORT),
        out,
        args.listen,
        args.advertise,
        args.lost_grace,
        say=_say,
        keys=keys,
    )
    return daemon.run()


# -- car up / car down ----------------------------------------------------------------------------


def up_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car up`."""
    parser.add_argument(
        "--machine-id", default=socket.gethostname(), metavar="ID", help="this machine's id (default: the host name)"
    )
    parser.add_argument("--daemon-port", type=int, default=cluster.DAEMON_PORT, metavar="PORT")
    parser.add_argument("--control-port", type=int, default=cluster.CONTROL_PORT, metavar="PORT")


def up_file() -> Path:
    """What `car up` started, for `car down`."""
    return runtime_root() / "up.json"


def cmd_up(args: argparse.Namespace) -> int:
    """Start a coordinator and this machine's daemon in the background."""
    if local_coordinator():
        raise RunError("a coordinator already runs on this host: `car machines` shows it, `car down` stops it")
    logs = state_root().parent
    logs.mkdir(parents=True, exist_ok=True)
    car = [sys.executable, "-m", "car"]
    started = []
    for name, argv in (
        (
            "coordinator",
            [*car, "coordinator", "--daemon-port", str(args.daemon_port), "--control-port", str(args.control_port)],
        ),
        (
            "daemon",
            [*car, "daemon", "--machine-id", args.machine_id, "--coordinator-addr", f"{LOOPBACK}:{args.daemon_port}"],
        ),
    ):
        with open(logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        started.append({"name": name, "pid": proc.pid})
        if name == "coordinator":
            time.sleep(0.2)
    up_file().write_text(json.dumps(started))
    target = f"tcp://{LOOPBACK}:{args.control_port}"
    deadline = time.monotonic() + UP_WAIT_S
    while time.monotonic() < deadline:
        try:
            machines = ask(target, cluster.ListMachines(), cluster.Machines, timeout=1.0).machines
        except RunError:
            machines = []
        if any(m.machine == args.machine_id and m.state == MachineState.CONNECTED for m in machines):
            print(f"car: coordinator and daemon `{args.machine_id}` are up (logs in {logs}); `car down` stops them")
            return 0
        time.sleep(0.1)
    _stop_recorded(started, 0.0)
    raise RunError(
        f"the coordinator or daemon did not come up within {UP_WAIT_S:g} s: see {logs}/coordinator.log and daemon.log"
    )


def _stop_recorded(started: list[dict[str, object]], wait: float) -> None:
    """Give what `car up` started `wait` seconds to end, then SIGTERM what is left and wait for that."""
    pids = [int(str(p["pid"])) for p in started]

    def alive() -> list[int]:
        return [pid for pid in pids if pid_alive(pid) and not _zombie(pid)]

    for limit, signal_after in ((wait, True), (UP_WAIT_S, False)):
        deadline = time.monotonic() + limit
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in alive() if signal_after else []:
            os.kill(pid, 15)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False


def cmd_down(args: argparse.Namespace) -> int:
    """Stop every dataflow, the daemons and the coordinator `car up` started."""
    target, _ = control_endpoint(args.coordinator_addr)
    try:
        ask(target, cluster.Shutdown(), cluster.Accepted, timeout=DOWN_WAIT_S)
    except RunError as exc:
        if up_file().exists():
            _say(f"{exc}; stopping what `car up` started")
        else:
            raise
    if up_file().exists():
        _stop_recorded(json.loads(up_file().read_text()), UP_WAIT_S)
        up_file().unlink(missing_ok=True)
    print("car: down")
    return 0


# -- car start / machines / logs ------------------------------------------------------------------


def coordinator_option(parser: argparse.ArgumentParser) -> None:
    """The `--coordinator-addr` option of commands that ask the coordinator."""
    parser.add_argument(
        "--coordinator-addr",
        default=None,
        metavar="HOST[:PORT]",
        help="the coordinator (default: the one on this host, or $CAR_COORDINATOR)",
    )


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
    coordinator_option(parser)


def cmd_start(args: argparse.Namespace) -> int:
    """Start a dataflow on the machines it names."""
    from car.daemon.machine import local_machines

    here = local_machines()
    try:
        text = Path(args.file).read_text(encoding="utf-8")
        dataflow = load_dataflow(args.file, Placement(frozenset(here), checking=None))  # this host's: checked here
    except OSError as exc:
        raise RunError(f"{args.file}: cannot read it ({exc.strerror or exc})") from None
    except DataflowError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise RunError(f"{args.file}: {len(exc.problems)} problem(s); nothing was started") from None
    if args.topics and not args.record:
        raise RunError("--topics says what --record records: give --record FILE.mcap too")
    if args.record:
        from car.commands.recorder import add_recorder  # the node's module: only when recording

        machine = args.record_machine or dataflow.nodes[0].machine
        text = add_recorder(text, dataflow, args.record, machine, args.topics)
    target, _ = control_endpoint(args.coordinator_addr)
    message = cluster.StartDataflow(text, str(Path(args.file).resolve()), args.name, here)
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
                    _say(f"machine `{part.machine}` lost: its nodes' readers elsewhere get INPUT_CLOSED")
                elif states.get(part.machine) == PartState.LOST != part.state:
                    _say(f"machine `{part.machine}` is back ({part.state})")
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
        _say(f"stopping {name}")
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


def cmd_machines(args: argparse.Namespace) -> int:
    """List the machines connected to the coordinator."""
    target, _ = control_endpoint(args.coordinator_addr)
    machines = ask(target, cluster.ListMachines(), cluster.Machines).machines
    if args.json:
        print(json.dumps([m.__dict__ for m in machines]))
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


def machines_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car machines`."""
    parser.add_argument("--json", action="store_true", help="print JSON")
    coordinator_option(parser)


# -- car list / car stop, for dataflows on several machines -------------------------------------------


def list_placed(address: str | None) -> list[str]:
    """What `car list` adds for the coordinator's dataflows (nothing when no coordinator runs)."""
    target, named = control_endpoint(address)
    if not named:
        return []
    lines = []
    for flow in ask(target, cluster.ListDataflows(), cluster.Dataflows).dataflows:
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


# -- car keys -----------------------------------------------------------------------------------------


def keys_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car keys`."""
    parser.add_argument(
        "action", choices=("init", "trust", "show"), help="make this host's keys; trust a peer's; show ours"
    )
    parser.add_argument("name", nargs="?", help="trust: the peer's name (`coordinator`, or a machine id)")
    parser.add_argument("file", nargs="?", help="trust: the peer's public key file (its keys/self.key)")
    parser.add_argument("--coordinator", action="store_true", help="init: this host runs the coordinator")
    parser.add_argument("--force", action="store_true", help="init: replace keys that exist")
    parser.add_argument(
        "--dir", default=None, metavar="DIR", help=f"the keys folder (default {keys_dir()}, or $CAR_KEYS_DIR)"
    )


def cmd_keys(args: argparse.Namespace) -> int:
    """Make, trust and show CurveZMQ keys."""
    folder = Path(args.dir) if args.dir else keys_dir()
    try:
        if args.action == "init":
            keys = create_keys(folder, args.coordinator, args.force)
            print(f"made this host's keys in {folder} (secret key mode 0600)")
            print(f"public key: {keys.public.decode()} ({folder / 'self.key'})")
            if args.coordinator:
                print(f"on each other host: `car keys trust coordinator FILE` with this host's {folder / 'self.key'}")
                print("here, for each other host: `car keys trust NAME FILE` with its self.key")
            else:
                print("here: `car keys trust coordinator FILE` with the coordinator host's self.key;")
                print(f"on the coordinator's host: `car keys trust NAME FILE` with this host's {folder / 'self.key'}")
            return 0
        if args.action == "trust":
            if not args.name or not args.file:
                raise RunError("car keys trust NAME FILE: name the peer and give its public key file")
            print(f"trusted `{args.name}`: {trust(folder, args.name, Path(args.file))}")
            return 0
        mine = load_keys(folder)
        if mine is None:
            raise RunError(f"no keys in {folder}: make them with `car keys init`")
        print(f"public key: {mine.public.decode()} ({folder / 'self.key'})")
        for path in sorted(mine.trusted.glob("*.key")):
            print(f"trusted: {path.stem}")
        return 0
    except KeysError as exc:
        raise RunError(str(exc)) from None
