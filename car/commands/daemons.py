"""`car coordinator`, `car daemon`, `car up` and `car down`: the long-running processes of several machines.

The coordinator (car.coordinator) places dataflows on machines; each machine's daemon
(car.daemon.machine) runs its part. `car up` starts both in the background on this host,
`car down` stops every dataflow, the daemons and the coordinator.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from car.commands.common import coordinator_option, say
from car.plan.coordinator_client import ask, control_endpoint, coordinator_file, endpoint, local_coordinator
from car.plan.runs import RunError, pid_alive, runtime_root
from car.transport import cluster, discovery
from car.transport.keys import COORDINATOR, Keys, KeysError, load_keys
from car.transport.states import MachineState

LOOPBACK = "127.0.0.1"
UP_WAIT_S = 10.0
DOWN_WAIT_S = 20.0  # how long `car down` waits for the coordinator to have stopped every run


def state_root() -> Path:
    """Where daemons keep run logs by default: `$XDG_STATE_HOME/car/runs` (~/.local/state/car/runs)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "car" / "runs"


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
        say(f"CurveZMQ on: daemons and car commands need keys {keys.trusted} trusts")
    announced = not local_coordinator()  # the first coordinator on this host says where it listens
    if announced:
        coordinator_file().write_text(json.dumps({"pid": os.getpid(), "control": controls}))
    mine = {"control": str(args.control_port), "key": keys.public.decode() if keys is not None else ""}
    try:
        with discovery.announced(discovery.Kind.COORDINATOR, socket.gethostname(), args.bind, args.daemon_port, mine):
            return server.serve(daemons, controls, heartbeat=args.heartbeat, timeout=args.timeout, say=say, keys=keys)
    except OSError as exc:  # zmq.ZMQError is one
        raise RunError(f"cannot listen on {daemons} and {controls}: {exc}; pick other ports") from None
    finally:
        if announced:
            coordinator_file().unlink(missing_ok=True)


def daemon_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car daemon`."""
    parser.add_argument(
        "--machine-id", required=True, metavar="ID", help="this machine's name in `deploy: {machine: ID}`"
    )
    parser.add_argument(
        "--coordinator-addr",
        default=None,
        metavar="HOST[:PORT]",
        help=f"the coordinator's daemon port (default: the one that answers on the LAN (mDNS), else "
        f"{LOOPBACK}:{cluster.DAEMON_PORT})",
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
    from car.daemon import machine_server  # only this command needs it: others start faster

    coordinator = args.coordinator_addr or _found_coordinator()
    mine = {"machine": args.machine_id, "key": keys.public.decode() if keys is not None else ""}
    with discovery.announced(discovery.Kind.DAEMON, args.machine_id, args.listen, 0, mine):
        return machine_server.serve(
            args.machine_id,
            endpoint(coordinator, cluster.DAEMON_PORT),
            out,
            listen_host=args.listen,
            advertise=args.advertise,
            lost_grace=args.lost_grace,
            say=say,
            keys=keys,
        )


def _found_coordinator() -> str:
    """The coordinator that answers on the LAN (mDNS); this host's when none does; RunError when several do."""
    try:
        found = discovery.discover(kinds=(discovery.Kind.COORDINATOR,))
    except discovery.DiscoveryUnavailable as exc:
        say(f"{exc}; using the coordinator on this host")
        return f"{LOOPBACK}:{cluster.DAEMON_PORT}"
    if len(found) > 1:
        seen = ", ".join(f"{f.name} ({f.address}:{f.port})" for f in found)
        raise RunError(f"several coordinators answer on the LAN ({seen}): pick one with --coordinator-addr")
    if not found:
        say(f"no coordinator answered on the LAN within {discovery.DISCOVER_S:g} s: using {LOOPBACK}")
        return f"{LOOPBACK}:{cluster.DAEMON_PORT}"
    say(f"found the coordinator on {found[0].name} ({found[0].address}:{found[0].port})")
    return f"{found[0].address}:{found[0].port}"


def up_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car up`."""
    parser.add_argument(
        "--machine-id", default=socket.gethostname(), metavar="ID", help="this machine's id (default: the host name)"
    )
    parser.add_argument("--daemon-port", type=int, default=cluster.DAEMON_PORT, metavar="PORT")
    parser.add_argument("--control-port", type=int, default=cluster.CONTROL_PORT, metavar="PORT")


@dataclass(frozen=True)
class Background:
    """A process `car up` started (the coordinator, the daemon), as up.json keeps it for `car down`."""

    name: str
    pid: int


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
    started: list[Background] = []
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
        started.append(Background(name, proc.pid))
        if name == "coordinator":
            time.sleep(0.2)
    up_file().write_text(json.dumps([asdict(b) for b in started]))
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


def _stop_recorded(started: list[Background], wait: float) -> None:
    """Give what `car up` started `wait` seconds to end, then SIGTERM what is left and wait for that."""
    pids = [b.pid for b in started]

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
            say(f"{exc}; stopping what `car up` started")
        else:
            raise
    if up_file().exists():
        _stop_recorded([Background(**entry) for entry in json.loads(up_file().read_text())], UP_WAIT_S)
        up_file().unlink(missing_ok=True)
    print("car: down")
    return 0


def down_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car down`."""
    coordinator_option(parser)
