"""One machine's part of a run a coordinator placed: `python -m car.daemon.run_part SPEC.json`.

A machine's daemon (car.daemon.machine) starts one such process per run: it is the same
`Daemon` `car launch` runs, given the machine's nodes and the tcp:// wiring to the
others. It tells the machine's daemon (on its uplink socket) when nodes here are ready,
end, start again and have the end of other machines' streams (`Uplink`), so that the
nodes elsewhere hear of it, and stops its run when that daemon goes away.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import zmq

from car.daemon.daemon import Daemon
from car.daemon.logs import Terminal
from car.plan.build import Wiring
from car.plan.runs import create_run
from car.spec.loader import check_text
from car.spec.model import DataflowError, Placement
from car.transport import cluster, control

PARENT_CHECK_S = 0.5


@dataclass
class PartSpec:
    """What a machine's daemon hands the process that runs its part of a run."""

    run_id: str
    name: str
    machine: str
    text: str  # the dataflow file, as the CLI read it
    file: str  # where the CLI read it
    modules: dict[str, str]  # its module files' texts, by their path in its folder
    here: list[str]
    default_machine: str
    out_dir: str
    uplink: str  # the machine daemon's socket for NodesGone
    parent_pid: int
    grace: float = 2.0
    listen: dict[str, str] = field(default_factory=dict)
    reach: dict[str, str] = field(default_factory=dict)
    keys_dir: str = ""
    server_keys: dict[str, str] = field(default_factory=dict)
    peers: list[str] = field(default_factory=list)
    listen_host: str = "127.0.0.1"  # where its nodes listen for nodes elsewhere (connected while it runs, too)

    def wiring(self) -> Wiring:
        """How its nodes reach the other machines' nodes."""
        return Wiring(self.listen, self.reach, self.keys_dir, self.server_keys, self.peers)

    def placement(self) -> Placement:
        """How the dataflow is placed, checked from this machine."""
        return Placement(frozenset(self.here), self.default_machine, checking=self.machine)

    def save(self, path: Path) -> None:
        """Write it for the process to read."""
        path.write_text(json.dumps(asdict(self)))


class Uplink:
    """The other machines (car.daemon.elsewhere.Elsewhere), through this machine's daemon: its uplink socket."""

    def __init__(self, sock: zmq.Socket[bytes], machine: str, run_id: str):
        self._socket = sock
        self.machine = machine
        self.run_id = run_id

    def _tell(self, message: cluster.DaemonToCoordinator) -> None:
        try:
            self._socket.send(control.encode(message), zmq.NOBLOCK)
        except zmq.Again:
            pass  # the machine's daemon is gone: this part stops soon (see _watch_parent)

    def part_ready(self) -> None:
        """Every node of this part is ready."""
        self._tell(cluster.PartReady(self.machine, self.run_id))

    def nodes_gone(self, nodes: list[str], sources: list[str]) -> None:
        """Nodes here ended for good."""
        self._tell(cluster.NodesGone(self.machine, self.run_id, nodes, sources))

    def nodes_back(self, nodes: list[str]) -> None:
        """Nodes here started again."""
        self._tell(cluster.NodesBack(self.machine, self.run_id, nodes))

    def ends_delivered(self, ends: list[control.StreamEnd]) -> None:
        """Readers here have the end of streams from elsewhere."""
        self._tell(cluster.EndsReceived(self.machine, self.run_id, ends))


def _watch_parent(parent_pid: int) -> None:
    """Stop the run (as SIGTERM would) when the machine's daemon that started it is gone."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_S)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> int:
    """Run the part described by the file argv[0]; its exit code as `car launch`'s."""
    spec = PartSpec(**json.loads(Path(argv[0]).read_text()))
    try:
        dataflow = check_text(spec.text, spec.file, Path(spec.file), spec.placement(), spec.modules)
    except DataflowError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    uplink = ctx.socket(zmq.PUSH)
    uplink.setsockopt(zmq.LINGER, 1000)
    uplink.connect(spec.uplink)
    run = create_run(spec.name, spec.file, spec.out_dir, spec.run_id, spec.machine)
    mine = [n.id for n in dataflow.nodes if n.machine == spec.machine]
    terminal = Terminal(mine, quiet=False)
    daemon = Daemon(
        dataflow,
        run,
        terminal,
        spec.grace,
        wiring=spec.wiring(),
        elsewhere=Uplink(uplink, spec.machine, spec.run_id),
        listen_host=spec.listen_host,
    )
    threading.Thread(target=_watch_parent, args=(spec.parent_pid,), daemon=True).start()
    terminal.say(f"run `{spec.name}` on machine `{spec.machine}`: {len(mine)} nodes, logs in {spec.out_dir}/")
    try:
        code = daemon.run()
        for line in daemon.summary():
            terminal.say(line)
    finally:
        ctx.destroy(linger=1000)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
