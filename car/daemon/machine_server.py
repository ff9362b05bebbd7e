"""A machine's daemon as a process (`car daemon --machine-id ID`): its sockets, its parts' processes, the loop.

The decisions are car.daemon.machine.MachineDaemon's; this module is its `MachineIO`: one
DEALER socket to the coordinator's daemon port, one PULL socket (the uplink) on which the
parts' processes tell the coordinator things through this daemon, a DEALER per command
request passed on to a part (answered in the loop, so a slow part stalls nothing), the
parts' processes, and the ports reserved for their nodes. It runs the one poll loop
(car.transport.poll_loop) until the daemon is done, and leaves no file behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import zmq

from car.daemon.machine import (
    BUILD_REPORT,
    BUILD_SAID,
    STATE_PERIOD_S,
    MachineDaemon,
    PartProc,
    PartProcess,
    daemon_file,
    local_machines,
)
from car.plan.runs import request, runtime_root
from car.plan.signals import catch_stop_signals
from car.transport import cluster, control
from car.transport.keys import COORDINATOR, Keys
from car.transport.poll_loop import PollLoop
from car.transport.ports import reserve_port

LOOP_MS = 100
HEARTBEAT_IVL_MS = 1000  # ZMTP heartbeats: a dead TCP connection is noticed, and ZeroMQ reconnects
HEARTBEAT_TIMEOUT_MS = 3000


class MachineServer:
    """The sockets and processes of one machine's daemon (its `MachineIO`), and the loop that runs it."""

    def __init__(self, machine: str, coordinator: str, keys: Keys | None, say: Callable[[str], None]):
        """`coordinator`: tcp://HOST:PORT; `keys`: join over CurveZMQ."""
        self.machine = machine
        self.coordinator = coordinator
        self.keys = keys
        self.say = say
        self.uplink_endpoint = f"ipc://{runtime_root()}/daemon-{machine}.sock"
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._socket = self._ctx.socket(zmq.DEALER)
        self._uplink = self._ctx.socket(zmq.PULL)
        self._loop = PollLoop(LOOP_MS)
        self._relays: dict[str, zmq.Socket[bytes]] = {}  # token -> the socket a part answers on
        self._told: dict[str, zmq.Socket[bytes]] = {}  # run id -> the socket its part is told things on
        self._daemon: MachineDaemon | None = None
        self._signals: list[int] = []

    # -- MachineIO ---------------------------------------------------------------------------
    def tell(self, message: cluster.DaemonToCoordinator) -> None:
        """To the coordinator; dropped while not connected (it learns the state when this machine registers)."""
        try:
            self._socket.send(control.encode(message), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def start_part(self, spec_file: Path, log: Path) -> PartProc:
        """`python -m car.daemon.run_part SPEC` in a session of its own, its output appended to `log`."""
        with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(
                [sys.executable, "-m", "car.daemon.run_part", str(spec_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_build(self, file: Path, machine: str, force: bool, folder: Path) -> PartProc:
        """`python -m car build FILE --machine MACHINE --json` in the home folder, in a session of its own."""
        command = [sys.executable, "-m", "car", "build", str(file), "--machine", machine, "--json"]
        with open(folder / BUILD_REPORT, "wb") as report, open(folder / BUILD_SAID, "wb") as said:
            return subprocess.Popen(
                [*command, *(["--force"] if force else [])],
                stdin=subprocess.DEVNULL,
                stdout=report,
                stderr=said,
                cwd=Path.home(),
                start_new_session=True,
            )

    def ask_part(self, part: PartProcess, message: control.ClientToDaemon, timeout: float) -> control.DaemonReply:
        """A request to the part's control socket (RunError when it does not answer in time)."""
        return request(part.info, message, timeout=timeout)

    def tell_part(self, part: PartProcess, message: control.ClientToDaemon) -> None:
        """On the part's own DEALER socket (made on first use): queued until the part reads it; its answers are
        read and dropped in the loop."""
        sock = self._told.get(part.spec.run_id)
        if sock is None:
            sock = self._told[part.spec.run_id] = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(part.info.control)
            self._loop.add(sock, lambda: _drain(sock))
        sock.send(control.encode(message), zmq.NOBLOCK)

    def forget_part(self, run_id: str) -> None:
        """Close the socket the part was told things on."""
        sock = self._told.pop(run_id, None)
        if sock is not None:
            self._loop.remove(sock)
            sock.close()

    def relay(self, part: PartProcess, token: str, request_bytes: bytes) -> None:
        """Send a command's request to the part on a socket of its own; its answer is handled in the loop."""
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(part.info.control)
        sock.send(request_bytes)
        self._relays[token] = sock
        self._loop.add(sock, lambda: self._answered(token))

    def drop_relay(self, token: str) -> None:
        """Close the socket of a request given up."""
        sock = self._relays.pop(token, None)
        if sock is not None:
            self._loop.remove(sock)
            sock.close()

    def reserve_port(self, host: str) -> tuple[socket.socket, int]:
        """A free port on `host`, held by a bound socket until it is closed."""
        return reserve_port(host)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, daemon: MachineDaemon) -> int:
        """Serve `daemon` until it is done (or a signal); 0, or 2 when the coordinator refused this machine."""
        self._daemon = daemon
        catch_stop_signals(self._signals.append)
        self._socket.setsockopt(zmq.LINGER, 500)
        self._socket.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        self._socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        if self.keys is not None:
            self.keys.connect_to(self._socket, self.keys.peer(COORDINATOR))
        self._socket.connect(self.coordinator)
        self._uplink.bind(self.uplink_endpoint)
        daemon_file(self.machine).write_text(json.dumps({"machine": self.machine, "pid": os.getpid()}))
        self.say(f"machine `{self.machine}`: daemon {os.getpid()} joining the coordinator at {self.coordinator}")
        self._loop.add(self._socket, self._from_coordinator)
        self._loop.add(self._uplink, self._from_parts)
        self._loop.every(0.0, self._on_signal)
        self._loop.every(0.0, daemon.tick)
        self._loop.every(STATE_PERIOD_S, lambda _: daemon.report_states())
        try:
            self._loop.run(lambda _: daemon.done())
        finally:
            daemon.shutdown()
            self._cleanup()
        return 2 if daemon.refused else 0

    def _on_signal(self, _: float) -> None:
        if self._signals and self._daemon is not None and not self._daemon.leaving:
            self._daemon.leave(f"{signal.Signals(self._signals.pop()).name} received")

    def _from_coordinator(self) -> None:
        assert self._daemon is not None
        while True:
            try:
                raw = self._socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                message = control.decode(raw, cluster.CoordinatorToDaemon)
            except control.ControlError as exc:
                self.say(f"an unreadable message from the coordinator: {exc}")
                continue
            self._daemon.handle(message)

    def _from_parts(self) -> None:
        while True:
            try:
                raw = self._uplink.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:  # from a part's process: passed on to the coordinator
                self.tell(control.decode(raw, cluster.DaemonToCoordinator))
            except control.ControlError:
                continue

    def _answered(self, token: str) -> None:
        sock = self._relays.get(token)
        if sock is None or self._daemon is None:
            return
        reply = sock.recv()
        self.drop_relay(token)
        self._daemon.part_answered(token, reply)

    def _cleanup(self) -> None:
        """Nothing of this daemon is left: its files in the runtime folder, its sockets."""
        daemon_file(self.machine).unlink(missing_ok=True)
        Path(self.uplink_endpoint.removeprefix("ipc://")).unlink(missing_ok=True)
        for spec_file in runtime_root().glob(f"part-*-{self.machine}.json"):
            spec_file.unlink(missing_ok=True)
        self._ctx.destroy(linger=500)


def _drain(sock: zmq.Socket[bytes]) -> None:
    """Read and drop what waits on `sock` (a part's answers to what it was told)."""
    while True:
        try:
            sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return


def serve(
    machine: str,
    coordinator: str,
    out_root: Path,
    *,
    listen_host: str = "127.0.0.1",
    advertise: str = "",
    lost_grace: float = 10.0,
    say: Callable[[str], None] = print,
    keys: Keys | None = None,
) -> int:
    """Run machine `machine`'s daemon for the coordinator at `coordinator` until it leaves; its exit code."""
    if machine in local_machines():
        say(f"a daemon for machine `{machine}` already runs on this host; pick another --machine-id")
        return 2
    server = MachineServer(machine, coordinator, keys, say)
    daemon = MachineDaemon(
        machine,
        out_root,
        server,
        listen_host=listen_host,
        advertise=advertise,
        lost_grace=lost_grace,
        say=say,
        public_key=keys.public.decode() if keys is not None else "",
        keys_dir=str(keys.folder) if keys is not None else "",
        uplink=server.uplink_endpoint,
    )
    return server.run(daemon)
