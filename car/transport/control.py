"""The control messages between the CLI, the daemon, subscribers and the nodes: typed, versioned, encoded here.

Every request and reply is a frozen dataclass whose base class names its direction, as
dora's message library does (`node_to_daemon`, `daemon_to_node`, ...):

- `NodeToDaemon`: a node tells its daemon (on the run's control socket).
- `ClientToDaemon`: the `car` command or a subscriber asks the daemon (same socket; it answers).
- `DaemonReply`: the daemon's answer to a `ClientToDaemon` request (and to `Flush`).
- `DaemonToNode`: the daemon changes a running node's plan (on the node's receive socket,
  inside a `wire.KIND_CONTROL` message).

On the wire a message is one msgpack map: `{"v": VERSION, "t": type name, ...fields}`. A
peer of another version, an unknown type or a field of the wrong type is a
`ControlError` that says so; nothing else in `car` builds or parses these maps.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, get_args, get_origin

import msgpack

from car.spec.model import QueuePolicy, RestartPolicy
from car.spec.parameters import Parameter
from car.transport.states import NodeStatus

VERSION = 1


class ControlError(ValueError):
    """A control message that cannot be read: another version, an unknown type, or bad fields."""


_TYPES: dict[str, type[ControlMessage]] = {}
_FIELDS: dict[type[Any], dict[str, Any]] = {}  # a record type -> its fields' resolved types


@dataclass(frozen=True)
class ControlMessage:
    """A control message; `TYPE` is its name on the wire."""

    TYPE: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("TYPE", "")
        if name:
            if name in _TYPES:
                raise TypeError(f"two control messages are called {name!r}")
            _TYPES[name] = cls


# -- records that messages carry ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NodeRow:
    """One node, as `car list` shows it."""

    id: str
    state: NodeStatus
    pid: int
    restarts: int
    rate: float
    status: str
    superseded: int = 0
    sent_rate: float = 0.0  # messages per second, over the node's last report period
    received_rate: float = 0.0
    dropped: int = 0  # by its full queues and links, so far
    cpu_percent: float = 0.0  # of one CPU, over its last report period
    rss_bytes: int = 0
    latency_p50_ms: float = -1.0  # timestamp to receipt of its inputs, while watched (`car top`); -1: not measured
    latency_p99_ms: float = -1.0


@dataclass(frozen=True)
class SubscribedOutput:
    """One output a subscription receives, and where its large payloads are (`shm_prefix`, reader `line`)."""

    source: str
    shm_prefix: str = ""
    line: int = -1


@dataclass(frozen=True)
class TopicReader:
    """One input that reads an output, and how it queues it."""

    node: str
    input: str
    queue_size: int
    queue_policy: QueuePolicy
    machine: str = ""  # "" when the run is on one machine


@dataclass(frozen=True)
class Topic:
    """One output of a node of the run (`node/output`), as `car topic` shows it."""

    source: str
    declared_type: str  # its `output_types` URN, or ""
    machine: str
    readers: list[TopicReader] = field(default_factory=list)
    subscribers: int = 0


@dataclass(frozen=True)
class InputRow:
    """One input of a node: where it comes from and how it queues."""

    input: str
    source: str
    queue_size: int
    queue_policy: QueuePolicy


@dataclass(frozen=True)
class StreamEnd:
    """Node `reader` has the end of `source`'s stream (node/output), or is yet to have it."""

    reader: str
    source: str


# -- a node tells its daemon ----------------------------------------------------------------


@dataclass(frozen=True)
class NodeToDaemon(ControlMessage):
    """From a node to its daemon; `node` is the sender's id."""

    node: str


@dataclass(frozen=True)
class Ready(NodeToDaemon):
    """The node has bound its sockets and can receive."""

    TYPE: ClassVar[str] = "ready"
    pid: int = 0


@dataclass(frozen=True)
class Stats(NodeToDaemon):
    """Once a second (twice while watched): messages so far, inputs' superseded and dropped messages, the
    node's status line; while watched (`Observe`), the time from its inputs' timestamps to their receipt
    since the last report (microseconds, -1: none measured)."""

    TYPE: ClassVar[str] = "stats"
    sent: int = 0
    received: int = 0
    status: str = ""
    superseded: int = 0
    dropped: int = 0
    latency_p50_us: float = -1.0
    latency_p99_us: float = -1.0


@dataclass(frozen=True)
class DeclareParameters(NodeToDaemon):
    """The node declared these parameters (car.spec.parameters): `car param` may read and set them."""

    TYPE: ClassVar[str] = "declare_parameters"
    parameters: list[Parameter] = field(default_factory=list)


@dataclass(frozen=True)
class EndOfStream(NodeToDaemon):
    """The node received the end of `source`'s stream."""

    TYPE: ClassVar[str] = "eos"
    source: str = ""


@dataclass(frozen=True)
class Flush(NodeToDaemon):
    """The node is ending: answer (`Flushed`) once its readers have the end of its streams."""

    TYPE: ClassVar[str] = "flush"


@dataclass(frozen=True)
class Bye(NodeToDaemon):
    """The node has closed: its final counts."""

    TYPE: ClassVar[str] = "bye"
    sent: int = 0
    received: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    superseded: int = 0


@dataclass(frozen=True)
class StopDataflow(NodeToDaemon):
    """The node asks for the whole dataflow to stop (`Node.stop_dataflow`)."""

    TYPE: ClassVar[str] = "stop_dataflow"
    reason: str = ""


# -- the CLI or a subscriber asks the daemon ------------------------------------------------------


@dataclass(frozen=True)
class ClientToDaemon(ControlMessage):
    """A request from the `car` command or a subscriber; the daemon answers with a `DaemonReply`."""


@dataclass(frozen=True)
class ListRun(ClientToDaemon):
    """What is running (`car list`): answered with `RunStatus`."""

    TYPE: ClassVar[str] = "list"


@dataclass(frozen=True)
class StopRun(ClientToDaemon):
    """Stop the dataflow (`car stop`)."""

    TYPE: ClassVar[str] = "stop"
    reason: str = "requested by `car stop`"
    grace: float = 0.0  # seconds between STOP and SIGTERM; 0: the run's own (`car launch --grace`)


@dataclass(frozen=True)
class Begin(ClientToDaemon):
    """A run launched with a recorder (`car launch --record`): it has subscribed, the nodes may start."""

    TYPE: ClassVar[str] = "begin"


@dataclass(frozen=True)
class StartTimers(ClientToDaemon):
    """Every machine's nodes of the run are ready: timers may tick (a run placed on several machines)."""

    TYPE: ClassVar[str] = "start_timers"


@dataclass(frozen=True)
class CloseInputs(ClientToDaemon):
    """`sources` (node/output, on another machine) send no more: their readers here get INPUT_CLOSED."""

    TYPE: ClassVar[str] = "close_inputs"
    sources: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReadersGone(ClientToDaemon):
    """`readers` (nodes on another machine) ended, or their machine was lost: senders here stop sending to them."""

    TYPE: ClassVar[str] = "readers_gone"
    readers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReadersBack(ClientToDaemon):
    """`readers` (nodes on another machine) started again: senders here send to them again."""

    TYPE: ClassVar[str] = "readers_back"
    readers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EndsDelivered(ClientToDaemon):
    """Readers on another machine have the end of these streams of nodes here (see Flush)."""

    TYPE: ClassVar[str] = "ends_delivered"
    ends: list[StreamEnd] = field(default_factory=list)


@dataclass(frozen=True)
class Watch(ClientToDaemon):
    """Someone watches the nodes (`car top`): for `seconds`, they measure their inputs' latency and report twice as
    often."""

    TYPE: ClassVar[str] = "watch"
    seconds: float = 3.0


@dataclass(frozen=True)
class ListTopics(ClientToDaemon):
    """The outputs of this machine's nodes, their readers and subscribers: answered with `Topics`."""

    TYPE: ClassVar[str] = "list_topics"


@dataclass(frozen=True)
class Publish(ClientToDaemon):
    """Send a JSON value into node `node`'s input `input`, as its source would (`car topic pub`): `Published`."""

    TYPE: ClassVar[str] = "publish"
    node: str = ""
    input: str = ""
    value_json: str = "null"


@dataclass(frozen=True)
class ListParameters(ClientToDaemon):
    """Node `node`'s declared parameters and their values: answered with `Parameters`."""

    TYPE: ClassVar[str] = "list_parameters"
    node: str = ""


@dataclass(frozen=True)
class SetParameter(ClientToDaemon):
    """Set parameter `name` of node `node` to `value_json` (checked against its declaration; kept across restarts)."""

    TYPE: ClassVar[str] = "set_parameter"
    node: str = ""
    name: str = ""
    value_json: str = ""


@dataclass(frozen=True)
class DescribeNode(ClientToDaemon):
    """What `car node info` shows of node `node`: answered with `NodeDescription`."""

    TYPE: ClassVar[str] = "describe_node"
    node: str = ""


@dataclass(frozen=True)
class RestartNode(ClientToDaemon):
    """Stop node `node` (STOP, then SIGTERM after the grace period) and start it again; the rest runs on."""

    TYPE: ClassVar[str] = "restart_node"
    node: str = ""


@dataclass(frozen=True)
class StopNode(ClientToDaemon):
    """Stop node `node` for good (STOP, then SIGTERM after the grace period); its readers get INPUT_CLOSED."""

    TYPE: ClassVar[str] = "stop_node"
    node: str = ""


@dataclass(frozen=True)
class AddNode(ClientToDaemon):
    """`car node add --from-yaml`: add the node `text` defines (read as file `label`); with `replacing`, it takes
    the place of that node (`car node replace`)."""

    TYPE: ClassVar[str] = "add_node"
    text: str = ""
    label: str = ""
    replacing: str = ""


@dataclass(frozen=True)
class RemoveNode(ClientToDaemon):
    """`car node remove`: stop node `node` for good and take it out of the graph."""

    TYPE: ClassVar[str] = "remove_node"
    node: str = ""


@dataclass(frozen=True)
class ConnectInput(ClientToDaemon):
    """`car node connect`: node `node` gains input `input`, reading `source` (NODE/OUTPUT)."""

    TYPE: ClassVar[str] = "connect_input"
    source: str = ""
    node: str = ""
    input: str = ""
    queue_size: int = 10


@dataclass(frozen=True)
class ListenFor(ClientToDaemon):
    """`car node connect` across machines, on the reader's machine: node `node` gains input `input` reading `source`
    (a node elsewhere) and listens for it over tcp:// (answered with `Listening`)."""

    TYPE: ClassVar[str] = "listen_for"
    source: str = ""
    node: str = ""
    input: str = ""
    queue_size: int = 10


@dataclass(frozen=True)
class AddReader(ClientToDaemon):
    """`car node connect` across machines, on the sender's machine: send `source` to node `reader` elsewhere, which
    listens at `endpoint` (over CurveZMQ with its machine's `server_key`, when the run has keys)."""

    TYPE: ClassVar[str] = "add_reader"
    source: str = ""
    reader: str = ""
    inputs: list[str] = field(default_factory=list)
    endpoint: str = ""
    server_key: str = ""


@dataclass(frozen=True)
class RemoveReader(ClientToDaemon):
    """`car node disconnect` across machines, on the sender's machine: stop sending `source` to node `reader`."""

    TYPE: ClassVar[str] = "remove_reader"
    source: str = ""
    reader: str = ""


@dataclass(frozen=True)
class DisconnectInput(ClientToDaemon):
    """`car node disconnect`: node `node` loses input `input`, which reads `source`."""

    TYPE: ClassVar[str] = "disconnect_input"
    source: str = ""
    node: str = ""
    input: str = ""


@dataclass(frozen=True)
class GetNodeConfig(ClientToDaemon):
    """The configuration of a `path: dynamic` node, to start it by hand.

    `pid` is the process that will be the node, when it asks itself (`Node("id")` in a
    process started with plain `python node.py`): the daemon then watches it, since no
    `car run-node` will say when it exits; 0 from `car run-node`.
    """

    TYPE: ClassVar[str] = "node_config"
    node: str = ""
    pid: int = 0


@dataclass(frozen=True)
class NodeExited(ClientToDaemon):
    """A node started by hand (`car run-node`) has exited with `code`."""

    TYPE: ClassVar[str] = "node_exited"
    node: str = ""
    code: int = 0


@dataclass(frozen=True)
class Subscribe(ClientToDaemon):
    """Receive `sources` (`node/output`, `node` for all its outputs, or `*` for every output) on `endpoint`."""

    TYPE: ClassVar[str] = "subscribe"
    pid: int = 0  # on this host; 0 for a subscriber elsewhere, which holds its subscription by `Renew`
    endpoint: str = ""  # ipc:// on this host, tcp:// from elsewhere
    sources: list[str] = field(default_factory=list)
    queue_size: int = 10
    lease_s: float = 0.0  # from elsewhere: the subscription ends unless renewed within this time
    server_key: str = ""  # from elsewhere, over CurveZMQ: the subscriber's public key (Z85)
    keep: bool = False  # keep frames for it in the senders' shared memory while they can (a recorder)


@dataclass(frozen=True)
class Renew(ClientToDaemon):
    """A subscriber elsewhere still wants its subscription (see `Subscribe.lease_s`): `Done`."""

    TYPE: ClassVar[str] = "renew"
    subscription: str = ""


@dataclass(frozen=True)
class Unsubscribe(ClientToDaemon):
    """End a subscription."""

    TYPE: ClassVar[str] = "unsubscribe"
    subscription: str = ""


# -- the daemon answers ---------------------------------------------------------------------


@dataclass(frozen=True)
class DaemonReply(ControlMessage):
    """The daemon's answer to a request."""


@dataclass(frozen=True)
class Done(DaemonReply):
    """The request was carried out."""

    TYPE: ClassVar[str] = "done"


@dataclass(frozen=True)
class Refused(DaemonReply):
    """The request was not carried out; `error` says why and what to do."""

    TYPE: ClassVar[str] = "refused"
    error: str = ""


@dataclass(frozen=True)
class RunStatus(DaemonReply):
    """What `car list` shows of a run."""

    TYPE: ClassVar[str] = "run_status"
    name: str = ""
    run_id: str = ""
    dataflow: str = ""
    folder: str = ""
    pid: int = 0
    uptime_s: float = 0.0
    nodes: list[NodeRow] = field(default_factory=list)
    subscriptions: int = 0
    launch_env: dict[str, str] = field(default_factory=dict)  # what `car launch`'s options set in every node's env


@dataclass(frozen=True)
class Topics(DaemonReply):
    """The answer to `ListTopics`."""

    TYPE: ClassVar[str] = "topics"
    topics: list[Topic] = field(default_factory=list)


@dataclass(frozen=True)
class Published(DaemonReply):
    """The answer to `Publish`: the value went to the node, under the source name its input is fed by."""

    TYPE: ClassVar[str] = "published"
    source: str = ""


@dataclass(frozen=True)
class Parameters(DaemonReply):
    """The answer to `ListParameters`: each declared parameter, and its value now (JSON)."""

    TYPE: ClassVar[str] = "parameters"
    parameters: list[Parameter] = field(default_factory=list)
    values_json: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeDescription(DaemonReply):
    """The answer to `DescribeNode`."""

    TYPE: ClassVar[str] = "node_description"
    row: NodeRow = field(
        default_factory=lambda: NodeRow(id="", state=NodeStatus.PENDING, pid=0, restarts=0, rate=0.0, status="")
    )
    path: str = ""
    args: list[str] = field(default_factory=list)
    machine: str = ""
    inputs: list[InputRow] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    log: str = ""
    restart_policy: RestartPolicy = RestartPolicy.NEVER
    critical: bool = True
    operators: list[str] = field(default_factory=list)  # an operator node's: `ID: FILE` each


@dataclass(frozen=True)
class NodeConfigText(DaemonReply):
    """A dynamic node's configuration (JSON, for `CAR_NODE_CONFIG`)."""

    TYPE: ClassVar[str] = "node_config_text"
    config: str = ""


@dataclass(frozen=True)
class Subscribed(DaemonReply):
    """A subscription was made: its id and the outputs it receives."""

    TYPE: ClassVar[str] = "subscribed"
    subscription: str = ""
    outputs: list[SubscribedOutput] = field(default_factory=list)


@dataclass(frozen=True)
class Listening(DaemonReply):
    """The reader's node listens for its new input on `port` of its machine (`server_key`: the machine's public key
    for CurveZMQ, "" without keys)."""

    TYPE: ClassVar[str] = "listening"
    port: int = 0
    server_key: str = ""


@dataclass(frozen=True)
class Flushed(DaemonReply):
    """Every reader of the ending node has the end of its streams, except `pending` (timed out)."""

    TYPE: ClassVar[str] = "flushed"
    pending: list[str] = field(default_factory=list)


# -- the daemon changes a running node's plan ------------------------------------------------------


@dataclass(frozen=True)
class DaemonToNode(ControlMessage):
    """From the daemon to a node, inside a `wire.KIND_CONTROL` message on its receive socket."""


@dataclass(frozen=True)
class AddSubscriber(DaemonToNode):
    """Send `output` also to subscription `subscription` at `endpoint` (shared-memory reader `line`, or -1)."""

    TYPE: ClassVar[str] = "add_subscriber"
    output: str = ""
    subscription: str = ""
    endpoint: str = ""
    queue_size: int = 10
    line: int = -1
    server_key: str = ""  # a subscriber elsewhere over CurveZMQ: its public key (Z85)
    keep: bool = False  # keep frames for it while the ring can (car.transport.shm.FrameWriter.subscribe)


@dataclass(frozen=True)
class RemoveSubscriber(DaemonToNode):
    """Stop sending `output` to subscription `subscription`."""

    TYPE: ClassVar[str] = "remove_subscriber"
    output: str = ""
    subscription: str = ""


@dataclass(frozen=True)
class ParameterSet(DaemonToNode):
    """`car param set` gave parameter `name` the value `value_json` (already checked): a PARAMETER event follows."""

    TYPE: ClassVar[str] = "parameter_set"
    name: str = ""
    value_json: str = ""


@dataclass(frozen=True)
class AddDestination(DaemonToNode):
    """Send `output` also to node `reader` at `endpoint` (its inputs `inputs`): an input connected while it runs."""

    TYPE: ClassVar[str] = "add_destination"
    output: str = ""
    reader: str = ""
    endpoint: str = ""
    inputs: list[str] = field(default_factory=list)
    queue_size: int = 10
    server_key: str = ""  # a reader elsewhere over CurveZMQ: its machine's public key
    remote: bool = False  # a reader on another machine (tcp://): sent whole, from the sender's buffer


@dataclass(frozen=True)
class Listen(DaemonToNode):
    """Listen also at `endpoint` (tcp://) for nodes on other machines (an input connected while it runs)."""

    TYPE: ClassVar[str] = "listen"
    endpoint: str = ""


@dataclass(frozen=True)
class RemoveDestination(DaemonToNode):
    """Stop sending `output` to node `reader` (its last input reading it was disconnected, or it was removed)."""

    TYPE: ClassVar[str] = "remove_destination"
    output: str = ""
    reader: str = ""


@dataclass(frozen=True)
class AddInput(DaemonToNode):
    """The node has a new input `name` reading `source` (queued up to `queue_size`): `car node connect`."""

    TYPE: ClassVar[str] = "add_input"
    name: str = ""
    source: str = ""
    queue_size: int = 10


@dataclass(frozen=True)
class RemoveInput(DaemonToNode):
    """The node's input `name` is disconnected: it gets INPUT_CLOSED for it."""

    TYPE: ClassVar[str] = "remove_input"
    name: str = ""


@dataclass(frozen=True)
class ReloadOperator(DaemonToNode):
    """`car launch --hot-reload`: operator `operator`'s file changed; its runtime imports it again (a RELOAD event)."""

    TYPE: ClassVar[str] = "reload_operator"
    operator: str = ""


@dataclass(frozen=True)
class Observe(DaemonToNode):
    """For `seconds` from now, measure the time from each input's timestamp to its receipt (see `Stats`)."""

    TYPE: ClassVar[str] = "observe"
    seconds: float = 3.0


@dataclass(frozen=True)
class ReaderGone(DaemonToNode):
    """Node `reader` ended for good (or its machine was lost): send it nothing more, and wait for it no more."""

    TYPE: ClassVar[str] = "reader_gone"
    reader: str = ""


@dataclass(frozen=True)
class ReaderBack(DaemonToNode):
    """Node `reader` started again: send to it again; what was in transit to its old process is lost, so a
    backpressure link has its whole room (credits) again."""

    TYPE: ClassVar[str] = "reader_back"
    reader: str = ""


# The messages that change where a node's outputs go (applied by the node between sends).
PLAN_CHANGES = (AddSubscriber, RemoveSubscriber, ReaderGone, ReaderBack, AddDestination, RemoveDestination)


# -- encoding ---------------------------------------------------------------------------------

M = TypeVar("M", bound=ControlMessage)
R = TypeVar("R")  # a message or a record it carries


def encode(message: ControlMessage) -> bytes:
    """The bytes of one message."""
    fields = {f.name: _plain(getattr(message, f.name)) for f in dataclasses.fields(message)}
    packed: bytes = msgpack.packb({"v": VERSION, "t": message.TYPE, **fields})
    return packed


def decode(raw: bytes, expected: type[M]) -> M:
    """Read one message of the kind `expected` (a direction's base class, or one type); ControlError if not."""
    try:
        body = msgpack.unpackb(raw)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ControlError(f"not a control message ({exc})") from None
    if not isinstance(body, dict):
        raise ControlError("not a control message (not a map)")
    version = body.pop("v", None)
    if version != VERSION:
        raise ControlError(
            f"control message version {version}, this side speaks {VERSION}: "
            "every process of a run must come from one version of car (reinstall, then start the run again)"
        )
    name = body.pop("t", None)
    cls = _TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ControlError(f"unknown control message type {name!r}")
    if not issubclass(cls, expected):
        raise ControlError(f"a {name!r} message is not a {expected.__name__} message")
    return _build(cls, body)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _build(cls: type[R], body: dict[str, Any]) -> R:
    """A message or record of type `cls` from its fields, each checked against its type."""
    types_ = _FIELDS.get(cls)
    if types_ is None:
        types_ = _FIELDS[cls] = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # messages and records are dataclasses
    unknown = set(body) - known
    if unknown:
        raise ControlError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
    values = {name: _check(f"{cls.__name__}.{name}", types_[name], value) for name, value in body.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ControlError(f"{cls.__name__}: {exc}") from None


def _check(where: str, hint: Any, value: Any) -> Any:
    """`value` as the type `hint` says, or a ControlError naming the field."""
    origin = get_origin(hint)
    if origin is list:
        (item,) = get_args(hint)
        if not isinstance(value, list):
            raise ControlError(f"{where} is not a list")
        return [_check(where, item, v) for v in value]
    if origin is dict:
        key, item = get_args(hint)
        if not isinstance(value, dict):
            raise ControlError(f"{where} is not a map")
        return {_check(where, key, k): _check(where, item, v) for k, v in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ControlError(f"{where} is not a {hint.__name__}")
        return _build(hint, value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in hint)
            raise ControlError(f"{where} is {value!r}, not one of {allowed}") from None
    if origin is types.UnionType:
        raise TypeError(f"{where}: unions are not supported in control messages")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ControlError(f"{where} should be {hint.__name__}, not {type(value).__name__}")
    return value
