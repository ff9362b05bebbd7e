"""The daemon: runs its machine's plan: starts the nodes, drives the timers, supervises and stops them.

It is never on the data path: nodes talk to each other directly (over the socket pairs it
hands them, car.transport.direct, or over ZeroMQ). It starts a node pinned to the CPUs
its `cpu_affinity` names (car.daemon.affinity). It answers one control socket with typed
messages (car.transport.control), one handler per message type: nodes say `Ready`,
`Stats` and `Bye`; `car list`, `car stop`, `car run-node` and subscribers ask. When a node
ends it tells the node's readers (and subscribers) that the output closed.

Subscribers join the running graph (`Subscribe`): their destinations go into the plan
(so a restarted node keeps them) and to the sending nodes (`AddSubscriber`); they leave
by `Unsubscribe` or by dying, which the daemon notices.

Stopping (Ctrl-C, SIGTERM, `--duration`, `car stop`, a critical node failing): STOP to
every node, then after the grace period SIGTERM to each node's process group, then
SIGKILL. Nodes run in process groups of their own, so Ctrl-C reaches only `car`, which
stops them in order.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from car.daemon import affinity
from car.daemon.control_server import ControlServer, Handler
from car.daemon.direct_links import DirectLinks
from car.daemon.logs import NodeLog, Terminal
from car.daemon.processes import (
    ALIVE,
    NodeState,
    NodeStatus,
    describe_exit,
    escalate,
    kill_what_is_left,
    start_process,
)
from car.daemon.report import status_line, summary_lines
from car.daemon.subscriptions import Subscriptions
from car.daemon.timers import Timers
from car.plan.build import plan_machine
from car.plan.config import ENV_VAR, RECONNECT_MS
from car.plan.runs import RunInfo, remove_run
from car.spec.model import Dataflow
from car.transport import control, wire
from car.transport.hlc import HybridLogicalClock
from car.transport.shm import finish_reader

KILL_AFTER_S = 2.0  # after SIGTERM, wait this long before SIGKILL
LOOP_MS = 20  # how often the supervisor looks at its processes
STATUS_PERIOD_S = 0.5  # how often the terminal's status line is redrawn
SUBSCRIBER_CHECK_S = 0.5  # how often the daemon looks for subscribers that died
COMPAT_DIR = Path(__file__).parent.parent / "compat"


class Daemon:
    """Runs one dataflow on this machine until every node has ended or it is stopped."""

    def __init__(
        self,
        dataflow: Dataflow,
        run: RunInfo,
        terminal: Terminal,
        grace: float = 2.0,
        extra_env: dict[str, str] | None = None,
    ):
        self.dataflow = dataflow
        self.run_info = run
        self.terminal = terminal
        self.grace = grace
        self.extra_env = extra_env or {}  # from launch options: overrides the file's env
        self.out_dir = Path(run.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.plan = plan_machine(dataflow, run.run_id, run.name, run.folder, run.control)
        configs = self.plan.nodes
        self.direct = DirectLinks(configs, {spec.id for spec in dataflow.nodes if spec.is_dynamic})
        self._can_pin = affinity.usable_cpus() is not None
        self.nodes: dict[str, NodeState] = {}
        for spec in dataflow.nodes:
            log = NodeLog(spec.id, self.out_dir / f"{spec.id}.log", terminal)
            self.nodes[spec.id] = NodeState(spec, configs[spec.id], log)
        timer_readers: dict[str, list[str]] = {}
        for spec in dataflow.nodes:
            for inp in spec.inputs.values():
                if inp.is_timer and spec.id not in timer_readers.setdefault(inp.source, []):
                    timer_readers[inp.source].append(spec.id)
        self._ctx = zmq.Context()
        self._ctx.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        self._clock = HybridLogicalClock()
        endpoints = {nid: n.config.receive_endpoint for nid, n in self.nodes.items()}
        self.timers = Timers(self._ctx, timer_readers, endpoints, self.direct.timer_ends)
        self.subscriptions = Subscriptions(self.plan, self._tell_node)
        self._notify: dict[str, zmq.Socket[bytes]] = {}  # receive endpoint -> a PUSH socket to it
        self._eos: set[tuple[str, str]] = set()  # (reader, source) pairs whose end-of-stream arrived
        self._flushes: dict[str, tuple[bytes, set[tuple[str, str]]]] = {}  # waiting senders
        self._control: ControlServer | None = None
        self._handlers: dict[type[Any], Handler] = {
            control.Ready: self._on_ready,
            control.Stats: self._on_stats,
            control.EndOfStream: self._on_end_of_stream,
            control.Flush: self._on_flush,
            control.Bye: self._on_bye,
            control.StopDataflow: self._on_stop_dataflow,
            control.ListRun: self._on_list,
            control.StopRun: self._on_stop_run,
            control.GetNodeConfig: self._on_get_node_config,
            control.NodeExited: self._on_node_exited,
            control.Subscribe: self._on_subscribe,
            control.Unsubscribe: self._on_unsubscribe,
        }
        self.stopping = False
        self.stop_reason = ""
        self.failed_node = ""  # the critical node whose failure stopped the run
        self._term_at = 0.0
        self._kill_at = 0.0
        self._signal: int | None = None
        self.started = 0.0
        self._next_status = 0.0
        self._next_subscriber_check = 0.0
        self._timers_started = False  # see _start_timers_once_all_ready

    # -- public ---------------------------------------------------------------------
    def run(self, duration: float | None = None) -> int:
        """Run until done; 0 when no node failed, 1 otherwise."""
        previous = self._install_signals()
        self._control = ControlServer(self._ctx, self.run_info.control, self._handlers)
        self.started = time.monotonic()
        if not self._can_pin and any(n.spec.cpu_affinity for n in self.nodes.values()):
            self.terminal.say("cpu_affinity is ignored: this system cannot pin processes to CPUs")
        try:
            for node in self.nodes.values():
                if node.spec.is_dynamic:
                    node.state = NodeStatus.WAITING
                    self.terminal.say(
                        f"node `{node.spec.id}` is dynamic: start it with `car run-node {node.spec.id} -- COMMAND`"
                    )
                else:
                    self._spawn(node)
            self.timers.start()
            self._supervise(duration)
        finally:
            self._shutdown()
            self._restore_signals(previous)
        return 1 if any(n.state == NodeStatus.FAILED for n in self.nodes.values()) else 0

    def stop(self, reason: str) -> None:
        """Begin stopping: STOP now, SIGTERM after the grace period, SIGKILL after that."""
        now = time.monotonic()
        if self.stopping:
            self._term_at = min(self._term_at, now)  # asked twice: do not wait any longer
            self._kill_at = min(self._kill_at, now + KILL_AFTER_S)
            return
        self.stopping = True
        self.stop_reason = reason
        self.terminal.say(f"stopping ({reason})")
        for node in self.nodes.values():
            if node.state == NodeStatus.RESTARTING:
                node.state = NodeStatus.EXITED
            if node.state in (NodeStatus.RUNNING, NodeStatus.WAITING, NodeStatus.PENDING):
                self._send(node.config.receive_endpoint, wire.KIND_STOP, b"")
        for subscription in self.subscriptions.active.values():
            self._send(subscription.endpoint, wire.KIND_STOP, b"")
        self._term_at = now + self.grace
        self._kill_at = self._term_at + KILL_AFTER_S

    # -- processes -------------------------------------------------------------------
    def _spawn(self, node: NodeState) -> None:
        env = {**self.dataflow.env, **node.spec.env, **self.extra_env, ENV_VAR: node.config.to_json()}
        cpus = node.spec.cpu_affinity if self._can_pin else ()
        failure = start_process(node, self.dataflow.base_dir, env, self.direct.fds(node.spec.id), cpus, COMPAT_DIR)
        if failure:
            node.failure = failure
            self.terminal.say(f"node `{node.spec.id}` failed: {failure}")
            self._failed(node)

    def _supervise(self, duration: float | None) -> None:
        assert self._control is not None
        end = None if duration is None else self.started + duration
        while True:
            self._control.serve(LOOP_MS)
            now = time.monotonic()
            if self._signal is not None:
                name, self._signal = signal.Signals(self._signal).name, None
                self.stop(f"{name} received")
            if end is not None and now >= end and not self.stopping:
                self.stop(f"--duration {duration:g} s reached")
            self._reap(now)
            if not self._timers_started:  # a node that failed to start, or ended, before all were ready
                self._start_timers_once_all_ready()
            if now >= self._next_status:
                self.terminal.status(self.status_line())
                self._next_status = now + STATUS_PERIOD_S
            if now >= self._next_subscriber_check:
                for subscription in self.subscriptions.dead():
                    self._unsubscribe(subscription)
                self._next_subscriber_check = now + SUBSCRIBER_CHECK_S
            if self.stopping:
                self._escalate(now)
            if all(
                n.state in (NodeStatus.EXITED, NodeStatus.FAILED) or (n.state == NodeStatus.WAITING and self.stopping)
                for n in self.nodes.values()
            ):
                return

    def _reap(self, now: float) -> None:
        for node in self.nodes.values():
            if node.state == NodeStatus.RESTARTING and now >= node.restart_at:
                node.log.note(f"restart {node.restarts}")
                self._spawn(node)
                continue
            if node.state != NodeStatus.RUNNING or node.proc is None:
                continue
            code = node.proc.poll()
            if code is not None:
                self._ended(node, code, now)

    def _ended(self, node: NodeState, code: int, now: float) -> None:
        node.exit_code = code
        node.ready = False
        self.timers.disable(node.spec.id)
        self._delivered(node.spec.id)  # an exited reader holds up no sender
        node.log.note(f"exited: {describe_exit(code)}")
        ran = now - node.started_at
        failed = False
        if node.signalled:
            self.terminal.say(
                f"node `{node.spec.id}` did not stop within {self.grace:g} s of STOP: {describe_exit(code)}"
            )
        elif code != 0:
            node.failure = f"{describe_exit(code)} after {ran:.1f} s"
            tail = "\n".join(f"    | {line}" for line in node.log.stderr_tail)
            detail = f"; its last stderr lines:\n{tail}" if tail else ""
            self.terminal.say(f"node `{node.spec.id}` failed: {node.failure}{detail}")
            failed = True
        node.state = NodeStatus.EXITED
        policy = node.spec.restart_policy
        limit = node.spec.max_restarts
        wants = policy == "always" or (policy == "on-failure" and code != 0 and not node.signalled)
        if wants and not node.spec.is_dynamic and not self.stopping and (limit == 0 or node.restarts < limit):
            node.restarts += 1
            node.state = NodeStatus.RESTARTING
            node.restart_at = now + node.spec.restart_delay
            self.terminal.say(f"restarting node `{node.spec.id}` ({node.restarts}) in {node.spec.restart_delay:g} s")
            return
        if node.spec.is_dynamic and not self.stopping:
            self._detached(node)  # started by hand: may be started again, whatever its exit
        elif failed:
            self._failed(node)
        else:
            self._gone(node)

    def _failed(self, node: NodeState) -> None:
        """A node failed for good: its readers are told; a critical node stops the whole run."""
        node.state = NodeStatus.FAILED
        self._gone(node)
        if node.spec.critical and not self.stopping:
            self.failed_node = node.spec.id
            self.stop(f"node `{node.spec.id}` failed; mark it `critical: false` to keep the run going without it")

    def _detached(self, node: NodeState) -> None:
        """A dynamic node ended: its readers are told, and `car run-node` may start it again."""
        self._gone(node)
        node.state = NodeStatus.WAITING
        node.pid = 0
        node.proc = None
        node.handed_out = False
        self.terminal.say(f"node `{node.spec.id}` is waiting again: `car run-node {node.spec.id} -- COMMAND`")

    def _gone(self, node: NodeState) -> None:
        for spec in node.config.inputs.values():  # it reads no more: senders need not keep frames for it
            if spec.shm_prefix:
                finish_reader(spec.shm_prefix, spec.shm_line)
        if not self.stopping:
            self._close_outputs(node.spec.id)

    def _close_outputs(self, node_id: str) -> None:
        """Tell the readers (and subscribers) of a node that has ended that its outputs are closed."""
        for output in self.nodes[node_id].spec.outputs:
            source = f"{node_id}/{output}"
            for reader in self.plan.readers(source):
                self._send(self.nodes[reader].config.receive_endpoint, wire.KIND_CLOSED, source.encode())
            for subscription in self.subscriptions.of(source):
                self._send(subscription.endpoint, wire.KIND_CLOSED, source.encode())

    def _escalate(self, now: float) -> None:
        for node in self.nodes.values():
            escalate(node, now, self._term_at, self._kill_at)

    # -- messages ----------------------------------------------------------------------
    def _send(self, endpoint: str, kind: int, source: bytes, value: Any = None) -> None:
        """A message from the daemon to a node's (or subscriber's) receive socket, never waiting."""
        sock = self._notify.get(endpoint)
        if sock is None:
            sock = self._ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100)
            sock.connect(endpoint)
            self._notify[endpoint] = sock
        try:
            sock.send_multipart(wire.encode(kind, source, self._clock.now(), value), zmq.NOBLOCK)
        except zmq.Again:
            self.terminal.say(f"{endpoint} is not reading; a control message was not delivered")

    def _tell_node(self, node_id: str, message: control.DaemonToNode) -> None:
        node = self.nodes[node_id]
        if node.state in ALIVE or node.state == NodeStatus.WAITING:
            self._send(node.config.receive_endpoint, wire.KIND_CONTROL, b"", control.encode(message))

    def _node(self, node_id: str) -> NodeState:
        node = self.nodes.get(node_id)
        if node is None:
            known = ", ".join(self.nodes)
            raise control.ControlError(f"this dataflow has no node `{node_id}` (nodes: {known})")
        return node

    def _on_ready(self, message: control.Ready, _: bytes) -> None:
        node = self._node(message.node)
        if node.spec.is_dynamic and node.state == NodeStatus.WAITING:
            node.state, node.pid = NodeStatus.RUNNING, message.pid
        node.ready = True
        if self._timers_started:
            self.timers.enable(node.spec.id)
        else:
            self._start_timers_once_all_ready()

    def _start_timers_once_all_ready(self) -> None:
        """Timers start when every node car starts has said Ready (or ended), as dora's do: so no node
        misses the first messages of a run while another is still starting."""
        if all(
            n.ready or n.spec.is_dynamic or n.state in (NodeStatus.EXITED, NodeStatus.FAILED)
            for n in self.nodes.values()
        ):
            self._timers_started = True
            for n in self.nodes.values():
                if n.ready and n.state == NodeStatus.RUNNING:
                    self.timers.enable(n.spec.id)

    def _on_stats(self, message: control.Stats, _: bytes) -> None:
        node = self._node(message.node)
        now = time.monotonic()
        if node.reported_at:
            node.rate = (message.sent + message.received - node.sent - node.received) / max(
                now - node.reported_at, 1e-3
            )
        node.sent, node.received, node.reported_at = message.sent, message.received, now
        node.status = message.status[:120]
        node.superseded = message.superseded

    def _on_end_of_stream(self, message: control.EndOfStream, _: bytes) -> None:
        self._delivered(self._node(message.node).spec.id, message.source)

    def _on_flush(self, message: control.Flush, identity: bytes) -> control.DaemonReply | None:
        """Answer once every reader of the node has the end of its streams (see Node.close)."""
        node_id = self._node(message.node).spec.id
        pending = {
            (reader, f"{node_id}/{output}")
            for output in self.nodes[node_id].spec.outputs
            for reader in self.plan.readers(f"{node_id}/{output}")
            if self.nodes[reader].state in ALIVE
        } - self._eos
        if not pending:
            return control.Flushed()
        self._flushes[node_id] = (identity, pending)
        return None

    def _on_bye(self, message: control.Bye, _: bytes) -> None:
        node = self._node(message.node)
        node.drops = dict(message.drops)
        node.sent, node.received, node.superseded = message.sent, message.received, message.superseded
        if node.spec.is_dynamic and node.proc is None and node.state == NodeStatus.RUNNING:
            self.timers.disable(node.spec.id)
            self._delivered(node.spec.id)
            if self.stopping:
                node.state = NodeStatus.EXITED
            else:
                self._detached(node)

    def _on_stop_dataflow(self, message: control.StopDataflow, _: bytes) -> None:
        self.stop(message.reason)

    def _on_list(self, _: control.ListRun, __: bytes) -> control.DaemonReply:
        return self.status()

    def _on_stop_run(self, message: control.StopRun, _: bytes) -> control.DaemonReply:
        self.stop(message.reason)
        return control.Done()

    def _on_get_node_config(self, message: control.GetNodeConfig, _: bytes) -> control.DaemonReply:
        node = self._node(message.node)
        if not node.spec.is_dynamic:
            return control.Refused(f"node `{node.spec.id}` is started by car; set `path: dynamic` to run it by hand")
        if node.state != NodeStatus.WAITING:
            return control.Refused(
                f"node `{node.spec.id}` is {node.state} (pid {node.pid}); stop that process first"
                if node.state == NodeStatus.RUNNING
                else f"node `{node.spec.id}` is {node.state}"
            )
        node.started_at = time.monotonic()
        node.handed_out = True
        return control.NodeConfigText(node.config.to_json())

    def _on_node_exited(self, message: control.NodeExited, _: bytes) -> control.DaemonReply:
        node = self._node(message.node)
        if not node.spec.is_dynamic:
            return control.Refused(f"node `{node.spec.id}` is started by car, not by `car run-node`")
        if node.state == NodeStatus.RUNNING or (node.state == NodeStatus.WAITING and node.handed_out):
            node.state = NodeStatus.RUNNING  # a dynamic node that never said ready ends here too
            self._ended(node, message.code, time.monotonic())
        elif message.code != 0:  # it said goodbye (Bye) before it failed
            ran = time.monotonic() - node.started_at
            self.terminal.say(f"node `{node.spec.id}` failed: {describe_exit(message.code)} after {ran:.1f} s")
        return control.Done()

    def _on_subscribe(self, message: control.Subscribe, _: bytes) -> control.DaemonReply:
        if self.stopping:
            return control.Refused("the run is stopping")
        return self.subscriptions.subscribe(message)

    def _on_unsubscribe(self, message: control.Unsubscribe, _: bytes) -> control.DaemonReply:
        self._unsubscribe(message.subscription)
        return control.Done()

    def _unsubscribe(self, subscription_id: str) -> None:
        subscription = self.subscriptions.unsubscribe(subscription_id)
        sock = self._notify.pop(subscription.endpoint, None) if subscription is not None else None
        if sock is not None:
            sock.close()

    def status(self) -> control.RunStatus:
        """What `car list` shows about this run."""
        return control.RunStatus(
            name=self.run_info.name,
            run_id=self.run_info.run_id,
            dataflow=str(self.dataflow.file),
            folder=str(self.dataflow.base_dir),
            pid=os.getpid(),
            uptime_s=round(time.monotonic() - self.started, 1),
            nodes=[
                control.NodeRow(n.spec.id, n.state.value, n.pid, n.restarts, round(n.rate, 1), n.status, n.superseded)
                for n in self.nodes.values()
            ],
            subscriptions=len(self.subscriptions.active),
        )

    def status_line(self) -> str:
        """One line: each running node's message rate (and superseded messages), then what nodes say they do."""
        return status_line(list(self.nodes.values()))

    def _delivered(self, reader: str, source: str = "") -> None:
        """A reader has the end of `source` (or of everything, when it exited)."""
        if source:
            self._eos.add((reader, source))
        for node_id, (identity, pending) in list(self._flushes.items()):
            pending -= {(r, s) for r, s in pending if r == reader and (not source or s == source)}
            if not pending:
                del self._flushes[node_id]
                assert self._control is not None
                self._control.reply_later(identity, control.Flushed())

    # -- the end -----------------------------------------------------------------------
    def _shutdown(self) -> None:
        self.terminal.status("")
        self.timers.stop()
        for node in self.nodes.values():
            kill_what_is_left(node)
            node.log.close()
        for subscription in list(self.subscriptions.active):
            self.subscriptions.remove(subscription)
        self._ctx.destroy(linger=0)
        self.direct.close()
        remove_run(self.run_info)

    def summary(self) -> list[str]:
        """Lines describing how the run ended."""
        elapsed = time.monotonic() - self.started
        return summary_lines(self.run_info.name, list(self.nodes.values()), self.timers, elapsed, self.out_dir)

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, _frame: object) -> None:
            self._signal = signum

        previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, handler)
        return previous

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)
