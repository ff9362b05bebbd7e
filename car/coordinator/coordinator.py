"""The coordinator's decisions: the machines, the dataflows placed on them, the requests passed on.

Daemons register under their machine id on one port and the `car` command asks on the
other (car.coordinator.server owns the sockets and the loop; tests drive this class over
`car.transport.router.MemoryPort`). The coordinator pings each machine every `heartbeat`
seconds and marks it lost after `timeout` seconds without an answer. A `car start` is
answered once every machine the dataflow names has checked its nodes and said where they
listen (`Prepared`), or at once when a machine is missing; nothing starts anywhere unless
every machine is ready.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from car.coordinator.flows import Flow, PlacedPart, unique_name
from car.coordinator.machines import STARTING_TIMEOUT_S, Machine
from car.coordinator.relays import RELAY_TIMEOUT_S, Relay, Relays
from car.spec.loader import check_text
from car.spec.model import DataflowError, Placement
from car.transport import cluster, control
from car.transport.router import Handler, Port, Refuse
from car.transport.states import ALIVE, FlowState, MachineState, NodeStatus, PartState

PREPARE_TIMEOUT_S = 10.0  # machines that have not prepared a run by then fail its start
FINISHED_KEPT = 20  # ended dataflows `car list` still shows
LEAVE_WAIT_S = 15.0  # at shutdown, how long the coordinator waits for daemons to say their runs ended
STARTED_SETTLE_S = 2.0  # once a run's nodes are ready everywhere, its machines' longer silence ends this soon
MACHINE_REQUEST_MAX_S = 3600.0  # the longest a command may wait for a machine's daemon (a build)

PortMaker = Callable[[dict[type[Any], Handler], Refuse, type[control.ControlMessage]], Port]


class Coordinator:
    """Knows the machines and the dataflows placed on them, until it is shut down."""

    def __init__(
        self,
        daemons: PortMaker,
        clients: PortMaker,
        *,
        heartbeat: float = 0.5,
        timeout: float = 3.0,
        say: Callable[[str], None] = print,
        encrypted: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ):
        """`daemons`, `clients`: make the two ports from their handlers (car.coordinator.server binds ZeroMQ
        sockets; tests make `MemoryPort`s); `encrypted`: the ports take only CurveZMQ peers; `clock`,
        `wall_ns`: monotonic seconds and the wall clock (a test moves them)."""
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.say = say
        self.encrypted = encrypted
        self.clock = clock
        self.wall_ns = wall_ns
        self.machines: dict[str, Machine] = {}
        self.flows: dict[str, Flow] = {}
        self.relays = Relays()
        self.shutdown_at = 0.0  # when shutting down: by when daemons must have said their runs ended
        self.shutdown_asker = b""  # the `car down` to answer once the coordinator has shut down
        self.daemons = daemons(
            {
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
                cluster.MachineAnswer: self._on_machine_answer,
            },
            cluster.Welcome,
            cluster.DaemonToCoordinator,
        )
        self.clients = clients(
            {
                cluster.StartDataflow: self._on_start,
                cluster.StopDataflowNamed: self._on_stop,
                cluster.ListDataflows: self._on_list,
                cluster.ListMachines: self._on_machines,
                cluster.ReadLogs: self._on_read_logs,
                cluster.AskPart: self._on_ask_part,
                cluster.AskMachine: self._on_ask_machine,
                cluster.Shutdown: self._on_shutdown,
            },
            cluster.Declined,
            cluster.ClientToCoordinator,
        )

    # -- time -------------------------------------------------------------------------------
    def ping(self, now: float) -> None:
        """The heartbeat (every `heartbeat` seconds): ping every machine; a machine silent too long is lost."""
        stamp = self.wall_ns()
        for machine in self.machines.values():
            self._send(machine, cluster.Ping(stamp))
            if machine.silent_too_long(now, self.timeout):
                self._lost(machine, now)

    def expire(self, now: float) -> None:
        """Give up what has waited too long: starts, parts a restarted coordinator never heard of, requests."""
        for flow in list(self.flows.values()):
            if flow.state == FlowState.STARTING and flow.asker and now > flow.deadline:
                silent = [p.machine for p in flow.parts.values() if p.listen is None]
                self._fail_start(
                    flow, [f"machine `{m}` did not prepare the run within {PREPARE_TIMEOUT_S:g} s" for m in silent]
                )
        for flow in (f for f in self.flows.values() if f.adopted_at and not f.ended_at):
            if now - flow.adopted_at > 2 * self.timeout:  # its other daemons have had time to register
                for part in (p for p in flow.parts.values() if p.state == PartState.UNKNOWN):
                    self._part_lost(flow, part.machine)
        for relay in self.relays.expired(now):
            self._answer(relay.asker, cluster.Declined(f"machine `{relay.machine}` did not answer"))
        ended = sorted((f for f in self.flows.values() if f.ended_at), key=lambda f: f.ended_at)
        for flow in ended[:-FINISHED_KEPT] if len(ended) > FINISHED_KEPT else []:
            del self.flows[flow.run_id]

    def done(self, now: float) -> bool:
        """Whether a shutdown has finished: every run has ended, or the daemons had their time."""
        return bool(self.shutdown_at) and (now > self.shutdown_at or not self._running_parts())

    def _send(self, machine: Machine, message: cluster.CoordinatorToDaemon) -> None:
        self.daemons.reply_later(machine.identity, message)

    def _answer(self, asker: bytes, reply: cluster.CoordinatorReply) -> None:
        self.clients.reply_later(asker, reply)

    # -- machines --------------------------------------------------------------------------
    def _on_register(self, message: cluster.Register, identity: bytes) -> cluster.Welcome | None:
        now = self.clock()
        address = self.daemons.addresses.get(identity, "")
        known = self.machines.get(message.machine)
        if known is not None and known.identity != identity and not known.lost and known.pid != message.pid:
            return cluster.Welcome(f"machine id `{message.machine}` is taken by the daemon at {known.address}")
        back = known is not None and known.lost
        self.machines[message.machine] = Machine(
            id=message.machine,
            identity=identity,
            host=message.host,
            address=address,
            pid=message.pid,
            last_seen=now,
            offset_ns=known.offset_ns if known else 0,
            rtt_ns=known.rtt_ns if known else 0,
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
            if part is None or part.state not in (PartState.LOST, PartState.RUNNING, PartState.UNKNOWN):
                continue
            if flow.run_id not in held_ids:  # it ended while this machine was away (or this coordinator was)
                part.state = PartState.FAILED if part.state == PartState.LOST else PartState.ENDED
            else:
                if part.state == PartState.LOST:
                    self._nodes_back(flow, message.machine, flow.nodes_on(message.machine))
                part.state = PartState.RUNNING
            if flow.state == FlowState.DEGRADED and all(p.state == PartState.RUNNING for p in flow.parts.values()):
                flow.state = FlowState.RUNNING
            self._maybe_ended(flow)
        return cluster.Welcome()

    def _adopt(self, held: cluster.HeldRun, machine: str) -> None:
        """A run a daemon still has that this coordinator does not know (it restarted): known again from the
        dataflow file that started it. Its other machines' parts are "unknown" until their daemons register."""
        placement = Placement(frozenset(held.here), held.default_machine, checking="")
        try:
            dataflow = check_text(held.text, held.file, Path(held.file), placement, held.modules)
        except DataflowError as exc:
            self.say(f"machine `{machine}` has run `{held.name}`, whose dataflow does not check here: {exc}")
            return
        now = self.clock()
        parts = {m: PlacedPart(m, PartState.UNKNOWN, ready=True) for m in sorted({n.machine for n in dataflow.nodes})}
        parts[machine].nodes = list(held.nodes)
        self.flows[held.run_id] = Flow(
            run_id=held.run_id,
            name=held.name,
            dataflow=dataflow,
            text=held.text,
            parts=parts,
            started=now - held.uptime_s,
            state=FlowState.RUNNING,
            adopted_at=now,
        )
        self.say(f"dataflow `{held.name}` ({held.run_id}) known again from machine `{machine}`")

    def _on_pong(self, message: cluster.Pong, identity: bytes) -> None:
        machine = self.machines.get(message.machine)
        if machine is None or machine.identity != identity:
            return
        if machine.answered(message.sent_ns, message.daemon_ns, self.wall_ns(), self.clock()):
            self.say(f"machine `{machine.id}` answers again")

    def _lost(self, machine: Machine, now: float) -> None:
        machine.lost = True
        self.say(f"machine `{machine.id}` lost: no heartbeat for {now - machine.last_seen:.1f} s")
        for flow in self.flows.values():
            part = flow.parts.get(machine.id)
            if part is not None and part.state == PartState.RUNNING:
                self._part_lost(flow, machine.id)

    def _part_lost(self, flow: Flow, machine: str) -> None:
        flow.parts[machine].state = PartState.LOST
        flow.state = FlowState.DEGRADED
        self._nodes_gone(flow, machine, flow.nodes_on(machine), flow.sources_on(machine))

    def _nodes_gone(self, flow: Flow, machine: str, nodes: list[str], sources: list[str]) -> None:
        """Nodes on `machine` ended (or it was lost): the other machines' readers of `sources` get their end,
        and their senders to `nodes` stop sending to them (the readers' ends not while the whole flow stops:
        every reader has STOP already, and its part may be ending)."""
        for reader_machine, read in flow.readers_elsewhere(sources, machine).items():
            if flow.state != FlowState.STOPPING:
                self._tell_part(reader_machine, flow, control.CloseInputs(read))
        for sender_machine, readers in flow.senders_elsewhere(nodes, machine).items():
            self._tell_part(sender_machine, flow, control.ReadersGone(readers))

    def _nodes_back(self, flow: Flow, machine: str, nodes: list[str]) -> None:
        """Nodes on `machine` started again (or it is back): the other machines' senders to them resume."""
        for sender_machine, readers in flow.senders_elsewhere(nodes, machine).items():
            self._tell_part(sender_machine, flow, control.ReadersBack(readers))

    def _tell_part(self, machine_id: str, flow: Flow, message: control.ClientToDaemon) -> None:
        """Give `flow`'s part on a connected machine a control message (through its daemon)."""
        target = self.machines.get(machine_id)
        if target is not None and not target.lost:
            self._send(target, cluster.ForPart(flow.run_id, control.encode(message)))

    def _default_machine(self) -> str:
        """Where nodes go that no `deploy` names: the daemon beside the coordinator, else the only one."""
        connected = [m for m in self.machines.values() if not m.lost]
        beside = [m for m in connected if m.local]
        chosen = beside or (connected if len(connected) == 1 else [])
        return chosen[0].id if chosen else ""

    # -- starting and stopping ---------------------------------------------------------------
    def _on_start(self, message: cluster.StartDataflow, identity: bytes) -> cluster.CoordinatorReply | None:
        placement = Placement(frozenset(message.here), self._default_machine(), checking="")
        try:
            dataflow = check_text(message.text, message.file, Path(message.file), placement, message.modules)
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
            return cluster.Declined(cluster.not_connected(missing, connected))
        running = {f.name for f in self.flows.values() if not f.ended_at}
        name = message.name or unique_name(dataflow.file.stem, running, datetime.now())
        if name in running:
            return cluster.Declined(f"a dataflow named `{name}` is running: pick another --name or `car stop {name}`")
        run_id = secrets.token_hex(4)
        now = self.clock()
        flow = Flow(
            run_id=run_id,
            name=name,
            dataflow=dataflow,
            text=message.text,
            parts={m: PlacedPart(m) for m in needed},
            started=now,
            asker=identity,
            deadline=now + PREPARE_TIMEOUT_S,
        )
        self.flows[run_id] = flow
        for machine in needed:
            self._send(
                self.machines[machine],
                cluster.PrepareRun(
                    run_id,
                    name,
                    message.text,
                    message.file,
                    list(message.here),
                    placement.default_machine,
                    dataflow.modules,
                ),
            )
        return None  # answered once every machine has prepared it

    def _on_prepared(self, message: cluster.Prepared, _: bytes) -> None:
        flow = self.flows.get(message.run_id)
        machine = self.machines.get(message.machine)
        if flow is None or machine is None or message.machine not in flow.parts or flow.state != FlowState.STARTING:
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
            part.state = PartState.RUNNING
            self.machines[part.machine].starting_until = self.clock() + PREPARE_TIMEOUT_S + STARTING_TIMEOUT_S
            self._send(self.machines[part.machine], cluster.StartRun(flow.run_id, reach, server_keys, peers))
        flow.state = FlowState.RUNNING
        self.say(f"dataflow `{flow.name}` ({flow.run_id}) started on {', '.join(flow.parts)}")
        self._answer(flow.asker, cluster.Started(flow.run_id, flow.name, list(flow.parts)))
        flow.asker = b""

    def _on_prepare_failed(self, message: cluster.PrepareFailed, _: bytes) -> None:
        flow = self.flows.get(message.run_id)
        if flow is not None and flow.state == FlowState.STARTING:
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
        flow.state = FlowState.STOPPING
        for part in flow.parts.values():
            machine = self.machines.get(part.machine)
            if machine is not None and part.state == PartState.RUNNING:
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
                    machine.starting_until = min(machine.starting_until, self.clock() + STARTED_SETTLE_S)
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
            self._tell_part(machine, flow, control.EndsDelivered(ends))

    def _on_run_ended(self, message: cluster.RunEnded, _: bytes) -> None:
        flow = self.flows.get(message.run_id)
        if flow is None or message.machine not in flow.parts:
            return
        part = flow.parts[message.machine]
        part.state = PartState.FINISHED if message.code == 0 else PartState.FAILED
        part.summary = list(message.summary)
        part.nodes = [replace(n, state=NodeStatus.EXITED, pid=0) if n.state in ALIVE else n for n in part.nodes]
        self._nodes_gone(flow, message.machine, flow.nodes_on(message.machine), flow.sources_on(message.machine))
        self._maybe_ended(flow)

    def _maybe_ended(self, flow: Flow) -> None:
        if flow.ended_at or not flow.has_ended():
            return
        flow.state = flow.outcome()
        flow.ended_at = self.clock()
        self.say(f"dataflow `{flow.name}` {flow.state}")

    def _on_run_state(self, message: cluster.RunState, _: bytes) -> None:
        flow = self.flows.get(message.run_id)
        if flow is not None and message.machine in flow.parts:
            flow.parts[message.machine].nodes = list(message.nodes)

    # -- what the CLI asks --------------------------------------------------------------------------
    def _on_list(self, _: cluster.ListDataflows, __: bytes) -> cluster.CoordinatorReply:
        now = self.clock()
        rows = [
            cluster.DataflowRow(
                run_id=flow.run_id,
                name=flow.name,
                file=str(flow.dataflow.file),
                state=flow.state,
                uptime_s=round((flow.ended_at or now) - flow.started, 1),
                parts=[cluster.MachinePart(p.machine, p.state, list(p.nodes)) for p in flow.parts.values()],
            )
            for flow in sorted(self.flows.values(), key=lambda f: f.started)
        ]
        return cluster.Dataflows(rows)

    def _on_machines(self, _: cluster.ListMachines, __: bytes) -> cluster.CoordinatorReply:
        now = self.clock()
        rows = [
            cluster.MachineRow(
                machine=m.id,
                host=m.host,
                address=m.address or "local",
                state=MachineState.LOST if m.lost else MachineState.CONNECTED,
                last_seen_s=round(now - m.last_seen, 2),
                offset_ms=round(m.offset_ns / 1e6, 3),
                rtt_ms=round(m.rtt_ns / 1e6, 3),
                runs=sum(1 for f in self.flows.values() if m.id in f.parts and not f.ended_at),
                pid=m.pid,
                encrypted=self.encrypted,
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
        token = self.relays.add(identity, flow.run_id, machine.id, self.clock())
        self._send(machine, cluster.ReadLog(token, flow.run_id, node.id, message.offset))
        return None

    def _relayed(self, token: str, error: str) -> Relay | None:
        """The request a daemon's answer is for, unless it was given up, or the answer is an error (then declined)."""
        relay = self.relays.answered(token)
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
        token = self.relays.add(identity, flow.run_id, machine.id, self.clock())
        self._send(machine, cluster.PartRequest(token, flow.run_id, message.request))
        return None

    def _on_part_answer(self, message: cluster.PartAnswer, _: bytes) -> None:
        relay = self._relayed(message.token, message.error)
        if relay is None:
            return
        machine = self.machines.get(relay.machine)
        self._answer(relay.asker, cluster.PartReply(message.reply, machine.public_key if machine else ""))

    def _on_ask_machine(self, message: cluster.AskMachine, identity: bytes) -> cluster.CoordinatorReply | None:
        machine = self.machines.get(message.machine)
        if machine is None or machine.lost:
            connected = sorted(m.id for m in self.machines.values() if not m.lost)
            return cluster.Declined(cluster.not_connected([message.machine], connected))
        timeout = min(max(message.timeout, RELAY_TIMEOUT_S), MACHINE_REQUEST_MAX_S)
        token = self.relays.add(identity, "", machine.id, self.clock(), timeout)
        self._send(machine, cluster.MachineRequest(token, message.request))
        return None

    def _on_machine_answer(self, message: cluster.MachineAnswer, _: bytes) -> None:
        relay = self._relayed(message.token, message.error)
        if relay is not None:
            self._answer(relay.asker, cluster.MachineReply(message.reply))

    # -- the end ---------------------------------------------------------------------------------
    def _on_shutdown(self, _: cluster.Shutdown, identity: bytes) -> None:
        self.shutdown_asker = identity
        self.begin_shutdown("`car down`")

    def begin_shutdown(self, reason: str) -> None:
        """Ask every machine to leave (its runs stop); `done` says when the coordinator may end."""
        if self.shutdown_at:
            return
        self.say(f"coordinator: shutting down ({reason})")
        self.shutdown_at = self.clock() + LEAVE_WAIT_S
        for machine in self.machines.values():
            self._send(machine, cluster.Leave(reason))

    def close(self) -> None:
        """Answer the `car down` that asked (if one did), and close the ports."""
        if self.shutdown_asker:
            self._answer(self.shutdown_asker, cluster.Accepted())
        self.daemons.close()
        self.clients.close()

    def _running_parts(self) -> bool:
        return any(
            p.state == PartState.RUNNING and not self.machines[p.machine].lost
            for f in self.flows.values()
            for p in f.parts.values()
            if p.machine in self.machines
        )
