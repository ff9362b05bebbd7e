"""A runtime node: one process that runs a node's operators (dora's `operator:` / `operators:`) as tasks.

The daemon starts it as any node (`python -m car.operators`, car.spec.model.OPERATOR_RUNTIME),
with the operators in its configuration (car.plan.config.OperatorConfig). Each operator
is an instance of the `Operator` class of its file (car.operators.loading), with dora's
Python API: `on_event(event, send_output)` gets dora's event dicts (values are pyarrow
arrays) and returns `DoraStatus.CONTINUE`, `STOP` (this operator is done) or `STOP_ALL`
(stop the dataflow); None counts as CONTINUE. `self.dataflow_descriptor` is the
dataflow file, parsed, as dora sets it after `__init__`.

- **Events.** Each operator has a cart of its own (car.operators.scheduler): its events
  in order, one at a time. One operator: it runs on the thread that receives (no hand-over
  at all, the cost of a node). Several: labors run them, so one that blocks does not hold
  up the others. Each input keeps at most its `queue_size` events waiting, dropping the
  oldest (counted and reported as the node's: car.operators.bounds), as a node's does.
- **Between operators of this node** a value goes by reference: the array an operator
  sends is the array its siblings get, with a copy of the metadata, and no encoding; the
  sending labor runs the reader next. Values to and from other nodes take the node's
  ordinary links (direct links, shared memory, tcp:// across machines), only when someone
  reads them there (a subscriber too: `car topic echo node/op/output`).
- **Ends.** An operator whose inputs have all closed gets STOP and is done, as is one that
  returned STOP; its siblings reading it get INPUT_CLOSED. The process ends when every
  operator is done (or the dataflow stops).
- **Hot reload** (`car launch --hot-reload`): a RELOAD event for an operator whose file changed
  imports the file again and swaps in a new instance between two of its events, keeping the
  old instance's attributes (dora's behaviour); a file that does not import keeps the old code.
- **Failures** are reported with the node, the operator and the traceback of its code. The
  node's `restart_policy` (`max_restarts`, `restart_delay`) restarts that operator in place
  (a new instance, with the events that waited for it; its siblings go on untouched);
  otherwise the others get STOP and the process exits 1, so the daemon treats the node as failed.
"""

from __future__ import annotations

import enum
import functools
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from car.compat.dora import values
from car.compat.dora.node import TIMED_OUT, Node
from car.node.drops import DropFlag, DropSource
from car.operators.bounds import InputBounds
from car.operators.loading import OperatorLoadError, load_module, operator_class, user_traceback
from car.operators.printed import Printed
from car.operators.scheduler import Cart, Lane, Put, Scheduler
from car.plan.config import NodeConfig, OperatorConfig
from car.spec.model import DEFAULT_QUEUE_SIZE, RestartPolicy

WAKE_S = 0.05  # with labors, how often the receiving thread looks whether every operator is done
STOP_GRACE_S = 10.0  # how long the runtime waits for its operators to take their STOP
ALL_INPUTS_CLOSED = "ALL_INPUTS_CLOSED"  # a STOP's cause (dora's)
PUSHED_OUT = Put.PUSHED_OUT  # looked up once (an Enum member's lookup costs 90 ns, on every hop)
CONTINUE, STOP, STOP_ALL = 0, 1, 2  # DoraStatus values (compared by value: dora's and car's enum are two classes)


class RuntimeNode(Protocol):
    """What the runtime needs of its node (car.compat.dora's Node; an in-memory one in tests)."""

    config: NodeConfig

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next dora event, an ERROR event on timeout, None once the stream ended."""

    def send_output(self, output_id: str, data: Any = None, metadata: dict[str, Any] | None = None) -> None:
        """Send on one of the node's outputs."""

    def has_readers(self, output_id: str) -> bool:
        """Whether anything outside the process reads one of the node's outputs."""

    def stop_dataflow(self, reason: str) -> None:
        """Ask the daemon to stop the whole dataflow."""

    def dataflow_descriptor(self) -> dict[str, Any]:
        """The dataflow file, parsed."""

    def timestamp(self) -> Any:
        """Now, on the node's clock, as dora gives it."""

    @property
    def drops(self) -> DropFlag:
        """The node's flag for drops not yet reported."""

    def count_drops(self, source: DropSource) -> None:
        """Report `source`'s drops with the node's own."""


class Ending(enum.Enum):
    """How an operator ended."""

    STOPPED = "stopped"  # it returned STOP, took STOP, or its inputs all closed
    STOPPED_ALL = "stopped the dataflow"  # it returned STOP_ALL
    FAILED = "failed"  # it raised, and its node does not restart it (any more)


@dataclass(eq=False)
class Task:
    """One operator in the runtime."""

    config: OperatorConfig
    cls: type
    cart: Cart | None = None
    instance: Any = None
    restarts: int = 0
    ending: Ending | None = None
    open_inputs: set[str] = field(default_factory=set)
    lanes: dict[str, Lane] = field(default_factory=dict)  # its inputs' lanes on its cart (car.operators.bounds)
    send: Any = None  # the `send_output` its `on_event` gets

    @property
    def id(self) -> str:
        """Its operator id."""
        return self.config.id


class Runtime:
    """The operators of one node, their carts and labors, and the routes between them (see the module's docstring)."""

    def __init__(self, node: RuntimeNode, classes: dict[str, type], labors: int | None = None):
        """`classes`: each operator's `Operator` class, by operator id. `labors` (None: one per operator, at
        most one per CPU; 0 with a single operator) threads start with the runtime."""
        self.node = node
        config = node.config
        self.node_id = config.node_id
        self.policy = RestartPolicy(config.restart_policy)
        self.tasks = [Task(op, classes[op.id]) for op in config.operators]
        self.by_id = {task.id: task for task in self.tasks}
        count = len(self.tasks)
        if labors is None:
            labors = 0 if count == 1 else min(count, os.cpu_count() or 1)
        self.scheduler = Scheduler(labors, count if labors else 0, name=f"{self.node_id}-labor")
        self.inline = labors == 0
        self.routes: dict[str, tuple[Task, str]] = {}  # the node's input -> (operator, its input)
        self.siblings: dict[str, list[tuple[Task, str]]] = {}  # the node's output -> operators of this node reading it
        self.bounds = InputBounds(node.drops)
        node.count_drops(self.bounds)
        for task in self.tasks:
            task.cart = self.scheduler.cart(task.id, functools.partial(self._run, task))
            task.send = functools.partial(self.send, task)
            task.open_inputs = set(task.config.inputs)
            sizes = task.config.queue_sizes
            task.lanes = self.bounds.lanes(
                {
                    name: (task.config.port_prefix + name, sizes.get(name, DEFAULT_QUEUE_SIZE))
                    for name in task.config.inputs
                }
            )
            for name, source in task.config.inputs.items():
                source_node, _, output = source.partition("/")
                if source_node == self.node_id:
                    self.siblings.setdefault(output, []).append((task, name))
                else:
                    self.routes[task.config.port_prefix + name] = (task, name)
        self.descriptor: dict[str, Any] = {}
        self.printed = Printed(self._send_line, self.node_id)
        if any(op.send_stdout_as or op.send_logs_as or op.min_log_level for op in config.operators):
            self.printed.install()
        self._ended = threading.Condition()
        self._stopping = False

    # -- life cycle ---------------------------------------------------------------------------
    def run(self) -> int:
        """Start the operators, hand them their events until every one is done; the exit code (1: one failed)."""
        self.descriptor = self.node.dataflow_descriptor()
        for task in self.tasks:
            self._start(task)
        self.scheduler.start()
        try:
            self._receive()
        finally:
            self._finish()
        failed = [task.id for task in self.tasks if task.ending is Ending.FAILED]
        if failed:
            print(f"car: node `{self.node_id}`: operator {', '.join(f'`{f}`' for f in failed)} failed", file=sys.stderr)
        return 1 if failed else 0

    def _receive(self) -> None:
        """The node's events, to the operators they are for, until every operator is done or STOP."""
        timeout = None if self.inline else WAKE_S
        while not self._all_ended():
            event = self.node.next(timeout)
            if event is None:
                return
            kind = event.get("type")
            if kind == "ERROR" and event.get("error") == TIMED_OUT:
                continue
            if kind == "STOP":
                if event.get("id") == ALL_INPUTS_CLOSED:  # each operator has had its INPUT_CLOSED: they end in turn
                    for task in self.tasks:
                        if not task.config.inputs:
                            self._put(task, {"kind": "dora", "type": "STOP", "id": ALL_INPUTS_CLOSED})
                else:
                    self._stop_all()
                if self.inline:
                    self.scheduler.run_ready()
                return
            if kind == "RELOAD":  # `car launch --hot-reload`: the operator's file changed
                changed = self.by_id.get(event.get("id", ""))
                if changed is not None:
                    self._put(changed, {"kind": "dora", "type": "RELOAD", "id": changed.id})
            if kind in ("INPUT", "INPUT_CLOSED"):
                route = self.routes.get(event.get("id", ""))
                if route is None:
                    continue
                task, name = route
                event["id"] = name
                self._put(task, event)
                if kind == "INPUT_CLOSED":
                    self._input_closed(task, name)
            if self.inline:
                self.scheduler.run_ready()

    def _finish(self) -> None:
        """Let every operator take its STOP (at most STOP_GRACE_S), then stop the labors."""
        if self.inline:
            self.scheduler.run_ready()
        deadline = time.monotonic() + STOP_GRACE_S
        with self._ended:
            while not self._all_ended() and self._ended.wait(max(0.0, deadline - time.monotonic())):
                pass
        self.scheduler.close()

    def _all_ended(self) -> bool:
        return all(task.ending is not None for task in self.tasks)

    def _stop_all(self) -> None:
        """STOP to every operator still running."""
        self._stopping = True
        for task in self.tasks:
            self._put(task, {"kind": "dora", "type": "STOP", "id": "MANUAL"})

    # -- one operator --------------------------------------------------------------------------
    def _start(self, task: Task) -> bool:
        """A new instance of the operator (restarting it per the node's policy while `__init__` fails)."""
        while True:
            try:
                instance = task.cls()
                instance.dataflow_descriptor = self.descriptor
            except Exception as exc:
                if self._restart(task, exc, "starting it"):
                    continue
                return False
            task.instance = instance
            return True

    def _run(self, task: Task, event: dict[str, Any]) -> None:
        """One event through the operator's `on_event` (on a labor, or the receiving thread)."""
        if task.ending is not None:
            return
        if event["type"] == "RELOAD":
            self._reload(task)
            return
        self.printed.running(task)
        try:
            status = task.instance.on_event(event, task.send)
        except Exception as exc:
            self.printed.running(None)
            if self._restart(task, exc, f"handling {_describe(event)}"):
                self._start(task)
            return
        self.printed.running(None)
        code = CONTINUE if status is None else getattr(status, "value", status)
        if event["type"] == "STOP":
            self._end(task, Ending.STOPPED)
        elif code == STOP_ALL:
            self.node.stop_dataflow(f"operator `{task.id}` returned STOP_ALL")
            self._end(task, Ending.STOPPED_ALL)
        elif code == STOP:
            self._end(task, Ending.STOPPED)
        elif code != CONTINUE:
            self._restart(task, ValueError(f"on_event returned {status!r}, not a DoraStatus"), "its answer")

    def _reload(self, task: Task) -> None:
        """The operator's file again, and a new instance of its class with the old one's attributes (as dora's hot
        reload keeps an operator's state); a file that fails to import, or an `__init__` that raises, leaves the
        old instance running."""
        where = f"node `{self.node_id}` operator `{task.id}`"
        try:
            cls = operator_class(load_module(Path(task.config.python), task.cls.__module__))
            instance = cls()
        except OperatorLoadError as exc:
            print(f"car: {where}: {exc}\ncar: {where} goes on with its old code", file=sys.stderr, flush=True)
            return
        except Exception as exc:
            print(
                f"car: {where}: the new code failed starting:\n{user_traceback(exc)}\ncar: {where} goes on with its old code",
                file=sys.stderr,
                flush=True,
            )
            return
        instance.__dict__.update(task.instance.__dict__)
        task.cls, task.instance = cls, instance
        print(f"car: {where} reloaded {task.config.python}", file=sys.stderr, flush=True)

    def _restart(self, task: Task, exc: BaseException, doing: str) -> bool:
        """Report a failure; True when the node's policy has the operator restarted in place (after its delay)."""
        limit = self.node.config.max_restarts
        again = self.policy.restarts(1) and not self._stopping and (not limit or task.restarts < limit)
        print(
            f"car: node `{self.node_id}` operator `{task.id}` failed {doing}:\n{user_traceback(exc)}",
            file=sys.stderr,
            flush=True,
        )
        if not again:
            self._end(task, Ending.FAILED)
            if not self._stopping:
                self._stop_all()
            return False
        task.restarts += 1
        print(
            f"car: restarting operator `{task.id}` of node `{self.node_id}` in place "
            f"(restart {task.restarts}{f' of {limit}' if limit else ''})",
            file=sys.stderr,
            flush=True,
        )
        if self.node.config.restart_delay:
            time.sleep(self.node.config.restart_delay)
        return True

    def _end(self, task: Task, ending: Ending) -> None:
        """The operator is done: its cart closes, its siblings' inputs from it close."""
        task.ending = ending
        if task.cart is not None:
            self.scheduler.close_cart(task.cart)
        for output in task.config.outputs:
            for reader, name in self.siblings.get(task.config.port_prefix + output, []):
                self._put(reader, {"kind": "dora", "type": "INPUT_CLOSED", "id": name})
                self._input_closed(reader, name)
        with self._ended:
            self._ended.notify_all()

    def _input_closed(self, task: Task, name: str) -> None:
        """One of the operator's inputs closed: with the last, it gets STOP (as a node does)."""
        task.open_inputs.discard(name)
        if not task.open_inputs:
            self._put(task, {"kind": "dora", "type": "STOP", "id": ALL_INPUTS_CLOSED})

    def _put(self, task: Task, event: dict[str, Any]) -> None:
        """`event` on the operator's cart (within its input's bound); nothing once the operator is done."""
        assert task.cart is not None
        if task.ending is None:
            lane = task.lanes.get(event["id"]) if event["type"] == "INPUT" else None  # other events: never dropped
            if self.scheduler.put(task.cart, event, lane) is PUSHED_OUT and lane is not None:
                self.bounds.pushed_out(lane)

    # -- sending -----------------------------------------------------------------------------------
    def send(self, task: Task, output_id: str, data: Any = None, metadata: dict[str, Any] | None = None) -> None:
        """An operator's `send_output`: to its siblings by reference, to other nodes through the node's links."""
        if output_id not in task.config.outputs:
            declared = ", ".join(task.config.outputs) or "none"
            raise ValueError(
                f"operator `{task.id}` of node `{self.node_id}` has no output `{output_id}` (declared: {declared}); "
                f"add it under its `outputs:` in {self.node.config.dataflow}"
            )
        name = task.config.port_prefix + output_id
        readers = self.siblings.get(name)
        if readers:
            value = values.handed_over(data)
            stamped = dict(metadata or {})
            stamped["timestamp"] = self.node.timestamp()
            for reader, input_name in readers:
                self._put(
                    reader,
                    {"kind": "dora", "type": "INPUT", "id": input_name, "value": value, "metadata": dict(stamped)},
                )
        if self.node.has_readers(name):
            self.node.send_output(name, data, metadata)

    def _send_line(self, task: Task, output_id: str, text: str) -> None:
        """A printed line (or log entry) on one of the operator's outputs (car.operators.printed)."""
        self.printed.running(None)  # what sending prints is the runtime's
        try:
            self.send(task, output_id, pa.array([text]))
        finally:
            self.printed.running(task)


def _describe(event: dict[str, Any]) -> str:
    kind = event.get("type", "an event")
    return f"input `{event['id']}`" if kind == "INPUT" else kind


def load_classes(config: NodeConfig) -> dict[str, type]:
    """Each operator's `Operator` class, by operator id (OperatorLoadError naming the operator)."""
    classes: dict[str, type] = {}
    for op in config.operators:
        try:
            classes[op.id] = operator_class(load_module(Path(op.python)))
        except OperatorLoadError as exc:
            raise OperatorLoadError(f"node `{config.node_id}` operator `{op.id}`: {exc}") from None
    return classes


def main() -> int:
    """`python -m car.operators`: run this node's operators (the daemon starts it, as any node)."""
    node = Node()
    try:
        try:
            classes = load_classes(node.config)
        except OperatorLoadError as exc:
            print(f"car: {exc}", file=sys.stderr)
            return 1
        return Runtime(node, classes).run()
    finally:
        node.close()
