"""A machine's daemon (`car daemon --machine-id ID`): runs its machine's parts of the coordinator's runs.

This module is its decisions (`MachineDaemon`, over a `MachineIO`); car.daemon.machine_server
is its sockets, processes and loop. It registers with the coordinator and answers it with
one handler per message type (car.transport.cluster). A run goes in two steps, so
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
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from car.daemon import received
from car.daemon.processes import Process
from car.daemon.run_part import PartSpec
from car.plan.build import remote_keys
from car.plan.runs import RunError, RunInfo, control_endpoint, pid_alive, run_folder, runtime_root
from car.spec.loader import check_text
from car.spec.model import DataflowError, Placement
from car.transport import cluster, control, shipping

REGISTER_AGAIN_S = 1.5  # without a ping for this long, say Register again
BUILD_REPORT = "report.json"  # what `car build --json` printed
BUILD_SAID = "said.txt"  # what it said on stderr
PART_ANSWER_S = 2.0  # a part that has not answered a command's request by then is reported silent
STATE_PERIOD_S = 1.0  # how often the parts' node states go to the coordinator (when they changed)
SHUTDOWN_WAIT_S = 15.0  # at the end, how long the parts' processes may take to end before SIGKILL


class PartProc(Process, Protocol):
    """A part's process, as the daemon watches it (a `subprocess.Popen`, or a test's): a node's process
    (car.daemon.processes.Process) that the daemon also signals itself."""

    def terminate(self) -> None:
        """SIGTERM."""

    def kill(self) -> None:
        """SIGKILL."""


@dataclass
class PartProcess:
    """This machine's part of one run."""

    spec: PartSpec
    proc: PartProc | None = None
    nodes: list[control.NodeRow] = field(default_factory=list)
    sent_nodes: list[control.NodeRow] | None = None  # what the coordinator was last told
    stop_sent: bool = False
    started: float = field(default_factory=time.monotonic)

    def held(self, now: float) -> cluster.HeldRun:
        """What the coordinator is told of this part when this daemon registers."""
        spec = self.spec
        uptime = round(now - self.started, 1)
        return cluster.HeldRun(
            spec.run_id,
            spec.name,
            spec.text,
            spec.file,
            spec.here,
            spec.default_machine,
            uptime,
            self.nodes,
            spec.modules,
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
            if not pid_alive(int(entry["pid"])):
                continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append(str(entry["machine"]))
    return sorted(found)


@dataclass(frozen=True)
class RunningBuild:
    """`car sync`'s builds of this machine's nodes, running in a process of their own."""

    proc: PartProc
    folder: Path  # the dataflow file it builds from, and what it prints and says


@dataclass(frozen=True)
class AskedPart:
    """A command's request passed on to a part here, until it answers."""

    token: str
    name: str
    deadline: float


class MachineIO(Protocol):
    """What a machine's daemon acts through: the coordinator, its parts' processes and control sockets, ports.
    car.daemon.machine_server implements it over ZeroMQ and subprocesses; tests, in memory."""

    def tell(self, message: cluster.DaemonToCoordinator) -> None:
        """Send a message to the coordinator (dropped while not connected)."""

    def start_part(self, spec_file: Path, log: Path) -> PartProc:
        """Start the process of a run's part from its spec file, its output appended to `log` (OSError)."""
        ...

    def ask_part(self, part: PartProcess, message: control.ClientToDaemon, timeout: float) -> control.DaemonReply:
        """One request to a part's control socket, waiting at most `timeout` (RunError when it does not answer)."""
        ...

    def tell_part(self, part: PartProcess, message: control.ClientToDaemon) -> None:
        """Give a part a message without waiting for its answer: it gets it when it reads (never lost to a busy
        moment, never holding up the daemon)."""

    def forget_part(self, run_id: str) -> None:
        """A part's process has ended: release what was kept to talk to it."""

    def relay(self, part: PartProcess, token: str, request: bytes) -> None:
        """Pass a command's request to a part without waiting: its answer comes to `MachineDaemon.part_answered`."""

    def drop_relay(self, token: str) -> None:
        """Give up a relayed request (its part did not answer in time)."""

    def reserve_port(self, host: str) -> tuple[socket.socket, int]:
        """A port on `host` held (by a bound socket) until released (OSError when none can be had)."""
        ...

    def start_build(self, file: Path, machine: str, force: bool, folder: Path) -> PartProc:
        """`car build FILE --machine MACHINE --json` (OSError): what it prints goes to `folder`/BUILD_REPORT, what
        it says to `folder`/BUILD_SAID."""
        ...


class MachineDaemon:
    """The decisions of one machine's daemon, until it is told to leave or stopped (car.daemon.machine_server
    runs it: the sockets, the loop, signals)."""

    def __init__(
        self,
        machine: str,
        out_root: Path,
        io: MachineIO,
        *,
        listen_host: str = "127.0.0.1",
        advertise: str = "",
        lost_grace: float = 10.0,
        say: Callable[[str], None] = print,
        public_key: str = "",
        keys_dir: str = "",
        uplink: str = "",
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ):
        """`listen_host`: where nodes listen for nodes elsewhere (`*` for any interface, or an interface name);
        `advertise`: the address others reach them at ("": the address the coordinator sees this daemon at);
        `public_key`, `keys_dir`: this machine's CurveZMQ key and keys (its nodes' links use them); `uplink`:
        where its parts' processes tell the coordinator things through it."""
        self.machine = machine
        self.out_root = out_root
        self.io = io
        self.listen_host = listen_host
        self.advertise = advertise
        self.lost_grace = lost_grace
        self.say = say
        self.public_key = public_key
        self.keys_dir = keys_dir
        self.uplink = uplink
        self.clock = clock
        self.wall_ns = wall_ns
        self.parts: dict[str, PartProcess] = {}
        self.prepared: dict[str, PartSpec] = {}
        self.ended: dict[str, Path] = {}  # run id -> the logs of a part that ended here
        self.reserved: dict[str, list[socket.socket]] = {}  # run id -> the ports its nodes listen on
        self.refused = ""  # the coordinator's reason for refusing this machine: the daemon exits
        self.leaving = ""
        self._last_ping = 0.0
        self._last_register = 0.0
        self._welcomed = False
        self._lost_stopped = False
        self._asked: dict[str, AskedPart] = {}  # requests passed on to parts, awaiting answers, by token
        self._builds: dict[str, RunningBuild] = {}  # `car sync`'s builds running here, by token
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
            cluster.MachineRequest: self._on_machine_request,
            cluster.Leave: self._on_leave,
        }

    # -- what the server hands it --------------------------------------------------------------
    def handle(self, message: cluster.CoordinatorToDaemon) -> None:
        """One message from the coordinator."""
        self._handlers[type(message)](message)

    def tick(self, now: float) -> None:
        """The periodic work: requests a part did not answer, registering again, parts that ended."""
        self._expire_asked(now)
        self._keep_registered(now)
        self._reap()
        self._reap_builds()

    def done(self) -> bool:
        """Whether the daemon should end: the coordinator refused it, or it is leaving and its parts have ended."""
        return bool(self.refused) or bool(self.leaving and not self.parts)

    def _tell(self, message: cluster.DaemonToCoordinator) -> None:
        self.io.tell(message)

    def _keep_registered(self, now: float) -> None:
        silent = now - self._last_ping
        if silent > REGISTER_AGAIN_S and now - self._last_register > REGISTER_AGAIN_S:
            self._last_register = now
            runs = [part.held(now) for part in self.parts.values()]
            self._tell(cluster.Register(self.machine, socket.gethostname(), os.getpid(), runs, self.public_key))
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
            self.io.forget_part(run_id)
            self.ended[run_id] = Path(part.spec.out_dir)
            summary = _last_lines(Path(part.spec.out_dir) / f"car-{self.machine}.log", 8)
            self._tell(cluster.RunEnded(self.machine, run_id, code, summary))
            self.say(f"run `{part.spec.name}` ended here (exit code {code})")

    def report_states(self) -> None:
        """Tell the coordinator the parts' node states, where they changed (every STATE_PERIOD_S)."""
        for part in self.parts.values():
            try:
                status = self.io.ask_part(part, control.ListRun(), 0.5)
            except RunError:
                continue  # starting, or ending
            if isinstance(status, control.RunStatus) and status.nodes != part.sent_nodes:
                part.nodes = part.sent_nodes = status.nodes
                self._tell(cluster.RunState(self.machine, part.spec.run_id, status.nodes))

    # -- the coordinator's messages ---------------------------------------------------------
    def _on_welcome(self, message: cluster.Welcome) -> None:
        if message.error:
            self.say(f"the coordinator refused this machine: {message.error}")
            self.refused = message.error
            return
        if not self._welcomed:
            self.say(f"machine `{self.machine}`: registered with the coordinator")
        self._welcomed = True
        self._last_ping = self.clock()
        self._lost_stopped = False
        for part in self.parts.values():
            part.sent_nodes = None  # a coordinator that restarted knows nothing of them yet

    def _on_ping(self, message: cluster.Ping) -> None:
        self._last_ping = self.clock()
        self._tell(cluster.Pong(self.machine, message.sent_ns, self.wall_ns()))

    def _on_prepare(self, message: cluster.PrepareRun) -> None:
        placement = Placement(frozenset(message.here), message.default_machine, checking=self.machine)
        try:
            dataflow = check_text(message.text, message.file, Path(message.file), placement, message.modules)
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
                probe, port = self.io.reserve_port(self.listen_host)
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
            modules=dict(message.modules),
            file=message.file,
            here=list(message.here),
            default_machine=message.default_machine,
            out_dir=str(out_dir),
            uplink=self.uplink,
            parent_pid=os.getpid(),
            listen=listen,
            listen_host=self.listen_host,
        )
        self._tell(cluster.Prepared(self.machine, message.run_id, advertised))

    def _on_start(self, message: cluster.StartRun) -> None:
        spec = self.prepared.pop(message.run_id, None)
        if spec is None:
            return
        spec.reach = dict(message.reach)
        spec.server_keys = dict(message.server_keys)
        spec.peers = list(message.peers)
        spec.keys_dir = self.keys_dir
        spec_file = runtime_root() / f"part-{spec.run_id}-{self.machine}.json"
        spec.save(spec_file)
        try:
            proc = self.io.start_part(spec_file, Path(spec.out_dir) / f"car-{self.machine}.log")
        except OSError as exc:
            self._release(spec.run_id)
            self._tell(cluster.RunEnded(self.machine, spec.run_id, 1, [f"could not start: {exc}"]))
            return
        self.parts[spec.run_id] = PartProcess(spec, proc, started=self.clock())
        self.say(f"run `{spec.name}` started here (pid {proc.pid})")

    def _on_all_ready(self, message: cluster.AllReady) -> None:
        part = self.parts.get(message.run_id)
        if part is not None:
            try:
                self.io.ask_part(part, control.StartTimers(), 1.0)
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
        part = self.parts.get(message.run_id)
        if part is not None and (part.proc is None or part.proc.poll() is None):  # not once its process ended
            self.io.tell_part(part, request)

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
        self._asked[message.token] = AskedPart(message.token, part.spec.name, self.clock() + PART_ANSWER_S)
        self.io.relay(part, message.token, message.request)  # answered in the loop: a slow part stalls nothing

    def part_answered(self, token: str, reply: bytes) -> None:
        """A part's answer to a request passed on to it: back to the coordinator (unless it was given up)."""
        if self._asked.pop(token, None) is not None:
            self._tell(cluster.PartAnswer(self.machine, token, reply))

    def _expire_asked(self, now: float) -> None:
        """Requests a part has not answered in time: the coordinator hears that it did not."""
        for asked in [a for a in self._asked.values() if now > a.deadline]:
            del self._asked[asked.token]
            self.io.drop_relay(asked.token)
            error = f"run `{asked.name}` on machine `{self.machine}` did not answer"
            self._tell(cluster.PartAnswer(self.machine, asked.token, error=error))

    def _on_machine_request(self, message: cluster.MachineRequest) -> None:
        """`car sync`: which files a folder lacks, files to write, builds to run (car.transport.shipping)."""
        try:
            request = control.decode(message.request, shipping.ClientToMachine)
            if isinstance(request, shipping.BuildHere):
                self._start_build(message.token, request)
                return
            reply: shipping.MachineReply
            if isinstance(request, shipping.OfferFiles):
                folder = received.machine_folder(request.folder)
                reply = shipping.FilesWanted(received.wanted(folder, request.files), str(folder))
            elif isinstance(request, shipping.WriteFiles):
                reply = shipping.FilesWritten(received.write(received.machine_folder(request.folder), request.pieces))
            else:
                raise received.ShipmentError(f"cannot act on a {type(request).__name__}")
        except (control.ControlError, received.ShipmentError, OSError) as exc:
            self._tell(cluster.MachineAnswer(self.machine, message.token, error=f"machine `{self.machine}`: {exc}"))
            return
        self._tell(cluster.MachineAnswer(self.machine, message.token, control.encode(reply)))

    def _start_build(self, token: str, request: shipping.BuildHere) -> None:
        """Run this machine's builds in a process of their own (heartbeats go on meanwhile): see `_reap_builds`."""
        folder = runtime_root() / "builds" / token
        file = folder / (Path(request.file).name or "dataflow.yml")
        try:
            folder.mkdir(parents=True)
            file.write_text(request.text, encoding="utf-8")
            proc = self.io.start_build(file, self.machine, request.force, folder)
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            error = f"machine `{self.machine}`: cannot run the builds ({exc.strerror or exc})"
            self._tell(cluster.MachineAnswer(self.machine, token, error=error))
            return
        self._builds[token] = RunningBuild(proc, folder)

    def _reap_builds(self) -> None:
        """Builds that ended: what they printed and said goes back to the command that asked."""
        for token, build in list(self._builds.items()):
            code = build.proc.poll()
            if code is None:
                continue
            del self._builds[token]
            report = _read(build.folder / BUILD_REPORT)
            said = _read(build.folder / BUILD_SAID)
            shutil.rmtree(build.folder, ignore_errors=True)
            reply = control.encode(shipping.Built(report, said, code))
            self._tell(cluster.MachineAnswer(self.machine, token, reply))

    def _on_leave(self, message: cluster.Leave) -> None:
        self.leave(message.reason or "the coordinator said so")

    # -- the end -------------------------------------------------------------------------------
    def _stop_part(self, part: PartProcess, reason: str, grace: float) -> None:
        try:
            self.io.ask_part(part, control.StopRun(reason, grace), 1.0)
            part.stop_sent = True
        except RunError:
            if part.proc is not None and part.proc.poll() is None:
                part.proc.terminate()  # not answering yet: SIGTERM stops it in order too

    def leave(self, reason: str) -> None:
        """Stop every part here; the daemon ends once they have."""
        self.leaving = reason
        self.say(f"machine `{self.machine}`: leaving ({reason})")
        for part in self.parts.values():
            self._stop_part(part, reason, 0.0)

    def shutdown(self) -> None:
        """The end: wait for the parts' processes (SIGKILL after SHUTDOWN_WAIT_S), and say that they ended."""
        deadline = self.clock() + SHUTDOWN_WAIT_S
        for part in self.parts.values():
            if part.proc is not None:
                try:
                    part.proc.wait(max(0.1, deadline - self.clock()))
                except subprocess.TimeoutExpired:
                    part.proc.kill()
                    part.proc.wait()
        self._reap()
        for run_id in list(self.reserved):
            self._release(run_id)
        for build in self._builds.values():  # a build nobody will hear of: stopped with the daemon
            if build.proc.poll() is None:
                build.proc.kill()
                build.proc.wait()
            shutil.rmtree(build.folder, ignore_errors=True)
        self._builds.clear()


def _read(path: Path) -> str:
    """A text file's content ("" when it cannot be read)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _last_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a text file (none when it cannot be read)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-count:]
    except OSError:
        return []
