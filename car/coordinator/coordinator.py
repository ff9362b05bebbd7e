"""The coordinator's loop: two ROUTER sockets (daemons; the `car` command), one handler per message type.

Daemons connect to the daemon port and register under their machine id; the coordinator
pings each one every `heartbeat` seconds and marks it lost after `timeout` seconds
without an answer. A `car start` is answered once every machine the dataflow names has
checked its nodes and said where they listen (`Prepared`), or at once when a machine is
missing; nothing starts anywhere unless every machine is ready.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import zmq

from car.plan.signals import catch_stop_signals
from car.spec.loader import check_text
from car.spec.model import Dataflow, DataflowError, Placement
from car.transport import cluster, control
from car.transport.keys import Keys, authenticator
from car.transport.router import Router

LOOP_MS = 50
PREPARE_TIMEOUT_S = 10.0  # machines that have not prepared a run by then fail its start
RELAY_TIMEOUT_S = 3.0  # a daemon's answer to a request passed on to it
FINISHED_KEPT = 20  # ended dataflows `car list` still shows
HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 3000
LEAVE_WAIT_S = 15.0  # at shutdown, how long the coordinator waits for daemons to say their runs ended
# While a machine starts a run's nodes (from StartRun until every machine's are ready, and a moment after), it
# may be silent for this long before it is lost: starting many Python processes at once can starve its daemon
# of the CPU for longer than `timeout` on a small computer (measured: 4.1 s, 64 nodes on 2 cores).
STARTING_TIMEOUT_S = 15.0
STARTED_SETTLE_S = 2.0


@dataclass
class Machine:
    """A daemon the coordinator knows."""

    id: str
    identity: bytes
    host: str
    address: str
    pid: int
    last_seen: float
    offset_ns: int = 0
    rtt_ns: int = 0
    lost: bool = False
    public_key: str = ""
    starting_until: float = 0.0  # while it starts a run's nodes, the longer STARTING_TIMEOUT_S applies


@dataclass
class Part:
    """A dataflow's nodes on one machine."""

    machine: str
    # preparing | running | finished | failed | lost | unknown (its daemon has not registered since this
    # coordinator restarted) | ended (it ended while this coordinator was not there)
    state: str = "preparing"
    listen: dict[str, str] | None = None
    nodes: list[control.NodeRow] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    ready: bool = False  # its nodes are ready


@dataclass
class Flow:
    """A dataflow placed on machines."""

    run_id: str
    name: str
    dataflow: Dataflow
    text: str
    parts: dict[str, Part]
    started: float
    state: str = "starting"  # starting | running | stopping | finished | failed | degraded
    asker: bytes = b""  # the CLI waiting for the start's answer
    deadline: float = 0.0
    ended_at: float = 0.0
    adopted_at: float = 0.0  # when a daemon told this coordinator of it (it was started before a restart)

    def nodes_on(self, machine: str) -> list[str]:
        """The nodes on `machine`."""
        return [n.id for n in self.dataflow.nodes if n.machine == machine]

    def sources_on(self, machine: str) -> list[str]:
        """Every `node/output` of the nodes on `machine`."""
        return [f"{n.id}/{o}" for n in self.dataflow.nodes if n.machine == machine for o in n.outputs]

    def machine_of(self, node: str) -> str:
        """Where `node` runs ("" when the dataflow has no such node)."""
        return next((n.machine for n in self.dataflow.nodes if n.id == node), "")

    def senders_elsewhere(self, readers: list[str], machine: str) -> dict[str, list[str]]:
        """Machine -> those of `readers` (nodes on `machine`) its nodes send to, for the machines other than `machine`."""
        found: dict[str, list[str]] = {}
        for node in (n for n in self.dataflow.nodes if n.id in readers):
            for inp in node.inputs.values():
                sender_machine = "" if inp.from_daemon else self.machine_of(inp.source_node)
                if sender_machine not in ("", machine) and node.id not in found.get(sender_machine, []):
                    found.setdefault(sender_machine, []).append(node.id)
        return found

    def readers_elsewhere(self, sources: list[str], machine: str) -> dict[str, list[str]]:
        """Machine -> the `sources` its nodes read, for the machines other than `machine`."""
        wanted = set(sources)
        found: dict[str, list[str]] = {}
        for node in self.dataflow.nodes:
            if node.machine == machine:
                continue
            for inp in node.inputs.values():
                if inp.source in wanted and inp.source not in found.get(node.machine, []):
                    found.setdefault(node.machine, []).append(inp.source)
        return found


@dataclass
class Relay:
    """A CLI's request passed on to a daemon, waiting for its answer."""

    asker: bytes
    deadline: float
    run_id: str
    machine: str


class Coordinator:
    """Knows the machines and the dataflows placed on them, until it is shut down."""

    def __init__(
        self,
        daemon_endpoint: str,
        control_endpoint: str,
        heartbeat: float = 0.5,
        timeout: float = 3.0,
        say: Callable[[str], None] = print,
        keys: Keys | None = None,
    ):
        """With `keys`, both ports take only CurveZMQ peers whose public keys are trusted (car.transport.keys)."""
        self.keys = keys
        self.daemon_endpoint = daemon_endpoint
        self.control_endpoint = control_endpoint
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.say = say
        self.machines: dict[str, Machine] = {}
        self.flows: dict[str, Flow] = {}
        self.relays: dict[str, Relay] = {}
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._daemons: Router | None = None
        self._clients: Router | None = None
        self._signal: int | None = None
        self._shutdown_at = 0.0
        self._shutdown_asker = b""

    # -- the loop -------------------------------------------------------------------------
    def _note_signal(self, signum: int) -> None:
        self._signal = signum

    def run(self) -> int:
        """Serve until shut down (`car down`) or a signal; 0."""
        catch_stop_signals(self._note_signal)
        auth = authenticator(self._ctx, self.keys, self.say) if self.keys is not None else None
        daemon_handlers: dict[type[Any], Any] = {
            cluster.Register: self._on_register,
            cluster.Pong: self._on_pong,
            cluster.Prepared: self._on_prepared,
            cluster.PrepareFailed: self._on_prepare_failed,
            cluster.PartReady: self._on_part_ready,
            cluster.NodesGone: self._on_nodes_gone,
            cluster.NodesBack: self._on_nodes_back,
            cluster.EndsReceived: self._on_ends_received,
            cluster.RunEnded: self._on_run_ended,
            cluster.RunState: self._on_run_state,
            cluster.LogText: self._on_log_text,
            cluster.PartAnswer: self._on_part_answer,
        }
        client_handlers: dict[type[Any], Any] = {
            cluster.StartDataflow: self._on_start,
            cluster.StopDataflowNamed: self._on_stop,
            cluster.ListDataflows: self._on_list,
            cluster.ListMachines: self._on_machines,
            cluster.ReadLogs: self._on_read_logs,
            cluster.AskPart: self._on_ask_part,
            cluster.Shutdown: self._on_shutdown,
        }
        self._daemons = Router(
            self._router(self.daemon_endpoint), daemon_handlers, cluster.Welcome, cluster.DaemonToCoordinator
        )
        self._clients = Router(
            self._router(self.control_endpoint), client_handlers, cluster.Declined, cluster.ClientToCoordinator
        )
        self.say(f"coordinator {self.daemon_endpoint} (daemons), {self.control_endpoint} (car commands)")
        next_ping = 0.0
        try:
            while True:
                poller = zmq.Poller()
                poller.register(self._daemons.socket, zmq.POLLIN)
                poller.register(self._clients.socket, zmq.POLLIN)
                ready = dict(poller.poll(LOOP_MS))
                if self._daemons.socket in ready:
                    self._daemons.serve(0)
                if self._clients.socket in ready:
                    self._clients.serve(0)
                now = time.monotonic()
                if self._signal is not None and not self._shutdown_at:
                    self._begin_shutdown(f"{signal.Signals(self._signal).name} received")
                if self._shutdown_at and (now > self._shutdown_at or not self._running_parts()):
                    break
                if now >= next_ping:
                    self._ping(now)
                    next_ping = now + self.heartbeat
                self._expire(now)
        finally:
            if self._shutdown_asker:
                self._clients.reply_later(self._shutdown_asker, cluster.Accepted())
            self._daemons.close()
            self._clients.close()
            if auth is not None:
                auth.stop()
            self._ctx.destroy(linger=200)
        return 0

    def _router(self, endpoint: str) -> zmq.Socket[bytes]:
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        if self.keys is not None:
            self.keys.serve(sock)
        sock.bind(endpoint)
        return sock

    def _send(self, machine: Machine, message: cluster.CoordinatorToDaemon) -> None:
        assert self._daemons is not None
        self._daemons.reply_later(machine.identity, message)

    def _answer(self, asker: bytes, reply: cluster.CoordinatorReply) -> None:
        assert self._clients is not None
        self._clients.reply_later(asker, reply)

    def _ping(self, now: float) -> None:
        stamp = time.time_ns()
        for machine in self.machines.values():
            self._send(machine, cluster.Ping(stamp))
            limit = max(self.timeout, STARTING_TIMEOUT_S) if now < machine.starting_until else self.timeout
            if not machine.lost and now - machine.last_seen > limit:
                self._lost(machine, now)

    def _expire(self, now: float) -> None:
        for flow in list(self.flows.values()):
            if flow.state == "starting" and flow.asker and now > flow.deadline:
                silent = [p.machine for p in flow.parts.values() if p.listen is None]
                self._fail_start(
                    flow, [f"machine `{m}` did not prepare the run within {PREPARE_TIMEOUT_S:g} s" for m in silent]
                )
        for flow in (f for f in self.flows.values() if f.adopted_at and not f.ended_at):
            if now - flow.adopted_at > 2 * self.timeout:  # its other daemons have had time to register
                for part in (p for p in flow.parts.values() if p.state == "unknown"):
                    self._part_lost(flow, part.machine)
        for token, relay in list(self.relays.items()):
            if now > relay.deadline:
                del self.relays[token]
                self._answer(relay.asker, cluster.Declined(f"machine `{relay.machine}` did not answer"))
        ended = sorted((f for f in self.flows.values() if f.ended_at), key=lambda f: f.ended_at)
        for flow in ended[:-FINISHED_KEPT] if len(ended) > FINISHED_KEPT else []:
            del self.flows[flow.run_id]

    # -- machines --------------------------------------------------------------------------
    def _on_register(self, message: cluster.Register, identity: bytes) -> cluster.Welcome | None:
        assert self._daemons is not None
        now = time.monotonic()
        address = self._daemons.addresses.get(identity, "")
        known = self.machines.get(message.machine)
        if known is not None and known.identity != identity and not known.lost and known.pid != message.pid:
            return cluster.Welcome(f"machine id `{message.machine}` is taken by the daemon at {known.address}")
        back = known is not None and known.lost
        self.machines[message.machine] = Machine(
            message.machine,
            identity,
            message.host,
            address,
            message.pid,
            now,
            known.offset_ns if known else 0,
            known.rtt_ns if known else 0,
            public_key=message.public_key,
        )
        if known is None or back:
            self.say(
                f"machine `{message.machine}` {'is back' if back else 'joined'} ({message.host}, {address or 'local'})"
            )
        for held in message.runs:
            if held.run_id not in self.flows:
                self._adopt(held, message.machine)
        held_ids = {held.run_id for held in message.runs}
        for flow in self.flows.values():
            part = flow.parts.get(message.machine)
            if part is None or part.state not in ("lost", "running", "unknown"):
                continue
            if flow.run_id not in held_ids:  # it ended while this machine was away (or this coordinator was)
                part.state = "failed" if part.state == "lost" else "ended"
            else:
                if part.state == "lost":
                    self._nodes_back(flow, message.machine, flow.nodes_on(message.machine))
                part.state = "running"
            if flow.state == "degraded" and all(p.state == "running" for p in flow.parts.values()):
                flow.state = "running"
            self._maybe_ended(flow)
        return cluster.Welcome()

    def _adopt(self, held: cluster.HeldRun, machine: str) -> None:
        """A run a daemon still has that this coordinator does not know (it restarted): known again from the
        dataflow file that started it. Its other machines' parts are "unknown" until their daemons register."""
        placement = Placement(frozenset(held.here), held.default_machine, checking="")
        try:
            dataflow = check_text(held.text, held.file, Path(held.file), placement)
        except DataflowError as exc:
            self.say(f"machine `{machine}` has run `{held.name}`, whose dataflow does not check here: {exc}")
            return
        now = time.monotonic()
        parts = {m: Part(m, "unknown", ready=True) for m in sorted({n.machine for n in dataflow.nodes})}
        parts[machine].nodes = list(held.nodes)
        self.flows[held.run_id] = Flow(
            held.run_id, held.name, dataflow, held.text, parts, now - held.uptime_s, "running", adopted_at=now
        )
        self.say(f"dataflow `{held.name}` ({held.run_id}) known again from machine `{machine}`")

    def _on_pong(self, message: cluster.Pong, identity: bytes) -> None:
        machine = self.machines.get(message.machine)
        if machine is None or machine.identity != identity:
            return
        now_ns = time.time_ns()
        machine.rtt_ns = now_ns - message.sent_ns
        machine.offset_ns = message.daemon_ns - (message.sent_ns + now_ns) // 2
        machine.last_seen = time.monotonic()
        if machine.lost:
            machine.lost = False
            self.say(f"machine `{machine.id}` answers again")

    def _lost(self, machine: Machine, now: float) -> None:
        machine.lost = True
        self.say(f"machine `{machine.id}` lost: no heartbeat for {now - machine.last_seen:.1f} s")
        for flow in self.flows.values():
            part = flow.parts.get(machine.id)
            if part is not None and part.state == "running":
                self._part_lost(flow, machine.id)

    def _part_lost(self, flow: Flow, machine: str) -> None:
        flow.parts[machine].state = "lost"
        flow.state = "degraded"
        self._nodes_gone(flow, machine, flow.nodes_on(machine), flow.sources_on(machine))

    def _nodes_gone(self, flow: Flow, machine: str, nodes: list[str], sources: list[str]) -> None:
        """Nodes on `machine` ended (or it was lost): the other machines' readers of `sources` get their end,
        and their senders to `nodes` stop sending to them."""
        for reader_machine, read in flow.readers_elsewhere(sources, machine).items():
            self._tell_machine(reader_machine, cluster.CloseSources(flow.run_id, read))
        for sender_machine, readers in flow.senders_elsewhere(nodes, machine).items():
            self._tell_machine(sender_machine, cluster.ReadersGone(flow.run_id, readers))

    def _nodes_back(self, flow: Flow, machine: str, nodes: list[str]) -> None:
        """Nodes on `machine` started again (or it is back): the other machines' senders to them resume."""
        for sender_machine, readers in flow.senders_elsewhere(nodes, machine).items():
            self._tell_machine(sender_machine, cluster.ReadersBack(flow.run_id, readers))

    def _tell_machine(self, machine_id: str, message: cluster.CoordinatorToDaemon) -> None:
        target = self.machines.get(machine_id)
        if target is not None and not target.lost:
            self._send(target, message)

    def _default_machine(self) -> str:
        """Where nodes go that no `deploy` names: the daemon beside the coordinator, else the only one."""
        connected = [m for m in self.machines.values() if not m.lost]
        beside = [m for m in connected if m.address in ("", "127.0.0.1", "::1")]
        chosen = beside or (connected if len(connected) == 1 else [])
        return chosen[0].id if chosen else ""

    # -- starting and stopping ---------------------------------------------------------------
    def _on_start(self, message: cluster.StartDataflow, identity: bytes) -> cluster.CoordinatorReply | None:
        placement = Placement(frozenset(message.here), self._default_machine(), checking="")
        try:
            dataflow = check_text(message.text, message.file, Path(message.file), placement)
        except DataflowError as exc:
            return cluster.Declined("\n".join(str(p) for p in exc.problems))
        needed = sorted({n.machine for n in dataflow.nodes})
        connected = sorted(m.id for m in self.machines.values() if not m.lost)
        if "" in needed:
            return cluster.Declined(
                "some nodes name no machine and no daemon runs beside the coordinator: give them "
                f"`deploy: {{machine: ID}}` or the file a top-level `deploy` (connected: {', '.join(connected) or 'none'})"
            )
        missing = [m for m in needed if m not in connected]
        if missing:
            return cluster.Declined(
                f"machine{'s' if len(missing) > 1 else ''} {', '.join(missing)} not connected "
                f"(connected: {', '.join(connected) or 'none'}): start `car daemon --machine-id ID` there"
            )
        running = {f.name for f in self.flows.values() if not f.ended_at}
        name = message.name or _unique_name(dataflow.file.stem, running)
        if name in running:
            return cluster.Declined(f"a dataflow named `{name}` is running: pick another --name or `car stop {name}`")
        run_id = secrets.token_hex(4)
        flow = Flow(
            run_id,
            name,
            dataflow,
            message.text,
            {m: Part(m) for m in needed},
            time.monotonic(),
            asker=identity,
            deadline=time.monotonic() + PREPARE_TIMEOUT_S,
        )
        self.flows[run_id] = flow
        for machine in needed:
            self._send(
                self.machines[machine],
                cluster.PrepareRun(
                    run_id, name, message.text, message.file, list(message.here), placement.default_machine
                ),
            )
        return None  # answered once every machine has prepared it

    def _on_prepared(self, message: cluster.Prepared, _: bytes) -> None:
        flow = self.flows.get(message.run_id)
        machine = self.machines.get(message.machine)
        if flow is None or machine is None or message.machine not in flow.parts or flow.state != "starting":
            return
        host = machine.address or "127.0.0.1"
        flow.parts[message.machine].listen = {
            key: endpoint.replace("tcp://:", f"tcp://{host}:", 1) for key, endpoint in message.listen.items()
        }
        if any(p.listen is None for p in flow.parts.values()):
            return
        reach: dict[str, str] = {}
        server_keys: dict[str, str] = {}
        for part in flow.parts.values():
            reach.update(part.listen or {})
            public_key = self.machines[part.machine].public_key
            if public_key:
                server_keys.update({key: public_key for key in part.listen or {}})
        peers = [self.machines[m].public_key for m in flow.parts if self.machines[m].public_key]
        for part in flow.parts.values():
            part.state = "running"
            self.machines[part.machine].starting_until = time.monotonic() + PREPARE_TIMEOUT_S + STARTING_TIMEOUT_S
            self._send(self.machines[part.machine], cluster.StartRun(flow.run_id, reach, server_keys, peers))
        flow.state = "running"
        self.say(f"dataflow `{flow.name}` ({flow.run_id}) started on {', '.join(flow.parts)}")
        self._answer(flow.asker, cluster.Started(flow.run_id, flow.name, list(flow.parts)))
        flow.asker = b""

    def _on_prepare_failed(self, message: cluster.PrepareFailed, _: bytes) -> None:
        flow = self.flows.get(message.run_id)
        if flow is not None and flow.state == "starting":
            self._fail_start(flow, [f"on machine `{message.machine}`: {p}" for p in message.problems])

    def _fail_start(self, flow: Flow, problems: list[str]) -> None:
        for part in flow.parts.values():
            machine = self.machines.get(part.machine)
            if machine is not None:
                self._send(machine, cluster.AbortRun(flow.run_id))
        del self.flows[flow.run_id]
        self._answer(flow.asker, cluster.Declined("nothing was started:\n" + "\n".join(problems)))

    def _find(self, name: str) -> Flow | cluster.Declined:
        live = [f for f in self.flows.values() if not f.ended_at]
        if not name:
            if len(live) == 1:
                return live[0]
            names = ", ".join(f.name for f in live)
            return cluster.Declined(
                f"several dataflows are running ({names}): name one" if live else "no dataflow is running"
            )
        for flow in sorted(self.flows.values(), key=lambda f: f.ended_at):  # a live one before an ended one
            if name in (flow.name, flow.run_id):
                return flow
        known = ", ".join(f.name for f in live) or "none"
        return cluster.Declined(f"no dataflow named `{name}` (running: {known})")

    def _on_stop(self, message: cluster.StopDataflowNamed, _: bytes) -> cluster.CoordinatorReply:
        flow = self._find(message.name)
        if isinstance(flow, cluster.Declined):
            return flow
        if flow.ended_at:
            return cluster.Declined(f"dataflow `{flow.name}` has already ended ({flow.state})")
        flow.state = "stopping"
        for part in flow.parts.values():
            machine = self.machines.get(part.machine)
            if machine is not None and part.state == "running":
                self._send(machine, cluster.StopRunHere(flow.run_id, "requested by `car stop`", message.grace))
        return cluster.Started(flow.run_id, flow.name, list(flow.parts))

    def _on_part_ready(self, message: cluster.PartReady, _: bytes) -> None:
        """When every machine's nodes of a run are ready, its timers start everywhere (as dora's do)."""
        flow = self.flows.get(message.run_id)
        if flow is None or message.machine not in flow.parts:
            return
        flow.parts[message.machine].ready = True
        if all(p.ready for p in flow.parts.values()):
            for part in flow.parts.values():
                machine = self.machines.get(part.machine)
                if machine is not None:
                    machine.starting_until = min(machine.starting_until, time.monotonic() + STARTED_SETTLE_S)
                    self._send(machine, cluster.AllReady(flow.run_id))

    def _on_nodes_gone(self, message: cluster.NodesGone, _: bytes) -> None:
        flow = self.flows.get(message.run_id)
        if flow is not None:
            self._nodes_gone(flow, message.machine, message.nodes, message.sources)

    def _on_nodes_back(self, message: cluster.NodesBack, _: bytes) -> None:
        flow = self.flows.get(message.run_id)
        if flow is not None:
            self._nodes_back(flow, message.machine, message.nodes)

    def _on_ends_received(self, message: cluster.EndsReceived, _: bytes) -> None:
        """Readers on one machine have the end of streams from others: each sender's machine hears of its own."""
        flow = self.flows.get(message.run_id)
        if flow is None:
            return
        by_machine: dict[str, list[control.StreamEnd]] = {}
        for end in message.ends:
            by_machine.setdefault(flow.machine_of(end.source.partition("/")[0]), []).append(end)
        for machine, ends in by_machine.items():
            self._tell_machine(machine, cluster.EndsDelivered(flow.run_id, ends))

    def _on_run_ended(self, message: cluster.RunEnded, _: bytes) -> None:
        flow = self.flows.get(message.run_id)
        if flow is None or message.machine not in flow.parts:
            return
        part = flow.parts[message.machine]
        part.state = "finished" if message.code == 0 else "failed"
        part.summary = list(message.summary)
        part.nodes = [
            replace(n, state="exited", pid=0) if n.state in ("pending", "running", "restarting") else n
            for n in part.nodes
        ]
        self._nodes_gone(flow, message.machine, flow.nodes_on(message.machine), flow.sources_on(message.machine))
        self._maybe_ended(flow)

    def _maybe_ended(self, flow: Flow) -> None:
        if flow.ended_at or any(p.state in ("running", "lost", "preparing", "unknown") for p in flow.parts.values()):
            return
        flow.state = "failed" if any(p.state == "failed" for p in flow.parts.values()) else "finished"
        flow.ended_at = time.monotonic()
        self.say(f"dataflow `{flow.name}` {flow.state}")

    def _on_run_state(self, message: cluster.RunState, _: bytes) -> None:
        flow = self.flows.get(message.run_id)
        if flow is not None and message.machine in flow.parts:
            flow.parts[message.machine].nodes = list(message.nodes)

    # -- what the CLI asks --------------------------------------------------------------------------
    def _on_list(self, _: cluster.ListDataflows, __: bytes) -> cluster.CoordinatorReply:
        now = time.monotonic()
        rows = [
            cluster.DataflowRow(
                flow.run_id,
                flow.name,
                str(flow.dataflow.file),
                flow.state,
                round((flow.ended_at or now) - flow.started, 1),
                [cluster.MachinePart(p.machine, p.state, list(p.nodes)) for p in flow.parts.values()],
            )
            for flow in sorted(self.flows.values(), key=lambda f: f.started)
        ]
        return cluster.Dataflows(rows)

    def _on_machines(self, _: cluster.ListMachines, __: bytes) -> cluster.CoordinatorReply:
        now = time.monotonic()
        rows = [
            cluster.MachineRow(
                m.id,
                m.host,
                m.address or "local",
                "lost" if m.lost else "connected",
                round(now - m.last_seen, 2),
                round(m.offset_ns / 1e6, 3),
                round(m.rtt_ns / 1e6, 3),
                sum(1 for f in self.flows.values() if m.id in f.parts and not f.ended_at),
                m.pid,
                self.keys is not None,
            )
            for m in sorted(self.machines.values(), key=lambda m: m.id)
        ]
        return cluster.Machines(rows)

    def _on_read_logs(self, message: cluster.ReadLogs, identity: bytes) -> cluster.CoordinatorReply | None:
        flow = self._find(message.name)
        if isinstance(flow, cluster.Declined):
            return flow
        try:
            node = flow.dataflow.node(message.node)
        except KeyError:
            nodes = ", ".join(n.id for n in flow.dataflow.nodes)
            return cluster.Declined(f"dataflow `{flow.name}` has no node `{message.node}` (nodes: {nodes})")
        machine = self.machines.get(node.machine)
        if machine is None or machine.lost:
            return cluster.Declined(f"machine `{node.machine}`, where node `{node.id}` runs, is not connected")
        token = self._relay(identity, flow, machine)
        self._send(machine, cluster.ReadLog(token, flow.run_id, node.id, message.offset))
        return None

    def _relay(self, asker: bytes, flow: Flow, machine: Machine) -> str:
        """The token of a CLI's request being passed on to `machine` (answered by `_relayed`, or declined in time)."""
        token = secrets.token_hex(6)
        self.relays[token] = Relay(asker, time.monotonic() + RELAY_TIMEOUT_S, flow.run_id, machine.id)
        return token

    def _relayed(self, token: str, error: str) -> Relay | None:
        """The request a daemon's answer is for, unless it was given up, or the answer is an error (then declined)."""
        relay = self.relays.pop(token, None)
        if relay is not None and error:
            self._answer(relay.asker, cluster.Declined(error))
            return None
        return relay

    def _on_log_text(self, message: cluster.LogText, _: bytes) -> None:
        relay = self._relayed(message.token, message.error)
        if relay is None:
            return
        flow = self.flows.get(relay.run_id)
        ended = flow is None or bool(flow.ended_at)
        self._answer(relay.asker, cluster.LogChunk(message.text, message.next_offset, ended))

    def _on_ask_part(self, message: cluster.AskPart, identity: bytes) -> cluster.CoordinatorReply | None:
        flow = self._find(message.name)
        if isinstance(flow, cluster.Declined):
            return flow
        if message.machine not in flow.parts:
            machines = ", ".join(sorted(flow.parts))
            return cluster.Declined(f"dataflow `{flow.name}` has no part on machine `{message.machine}` ({machines})")
        machine = self.machines.get(message.machine)
        if machine is None or machine.lost:
            return cluster.Declined(f"machine `{message.machine}` is not connected")
        token = self._relay(identity, flow, machine)
        self._send(machine, cluster.PartRequest(token, flow.run_id, message.request))
        return None

    def _on_part_answer(self, message: cluster.PartAnswer, _: bytes) -> None:
        relay = self._relayed(message.token, message.error)
        if relay is None:
            return
        machine = self.machines.get(relay.machine)
        self._answer(relay.asker, cluster.PartReply(message.reply, machine.public_key if machine else ""))

    # -- the end ---------------------------------------------------------------------------------
    def _on_shutdown(self, _: cluster.Shutdown, identity: bytes) -> None:
        self._shutdown_asker = identity
        self._begin_shutdown("`car down`")

    def _begin_shutdown(self, reason: str) -> None:
        self.say(f"coordinator: shutting down ({reason})")
        self._shutdown_at = time.monotonic() + LEAVE_WAIT_S
        for machine in self.machines.values():
            self._send(machine, cluster.Leave(reason))

    def _running_parts(self) -> bool:
        return any(
            p.state == "running" and not self.machines[p.machine].lost
            for f in self.flows.values()
            for p in f.parts.values()
            if p.machine in self.machines
        )


def _unique_name(stem: str, taken: set[str]) -> str:
    base = f"{stem}-{datetime.now():%Y%m%d-%H%M%S}"
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}-{k}"
    return name
