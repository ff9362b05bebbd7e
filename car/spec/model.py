"""The dataflow model: what a validated dataflow file describes.

`car.spec.loader` turns a YAML file into these objects (or a list of problems); everything
else in the runtime works on them and never looks at YAML again.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

TIMER_PREFIX = "dora/timer/"
LOG_LEVELS = ("error", "warn", "info", "debug", "trace", "stdout")  # dora's, most severe first
LOG_SOURCE = "dora/logs"  # the input of every node's log entries (dora/logs[/LEVEL[/NODE]])
DEFAULT_QUEUE_SIZE = 10
DYNAMIC_PATH = "dynamic"
OPERATOR_RUNTIME = "-m car.operators"  # the program that runs a node's operators (car.operators)
SINGLE_OPERATOR_ID = "op"  # the id of an `operator:` that names none (dora's)


class QueuePolicy(enum.StrEnum):
    """What an input's full queue does with one more message."""

    DROP_OLDEST = "drop_oldest"  # the oldest queued message is dropped (counted)
    BACKPRESSURE = "backpressure"  # the sender waits for room (credits)


class RestartPolicy(enum.StrEnum):
    """When a node that ended is started again."""

    NEVER = "never"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"

    def restarts(self, code: int) -> bool:
        """Whether a node that ended with exit `code` is started again."""
        return self == RestartPolicy.ALWAYS or (self == RestartPolicy.ON_FAILURE and code != 0)


QUEUE_POLICIES = tuple(p.value for p in QueuePolicy)
RESTART_POLICIES = tuple(p.value for p in RestartPolicy)

_TIMER_RE = re.compile(r"^dora/timer/(millis|secs|hz)/(.+)$")
_UNIT_NS = {"millis": 1_000_000, "secs": 1_000_000_000}
MIN_TIMER_NS = 1_000  # 1 MHz: faster than any node can take ticks
MAX_TIMER_NS = 86_400 * 1_000_000_000  # a day


@dataclass(frozen=True)
class Location:
    """A place in a dataflow file, 1-based, as editors show it."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataflow file."""

    location: Location
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class DataflowError(Exception):
    """A dataflow file did not check; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def parse_timer(source: str) -> int:
    """Return the period in nanoseconds of a timer source such as `dora/timer/millis/10`.

    Raises ValueError with a readable reason when the source is malformed.
    """
    match = _TIMER_RE.match(source)
    if not match:
        raise ValueError(
            f"malformed timer `{source}`: expected dora/timer/millis/N, dora/timer/secs/N or dora/timer/hz/N"
        )
    unit, number = match.groups()
    try:
        value = float(number) if unit != "millis" else int(number)
    except ValueError:
        raise ValueError(f"malformed timer `{source}`: `{number}` is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"malformed timer `{source}`: the {unit} value must be positive and finite")
    period = 1e9 / value if unit == "hz" else value * _UNIT_NS[unit]
    if not MIN_TIMER_NS <= period <= MAX_TIMER_NS:
        raise ValueError(f"timer `{source}`: its period must be between 1 µs and 1 day")
    return round(period)


@dataclass(frozen=True)
class InputSpec:
    """One input of a node: where it comes from and how it is queued."""

    name: str
    source: str  # "node/output", a timer such as "dora/timer/millis/10", or "dora/logs[/LEVEL[/NODE]]"
    queue_size: int = DEFAULT_QUEUE_SIZE
    queue_policy: QueuePolicy = QueuePolicy.DROP_OLDEST
    input_timeout: float | None = None

    @property
    def is_timer(self) -> bool:
        """True when the source is one of the daemon's timers."""
        return self.source.startswith(TIMER_PREFIX)

    @property
    def is_log(self) -> bool:
        """True when the input takes log entries (`dora/logs[/LEVEL[/NODE]]`), which the daemon sends."""
        return self.source == LOG_SOURCE or self.source.startswith(LOG_SOURCE + "/")

    @property
    def from_daemon(self) -> bool:
        """True for the inputs the daemon feeds (timers, logs), not a node."""
        return self.source.startswith("dora/")

    @property
    def source_node(self) -> str:
        """The id of the node the input reads from (empty for timers and logs)."""
        return "" if self.from_daemon else self.source.split("/", 1)[0]

    @property
    def source_output(self) -> str:
        """The output id the input reads from (empty for timers and logs)."""
        return "" if self.from_daemon else self.source.split("/", 1)[1]


@dataclass(frozen=True)
class OperatorSpec:
    """One of a node's operators (dora's `operator:` or an item of `operators:`): a Python class run as a task
    inside the node's runtime process (car.operators).

    Its `inputs` and `outputs` are named as its code sees them; the node's own ports carry `port_prefix` in
    front (`OPID/` for an item of `operators:`, nothing for a single `operator:`), so other nodes read
    `node/OPID/output` or, for a single operator, `node/output`, as in dora.
    """

    id: str
    python: str  # its Python file, relative to the node's folder
    location: Location
    port_prefix: str = ""
    name: str = ""
    description: str = ""
    build: str = ""
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    send_stdout_as: str = ""  # an output of its own that carries the lines it prints
    send_logs_as: str = ""  # an output of its own that carries its log entries (JSON strings)
    min_log_level: str = ""  # its log entries below it are left out; "": info


@dataclass(frozen=True)
class Deploy:
    """Where a node runs (`deploy:`): its machine ("": the dataflow's), its folder there (`working_dir`; a
    relative one is in that machine's home folder), and `files`: globs relative to the node's folder that
    `car sync` sends beside its own (`!GLOB`: left out)."""

    machine: str = ""
    working_dir: str = ""
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeSpec:
    """One node of a dataflow."""

    id: str
    path: str
    location: Location
    name: str = ""
    description: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    build: str = ""
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    machine: str = ""
    working_dir: str = ""
    deploy_files: tuple[str, ...] = ()  # `deploy.files`: see `Deploy`
    restart_policy: RestartPolicy = RestartPolicy.NEVER
    max_restarts: int = 0  # 0: no limit
    restart_delay: float = 0.0
    cpu_affinity: tuple[int, ...] = ()  # the CPUs the node may run on (car.daemon.affinity); empty: any
    cpu_affinity_location: Location | None = None
    critical: bool = True  # when it fails and is not restarted, the whole run stops
    output_types: dict[str, str] = field(default_factory=dict)  # output -> type URN (car.spec.types)
    input_types: dict[str, str] = field(default_factory=dict)  # input -> type URN
    min_log_level: str = ""  # log entries below it are left out (dora's levels); "": info
    max_log_size: int = 0  # bytes of its log file before it is rotated; 0: no limit
    max_rotated_files: int = 5  # rotated log files kept
    send_logs_as: str = ""  # an output of its own that carries its log entries (JSON strings)
    send_stdout_as: str = ""  # an output of its own that carries every line it prints (text)
    operators: tuple[OperatorSpec, ...] = ()  # a runtime node's operators (its path is OPERATOR_RUNTIME)

    @property
    def builds(self) -> tuple[str, ...]:
        """Its build commands: the node's own, or each operator's."""
        found = [op.build for op in self.operators] if self.operators else [self.build]
        return tuple(command for command in found if command)

    @property
    def is_dynamic(self) -> bool:
        """A dynamic node is started by hand (`car run-node`), not by the daemon."""
        return self.path == DYNAMIC_PATH


@dataclass(frozen=True)
class Placement:
    """Where a dataflow runs when a coordinator places it on several machines.

    `here`: the machines that share the file system of the CLI that started it (their
    nodes' relative paths resolve against the dataflow file's folder; the others' against
    their `working_dir`). `default_machine`: where nodes go that no `deploy` names.
    `checking`: the machine whose nodes' paths are checked to exist (a daemon checks its
    own); None checks the nodes of `here`; "" checks none (the coordinator). `apart`: the one machine
    that does not share the file's folder, every other one taken as `here` (`car build --machine M`,
    run on M: the other machines' nodes are none of its concern).
    """

    here: frozenset[str]
    default_machine: str = ""
    checking: str | None = None
    apart: str = ""

    def is_local(self, machine: str) -> bool:
        """Whether a node on `machine` sees the dataflow file's folder ("": the coordinator's choice, taken
        as the CLI's own, as dora's `local` defaults to true)."""
        return not machine or machine in self.here or bool(self.apart and machine != self.apart)

    def checks(self, machine: str) -> bool:
        """Whether the paths of nodes on `machine` are checked here."""
        return self.is_local(machine) if self.checking is None else machine == self.checking


@dataclass(frozen=True)
class Dataflow:
    """A checked dataflow: its nodes in file order and where it came from."""

    file: Path
    nodes: tuple[NodeSpec, ...]
    env: dict[str, str] = field(default_factory=dict)
    machine: str = ""
    placement: Placement | None = None  # None: every node runs on this machine (`car launch`)
    modules: dict[str, str] = field(default_factory=dict)  # its module files' texts, by their path in its folder

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the file are resolved against."""
        return self.file.parent

    def machines(self) -> list[str]:
        """The machines its nodes name, sorted."""
        return sorted({node.machine for node in self.nodes if node.machine})

    def node_folder(self, node: NodeSpec) -> Path:
        """The folder a node runs in and its relative `path` resolves against.

        On the CLI's machine (and under `car launch`): the dataflow file's folder, or its
        `working_dir` (relative to that folder) when that is a folder here. On another
        machine: its `working_dir` (a relative one in the home folder), else the home folder.
        """
        if self.placement is None or self.placement.is_local(node.machine):
            return self.source_folder(node)
        return Path.home() / node.working_dir

    def source_folder(self, node: NodeSpec) -> Path:
        """The node's folder on the CLI's machine (what `car sync` sends from): the dataflow file's folder, or
        its `working_dir` (relative to that folder) when that is a folder here."""
        if node.working_dir and (self.base_dir / node.working_dir).is_dir():
            return self.base_dir / node.working_dir
        return self.base_dir

    def node(self, node_id: str) -> NodeSpec:
        """The node with this id (KeyError if there is none)."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)
