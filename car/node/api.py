"""The node API: `for event in Node(): ...` and `node.send_output(...)`.

`Node` is a façade over three parts with one job each: the `Inbox` (car.node.inbox: its
sockets, one bounded queue per input, drops), the `Outbox` (car.node.links: its outputs,
one link class per transport, shared memory, subscribers) and the `DaemonLink`
(car.node.daemon_link: typed control messages to the daemon, and the watcher). The
daemon is not on the data path: it only sends timer ticks and control messages (STOP,
end of stream, and plan changes such as a new subscriber).

Large payloads (more than 64 KiB) between nodes on this machine go through shared memory
(car.transport.shm): the sender copies the payload once into a slot, the receiver gets a
read-only numpy view of that slot. `allocate_output` lends a node a slot to write a frame
into, so that even that copy goes. Small values travel inline, one message each.

Lifetime of a received array: it is a read-only view, valid for as long as you keep a
reference to it (or to any view made from it); nothing is copied. A node that holds more
frames than its queue_size + 2 makes the sender add slots (up to 64 in all); past that
the sender copies frames through the link, which is slower but still correct.
`value.copy()` a frame you want to keep for long.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from car.node.daemon_link import STATS_PERIOD_S, DaemonLink
from car.node.drops import DropFlag, DropSource
from car.node.event import Event
from car.node.inbox import Inbox
from car.node.links import LINGER_MS, Outbox, UnknownOutputError
from car.plan.config import ENV_VAR, RECONNECT_MS, NodeConfig
from car.plan.runs import claim_dynamic_node
from car.spec import parameters, types
from car.transport import control
from car.transport.hlc import HybridLogicalClock

__all__ = ["Event", "Node", "UnknownOutputError"]

DROP_REPORT_PERIOD_S = 1.0
WATCHED_STATS_PERIOD_S = 0.25  # while watched: `car top --once` has latencies a quarter of a second after it asks
STOPPING_LINGER_MS = 100  # at exit when the whole dataflow stops: readers are leaving too
FLUSH_TIMEOUT_S = 5.0  # a node that ends waits this long, at most, for its readers to take its last messages


class Node:
    """A node of a running dataflow, configured from the environment the daemon sets."""

    def __init__(self, node_id: str | None = None, *, config: NodeConfig | None = None):
        """Join the dataflow: configured by the daemon through the environment, or, for a `path: dynamic`
        node started by hand with plain `python node.py`, by `Node("id")` asking the running dataflow."""
        if config is not None:
            cfg = config
        elif node_id is not None and not os.environ.get(ENV_VAR):  # started by hand: ask the running dataflow
            cfg = NodeConfig.from_json(claim_dynamic_node(node_id))
        else:
            cfg = NodeConfig.from_env()
        if node_id is not None and node_id != cfg.node_id:
            raise ValueError(f"this process was started as node `{cfg.node_id}`, not `{node_id}`")
        self.id = cfg.node_id
        self.config = cfg
        self._typed_outputs = cfg.output_types  # output -> declared type URN: values are checked at send
        self._clock = HybridLogicalClock()
        self._ctx = zmq.Context()
        self._ctx.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        self._closed = False
        self._finished = False  # STOP was handed out: iteration is over
        self._status = ""
        self._observe_until = 0.0  # watched until then (monotonic seconds): inputs' latency is measured
        self._latencies: list[int] = []  # nanoseconds, since the last report
        self._parameters: dict[str, parameters.Parameter] = {}  # declared (declare_parameter)
        self._values: dict[str, Any] = {}  # their values now
        self._drops = DropFlag()
        self._drop_sources: list[DropSource] = []  # beside the inbox and outbox (count_drops)
        self._next_drop_report = 0.0
        self._last_drop_report = time.monotonic()
        self._daemon = DaemonLink(cfg, self._ctx, LINGER_MS)
        keys, self._authenticator = self._secure(cfg)
        self._keys = keys
        self._inbox = Inbox(
            self.id,
            cfg.receive_endpoint,
            cfg.inputs,
            cfg.direct_fds,
            self._ctx,
            clock=self._clock,
            drops=self._drops,
            on_end_of_stream=lambda source: self._daemon.tell(control.EndOfStream(self.id, source)),
            on_control=self._on_control,
            remote_endpoint=cfg.remote_endpoint,
            keys=keys,
        )
        # From the daemon, applied between sends. One thread receives; any may send (an operator runtime's
        # workers: car.operators): sends, lent arrays and plan changes take turns under `_sending`.
        self._plan_changes: deque[control.DaemonToNode] = deque()
        self._sending = threading.RLock()
        self._receiving_thread = threading.get_ident()
        self._outbox = Outbox(cfg, self._ctx, self._clock, self._drops, self._stopping, keys)
        self._daemon.tell(control.Ready(self.id, os.getpid()))
        self._daemon.watch(self._stats, self._stats_period)
        atexit.register(self.close)

    def _secure(self, cfg: NodeConfig) -> tuple[Any, Any]:
        """With keys (links to other machines over CurveZMQ): this machine's keys, and the authenticator that
        lets only the run's machines send to this node's tcp:// sockets (when it has any)."""
        if not cfg.keys_dir:
            return None, None
        from car.transport.keys import authenticator, load_keys  # only nodes with keys pay for zmq.auth

        keys = load_keys(Path(cfg.keys_dir))
        if keys is None:
            raise RuntimeError(f"node `{cfg.node_id}`: no keys in {cfg.keys_dir} (`car keys init` there)")
        listens = cfg.remote_endpoint or any(i.endpoint.startswith("tcp://") for i in cfg.inputs.values())

        def say(text: str) -> None:
            print(f"car: node `{cfg.node_id}`: {text}", file=sys.stderr)

        return keys, authenticator(self._ctx, keys, say, cfg.peers) if listens else None

    # -- receiving -----------------------------------------------------------------
    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        if self._finished:  # STOP was handed out: nothing queued behind it is (as dora's event stream ends)
            raise StopIteration
        inbox = self._inbox
        event = inbox.pop() if inbox.pending else None  # queued already: skip the waiting logic
        if event is None:
            event = inbox.next(None, self._finished or self._closed)
            if event is None:
                raise StopIteration
        return self._hand_out(event)

    def _hand_out(self, event: Event) -> Event:
        """Every event leaves through here (subclasses may adapt it): STOP ends iteration; drops are reported;
        while the node is watched (`car top`), each input's latency is measured."""
        if self._plan_changes and self._sending.acquire(blocking=False):  # else the thread sending applies them
            try:
                self._apply_plan()
            finally:
                self._sending.release()
        if event.type == "STOP":
            self._finished = True
        if self._drops.pending:
            self._report_drops(final=False)
        if self._observe_until and event.timestamp is not None:
            self._observe(event.timestamp[0])
        return event

    def _observe(self, stamp_ns: int) -> None:
        """One input's time from its timestamp to now (a timer tick's too), while watched."""
        if time.monotonic() < self._observe_until:
            self._latencies.append(time.time_ns() - stamp_ns)
        else:
            self._observe_until = 0.0

    def next(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting at most `timeout` seconds (None: no limit).

        Returns None on timeout and once STOP has been handed out.
        """
        if self._finished:
            return None
        event = self._inbox.next(timeout, self._closed)
        return None if event is None else self._hand_out(event)

    def _on_control(self, message: control.DaemonToNode) -> None:
        """A message from the daemon, as the inbox reads it. Where this node's outputs go (a subscriber came or
        left, a reader ended or came back) changes between sends (`_apply_plan`), never during one: the inbox is
        read while a backpressure send waits, which then only learns that its reader left (`Outbox.leaving`)."""
        if isinstance(message, control.PLAN_CHANGES):
            self._plan_changes.append(message)
            if isinstance(message, control.ReaderGone):
                self._outbox.leaving.add(message.reader)
            elif isinstance(message, control.ReaderBack):
                self._outbox.reader_restarted(message.reader)  # its links' credits at once: a send may wait on them
        elif isinstance(message, control.Observe):
            if not self._observe_until:
                self._daemon.report_now()  # counts at once, latencies a quarter of a second later
            self._observe_until = time.monotonic() + message.seconds
        elif isinstance(message, control.Listen):
            self._listen(message.endpoint)
        elif isinstance(message, control.AddInput):
            self._inbox.add_input(message.name, message.source, message.queue_size)
        elif isinstance(message, control.RemoveInput):
            self._inbox.remove_input(message.name)
        elif isinstance(message, control.ReloadOperator):  # an operator runtime's (car.operators)
            self._inbox.queue_event(Event("RELOAD", message.operator))
        elif isinstance(message, control.ParameterSet) and message.name in self._parameters:
            value = parameters.coerce(self._parameters[message.name], json.loads(message.value_json))
            self._values[message.name] = value
            self._inbox.queue_event(Event("PARAMETER", message.name, value))

    def _listen(self, endpoint: str) -> None:
        """Receive also at tcp:// `endpoint` (`car node connect` from another machine): with keys, only the run's
        machines get in, as for a node that listened from its start."""
        cfg = self.config
        if cfg.keys_dir and self._authenticator is None:
            from car.transport.keys import authenticator  # only nodes with keys pay for zmq.auth

            def say(text: str) -> None:
                print(f"car: node `{cfg.node_id}`: {text}", file=sys.stderr)

            self._authenticator = authenticator(self._ctx, self._keys, say, cfg.peers)
        try:
            self._inbox.bind_remote(endpoint)
        except Exception as exc:  # a port taken meanwhile: said, and the connection carries nothing
            print(f"car: node `{cfg.node_id}` cannot listen at {endpoint}: {exc}", file=sys.stderr)
        else:
            cfg.remote_endpoint = cfg.remote_endpoint or endpoint

    def _apply_plan(self) -> None:
        """Apply the plan changes the daemon sent, in order (between sends: see `_on_control`)."""
        with self._sending:
            while self._plan_changes:
                self._apply_change(self._plan_changes.popleft())

    def _apply_change(self, message: control.DaemonToNode) -> None:
        """One plan change (see `_apply_plan`)."""
        outbox = self._outbox
        if isinstance(message, control.AddSubscriber):
            outbox.add_subscriber(
                message.output,
                message.subscription,
                message.endpoint,
                message.queue_size,
                message.line,
                message.server_key,
                message.keep,
            )
        elif isinstance(message, control.RemoveSubscriber):
            outbox.remove_subscriber(message.output, message.subscription)
        elif isinstance(message, control.ReaderGone):
            outbox.reader_gone(message.reader)
        elif isinstance(message, control.ReaderBack):
            outbox.reader_back(message.reader)
        elif isinstance(message, control.AddDestination):
            outbox.add_destination(message)
        elif isinstance(message, control.RemoveDestination):
            outbox.remove_destination(message.output, message.reader)

    def _stopping(self) -> bool:
        """While a backpressure send waits: keep our own queues moving (on the receiving thread: another one
        sending leaves that to it); True once the node should give up."""
        if threading.get_ident() == self._receiving_thread:
            self._inbox.drain_main()
        return self._inbox.stop_seen or self._daemon.daemon_gone

    # -- parameters -------------------------------------------------------------------
    def declare_parameter(
        self, name: str, default: Any, description: str = "", value_range: tuple[float, float] | None = None
    ) -> Any:
        """Declare a parameter `car param` can read and set while the node runs; its value now.

        The type is the default's (float, int, bool or str); `value_range` bounds a number.
        A value set with `car param set` is checked against the declaration first, and then
        arrives as a PARAMETER event (`event.id` the name, `event.value` the value), which
        `parameter(name)` also returns from then on; it is kept when the node restarts.
        """
        parameter = parameters.declare(name, default, description, value_range)
        self._parameters[name] = parameter
        stored = self.config.parameters.get(name)
        value = parameter.default
        if stored is not None and not parameters.check(parameter, json.loads(stored)):
            value = parameters.coerce(parameter, json.loads(stored))  # set before this process started
        self._values[name] = value
        self._daemon.tell(control.DeclareParameters(self.id, list(self._parameters.values())))
        return value

    def parameter(self, name: str) -> Any:
        """A declared parameter's value now."""
        if name not in self._values:
            declared = ", ".join(self._values) or "none"
            raise KeyError(f"node `{self.id}` declared no parameter `{name}` (declared: {declared})")
        return self._values[name]

    # -- sending ---------------------------------------------------------------------
    def send_output(self, output_id: str, data: Any = None, metadata: dict[str, Any] | None = None) -> None:
        """Send `data` (numpy array, bytes, str, JSON-able value or None) on a declared output."""
        self._send(output_id, data, data, metadata)

    def _send(self, output_id: str, given: Any, value: Any, metadata: dict[str, Any] | None) -> None:
        """Every send goes through here: the daemon's plan changes first, then the declared type's check of what
        was `given`, then `value` (what goes on the wire; a subclass may convert) to every link."""
        with self._sending:
            if self._plan_changes:
                self._apply_plan()
            if self._typed_outputs:
                self._check_type(output_id, given, metadata)
            self._outbox.send(output_id, value, metadata)

    def _check_type(self, output_id: str, data: Any, metadata: dict[str, Any] | None) -> None:
        """A value of another type than its output declares (`output_types`) is refused with a TypeError."""
        urn = self._typed_outputs.get(output_id)
        mismatch = types.send_mismatch(urn, data, metadata) if urn else ""
        if mismatch:
            raise TypeError(
                f"node `{self.id}` output `{output_id}` is declared `{urn}` (output_types in {self.config.dataflow}), "
                f"but this value is {mismatch}: send a `{urn}` or change the declared type"
            )

    def has_readers(self, output_id: str) -> bool:
        """Whether anything outside this process reads `output_id` now (a node's link, or a subscriber)."""
        with self._sending:
            if self._plan_changes:
                self._apply_plan()
            return bool(self._outbox.links(output_id))

    def allocate_output(self, output_id: str, shape: int | tuple[int, ...], dtype: Any = np.uint8) -> Any:
        """A writable array to fill and then send on `output_id` without any copy (for large arrays, e.g. frames).

        For readers on this machine the array lives in the output's shared memory, so
        `send_output(output_id, array)` only tells them where it is. After that send the
        array is read-only: allocate a new one for the next message (do not keep writable
        views of it). Where shared memory cannot be used (small arrays, no reader on this
        machine, every slot held by slow readers) it is an ordinary array, sent by copy.
        """
        with self._sending:
            return self._outbox.allocate(output_id, shape, dtype)

    @property
    def sent(self) -> int:
        """send_output calls so far."""
        return self._outbox.sent

    @property
    def received(self) -> int:
        """INPUT events handed out so far."""
        return self._inbox.received

    @property
    def copied(self) -> int:
        """Large arrays sent through the link because every shared-memory slot was held."""
        return self._outbox.copied

    # -- drops ------------------------------------------------------------------------
    def drop_counts(self) -> dict[str, int]:
        """Messages dropped so far: `input NAME` (queue full) and `to NODE/INPUT` (link full)."""
        counts = self._inbox.drop_counts()
        for found in (self._outbox.drop_counts(), *(source.drop_counts() for source in self._drop_sources)):
            for where, count in found.items():
                counts[where] = counts.get(where, 0) + count
        return counts

    def superseded(self) -> int:
        """Messages replaced by newer ones in `queue_size: 1` inputs (by design: counted, not warned about)."""
        return self._inbox.superseded() + sum(source.superseded() for source in self._drop_sources)

    @property
    def drops(self) -> DropFlag:
        """Set when something was dropped since the node last reported drops (a `count_drops` source sets it)."""
        return self._drops

    def count_drops(self, source: DropSource) -> None:
        """Report what `source` drops on this node's behalf with the node's own drops: in its log (when it sets
        `drops`), its totals at the end and its stats (`car top`). An operator runtime's bounds are one."""
        self._drop_sources.append(source)

    def _report_drops(self, final: bool) -> None:
        now = time.monotonic()
        if not final and now < self._next_drop_report:
            return
        parts = self._inbox.unreported_drops() + self._outbox.unreported_drops()
        for source in self._drop_sources:
            parts += source.unreported_drops()
        if parts:
            span = now - self._last_drop_report
            print(f"car: node `{self.id}` dropped in the last {span:.1f} s: {'; '.join(parts)}", file=sys.stderr)
        self._last_drop_report = now
        self._next_drop_report = now + DROP_REPORT_PERIOD_S
        self._drops.pending = False

    def _stats(self) -> control.Stats:
        """What the watcher thread reports (see control.Stats)."""
        samples, self._latencies = self._latencies, []
        p50 = p99 = -1.0
        if samples:
            ordered = np.sort(np.asarray(samples, np.int64))
            p50, p99 = (float(ordered[min(len(ordered) - 1, int(q * len(ordered)))]) / 1e3 for q in (0.5, 0.99))
        dropped = sum(self.drop_counts().values())
        return control.Stats(self.id, self.sent, self.received, self._status, self.superseded(), dropped, p50, p99)

    def _stats_period(self) -> float:
        """How long the watcher waits between reports: shorter while the node is watched."""
        return WATCHED_STATS_PERIOD_S if self._observe_until > time.monotonic() else STATS_PERIOD_S

    # -- life cycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Tell the readers of every output that it is closed, report drops, release sockets."""
        if self._closed:
            return
        self._closed = True
        if self._plan_changes:
            self._apply_plan()
        stopping = self._inbox.dataflow_stopping
        if self.config.send_eos and not stopping:
            self._finish_outputs()
        self._inbox.close()
        self._outbox.close()
        self._report_drops(final=True)
        totals = self.drop_counts()
        if totals:
            summary = ", ".join(f"{k}: {v}" for k, v in totals.items())
            print(f"car: node `{self.id}` dropped in total: {summary}", file=sys.stderr)
        self._daemon.tell(control.Bye(self.id, self.sent, self.received, totals, self.superseded()))
        self._daemon.close()
        if self._authenticator is not None:
            self._authenticator.stop()
        self._ctx.destroy(linger=STOPPING_LINGER_MS if stopping else LINGER_MS)

    def _finish_outputs(self) -> None:
        """Send end-of-stream on every link and wait until every reader has it.

        ZeroMQ discards what a lagging reader has not read yet when the sender goes
        away, so a node that ends waits (at most FLUSH_TIMEOUT_S) for the daemon to
        confirm that each reader got the end of each stream (or exited).
        """
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        if not self._outbox.finish(lambda: max(0, int((deadline - time.monotonic()) * 1000))):
            return
        pending = self._daemon.flush(deadline)
        if pending is None or pending:
            readers = ", ".join(pending) if pending else "its readers"
            print(
                f"car: node `{self.id}` ends before {readers} read its last messages "
                f"(waited {FLUSH_TIMEOUT_S:g} s); those messages may be lost",
                file=sys.stderr,
            )

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_status(self, text: str) -> None:
        """A short line about what this node is doing; `car launch` shows it in its status line."""
        self._status = text

    def stop_dataflow(self, reason: str) -> None:
        """Ask the daemon to stop the whole dataflow (every node gets STOP), e.g. when a task is done."""
        self._daemon.tell(control.StopDataflow(self.id, f"node `{self.id}`: {reason}"))

    def dataflow_id(self) -> str:
        """The id of the running dataflow (dora-compatible name)."""
        return self.config.run_id
