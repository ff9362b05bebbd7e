"""Node lifecycles: starting the plan's nodes, what a node's end means, and stopping them in order.

When a node ends, its `restart_policy` may start it again (after `restart_delay`, at most
`max_restarts` times); otherwise it has exited, or failed, and its readers and
subscribers are told its outputs closed, and the nodes that send to it stop sending to it
(`ReaderGone`: a backpressure sender waits for it no more); a node that starts again is
announced to them (`ReaderBack`: what was in transit to the old process is lost, so a
backpressure sender gets its whole room back). A `critical` node (the default) that fails
stops the whole run. A dynamic node, started by hand with `car run-node`, goes back to waiting
whatever its exit, so it may be started again.

Timers start once every node car starts has said Ready (or ended), as dora's do, so no
node misses the first messages of a run while another is still starting.

Stopping: STOP to every node and subscriber, after the grace period SIGTERM to each
node's process group, SIGKILL after that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from car.daemon import affinity
from car.daemon.elsewhere import Elsewhere
from car.daemon.flushes import Flushes
from car.daemon.logs import Terminal
from car.daemon.processes import VANISHED, Asked, NodeState, Processes, describe_exit
from car.daemon.subscriptions import Subscriptions
from car.plan.build import RunPlan
from car.plan.config import ENV_VAR
from car.spec.model import Dataflow
from car.transport import control, wire
from car.transport.shm import finish_reader
from car.transport.states import ALIVE, NodeStatus

KILL_AFTER_S = 2.0  # after SIGTERM, wait this long before SIGKILL


class Notices(Protocol):
    """Where the supervisor's STOP and CLOSED go: a node's or a subscriber's receive socket (the daemon's
    `Notifier`; a test's list)."""

    def send(self, endpoint: str, kind: int, source: bytes, value: Any = None) -> None:
        """One message to the receive socket at `endpoint`, never waiting."""


class TimerSwitch(Protocol):
    """The run's timers, per reading node (the daemon's `Timers` thread; a test's set)."""

    def enable(self, node_id: str) -> None:
        """The node's timer inputs tick from now on."""

    def disable(self, node_id: str) -> None:
        """They stop ticking."""


@dataclass(kw_only=True)
class RunServices:
    """What the supervisor acts through when nodes start and end."""

    processes: Processes  # starts and signals node processes
    inherited: Callable[[str], list[int]]  # the file descriptors (direct links) a node's process inherits
    timers: TimerSwitch  # enabled for a node once it is ready, disabled when it ends
    subscriptions: Subscriptions  # told STOP and CLOSED as readers are
    notices: Notices  # STOP and CLOSED to receive sockets
    flushes: Flushes  # an ended reader holds up no sender
    tell: Callable[[str, control.DaemonToNode], None]  # a message to a node's control (when it runs)


class Supervisor:
    """Keeps the nodes of one run's plan: starts, restarts, fails, detaches and stops them."""

    def __init__(
        self,
        dataflow: Dataflow,
        plan: RunPlan,
        nodes: dict[str, NodeState],
        parts: RunServices,
        terminal: Terminal,
        grace: float,
        extra_env: dict[str, str],
        elsewhere: Elsewhere | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`clock`: monotonic seconds (a test moves its own). `elsewhere`: the other machines of a run placed on
        several (car.daemon.elsewhere), told as nodes here start and end; the timers then wait for `open_timers`
        (every machine's nodes are ready). None (`car launch`): every node is here, and the timers start once
        they are ready."""
        self.dataflow = dataflow
        self.clock = clock
        self.elsewhere = elsewhere
        self.plan = plan
        self.nodes = nodes
        self.parts = parts
        self.terminal = terminal
        self.grace = grace
        self.extra_env = extra_env  # from launch options: overrides the file's env
        self.stopping = False
        self._can_pin = affinity.usable_cpus() is not None
        self._term_at = 0.0
        self._kill_at = 0.0
        self._timers_started = False
        self._timers_open = elsewhere is None  # the other machines' nodes are ready too
        self._said_ready = False
        self.gone_elsewhere: set[str] = set()  # readers on other machines that ended, or whose machine was lost

    # -- the run ---------------------------------------------------------------------
    def start(self) -> None:
        """Start every node car starts; dynamic nodes wait for `car run-node`."""
        if not self._can_pin and any(n.spec.cpu_affinity for n in self.nodes.values()):
            self.terminal.say("cpu_affinity is ignored: this system cannot pin processes to CPUs")
        for node in self.nodes.values():
            self.start_node(node)

    def tick(self, now: float) -> None:
        """Restart the nodes that are due, notice the ones that ended, escalate a stop."""
        for node in self.nodes.values():
            if node.state == NodeStatus.RESTARTING and now >= node.restart_at:
                node.log.note(f"restart {node.restarts}")
                self._spawn(node)
            elif node.state == NodeStatus.RUNNING and node.proc is not None:
                code = node.proc.poll()
                if code is not None:
                    self._ended(node, code, now)
                elif (
                    node.asked is not None and not self.stopping
                ):  # `car node restart|stop`: as a run's stop, for one node
                    self.parts.processes.escalate(
                        node, now, node.asked_at + self.grace, node.asked_at + self.grace + KILL_AFTER_S
                    )
            elif (
                node.watched
                and node.state in (NodeStatus.RUNNING, NodeStatus.WAITING)
                and not self.parts.processes.alive(node.pid)
            ):
                node.state = NodeStatus.RUNNING  # started by hand without `car run-node`, and gone without Bye
                self._ended(node, VANISHED, now)
        if not self._timers_started:  # a node that failed to start, or ended, before all were ready
            self._start_timers_once_all_ready()
        if self.stopping:
            for node in self.nodes.values():
                self.parts.processes.escalate(node, now, self._term_at, self._kill_at)

    def finished(self) -> bool:
        """Whether every node has ended (dynamic nodes that never came count, once stopping)."""
        return all(
            n.state in (NodeStatus.EXITED, NodeStatus.FAILED) or (n.state == NodeStatus.WAITING and self.stopping)
            for n in self.nodes.values()
        )

    def any_failed(self) -> bool:
        """Whether a node failed for good."""
        return any(n.state == NodeStatus.FAILED for n in self.nodes.values())

    def stop(self, reason: str) -> None:
        """Begin stopping: STOP now, SIGTERM after the grace period, SIGKILL after that."""
        now = self.clock()
        if self.stopping:
            self._term_at = min(self._term_at, now)  # asked twice: do not wait any longer
            self._kill_at = min(self._kill_at, now + KILL_AFTER_S)
            return
        self.stopping = True
        self.terminal.say(f"stopping ({reason})")
        for node in self.nodes.values():
            if node.state == NodeStatus.RESTARTING:
                node.state = NodeStatus.EXITED
            if node.state in (NodeStatus.RUNNING, NodeStatus.WAITING, NodeStatus.PENDING):
                self.parts.notices.send(node.config.receive_endpoint, wire.KIND_STOP, b"")
        for subscription in self.parts.subscriptions.active.values():
            self.parts.notices.send(subscription.endpoint, wire.KIND_STOP, b"")
        self._term_at = now + self.grace
        self._kill_at = self._term_at + KILL_AFTER_S

    # -- what nodes say ----------------------------------------------------------------
    def ready(self, node: NodeState, pid: int) -> None:
        """A node is connected and reads its inputs (a dynamic one is running from now on)."""
        if node.spec.is_dynamic and node.state == NodeStatus.WAITING:
            node.state, node.pid = NodeStatus.RUNNING, pid
        node.ready = True
        if node.was_ready:  # started again: its senders resume, with whole room
            self._tell_senders(node.spec.id, control.ReaderBack(node.spec.id))
            if self.elsewhere is not None:
                self.elsewhere.nodes_back([node.spec.id])
        node.was_ready = True
        if self._timers_started:
            self.parts.timers.enable(node.spec.id)
        else:
            self._start_timers_once_all_ready()

    def said_bye(self, node: NodeState) -> None:
        """A node closed; a dynamic one, whose process car does not watch, has ended."""
        if node.spec.is_dynamic and node.proc is None and node.state == NodeStatus.RUNNING:
            self.parts.timers.disable(node.spec.id)
            self.parts.flushes.delivered(node.spec.id)
            if self.stopping:
                node.state = NodeStatus.EXITED
            else:
                self._detached(node)

    def hand_out(self, node: NodeState, pid: int) -> str:
        """Give a dynamic node's configuration to `car run-node` (pid 0) or to process `pid` that will be the
        node, which is then watched: "" when it may, else why not."""
        if not node.spec.is_dynamic:
            return f"node `{node.spec.id}` is started by car; set `path: dynamic` to run it by hand"
        if node.state == NodeStatus.RUNNING:
            return f"node `{node.spec.id}` is {node.state} (pid {node.pid}); stop that process first"
        if node.state != NodeStatus.WAITING:
            return f"node `{node.spec.id}` is {node.state}"
        node.started_at = self.clock()
        node.handed_out = True
        node.pid = pid
        node.watched = pid > 0
        return ""

    def exited_by_hand(self, node: NodeState, code: int) -> str:
        """`car run-node` says the process of a dynamic node ended: "" or why this is refused."""
        if not node.spec.is_dynamic:
            return f"node `{node.spec.id}` is started by car, not by `car run-node`"
        if node.state == NodeStatus.RUNNING or (node.state == NodeStatus.WAITING and node.handed_out):
            node.state = NodeStatus.RUNNING  # a dynamic node that never said ready ends here too
            self._ended(node, code, self.clock())
        elif code != 0:  # it said goodbye (Bye) before it failed
            ran = self.clock() - node.started_at
            self.terminal.say(f"node `{node.spec.id}` failed: {describe_exit(code)} after {ran:.1f} s")
        return ""

    def stop_node(self, node: NodeState, then: Asked) -> str:
        """`car node restart` (`then` RESTART), a reload (RELOAD) or `car node stop` (STOP): STOP to this node alone, SIGTERM
        after the grace period, SIGKILL after that; "" when it was asked, else why not."""
        if self.stopping:
            return "the run is stopping"
        if node.spec.is_dynamic:
            return f"node `{node.spec.id}` is dynamic: stop the process you started it with"
        if node.state == NodeStatus.RESTARTING and then.again:
            node.restart_at = self.clock()  # it was about to start again anyway: now
            return ""
        if node.state != NodeStatus.RUNNING:
            return f"node `{node.spec.id}` is {node.state}"
        node.asked, node.asked_at = then, self.clock()
        self.parts.notices.send(node.config.receive_endpoint, wire.KIND_STOP, b"")
        return ""

    def start_node(self, node: NodeState) -> None:
        """Start one node (at the run's start, or added to the running graph: `car node add`); a dynamic one waits."""
        if node.spec.is_dynamic:
            node.state = NodeStatus.WAITING
            self.terminal.say(
                f"node `{node.spec.id}` is dynamic: start it with `car run-node {node.spec.id} -- COMMAND`"
            )
        else:
            self._spawn(node)

    # -- a node's end --------------------------------------------------------------------
    def _spawn(self, node: NodeState) -> None:
        node.config.restart_count = node.restarts
        node.usage.restart()
        env = {**self.dataflow.env, **node.spec.env, **self.extra_env, ENV_VAR: node.config.to_json()}
        cpus = node.spec.cpu_affinity if self._can_pin else ()
        fds = self.parts.inherited(node.spec.id)
        node.started_at = self.clock()
        failure = self.parts.processes.start(node, self.dataflow.node_folder(node.spec), env, fds, cpus)
        if not failure:
            node.state = NodeStatus.RUNNING
            node.signalled = False
        else:
            node.failure = failure
            self.terminal.say(f"node `{node.spec.id}` failed: {failure}")
            self._failed(node)

    def _ended(self, node: NodeState, code: int, now: float) -> None:
        node.exit_code = code
        node.ready = False
        self.parts.timers.disable(node.spec.id)
        self.parts.flushes.delivered(node.spec.id)  # an exited reader holds up no sender
        node.log.note(f"exited: {describe_exit(code)}")
        asked, node.asked = node.asked, None
        if asked is not None and asked.again:  # its readers see a gap, not an end
            node.restarts += 1
            node.state = NodeStatus.RESTARTING
            node.restart_at = now
            self.terminal.say(f"restarting node `{node.spec.id}` ({node.restarts}): {asked.why}")
            return
        if asked is not None:  # stopped for good (STOP, REMOVE)
            node.state = NodeStatus.EXITED
            self.terminal.say(f"node `{node.spec.id}` stopped: {asked.why}")
            self._gone(node)
            return
        failed = False
        if node.signalled:
            self.terminal.say(
                f"node `{node.spec.id}` did not stop within {self.grace:g} s of STOP: {describe_exit(code)}"
            )
        elif code != 0:
            node.failure = f"{describe_exit(code)} after {now - node.started_at:.1f} s"
            tail = "\n".join(f"    | {line}" for line in node.log.stderr_tail)
            detail = f"; its last stderr lines:\n{tail}" if tail else ""
            self.terminal.say(f"node `{node.spec.id}` failed: {node.failure}{detail}")
            failed = True
        node.state = NodeStatus.EXITED
        if self._restarts(node, code):
            node.restarts += 1
            node.state = NodeStatus.RESTARTING
            node.restart_at = now + node.spec.restart_delay
            self.terminal.say(f"restarting node `{node.spec.id}` ({node.restarts}) in {node.spec.restart_delay:g} s")
        elif node.spec.is_dynamic and not self.stopping:
            self._detached(node)  # started by hand: may be started again, whatever its exit
        elif failed:
            self._failed(node)
        else:
            self._gone(node)

    def _restarts(self, node: NodeState, code: int) -> bool:
        """Whether the node's restart policy starts it again after it ended with `code`."""
        spec = node.spec
        wants = spec.restart_policy.restarts(code)
        may = not node.signalled and not spec.is_dynamic and not self.stopping
        return wants and may and (spec.max_restarts == 0 or node.restarts < spec.max_restarts)

    def _failed(self, node: NodeState) -> None:
        """A node failed for good: its readers are told; a critical node stops the whole run."""
        node.state = NodeStatus.FAILED
        self._gone(node)
        if node.spec.critical and not self.stopping:
            self.stop(f"node `{node.spec.id}` failed; mark it `critical: false` to keep the run going without it")

    def _detached(self, node: NodeState) -> None:
        """A dynamic node ended: its readers are told, and `car run-node` may start it again."""
        self._gone(node)
        node.state = NodeStatus.WAITING
        node.pid = 0
        node.proc = None
        node.handed_out = False
        node.watched = False
        self.terminal.say(f"node `{node.spec.id}` is waiting again: `car run-node {node.spec.id} -- COMMAND`")

    def _gone(self, node: NodeState) -> None:
        """A node ended for good: its readers get the end of its outputs, its senders stop sending to it."""
        for spec in node.config.inputs.values():  # it reads no more: senders need not keep frames for it
            if spec.shm_prefix:
                finish_reader(spec.shm_prefix, spec.shm_line)
        if self.stopping:
            return
        node_id = node.spec.id
        sources = [f"{node_id}/{output}" for output in node.spec.outputs]
        self.close_sources(sources)
        self._tell_senders(node_id, control.ReaderGone(node_id))
        if self.elsewhere is not None:
            self.elsewhere.nodes_gone([node_id], sources)

    def _tell_senders(self, reader: str, message: control.DaemonToNode) -> None:
        for sender in self.plan.senders_to(reader):
            self.parts.tell(sender, message)

    def readers_gone_elsewhere(self, readers: list[str]) -> None:
        """Readers on another machine ended, or their machine was lost: senders here stop waiting for them."""
        for reader in readers:
            self.gone_elsewhere.add(reader)
            self.parts.flushes.delivered(reader)
            self._tell_senders(reader, control.ReaderGone(reader))

    def readers_back_elsewhere(self, readers: list[str]) -> None:
        """Readers on another machine started again (or their machine is back): senders here resume."""
        for reader in readers:
            self.gone_elsewhere.discard(reader)
            self._tell_senders(reader, control.ReaderBack(reader))

    def close_sources(self, sources: list[str]) -> None:
        """The end of `sources` (node/output, here or elsewhere) to their readers and subscribers here."""
        notices = self.parts.notices
        for source in sources:
            for reader in self._readers_here(source):
                notices.send(self.nodes[reader].config.receive_endpoint, wire.KIND_CLOSED, source.encode())
            for subscription in self.parts.subscriptions.of(source):
                notices.send(subscription.endpoint, wire.KIND_CLOSED, source.encode())

    def _readers_here(self, source: str) -> list[str]:
        """The nodes here that read `source` (of a node here or on another machine), each once."""
        return [n.spec.id for n in self.nodes.values() if any(i.source == source for i in n.spec.inputs.values())]

    def open_timers(self) -> None:
        """Every machine's nodes are ready: the timers may start once this machine's are (see on_all_ready)."""
        self._timers_open = True
        if not self._timers_started:
            self._start_timers_once_all_ready()

    def _start_timers_once_all_ready(self) -> None:
        if all(
            n.ready or n.spec.is_dynamic or n.state in (NodeStatus.EXITED, NodeStatus.FAILED)
            for n in self.nodes.values()
        ):
            if self.elsewhere is not None and not self._said_ready:
                self._said_ready = True
                self.elsewhere.part_ready()
            if not self._timers_open:
                return
            self._timers_started = True
            for n in self.nodes.values():
                if n.ready and n.state == NodeStatus.RUNNING:
                    self.parts.timers.enable(n.spec.id)

    def ends_to_deliver(self, node_id: str) -> set[control.StreamEnd]:
        """The ends of `node_id`'s streams its live readers (here and elsewhere) are to have before it may close."""
        ends: set[control.StreamEnd] = set()
        gone = self.gone_elsewhere
        for source in (f"{node_id}/{output}" for output in self.nodes[node_id].spec.outputs):
            ends.update(control.StreamEnd(r, source) for r in self.plan.readers(source) if self.nodes[r].state in ALIVE)
            ends.update(control.StreamEnd(r, source) for r in self.plan.readers(source, True) if r not in gone)
        return ends
