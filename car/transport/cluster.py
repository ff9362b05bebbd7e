"""The messages between the coordinator, the machines' daemons and the `car` command, named by direction.

Encoded and checked by car.transport.control (one msgpack map per message, versioned):

- `DaemonToCoordinator`: a machine's daemon tells or answers the coordinator (on its daemon port, 53290).
- `CoordinatorToDaemon`: the coordinator asks a machine's daemon (same socket).
- `ClientToCoordinator`: the `car` command asks the coordinator (on its control port, 6012).
- `CoordinatorReply`: the coordinator's answer to a `ClientToCoordinator` request.

Requests the coordinator passes on to a daemon (`ReadLog`, `PartRequest`, `MachineRequest`) carry a `token`
that the daemon's answer repeats, so that the coordinator can answer the right CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from car.transport.control import ControlMessage, NodeRow, StreamEnd
from car.transport.states import FlowState, MachineState, PartState

DAEMON_PORT = 53290  # daemons connect to the coordinator here (dora's port)
CONTROL_PORT = 6012  # the `car` command asks the coordinator here (dora's port)


def not_connected(missing: list[str], connected: list[str]) -> str:
    """What to say when machines a command needs are not connected to the coordinator."""
    return (
        f"machine{'s' if len(missing) > 1 else ''} {', '.join(missing)} not connected "
        f"(connected: {', '.join(connected) or 'none'}): start `car daemon --machine-id ID` there"
    )


# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MachineRow:
    """One machine, as `car machines` shows it."""

    machine: str
    host: str  # its host name, as its daemon says
    address: str  # where the coordinator sees it connect from
    state: MachineState
    last_seen_s: float  # seconds since its last heartbeat
    offset_ms: float  # its wall clock minus the coordinator's, measured over the heartbeat round trip
    rtt_ms: float
    runs: int
    pid: int = 0
    encrypted: bool = False  # it joined over CurveZMQ


@dataclass(frozen=True)
class MachinePart:
    """The nodes of one dataflow on one machine."""

    machine: str
    state: PartState
    nodes: list[NodeRow] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class DataflowRow:
    """One dataflow, as `car list` shows it."""

    run_id: str
    name: str
    file: str
    state: FlowState
    uptime_s: float
    parts: list[MachinePart] = field(default_factory=list)


@dataclass(frozen=True)
class HeldRun:
    """A run's part a daemon has, as it registers: enough for a coordinator that restarted to know the run again."""

    run_id: str
    name: str
    text: str  # the dataflow file, as the CLI that started it read it
    file: str
    here: list[str] = field(default_factory=list)
    default_machine: str = ""
    uptime_s: float = 0.0
    nodes: list[NodeRow] = field(default_factory=list)
    modules: dict[str, str] = field(default_factory=dict)  # its module files (car.spec.model.Dataflow.modules)


# -- a daemon tells the coordinator -----------------------------------------------------------------


@dataclass(frozen=True)
class DaemonToCoordinator(ControlMessage):
    """From a machine's daemon to the coordinator; `machine` is the sender's id."""

    machine: str


@dataclass(frozen=True)
class Register(DaemonToCoordinator):
    """The daemon joins (again, after a lost connection, or when the coordinator restarted: `runs` are the runs
    it still has)."""

    TYPE: ClassVar[str] = "register"
    host: str = ""
    pid: int = 0
    runs: list[HeldRun] = field(default_factory=list)
    public_key: str = ""  # its CurveZMQ public key (Z85), when it has keys: its nodes' links use it


@dataclass(frozen=True)
class Pong(DaemonToCoordinator):
    """The answer to a `Ping`: the coordinator's send time back, and the daemon's wall clock."""

    TYPE: ClassVar[str] = "pong"
    sent_ns: int = 0
    daemon_ns: int = 0


@dataclass(frozen=True)
class Prepared(DaemonToCoordinator):
    """The daemon checked its nodes and will listen at `listen` (see car.plan.build.Wiring) once started."""

    TYPE: ClassVar[str] = "prepared"
    run_id: str = ""
    listen: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PrepareFailed(DaemonToCoordinator):
    """The daemon's nodes cannot start: `problems`, one line each."""

    TYPE: ClassVar[str] = "prepare_failed"
    run_id: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PartReady(DaemonToCoordinator):
    """Every node of a run's part on this machine is ready (timers here wait for `AllReady`)."""

    TYPE: ClassVar[str] = "part_ready"
    run_id: str = ""


@dataclass(frozen=True)
class NodesGone(DaemonToCoordinator):
    """`nodes` of a run ended on this machine: readers elsewhere get the end of `sources` (their outputs), senders
    elsewhere stop sending to them."""

    TYPE: ClassVar[str] = "nodes_gone"
    run_id: str = ""
    nodes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NodesBack(DaemonToCoordinator):
    """`nodes` of a run started again on this machine: senders elsewhere send to them again."""

    TYPE: ClassVar[str] = "nodes_back"
    run_id: str = ""
    nodes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EndsReceived(DaemonToCoordinator):
    """Readers on this machine have the end of these streams of nodes elsewhere."""

    TYPE: ClassVar[str] = "ends_received"
    run_id: str = ""
    ends: list[StreamEnd] = field(default_factory=list)


@dataclass(frozen=True)
class RunEnded(DaemonToCoordinator):
    """A run's part on this machine ended (`code` 0: no node failed); `summary`: its closing lines."""

    TYPE: ClassVar[str] = "run_ended"
    run_id: str = ""
    code: int = 0
    summary: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunState(DaemonToCoordinator):
    """The states of this machine's nodes of a run, when they changed (about once a second at most)."""

    TYPE: ClassVar[str] = "run_state"
    run_id: str = ""
    nodes: list[NodeRow] = field(default_factory=list)


@dataclass(frozen=True)
class LogText(DaemonToCoordinator):
    """The answer to `ReadLog`: text of a node's log from `offset` on, and where the next read starts."""

    TYPE: ClassVar[str] = "log_text"
    token: str = ""
    text: str = ""
    next_offset: int = 0
    error: str = ""


@dataclass(frozen=True)
class PartAnswer(DaemonToCoordinator):
    """The answer to `PartRequest`: what the part's process answered (car.transport.control bytes), or why none."""

    TYPE: ClassVar[str] = "part_answer"
    token: str = ""
    reply: bytes = b""
    error: str = ""


@dataclass(frozen=True)
class MachineAnswer(DaemonToCoordinator):
    """The answer to `MachineRequest`: a car.transport.shipping `MachineReply` (encoded), or why none."""

    TYPE: ClassVar[str] = "machine_answer"
    token: str = ""
    reply: bytes = b""
    error: str = ""


# -- the coordinator asks a daemon ---------------------------------------------------------------------


@dataclass(frozen=True)
class CoordinatorToDaemon(ControlMessage):
    """From the coordinator to a machine's daemon."""


@dataclass(frozen=True)
class Welcome(CoordinatorToDaemon):
    """The registration was accepted (or `error` says why not: the daemon then exits)."""

    TYPE: ClassVar[str] = "welcome"
    error: str = ""


@dataclass(frozen=True)
class Ping(CoordinatorToDaemon):
    """The heartbeat: answered at once with `Pong`."""

    TYPE: ClassVar[str] = "ping"
    sent_ns: int = 0


@dataclass(frozen=True)
class PrepareRun(CoordinatorToDaemon):
    """Check this machine's nodes of a dataflow and choose where they listen; answered `Prepared` or `PrepareFailed`.

    `text` is the dataflow file as the CLI read it at `file`, `modules` its module files' texts; `here` the
    machines that share the CLI's files (see car.spec.model.Placement)."""

    TYPE: ClassVar[str] = "prepare"
    run_id: str = ""
    name: str = ""
    text: str = ""
    file: str = ""
    here: list[str] = field(default_factory=list)
    default_machine: str = ""
    modules: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StartRun(CoordinatorToDaemon):
    """Start a prepared run; `reach`: where the nodes on other machines listen; with keys, `server_keys`: the
    public key of the machine behind each of those, and `peers`: the public keys of the run's machines."""

    TYPE: ClassVar[str] = "start"
    run_id: str = ""
    reach: dict[str, str] = field(default_factory=dict)
    server_keys: dict[str, str] = field(default_factory=dict)
    peers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AllReady(CoordinatorToDaemon):
    """Every machine's nodes of a run are ready: its timers may tick."""

    TYPE: ClassVar[str] = "all_ready"
    run_id: str = ""


@dataclass(frozen=True)
class AbortRun(CoordinatorToDaemon):
    """Forget a prepared run that will not start (another machine refused it)."""

    TYPE: ClassVar[str] = "abort"
    run_id: str = ""


@dataclass(frozen=True)
class StopRunHere(CoordinatorToDaemon):
    """Stop this machine's part of a run, giving nodes `grace` seconds between STOP and SIGTERM."""

    TYPE: ClassVar[str] = "stop_here"
    run_id: str = ""
    reason: str = ""
    grace: float = 2.0


@dataclass(frozen=True)
class ForPart(CoordinatorToDaemon):
    """What the other machines' nodes did, for this machine's part of run `run_id` to act on: one
    car.transport.control message (`CloseInputs`, `ReadersGone`, `ReadersBack` or `EndsDelivered`), encoded,
    which the daemon passes on to the part as it is."""

    TYPE: ClassVar[str] = "for_part"
    run_id: str = ""
    message: bytes = b""


@dataclass(frozen=True)
class ReadLog(CoordinatorToDaemon):
    """Up to `limit` bytes of a node's log from `offset` on: answered `LogText`."""

    TYPE: ClassVar[str] = "read_log"
    token: str = ""
    run_id: str = ""
    node: str = ""
    offset: int = 0
    limit: int = 65536


@dataclass(frozen=True)
class PartRequest(CoordinatorToDaemon):
    """A command's request to this machine's part of run `run_id` (car.transport.control bytes): answered `PartAnswer`."""

    TYPE: ClassVar[str] = "part_request"
    token: str = ""
    run_id: str = ""
    request: bytes = b""


@dataclass(frozen=True)
class MachineRequest(CoordinatorToDaemon):
    """A command's request to this machine's daemon itself (a car.transport.shipping `ClientToMachine`, encoded):
    answered `MachineAnswer`."""

    TYPE: ClassVar[str] = "machine_request"
    token: str = ""
    request: bytes = b""


@dataclass(frozen=True)
class Leave(CoordinatorToDaemon):
    """Stop every run here and exit (`car down`)."""

    TYPE: ClassVar[str] = "leave"
    reason: str = ""


# -- the CLI asks the coordinator ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClientToCoordinator(ControlMessage):
    """A request from the `car` command; answered with a `CoordinatorReply`."""


@dataclass(frozen=True)
class StartDataflow(ClientToCoordinator):
    """Start the dataflow `text` (read from `file`) as `name` ("": a name is made); `here` and `modules` as in
    PrepareRun."""

    TYPE: ClassVar[str] = "start_placed"
    text: str = ""
    file: str = ""
    name: str = ""
    here: list[str] = field(default_factory=list)
    modules: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StopDataflowNamed(ClientToCoordinator):
    """Stop the dataflow called `name` (or with that id) on every machine."""

    TYPE: ClassVar[str] = "stop_placed"
    name: str = ""
    grace: float = 2.0


@dataclass(frozen=True)
class ListDataflows(ClientToCoordinator):
    """The dataflows the coordinator knows (`car list`): answered `Dataflows`."""

    TYPE: ClassVar[str] = "list_dataflows"


@dataclass(frozen=True)
class ListMachines(ClientToCoordinator):
    """The machines (`car machines`): answered `Machines`."""

    TYPE: ClassVar[str] = "list_machines"


@dataclass(frozen=True)
class ReadLogs(ClientToCoordinator):
    """A node's log from `offset` on (`car logs`): answered `LogChunk`."""

    TYPE: ClassVar[str] = "read_logs"
    name: str = ""
    node: str = ""
    offset: int = 0


@dataclass(frozen=True)
class AskPart(ClientToCoordinator):
    """A request (car.transport.control bytes, a `ClientToDaemon`) for `machine`'s part of the dataflow `name`, passed
    on to that machine's daemon and from it to the part (`car top`, `car topic`, `car param`, `car node` from a host
    that does not run it): answered `PartReply`."""

    TYPE: ClassVar[str] = "ask_part"
    name: str = ""
    machine: str = ""
    request: bytes = b""


@dataclass(frozen=True)
class AskMachine(ClientToCoordinator):
    """A request (a car.transport.shipping `ClientToMachine`, encoded) for `machine`'s daemon (`car sync`), passed
    on to it; declined if it has not answered within `timeout` seconds: answered `MachineReply`."""

    TYPE: ClassVar[str] = "ask_machine"
    machine: str = ""
    request: bytes = b""
    timeout: float = 10.0


@dataclass(frozen=True)
class Shutdown(ClientToCoordinator):
    """Stop every dataflow, tell every daemon to leave, and exit (`car down`)."""

    TYPE: ClassVar[str] = "shutdown"


# -- the coordinator answers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CoordinatorReply(ControlMessage):
    """The coordinator's answer to a request."""


@dataclass(frozen=True)
class Accepted(CoordinatorReply):
    """The request was carried out."""

    TYPE: ClassVar[str] = "accepted"


@dataclass(frozen=True)
class Declined(CoordinatorReply):
    """The request was not carried out; `error` says why and what to do."""

    TYPE: ClassVar[str] = "declined"
    error: str = ""


@dataclass(frozen=True)
class Started(CoordinatorReply):
    """A dataflow started on `machines`."""

    TYPE: ClassVar[str] = "started"
    run_id: str = ""
    name: str = ""
    machines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Dataflows(CoordinatorReply):
    """What `car list` shows."""

    TYPE: ClassVar[str] = "dataflows"
    dataflows: list[DataflowRow] = field(default_factory=list)


@dataclass(frozen=True)
class Machines(CoordinatorReply):
    """What `car machines` shows."""

    TYPE: ClassVar[str] = "machines"
    machines: list[MachineRow] = field(default_factory=list)


@dataclass(frozen=True)
class LogChunk(CoordinatorReply):
    """Text of a node's log, where the next read starts, and whether the node's run has ended."""

    TYPE: ClassVar[str] = "log_chunk"
    text: str = ""
    next_offset: int = 0
    ended: bool = False


@dataclass(frozen=True)
class PartReply(CoordinatorReply):
    """What a machine's part answered an `AskPart` (car.transport.control bytes, a `DaemonReply`), and that machine's
    public key when it joined over CurveZMQ (Z85; what a subscriber elsewhere lets in)."""

    TYPE: ClassVar[str] = "part_reply"
    reply: bytes = b""
    machine_key: str = ""


@dataclass(frozen=True)
class MachineReply(CoordinatorReply):
    """What a machine's daemon answered an `AskMachine` (a car.transport.shipping `MachineReply`, encoded)."""

    TYPE: ClassVar[str] = "machine_reply"
    reply: bytes = b""
