"""The daemon: runs its machine's plan until every node has ended or it is stopped.

It is never on the data path: nodes talk to each other directly (over the socket pairs it
hands them, car.transport.direct, or over ZeroMQ). It is a façade over its parts: the
supervisor (car.daemon.supervisor) starts the nodes and decides what each one's end
means; the control server answers typed messages (car.transport.control) with one
handler per message type here: nodes say `Ready`, `Stats`, `EndOfStream`, `Flush` and
`Bye`; `car list`, `car stop`, `car run-node` and subscribers ask.

Subscribers join the running graph (`Subscribe`): their destinations go into the plan
(so a restarted node keeps them) and to the sending nodes (`AddSubscriber`); they leave
by `Unsubscribe` or by dying, which the daemon notices.

Ctrl-C, SIGTERM, SIGHUP, `--duration` and `car stop` stop the run in order. Nodes run in
process groups of their own, so Ctrl-C reaches only `car`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from car.daemon import edits
from car.daemon.direct_links import DirectLinks
from car.daemon.elsewhere import Elsewhere
from car.daemon.flushes import Flushes
from car.daemon.log_routes import LogRoutes
from car.daemon.logs import LogReader, NodeLog, Terminal
from car.daemon.notifier import Notifier
from car.daemon.processes import Asked, NodeState, OsProcesses, kill_what_is_left
from car.daemon.reloads import RELOAD_CHECK_S, FileWatch, Reload, Watched, compile_error
from car.daemon.report import status_line, summary_lines
from car.daemon.subscriptions import Subscriptions
from car.daemon.supervisor import RunServices, Supervisor
from car.daemon.timers import Timers
from car.daemon.topics import describe_topics, locate_input
from car.daemon.usage import cpu_and_memory
from car.plan.build import RunPlace, Wiring, plan_machine
from car.plan.config import RECONNECT_MS
from car.plan.runs import RunError, RunInfo, remove_run
from car.plan.signals import catch_stop_signals, restore_signals
from car.spec import parameters
from car.spec.loader import check_node
from car.spec.model import Dataflow, DataflowError, NodeSpec
from car.transport import control, wire
from car.transport.keys import load_keys
from car.transport.poll_loop import PollLoop
from car.transport.ports import reserve_port
from car.transport.router import Handler, Router
from car.transport.states import ALIVE, NodeStatus

LOOP_MS = 20  # how often the daemon looks at its processes
STATUS_PERIOD_S = 0.5  # how often the terminal's status line is redrawn
SUBSCRIBER_CHECK_S = 0.5  # how often the daemon looks for subscribers that died


class Daemon:
    """Runs one dataflow on this machine until every node has ended or it is stopped."""

    def __init__(
        self,
        dataflow: Dataflow,
        run: RunInfo,
        terminal: Terminal,
        grace: float = 2.0,
        extra_env: dict[str, str] | None = None,
        wiring: Wiring | None = None,
        elsewhere: Elsewhere | None = None,
        hot_reload: bool = False,
        listen_host: str = "127.0.0.1",
    ):
        """`run.machine` "" runs every node (`car launch`); else that machine's part of a run a coordinator
        placed, wired to the others by `wiring`, and told of their nodes by control messages; `elsewhere`
        hears of the nodes here (car.daemon.elsewhere; timers then wait for `StartTimers`). `hot_reload`:
        nodes and operators whose Python file changes take the new code (car.daemon.reloads)."""
        self.hot_reload = hot_reload
        self.listen_host = listen_host  # where a node listens for an input connected from another machine
        self._held_ports: list[socket.socket] = []  # reserved for them until the run ends (car.transport.ports)
        self.dataflow = dataflow
        self.run_info = run
        self.terminal = terminal
        self.out_dir = Path(run.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        machine = run.machine or None
        self.plan = plan_machine(dataflow, run.run_id, run.name, run.folder, run.control, machine, wiring)
        self._wiring = wiring or Wiring()
        self._ctx = zmq.Context()
        self._ctx.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        self._control: Router | None = None
        keys = load_keys(Path(wiring.keys_dir)) if wiring is not None and wiring.keys_dir else None
        self._public_key = keys.public.decode() if keys is not None else ""
        self.notifier = Notifier(self._ctx, terminal.say, keys)
        self.log_routes = LogRoutes(dataflow, self.plan, self.notifier)
        take = self.log_routes.take if self.log_routes.routes else None
        self.nodes: dict[str, NodeState] = {}
        self.log_reader = LogReader()  # one thread reads every node's output
        self._take_log = take
        for spec in (s for s in dataflow.nodes if s.id in self.plan.nodes):
            self.nodes[spec.id] = self._node_state(spec)
        self._indices = {spec.id: index for index, spec in enumerate(dataflow.nodes)}  # names sockets and files
        self._place = RunPlace(run.run_id, run.name, run.folder, run.control)
        try:
            direct = DirectLinks(self.plan.nodes, {n.spec.id for n in self.nodes.values() if n.spec.is_dynamic})
        except RunError:
            self._ctx.destroy(linger=0)
            remove_run(run)  # nothing of the run is left: it never started
            raise
        if direct.unavailable is not None:
            terminal.say(f"warning: nodes talk over ZeroMQ, not direct links: {direct.unavailable}")
        endpoints = {nid: n.config.receive_endpoint for nid, n in self.nodes.items()}
        self.subscriptions = Subscriptions(self.plan, self._tell_node)
        self.flushes = Flushes(self._answer_flush)
        self.timers = Timers(self._ctx, _timer_readers(self.nodes), endpoints, direct.timer_ends)
        self.direct = direct
        self.parts = RunServices(
            processes=OsProcesses(),
            inherited=direct.fds,
            timers=self.timers,
            subscriptions=self.subscriptions,
            notices=self.notifier,
            flushes=self.flushes,
            tell=self._tell_node,
        )
        self.elsewhere = elsewhere
        self.supervisor = Supervisor(
            dataflow,
            self.plan,
            self.nodes,
            self.parts,
            terminal,
            grace,
            extra_env or {},
            elsewhere,
        )
        self._handlers: dict[type[Any], Handler] = {
            control.Ready: self._on_ready,
            control.Stats: self._on_stats,
            control.DeclareParameters: self._on_declare_parameters,
            control.ListParameters: self._on_list_parameters,
            control.SetParameter: self._on_set_parameter,
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
            control.CloseInputs: self._on_close_inputs,
            control.ReadersGone: self._on_readers_gone,
            control.ReadersBack: self._on_readers_back,
            control.EndsDelivered: self._on_ends_delivered,
            control.StartTimers: self._on_start_timers,
            control.Begin: self._on_begin,
            control.ListTopics: self._on_list_topics,
            control.Watch: self._on_watch,
            control.DescribeNode: self._on_describe_node,
            control.RestartNode: self._on_restart_node,
            control.AddNode: self._on_add_node,
            control.RemoveNode: self._on_remove_node,
            control.ConnectInput: self._on_connect_input,
            control.DisconnectInput: self._on_disconnect_input,
            control.ListenFor: self._on_listen_for,
            control.AddReader: self._on_add_reader,
            control.RemoveReader: self._on_remove_reader,
            control.StopNode: self._on_stop_node,
            control.Publish: self._on_publish,
            control.Renew: self._on_renew,
        }
        self._signal: int | None = None
        self._begun = False  # a held run (`hold_s`) starts its nodes once this is set
        self._watched_until = 0.0  # `car top` watches until then: nodes' CPU time is read
        self.started = 0.0

    # -- public ---------------------------------------------------------------------
    def run(self, duration: float | None = None, hold_s: float = 0.0, holder: Callable[[], bool] | None = None) -> int:
        """Run until done; 0 when no node failed, 1 otherwise. `hold_s`: start the nodes only once a subscriber
        says `Begin` (a recorder that must have every message), or after that long; `holder()` says whether
        what is to say it still lives (when it is gone first, nothing starts: 1)."""
        previous = catch_stop_signals(self._note_signal)
        self._control = Router.bind(self._ctx, self.run_info.control, self._handlers, control.Refused)
        self.started = time.monotonic()
        try:
            if hold_s and not self._hold(hold_s, holder or (lambda: True)):
                return 1  # stopped before it began
            self.supervisor.start()
            self.timers.start()
            self._loop(duration)
        finally:
            self._shutdown()
            for probe in self._held_ports:
                probe.close()
            restore_signals(previous)
        return 1 if self.supervisor.any_failed() else 0

    def stop(self, reason: str) -> None:
        """Begin stopping the run (see Supervisor.stop)."""
        self.supervisor.stop(reason)

    def status(self) -> control.RunStatus:
        """What `car list` shows about this run."""
        return control.RunStatus(
            name=self.run_info.name,
            run_id=self.run_info.run_id,
            dataflow=str(self.dataflow.file),
            folder=str(self.dataflow.base_dir),
            pid=os.getpid(),
            uptime_s=round(time.monotonic() - self.started, 1),
            nodes=[self._row(n) for n in self.nodes.values()],
            subscriptions=len(self.subscriptions.active),
            launch_env=dict(self.supervisor.extra_env),
        )

    @staticmethod
    def _row(n: NodeState) -> control.NodeRow:
        u = n.usage
        return control.NodeRow(
            id=n.spec.id,
            state=n.state,
            pid=n.pid,
            restarts=n.restarts,
            rate=round(u.rate, 1),
            status=n.status,
            superseded=n.superseded,
            sent_rate=round(u.sent_rate, 1),
            received_rate=round(u.received_rate, 1),
            dropped=u.dropped,
            cpu_percent=round(u.cpu_percent, 1),
            rss_bytes=_resident(n),
            latency_p50_ms=u.latency_p50_ms,
            latency_p99_ms=u.latency_p99_ms,
        )

    def summary(self) -> list[str]:
        """Lines describing how the run ended."""
        elapsed = time.monotonic() - self.started
        return summary_lines(self.run_info.name, list(self.nodes.values()), self.timers, elapsed, self.out_dir)

    # -- the loop ----------------------------------------------------------------------
    def _hold(self, limit: float, holder: Callable[[], bool]) -> bool:
        """Answer requests (a recorder subscribing) until `Begin`, for at most `limit` seconds; False on a signal
        or when the holder is gone."""
        assert self._control is not None
        deadline = time.monotonic() + limit
        loop = PollLoop(LOOP_MS)
        loop.add(self._control.socket, self._control.serve)
        held = True

        def done(now: float) -> bool:
            nonlocal held
            if self._begun:
                return True
            if self._signal is not None:
                self.terminal.say(f"stopped ({signal.Signals(self._signal).name}) before the nodes started")
                held = False
            elif not holder():
                self.terminal.say("not started: what was to say Begin (the recorder) ended first")
                held = False
            elif now > deadline:
                self.terminal.say(f"warning: nothing said Begin within {limit:g} s; starting the nodes anyway")
                return True
            return not held

        loop.run(done)
        return held

    def _on_begin(self, _: control.Begin, __: bytes) -> control.DaemonReply:
        self._begun = True
        return control.Done()

    def _loop(self, duration: float | None) -> None:
        assert self._control is not None
        end = None if duration is None else self.started + duration
        loop = PollLoop(LOOP_MS)
        loop.add(self._control.socket, self._control.serve)

        def tick(now: float) -> None:
            if self._signal is not None:
                name, self._signal = signal.Signals(self._signal).name, None
                self.stop(f"{name} received")
            if end is not None and now >= end and not self.supervisor.stopping:
                self.stop(f"--duration {duration:g} s reached")
            self.supervisor.tick(now)
            self.log_routes.flush()

        def forget_dead_subscribers(_: float) -> None:
            for subscription in self.subscriptions.dead():
                self._unsubscribe(subscription)

        loop.every(0.0, tick)
        loop.every(STATUS_PERIOD_S, lambda _: self.terminal.status(status_line(list(self.nodes.values()))))
        loop.every(SUBSCRIBER_CHECK_S, forget_dead_subscribers)
        if self.hot_reload:
            watch = FileWatch(self.dataflow, set(self.plan.nodes))
            loop.every(RELOAD_CHECK_S, lambda _: self._reload(watch.changed()))
        loop.run(lambda _: self.supervisor.finished())

    def _reload(self, changed: list[Watched]) -> None:
        """Files of nodes or operators changed (`--hot-reload`): each takes its new code (car.daemon.reloads)."""
        for watched in changed:
            if self.supervisor.stopping:
                return
            node = self.nodes[watched.node]
            if watched.reload is Reload.OPERATOR:
                self.terminal.say(
                    f"{watched.path} changed: operator `{watched.operator}` of node `{node.spec.id}` reloads"
                )
                self._tell_node(node.spec.id, control.ReloadOperator(watched.operator))
                continue
            error = compile_error(watched.path)
            if error:
                self.terminal.say(
                    f"{watched.path} changed, but does not compile ({error}): node `{node.spec.id}` goes on with its old code"
                )
                continue
            refusal = self.supervisor.stop_node(node, Asked.RELOAD)
            if refusal:
                self.terminal.say(f"{watched.path} changed: node `{node.spec.id}` is not restarted: {refusal}")

    def _node_state(self, spec: NodeSpec) -> NodeState:
        """A node of this machine, as the daemon follows it, with its log."""
        path = self.out_dir / f"{spec.id}.log"
        terminal = self.terminal
        log = NodeLog(
            spec.id, path, terminal, self.log_reader, self._take_log, spec.max_log_size, spec.max_rotated_files
        )
        return NodeState(spec, self.plan.nodes[spec.id], log)

    # -- the graph edited while it runs (car.daemon.edits) ---------------------------------
    def _on_add_node(self, message: control.AddNode, _: bytes) -> control.DaemonReply:
        if self.supervisor.stopping:
            return control.Refused("the run is stopping")
        try:
            spec = check_node(message.text, message.label, self.dataflow, message.replacing)
            if message.replacing:
                edit = edits.replace(self.dataflow, self.plan, spec, self._indices[spec.id], self._place, self._wiring)
            else:
                old = self.nodes.get(spec.id)
                if old is not None and not old.state.ended:
                    return control.Refused(f"node `{spec.id}` is still {old.state} (removed a moment ago?): try again")
                index = self._indices[spec.id] = len(self._indices) + 1000
                edit = edits.add(self.dataflow, self.plan, spec, index, self._place, self._wiring)
        except DataflowError as exc:
            return control.Refused(str(exc))
        except edits.EditRefused as exc:
            return control.Refused(str(exc))
        self._apply(edit)
        return control.Done()

    def _on_remove_node(self, message: control.RemoveNode, _: bytes) -> control.DaemonReply:
        return self._edit(lambda: edits.remove(self.dataflow, self.plan, message.node))

    def _on_connect_input(self, message: control.ConnectInput, _: bytes) -> control.DaemonReply:
        return self._edit(
            lambda: edits.connect(
                self.dataflow, self.plan, message.source, message.node, message.input, message.queue_size
            )
        )

    def _on_disconnect_input(self, message: control.DisconnectInput, _: bytes) -> control.DaemonReply:
        return self._edit(
            lambda: edits.disconnect(self.dataflow, self.plan, message.source, message.node, message.input)
        )

    def _on_listen_for(self, message: control.ListenFor, _: bytes) -> control.DaemonReply:
        if self.supervisor.stopping:
            return control.Refused("the run is stopping")
        try:
            edit, endpoint = edits.listen_for(
                self.dataflow,
                self.plan,
                message.source,
                message.node,
                message.input,
                message.queue_size,
                self._listen_at,
            )
        except (edits.EditRefused, OSError) as exc:
            return control.Refused(str(exc))
        self._apply(edit)
        return control.Listening(int(endpoint.rsplit(":", 1)[1]), self._public_key)

    def _listen_at(self) -> str:
        """A tcp:// endpoint for a node of this machine to listen at (its port held until the run ends)."""
        probe, port = reserve_port(self.listen_host)
        self._held_ports.append(probe)
        return f"tcp://{self.listen_host}:{port}"

    def _on_add_reader(self, message: control.AddReader, _: bytes) -> control.DaemonReply:
        return self._edit(lambda: edits.add_reader(self.dataflow, self.plan, message))

    def _on_remove_reader(self, message: control.RemoveReader, _: bytes) -> control.DaemonReply:
        return self._edit(lambda: edits.remove_reader(self.dataflow, self.plan, message.source, message.reader))

    def _edit(self, make: Callable[[], edits.Edit]) -> control.DaemonReply:
        if self.supervisor.stopping:
            return control.Refused("the run is stopping")
        try:
            edit = make()
        except edits.EditRefused as exc:
            return control.Refused(str(exc))
        self._apply(edit)
        return control.Done()

    def _apply(self, edit: edits.Edit) -> None:
        """Act on an edit: the graph as it is now, its messages to the nodes, a node started, restarted or stopped."""
        self.dataflow = self.supervisor.dataflow = edit.dataflow
        for spec in edit.dataflow.nodes:  # what the supervisor knows of each node (its readers, for one)
            if spec.id in self.nodes and spec is not edit.start and spec is not edit.restart:
                self.nodes[spec.id].spec = spec
        if edit.start is not None:
            node = self.nodes[edit.start.id] = self._node_state(edit.start)
            self.terminal.say(f"node `{edit.start.id}` added")
            self.supervisor.start_node(node)
        for node_id, message in edit.tell:
            self._tell_node(node_id, message)
        for source, node_id in edit.timers:
            self.timers.add(source, node_id, self.plan.nodes[node_id].receive_endpoint)
        if edit.restart is not None and edit.config is not None:
            node = self.nodes[edit.restart.id]
            node.spec, node.config = edit.restart, edit.config
            refusal = self.supervisor.stop_node(node, Asked.REPLACE) if node.state == NodeStatus.RUNNING else ""
            self.terminal.say(f"node `{node.spec.id}` replaced" + (f" (it starts later: {refusal})" if refusal else ""))
        if edit.stop:
            node = self.nodes[edit.stop]
            if node.state in ALIVE:
                self.supervisor.stop_node(node, Asked.REMOVE)
            self.terminal.say(f"node `{edit.stop}` removed")

    # -- messages ----------------------------------------------------------------------
    def _tell_node(self, node_id: str, message: control.DaemonToNode) -> None:
        node = self.nodes[node_id]
        if node.state == NodeStatus.PENDING and not node.pid:
            return  # not started yet: it starts with the plan as it is then
        if node.state in ALIVE or node.state == NodeStatus.WAITING:
            self.notifier.send(node.config.receive_endpoint, wire.KIND_CONTROL, b"", control.encode(message))

    def _answer_flush(self, identity: bytes) -> None:
        assert self._control is not None
        self._control.reply_later(identity, control.Flushed())

    def _node(self, node_id: str) -> NodeState:
        node = self.nodes.get(node_id)
        if node is None:
            known = ", ".join(self.nodes)
            raise control.ControlError(f"this dataflow has no node `{node_id}` (nodes: {known})")
        return node

    def _on_ready(self, message: control.Ready, _: bytes) -> None:
        self.supervisor.ready(self._node(message.node), message.pid)

    def _on_stats(self, message: control.Stats, _: bytes) -> None:
        node = self._node(message.node)
        now = time.monotonic()
        node.usage.update(message, node.pid if now < self._watched_until else 0, now)
        node.sent, node.received = message.sent, message.received
        node.status = message.status[:120]
        node.superseded = message.superseded

    def _on_declare_parameters(self, message: control.DeclareParameters, _: bytes) -> None:
        self._node(message.node).parameters = {p.name: p for p in message.parameters}

    def _on_list_parameters(self, message: control.ListParameters, _: bytes) -> control.DaemonReply:
        node = self._node(message.node)
        found = list(node.parameters.values())
        return control.Parameters(found, {p.name: node.config.parameters.get(p.name, p.default_json) for p in found})

    def _on_set_parameter(self, message: control.SetParameter, _: bytes) -> control.DaemonReply:
        """Check the value against the node's declaration, keep it (for restarts) and give it to the node."""
        node = self._node(message.node)
        parameter = node.parameters.get(message.name)
        if parameter is None:
            declared = ", ".join(node.parameters) or "none (yet: a node declares them as it starts)"
            return control.Refused(f"node `{node.spec.id}` has no parameter `{message.name}` (declared: {declared})")
        try:
            value = json.loads(message.value_json)
        except json.JSONDecodeError:
            return control.Refused(
                f"{message.value_json!r} is not a JSON value: `{parameter.name}` takes {parameter.accepts()}"
            )
        problem = parameters.check(parameter, value)
        if problem:
            return control.Refused(problem)
        value_json = json.dumps(parameters.coerce(parameter, value))
        node.config.parameters[parameter.name] = value_json
        self._tell_node(node.spec.id, control.ParameterSet(parameter.name, value_json))
        return control.Done()

    def _on_end_of_stream(self, message: control.EndOfStream, _: bytes) -> None:
        reader = self._node(message.node).spec.id
        self.flushes.delivered(reader, message.source)
        if self.elsewhere is not None and message.source.partition("/")[0] not in self.nodes:
            self.elsewhere.ends_delivered([control.StreamEnd(reader, message.source)])

    def _on_flush(self, message: control.Flush, identity: bytes) -> control.DaemonReply | None:
        """Answer once every live reader of the node has the end of its streams (see Node.close)."""
        node_id = self._node(message.node).spec.id
        if self.flushes.wait(node_id, identity, self.supervisor.ends_to_deliver(node_id)):
            return control.Flushed()
        return None

    def _on_bye(self, message: control.Bye, _: bytes) -> None:
        node = self._node(message.node)
        node.drops = dict(message.drops)
        node.sent, node.received, node.superseded = message.sent, message.received, message.superseded
        self.supervisor.said_bye(node)

    def _on_stop_dataflow(self, message: control.StopDataflow, _: bytes) -> None:
        self.stop(message.reason)

    def _on_list(self, _: control.ListRun, __: bytes) -> control.DaemonReply:
        return self.status()

    def _on_stop_run(self, message: control.StopRun, _: bytes) -> control.DaemonReply:
        if message.grace > 0:
            self.supervisor.grace = message.grace
        self.stop(message.reason)
        return control.Done()

    def _on_start_timers(self, _: control.StartTimers, __: bytes) -> control.DaemonReply:
        self.supervisor.open_timers()
        return control.Done()

    def _on_close_inputs(self, message: control.CloseInputs, _: bytes) -> control.DaemonReply:
        """Sources on another machine ended (or their machine was lost): their readers here get INPUT_CLOSED."""
        self.supervisor.close_sources(message.sources)
        return control.Done()

    def _on_readers_gone(self, message: control.ReadersGone, _: bytes) -> control.DaemonReply:
        self.supervisor.readers_gone_elsewhere(message.readers)
        return control.Done()

    def _on_readers_back(self, message: control.ReadersBack, _: bytes) -> control.DaemonReply:
        self.supervisor.readers_back_elsewhere(message.readers)
        return control.Done()

    def _on_ends_delivered(self, message: control.EndsDelivered, _: bytes) -> control.DaemonReply:
        for end in message.ends:
            self.flushes.delivered(end.reader, end.source)
        return control.Done()

    def _on_watch(self, message: control.Watch, _: bytes) -> control.DaemonReply:
        self._watched_until = time.monotonic() + message.seconds
        for node_id in self.nodes:
            self._tell_node(node_id, control.Observe(message.seconds))
        return control.Done()

    def _on_list_topics(self, _: control.ListTopics, __: bytes) -> control.DaemonReply:
        return control.Topics(describe_topics(self.dataflow, self.plan, self.subscriptions))

    def _on_publish(self, message: control.Publish, _: bytes) -> control.DaemonReply:
        where = locate_input(self.dataflow, self.plan, message.node, message.input)
        if isinstance(where, control.Refused):
            return where
        try:
            value = json.loads(message.value_json)
        except json.JSONDecodeError as exc:
            return control.Refused(f"the value is not JSON ({exc.msg} at character {exc.pos})")
        metadata = {"sent_by": "car topic pub"}
        if not self.notifier.try_send(where.endpoint, wire.KIND_DATA, where.source.encode(), value, metadata):
            return control.Refused(f"node `{message.node}` is not reading: its queue is full; nothing was sent")
        return control.Published(where.source)

    def _on_describe_node(self, message: control.DescribeNode, _: bytes) -> control.DaemonReply:
        node = self._node(message.node)
        spec = node.spec
        return control.NodeDescription(
            self._row(node),
            spec.path,
            list(spec.args),
            spec.machine,
            [control.InputRow(name, i.source, i.queue_size, i.queue_policy) for name, i in spec.inputs.items()],
            list(spec.outputs),
            str(node.log.path),
            spec.restart_policy,
            spec.critical,
            [f"{op.id}: {op.python}" for op in spec.operators],
        )

    def _on_restart_node(self, message: control.RestartNode, _: bytes) -> control.DaemonReply:
        refusal = self.supervisor.stop_node(self._node(message.node), Asked.RESTART)
        return control.Refused(refusal) if refusal else control.Done()

    def _on_stop_node(self, message: control.StopNode, _: bytes) -> control.DaemonReply:
        refusal = self.supervisor.stop_node(self._node(message.node), Asked.STOP)
        return control.Refused(refusal) if refusal else control.Done()

    def _on_get_node_config(self, message: control.GetNodeConfig, _: bytes) -> control.DaemonReply:
        node = self._node(message.node)
        refusal = self.supervisor.hand_out(node, message.pid)
        return control.Refused(refusal) if refusal else control.NodeConfigText(node.config.to_json())

    def _on_node_exited(self, message: control.NodeExited, _: bytes) -> control.DaemonReply:
        refusal = self.supervisor.exited_by_hand(self._node(message.node), message.code)
        return control.Refused(refusal) if refusal else control.Done()

    def _on_subscribe(self, message: control.Subscribe, _: bytes) -> control.DaemonReply:
        if self.supervisor.stopping:
            return control.Refused("the run is stopping")
        if message.server_key:
            self.notifier.secure(message.endpoint, message.server_key)
        return self.subscriptions.subscribe(message)

    def _on_renew(self, message: control.Renew, _: bytes) -> control.DaemonReply:
        if not self.subscriptions.renew(message.subscription):
            return control.Refused(f"no subscription {message.subscription}: it ended (its lease ran out?)")
        return control.Done()

    def _on_unsubscribe(self, message: control.Unsubscribe, _: bytes) -> control.DaemonReply:
        self._unsubscribe(message.subscription)
        return control.Done()

    def _unsubscribe(self, subscription_id: str) -> None:
        subscription = self.subscriptions.unsubscribe(subscription_id)
        if subscription is not None:
            self.notifier.forget(subscription.endpoint)

    # -- the end -----------------------------------------------------------------------
    def _shutdown(self) -> None:
        self.terminal.status("")
        if self.log_routes.dropped:
            self.terminal.say(f"{self.log_routes.dropped} log lines were dropped: their readers did not keep up")
        self.timers.stop()
        for node in self.nodes.values():
            kill_what_is_left(node)
            node.log.close()
        self.log_reader.stop()
        for subscription in list(self.subscriptions.active):
            self.subscriptions.remove(subscription)
        self._ctx.destroy(linger=0)
        self.direct.close()
        remove_run(self.run_info)

    def _note_signal(self, signum: int) -> None:
        self._signal = signum


def _resident(node: NodeState) -> int:
    """A running node's resident memory now (bytes; 0 when unknown)."""
    measured = cpu_and_memory(node.pid) if node.pid and node.state in ALIVE else None
    return measured[1] if measured else 0


def _timer_readers(nodes: dict[str, NodeState]) -> dict[str, list[str]]:
    """Each timer source (`dora/timer/millis/100`) and the nodes here that read it, in order."""
    readers: dict[str, list[str]] = {}
    for spec in (node.spec for node in nodes.values()):
        for inp in spec.inputs.values():
            if inp.is_timer and spec.id not in readers.setdefault(inp.source, []):
                readers[inp.source].append(spec.id)
    return readers
