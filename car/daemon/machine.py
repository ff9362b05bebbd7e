"""A machine's daemon (`car daemon --machine-id ID`): runs its machine's parts of the coordinator's runs.

It registers with the coordinator (one DEALER socket to the daemon port) and answers it
with one handler per message type (car.transport.cluster). A run goes in two steps, so
that it starts everywhere or nowhere: `PrepareRun` checks this machine's nodes (their
paths, here) and picks the tcp:// ports they will listen on for nodes elsewhere;
`StartRun`, once every machine is prepared, starts a process for the part
(car.daemon.run_part: the same daemon `car launch` runs, for this machine's nodes).

The coordinator's `Ping` is the heartbeat: answered with this machine's wall clock, from
which the coordinator measures the clock offset. Without a ping for a while the daemon
registers again (the coordinator may have restarted); after `lost_grace` seconds without
one it stops its runs: their nodes stop, and the car's wheels with them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from car.daemon.run_part import PartSpec
from car.plan.build import remote_keys
from car.plan.runs import RunError, RunInfo, control_endpoint, request, run_folder, runtime_root
from car.plan.signals import catch_stop_signals
from car.spec.loader import check_text
from car.spec.model import DataflowError, Placement
from car.transport import cluster, control
from car.transport.keys import COORDINATOR, Keys
from car.transport.poll_loop import PollLoop
from car.transport.ports import reserve_port

LOOP_MS = 100
REGISTER_AGAIN_S = 1.5  # without a ping for this long, say Register again
PART_ANSWER_S = 2.0  # a part that has not answered a command's request by then is reported silent
STATE_PERIOD_S = 1.0  # how often the parts' node states go to the coordinator (when they changed)
HEARTBEAT_IVL_MS = 1000  # ZMTP heartbeats: a dead TCP connection is noticed, and ZeroMQ reconnects
HEARTBEAT_TIMEOUT_MS = 3000


@dataclass
class PartProcess:
    """This machine's part of one run."""

    spec: PartSpec
    proc: subprocess.Popen[bytes] | None = None
    nodes: list[control.NodeRow] = field(default_factory=list)
    sent_nodes: list[control.NodeRow] | None = None  # what the coordinator was last told
    stop_sent: bool = False
    started: float = field(default_factory=time.monotonic)

    def held(self) -> cluster.HeldRun:
        """What the coordinator is told of this part when this daemon registers."""
        spec = self.spec
        uptime = round(time.monotonic() - self.started, 1)
        return cluster.HeldRun(
            spec.run_id, spec.name, spec.text, spec.file, spec.here, spec.default_machine, uptime, self.nodes
        )

    @property
    def info(self) -> RunInfo:
        """Where the part's process answers (see car.plan.runs)."""
        folder = run_folder(self.spec.run_id, self.spec.machine)
        return RunInfo(
            run_id=self.spec.run_id,
            name=self.spec.name,
            pid=self.proc.pid if self.proc else 0,
            dataflow=self.spec.file,
            started=0.0,
            out_dir=self.spec.out_dir,
            control=control_endpoint(folder),
            folder=str(folder),
            machine=self.spec.machine,
        )


def daemon_file(machine: str) -> Path:
    """Where the daemon of `machine` on this host says it runs (`car start` reads these: see `local_machines`)."""
    return runtime_root() / f"daemon-{machine}.json"


def local_machines() -> list[str]:
    """The machines whose daemons run on this host, as the user (they share this host's files)."""
    found = []
    for path in runtime_root().glob("daemon-*.json"):
        try:
            entry = json.loads(path.read_text())
            os.kill(int(entry["pid"]), 0)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append(str(entry["machine"]))
    return sorted(found)


@dataclass(frozen=True)
class AskedPart:
    """A command's request passed on to a part here, until it answers."""

    token: str
    name: str
    deadline: float


class MachineDaemon:
    """The daemon of one machine, until it is told to leave or stopped."""

    def __init__(
        self,
        machine: str,
        coordinator: str,
        out_root: Path,
        listen_host: str = "127.0.0.1",
        advertise: str = "",
        lost_grace: float = 10.0,
        say: Callable[[str], None] = print,
        keys: Keys | None = None,
    ):
        """`coordinator`: tcp://HOST:PORT; `listen_host`: where nodes listen for nodes elsewhere (`*` for any
        interface, or an interface name); `advertise`: the address others reach them at ("": the address
        the coordinator sees this daemon at); `keys`: join over CurveZMQ, and so do its nodes' links."""
        self.keys = keys
        self.machine = machine
        self.coordinator = coordinator
        self.out_root = out_root
        self.listen_host = listen_host
        self.advertise = advertise
        self.lost_grace = lost_grace
        self.say = say
        self.parts: dict[str, PartProcess] = {}
        self.prepared: dict[str, PartSpec] = {}
        self.ended: dict[str, Path] = {}  # run id -> the logs of a part that ended here
        self.reserved: dict[str, list[socket.socket]] = {}  # run id -> the ports its nodes listen on (reserve_port)
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._socket = self._ctx.socket(zmq.DEALER)
        self._uplink = self._ctx.socket(zmq.PULL)
        self._uplink_endpoint = f"ipc://{runtime_root()}/daemon-{machine}.sock"
        self._last_ping = 0.0
        self._last_register = 0.0
        self._welcomed = False
        self._refused = ""  # the coordinator's reason for refusing this machine: the daemon exits
        self._leaving = ""
        self._lost_stopped = False
        self._signal: int | None = None
        self._asked: dict[zmq.Socket[bytes], AskedPart] = {}  # requests passed on to parts, awaiting answers
        self._loop = PollLoop(LOOP_MS)
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            cluster.Welcome: self._on_welcome,
            cluster.Ping: self._on_ping,
            cluster.PrepareRun: self._on_prepare,
            cluster.StartRun: self._on_start,
            cluster.AbortRun: self._on_abort,
            cluster.AllReady: self._on_all_ready,
            cluster.StopRunHere: self._on_stop_here,
            cluster.ForPart: self._on_for_part,
            cluster.ReadLog: self._on_read_log,
            cluster.PartRequest: self._on_part_request,
            cluster.Leave: self._on_leave,
        }

    # -- the loop -----------------------------------------------------------------------
    def _note_signal(self, signum: int) -> None:
        self._signal = signum

    def run(self) -> int:
        """Serve until told to leave (or a signal); 0, or 2 when the coordinator refused this machine."""
        if self.machine in local_machines():
            self.say(f"a daemon for machine `{self.machine}` already runs on this host; pick another --machine-id")
            return 2
        catch_stop_signals(self._note_signal)
        self._socket.setsockopt(zmq.LINGER, 500)
        self._socket.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        self._socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        if self.keys is not None:
            self.keys.connect_to(self._socket, self.keys.peer(COORDINATOR))
        self._socket.connect(self.coordinator)
        self._uplink.bind(self._uplink_endpoint)
        daemon_file(self.machine).write_text(json.dumps({"machine": self.machine, "pid": os.getpid()}))
        self.say(f"machine `{self.machine}`: daemon {os.getpid()} joining the coordinator at {self.coordinator}")
        self._loop.add(self._socket, self._from_coordinator)
        self._loop.add(self._uplink, self._from_parts)
        self._loop.every(0.0, self._expire_asked)
        self._loop.every(0.0, self._on_signal)
        self._loop.every(0.0, self._keep_registered)
        self._loop.every(0.0, lambda _: self._reap())
        self._loop.every(STATE_PERIOD_S, lambda _: self._report_states())
        try:
            self._loop.run(lambda _: bool(self._refused) or bool(self._leaving and not self.parts))
        finally:
            self._shutdown()
        return 2 if self._refused else 0

    def _on_signal(self, _: float) -> None:
        if self._signal is not None and not self._leaving:
            self._leave(f"{signal.Signals(self._signal).name} received")

    def _from_coordinator(self) -> None:
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
            self._handlers[type(message)](message)

    def _from_parts(self) -> None:
        while True:
            try:
                raw = self._uplink.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:  # from a part's process: passed on to the coordinator
                self._tell(control.decode(raw, cluster.DaemonToCoordinator))
            except control.ControlError:
                continue

    def _tell(self, message: cluster.DaemonToCoordinator) -> None:
        try:
            self._socket.send(control.encode(message), zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected: the coordinator learns the state when this machine registers again

    def _keep_registered(self, now: float) -> None:
        silent = now - self._last_ping
        if silent > REGISTER_AGAIN_S and now - self._last_register > REGISTER_AGAIN_S:
            self._last_register = now
            runs = [part.held() for part in self.parts.values()]
            public_key = self.keys.public.decode() if self.keys is not None else ""
            self._tell(cluster.Register(self.machine, socket.gethostname(), os.getpid(), runs, public_key))
        if self._last_ping and silent > self.lost_grace and not self._lost_stopped and self.parts:
            self._lost_stopped = True
            self.say(f"no word from the coordinator for {silent:.1f} s: stopping this machine's runs")
            for part in self.parts.values():
                self._stop_part(part, "the coordinator was lost", 0.0)

    def _reap(self) -> None:
        for run_id, part in list(self.parts.items()):
            code = part.proc.poll() if part.proc is not None else 0
            if code is None:
                continue
            del self.parts[run_id]
            self._release(run_id)
            self.ended[run_id] = Path(part.spec.out_dir)
            summary = _last_lines(Path(part.spec.out_dir) / f"car-{self.machine}.log", 8)
            self._tell(cluster.RunEnded(self.machine, run_id, code, summary))
            self.say(f"run `{part.spec.name}` ended here (exit code {code})")

    def _report_states(self) -> None:
        for part in self.parts.values():
            try:
                status = request(part.info, control.ListRun(), timeout=0.5)
            except RunError:
                continue  # starting, or ending
            if isinstance(status, control.RunStatus) and status.nodes != part.sent_nodes:
                part.nodes = part.sent_nodes = status.nodes
                self._tell(cluster.RunState(self.machine, part.spec.run_id, status.nodes))

    # -- the coordinator's messages ---------------------------------------------------------
    def _on_welcome(self, message: cluster.Welcome) -> None:
        if message.error:
            self.say(f"the coordinator refused this machine: {message.error}")
            self._refused = message.error
            return
        if not self._welcomed:
            self.say(f"machine `{self.machine}`: registered with the coordinator")
        self._welcomed = True
        self._last_ping = time.monotonic()
        self._lost_stopped = False
        for part in self.parts.values():
            part.sent_nodes = None  # a coordinator that restarted knows nothing of them yet

    def _on_ping(self, message: cluster.Ping) -> None:
        self._last_ping = time.monotonic()
        self._tell(cluster.Pong(self.machine, message.sent_ns, time.time_ns()))

    def _on_prepare(self, message: cluster.PrepareRun) -> None:
        placement = Placement(frozenset(message.here), message.default_machine, checking=self.machine)
        try:
            dataflow = check_text(message.text, message.file, Path(message.file), placement)
        except DataflowError as exc:
            problems = [str(p) for p in exc.problems]
            self._tell(cluster.PrepareFailed(self.machine, message.run_id, problems))
            return
        out_dir = self.out_root / message.name
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            listen, advertised = {}, {}
            held = self.reserved.setdefault(message.run_id, [])
            for key in remote_keys(dataflow, self.machine):
                probe, port = reserve_port(self.listen_host)
                held.append(probe)
                listen[key] = f"tcp://{self.listen_host}:{port}"
                advertised[key] = f"tcp://{self.advertise}:{port}"  # no host: the coordinator puts in ours
        except OSError as exc:
            self._release(message.run_id)
            problem = f"machine `{self.machine}`: cannot prepare the run ({exc.strerror or exc})"
            self._tell(cluster.PrepareFailed(self.machine, message.run_id, [problem]))
            return
        self.prepared[message.run_id] = PartSpec(
            run_id=message.run_id,
            name=message.name,
            machine=self.machine,
            text=message.text,
            file=message.file,
            here=list(message.here),
            default_machine=message.default_machine,
            out_dir=str(out_dir),
            uplink=self._uplink_endpoint,
            parent_pid=os.getpid(),
            listen=listen,
        )
        self._tell(cluster.Prepared(self.machine, message.run_id, advertised))

    def _on_start(self, message: cluster.StartRun) -> None:
        spec = self.prepared.pop(message.run_id, None)
        if spec is None:
            return
        spec.reach = dict(message.reach)
        spec.server_keys = dict(message.server_keys)
        spec.peers = list(message.peers)
        spec.keys_dir = str(self.keys.folder) if self.keys is not None else ""
        spec_file = runtime_root() / f"part-{spec.run_id}-{self.machine}.json"
        spec.save(spec_file)
        log = open(Path(spec.out_dir) / f"car-{self.machine}.log", "ab")  # noqa: SIM115  # the child keeps it
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "car.daemon.run_part", str(spec_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self._release(spec.run_id)
            self._tell(cluster.RunEnded(self.machine, spec.run_id, 1, [f"could not start: {exc}"]))
            return
        finally:
            log.close()
        self.parts[spec.run_id] = PartProcess(spec, proc)
        self.say(f"run `{spec.name}` started here (pid {proc.pid})")

    def _on_all_ready(self, message: cluster.AllReady) -> None:
        part = self.parts.get(message.run_id)
        if part is not None:
            try:
                request(part.info, control.StartTimers(), timeout=1.0)
            except RunError as exc:
                self.say(f"run `{part.spec.name}`: could not start its timers: {exc}")

    def _on_abort(self, message: cluster.AbortRun) -> None:
        self.prepared.pop(message.run_id, None)
        self._release(message.run_id)

    def _release(self, run_id: str) -> None:
        """Let go of the ports a run's nodes listened on."""
        for probe in self.reserved.pop(run_id, []):
            probe.close()

    def _on_stop_here(self, message: cluster.StopRunHere) -> None:
        part = self.parts.get(message.run_id)
        if part is not None:
            self._stop_part(part, message.reason, message.grace)

    def _on_for_part(self, message: cluster.ForPart) -> None:
        try:
            request = control.decode(message.message, control.ClientToDaemon)
        except control.ControlError as exc:
            self.say(f"an unreadable message for run {message.run_id} from the coordinator: {exc}")
            return
        self._pass_on(message.run_id, request, f"pass on {type(request).__name__}")

    def _pass_on(self, run_id: str, message: control.ClientToDaemon, what: str) -> None:
        """Give a run's part here what the coordinator says of the other machines' nodes (not once its process
        has ended: it would not answer, and the loop would wait for it)."""
        part = self.parts.get(run_id)
        if part is not None and (part.proc is None or part.proc.poll() is None):
            try:
                request(part.info, message, timeout=1.0)
            except RunError as exc:
                self.say(f"run `{part.spec.name}`: could not {what}: {exc}")

    def _on_read_log(self, message: cluster.ReadLog) -> None:
        part = self.parts.get(message.run_id)
        folder = Path(part.spec.out_dir) if part else self.ended.get(message.run_id)
        if folder is None:
            self._tell(cluster.LogText(self.machine, message.token, error=f"no run {message.run_id} on this machine"))
            return
        path = folder / f"{Path(message.node).name}.log"
        try:
            with open(path, "rb") as log:
                log.seek(message.offset)
                data = log.read(max(0, min(message.limit, 1 << 20)))
        except OSError as exc:
            self._tell(cluster.LogText(self.machine, message.token, error=f"cannot read {path}: {exc.strerror}"))
            return
        text = data.decode("utf-8", errors="replace")
        self._tell(cluster.LogText(self.machine, message.token, text, message.offset + len(data)))

    def _on_part_request(self, message: cluster.PartRequest) -> None:
        part = self.parts.get(message.run_id)
        if part is None:
            self._tell(
                cluster.PartAnswer(self.machine, message.token, error=f"no run {message.run_id} on this machine")
            )
            return
        sock = self._ctx.socket(zmq.DEALER)  # one per request, answered in the loop: a slow part stalls nothing
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(part.info.control)
        sock.send(message.request)
        self._asked[sock] = AskedPart(message.token, part.spec.name, time.monotonic() + PART_ANSWER_S)
        self._loop.add(sock, lambda: self._answered(sock))

    def _answered(self, sock: zmq.Socket[bytes]) -> None:
        """A part's answer to a request passed on to it: back to the coordinator."""
        asked = self._asked.pop(sock)
        self._tell(cluster.PartAnswer(self.machine, asked.token, sock.recv()))
        self._loop.remove(sock)
        sock.close()

    def _expire_asked(self, now: float) -> None:
        """Requests a part has not answered in time: the coordinator hears that it did not."""
        for sock, asked in [(s, a) for s, a in self._asked.items() if now > a.deadline]:
            del self._asked[sock]
            self._loop.remove(sock)
            sock.close()
            error = f"run `{asked.name}` on machine `{self.machine}` did not answer"
            self._tell(cluster.PartAnswer(self.machine, asked.token, error=error))

    def _on_leave(self, message: cluster.Leave) -> None:
        self._leave(message.reason or "the coordinator said so")

    # -- the end -------------------------------------------------------------------------------
    def _stop_part(self, part: PartProcess, reason: str, grace: float) -> None:
        try:
            request(part.info, control.StopRun(reason, grace), timeout=1.0)
            part.stop_sent = True
        except RunError:
            if part.proc is not None and part.proc.poll() is None:
                part.proc.terminate()  # not answering yet: SIGTERM stops it in order too

    def _leave(self, reason: str) -> None:
        self._leaving = reason
        self.say(f"machine `{self.machine}`: leaving ({reason})")
        for part in self.parts.values():
            self._stop_part(part, reason, 0.0)

    def _shutdown(self) -> None:
        deadline = time.monotonic() + 15.0
        for part in self.parts.values():
            if part.proc is not None:
                try:
                    part.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    part.proc.kill()
                    part.proc.wait()
        self._reap()
        daemon_file(self.machine).unlink(missing_ok=True)
        Path(self._uplink_endpoint.removeprefix("ipc://")).unlink(missing_ok=True)
        for spec_file in runtime_root().glob(f"part-*-{self.machine}.json"):
            spec_file.unlink(missing_ok=True)
        self._ctx.destroy(linger=500)


def _last_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a text file (none when it cannot be read)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-count:]
    except OSError:
        return []
