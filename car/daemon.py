"""The daemon: starts a dataflow's nodes, drives its timers, supervises and stops them.

It is never on the data path: nodes talk to each other directly (over the socket pairs it
hands them, car.direct, or over ZeroMQ). It starts a node pinned to the CPUs its
`cpu_affinity` names (car.affinity). The daemon answers a control socket (nodes say `ready` and `bye`; `car list`, `car stop` and
`car run-node` ask questions) and, when a node ends, tells its readers the output closed.

Stopping (Ctrl-C, SIGTERM, `--duration`, `car stop`): STOP to every node, then after the
grace period SIGTERM to each node's process group, then SIGKILL. Nodes run in process
groups of their own, so Ctrl-C reaches only `car`, which stops them in order.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from car import affinity, wire
from car.config import ENV_VAR, RECONNECT_MS, NodeConfig, plan_run
from car.direct import DirectLinks
from car.hlc import HybridLogicalClock
from car.logs import NodeLog, Terminal
from car.runs import RunInfo, remove_run
from car.shm import finish_reader
from car.spec import Dataflow, NodeSpec
from car.timers import Timers

KILL_AFTER_S = 2.0  # after SIGTERM, wait this long before SIGKILL
LOOP_MS = 20  # how often the supervisor looks at its processes
STATUS_PERIOD_S = 0.5  # how often the terminal's status line is redrawn
COMPAT_DIR = Path(__file__).parent / "compat"


@dataclass
class NodeState:
    """The daemon's view of one node."""

    spec: NodeSpec
    config: NodeConfig
    log: NodeLog
    proc: subprocess.Popen[bytes] | None = None
    state: str = "pending"  # pending, running, restarting, exited, failed, waiting (dynamic)
    started_at: float = 0.0
    restarts: int = 0
    restart_at: float = 0.0
    signalled: bool = False  # car sent it SIGTERM/SIGKILL
    exit_code: int | None = None
    failure: str = ""
    drops: dict[str, int] = field(default_factory=dict)
    pid: int = 0
    sent: int = 0  # messages, as the node last reported them
    received: int = 0
    rate: float = 0.0  # messages per second, sent and received, over the last report period
    status: str = ""  # what the node says it is doing (Node.set_status)
    reported_at: float = 0.0


def node_command(spec: NodeSpec, base_dir: Path) -> tuple[list[str], Path]:
    """The argv and working folder that start a node."""
    cwd = base_dir / spec.working_dir if spec.working_dir else base_dir
    if spec.path.startswith("-m "):
        return [sys.executable, "-u", "-m", spec.path[3:].strip(), *spec.args], cwd
    target = cwd / spec.path
    if spec.path.endswith(".py"):
        return [sys.executable, "-u", str(target), *spec.args], cwd
    if target.exists():
        return [str(target), *spec.args], cwd
    return [shutil.which(spec.path) or spec.path, *spec.args], cwd


def describe_exit(code: int) -> str:
    """`exit code 1` or `killed by SIGSEGV`."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


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
        configs = plan_run(dataflow, run.run_id, run.name, run.folder, run.control)
        self.direct = DirectLinks(configs, {spec.id for spec in dataflow.nodes if spec.is_dynamic})
        self._can_pin = affinity.usable_cpus() is not None
        self.nodes: dict[str, NodeState] = {}
        for spec in dataflow.nodes:
            log = NodeLog(spec.id, self.out_dir / f"{spec.id}.log", terminal)
            self.nodes[spec.id] = NodeState(spec, configs[spec.id], log)
        self._readers: dict[str, list[str]] = {}  # "node/output" -> reader node ids
        subscribers: dict[str, list[str]] = {}
        for spec in dataflow.nodes:
            for inp in spec.inputs.values():
                table = subscribers if inp.is_timer else self._readers
                if spec.id not in table.setdefault(inp.source, []):
                    table[inp.source].append(spec.id)
        self._ctx = zmq.Context()
        self._ctx.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        self._clock = HybridLogicalClock()
        endpoints = {nid: n.config.receive_endpoint for nid, n in self.nodes.items()}
        self.timers = Timers(self._ctx, subscribers, endpoints, self.direct.timer_ends)
        self._notify: dict[str, zmq.Socket[bytes]] = {}
        self._eos: set[tuple[str, str]] = set()  # (reader, source) pairs whose end-of-stream arrived
        self._flushes: dict[str, tuple[bytes, set[tuple[str, str]]]] = {}  # waiting senders
        self._control: zmq.Socket[bytes] | None = None
        self.stopping = False
        self.stop_reason = ""
        self._term_at = 0.0
        self._kill_at = 0.0
        self._signal: int | None = None
        self.started = 0.0
        self._next_status = 0.0

    # -- public ---------------------------------------------------------------------
    def run(self, duration: float | None = None) -> int:
        """Run until done; 0 when no node failed, 1 otherwise."""
        previous = self._install_signals()
        self._control = self._ctx.socket(zmq.ROUTER)
        self._control.setsockopt(zmq.LINGER, 0)
        self._control.bind(self.run_info.control)
        self.started = time.monotonic()
        if not self._can_pin and any(n.spec.cpu_affinity for n in self.nodes.values()):
            self.terminal.say("cpu_affinity is ignored: this system cannot pin processes to CPUs")
        try:
            for node in self.nodes.values():
                if node.spec.is_dynamic:
                    node.state = "waiting"
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
        return 1 if any(n.state == "failed" for n in self.nodes.values()) else 0

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
            if node.state == "restarting":
                node.state = "exited"
            if node.state in ("running", "waiting", "pending"):
                self._send(node.spec.id, wire.KIND_STOP, b"")
        self._term_at = now + self.grace
        self._kill_at = self._term_at + KILL_AFTER_S

    # -- processes -------------------------------------------------------------------
    def _spawn(self, node: NodeState) -> None:
        argv, cwd = node_command(node.spec, self.dataflow.base_dir)
        env = dict(os.environ)
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        env.update(self.dataflow.env)
        env.update(node.spec.env)
        env.update(self.extra_env)
        env[ENV_VAR] = node.config.to_json()
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(COMPAT_DIR), env.get("PYTHONPATH", "")]))
        try:
            with affinity.inherited(node.spec.cpu_affinity if self._can_pin else ()):
                node.proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    pass_fds=self.direct.fds(node.spec.id),
                )
        except OSError as exc:
            node.state = "failed"
            node.failure = f"could not start `{' '.join(argv)}`: {exc.strerror or exc}"
            self.terminal.say(f"node `{node.spec.id}` failed: {node.failure}")
            self._close_outputs(node.spec.id)
            return
        assert node.proc.stdout is not None and node.proc.stderr is not None
        node.log.follow(node.proc.stdout, err=False)
        node.log.follow(node.proc.stderr, err=True)
        node.pid = node.proc.pid
        node.state = "running"
        node.signalled = False
        node.started_at = time.monotonic()

    def _supervise(self, duration: float | None) -> None:
        assert self._control is not None
        end = None if duration is None else self.started + duration
        while True:
            if self._control.poll(LOOP_MS):
                self._answer_control()
            now = time.monotonic()
            if self._signal is not None:
                name, self._signal = signal.Signals(self._signal).name, None
                self.stop(f"{name} received")
            if end is not None and now >= end and not self.stopping:
                self.stop(f"--duration {duration:g} s reached")
            self._reap(now)
            if now >= self._next_status:
                self.terminal.status(self.status_line())
                self._next_status = now + STATUS_PERIOD_S
            if self.stopping:
                self._escalate(now)
            if all(
                n.state in ("exited", "failed") or (n.state == "waiting" and self.stopping) for n in self.nodes.values()
            ):
                return

    def _reap(self, now: float) -> None:
        for node in self.nodes.values():
            if node.state == "restarting" and now >= node.restart_at:
                node.log.note(f"restart {node.restarts}")
                self._spawn(node)
                continue
            if node.state != "running" or node.proc is None:
                continue
            code = node.proc.poll()
            if code is not None:
                self._ended(node, code, now)

    def _ended(self, node: NodeState, code: int, now: float) -> None:
        node.exit_code = code
        self.timers.disable(node.spec.id)
        self._delivered(node.spec.id)  # an exited reader holds up no sender
        node.log.note(f"exited: {describe_exit(code)}")
        ran = now - node.started_at
        if node.signalled:
            self.terminal.say(
                f"node `{node.spec.id}` did not stop within {self.grace:g} s of STOP: {describe_exit(code)}"
            )
            node.state = "exited"
        elif code != 0:
            node.failure = f"{describe_exit(code)} after {ran:.1f} s"
            tail = "\n".join(f"    | {line}" for line in node.log.stderr_tail)
            detail = f"; its last stderr lines:\n{tail}" if tail else ""
            self.terminal.say(f"node `{node.spec.id}` failed: {node.failure}{detail}")
            node.state = "failed"
        else:
            node.state = "exited"
        policy = node.spec.restart_policy
        limit = node.spec.max_restarts
        wants = policy == "always" or (policy == "on-failure" and code != 0 and not node.signalled)
        if wants and not self.stopping and (limit == 0 or node.restarts < limit):
            node.restarts += 1
            node.state = "restarting"
            node.restart_at = now + node.spec.restart_delay
            self.terminal.say(f"restarting node `{node.spec.id}` ({node.restarts}) in {node.spec.restart_delay:g} s")
            return
        for spec in node.config.inputs.values():  # it reads no more: senders need not keep frames for it
            if spec.shm_prefix:
                finish_reader(spec.shm_prefix, spec.shm_line)
        if not self.stopping:
            self._close_outputs(node.spec.id)

    def _close_outputs(self, node_id: str) -> None:
        """Tell the readers of a node that has ended that its outputs are closed."""
        for output in self.nodes[node_id].spec.outputs:
            source = f"{node_id}/{output}"
            for reader in self._readers.get(source, []):
                self._send(reader, wire.KIND_CLOSED, source.encode())

    def _escalate(self, now: float) -> None:
        for node in self.nodes.values():
            if node.state != "running" or node.proc is None or node.proc.poll() is not None:
                continue
            if now >= self._kill_at:
                self._signal_group(node, signal.SIGKILL)
            elif now >= self._term_at and not node.signalled:
                self._signal_group(node, signal.SIGTERM)

    def _signal_group(self, node: NodeState, sig: int) -> None:
        node.signalled = True
        try:
            os.killpg(node.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    # -- messages ----------------------------------------------------------------------
    def _send(self, node_id: str, kind: int, source: bytes, value: Any = None) -> None:
        sock = self._notify.get(node_id)
        if sock is None:
            sock = self._ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100)
            sock.connect(self.nodes[node_id].config.receive_endpoint)
            self._notify[node_id] = sock
        try:
            sock.send_multipart(wire.encode(kind, source, self._clock.now(), value), zmq.NOBLOCK)
        except zmq.Again:
            self.terminal.say(f"node `{node_id}` is not reading its inputs; a control message was not delivered")

    def _answer_control(self) -> None:
        assert self._control is not None
        while True:
            try:
                identity, raw = self._control.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                continue  # not [identity, body]
            try:
                request = zmq.utils.jsonapi.loads(raw)
                if not isinstance(request, dict):
                    raise TypeError("a request is a JSON object")
                answer = self._handle(request, identity)
            except (ValueError, KeyError, TypeError) as exc:
                answer = {"ok": False, "error": f"bad request: {exc}"}
            if answer is not None:
                self._control.send_multipart([identity, zmq.utils.jsonapi.dumps(answer)])

    def _handle(self, request: dict[str, Any], identity: bytes) -> dict[str, Any] | None:
        op = request.get("op")
        node = self.nodes.get(request.get("node", ""))
        if op == "stats" and node is not None:
            self._record_stats(node, request)
            return None
        if op == "eos" and node is not None:
            self._delivered(node.spec.id, str(request.get("source", "")))
            return None
        if op == "flush" and node is not None:
            return self._flush(node.spec.id, identity)
        if op == "ready" and node is not None:
            if node.spec.is_dynamic:
                node.state, node.pid, node.started_at = "running", int(request.get("pid", 0)), time.monotonic()
            self.timers.enable(node.spec.id)
            return None
        if op == "bye" and node is not None:
            node.drops = dict(request.get("drops", {}))
            node.sent, node.received = int(request.get("sent", node.sent)), int(request.get("received", node.received))
            if node.spec.is_dynamic and node.proc is None:
                node.state = "exited"
                self.timers.disable(node.spec.id)
                self._delivered(node.spec.id)
                if not self.stopping:
                    self._close_outputs(node.spec.id)
            return None
        if op == "list":
            return {"ok": True, **self.status()}
        if op == "stop":
            self.stop(str(request.get("reason", "requested by `car stop`")))
            return {"ok": True} if request.get("reply", True) else None
        if op == "node_config":
            if node is None:
                return {"ok": False, "error": f"this dataflow has no node `{request.get('node')}`"}
            if not node.spec.is_dynamic:
                return {
                    "ok": False,
                    "error": f"node `{node.spec.id}` is started by car; set `path: dynamic` to run it by hand",
                }
            if node.state != "waiting":
                return {"ok": False, "error": f"node `{node.spec.id}` is already {node.state}"}
            return {"ok": True, "config": node.config.to_json()}
        if op == "exited" and node is not None:
            if node.state != "exited":
                node.state = "running"  # a dynamic node that never said ready
                self._ended(node, int(request.get("code", 0)), time.monotonic())
            return {"ok": True}
        return {"ok": False, "error": f"unknown request `{op}`"}

    def status(self) -> dict[str, Any]:
        """What `car list` shows about this run."""
        return {
            "name": self.run_info.name,
            "run_id": self.run_info.run_id,
            "dataflow": str(self.dataflow.file),
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "nodes": [
                {
                    "id": n.spec.id,
                    "state": n.state,
                    "pid": n.pid,
                    "restarts": n.restarts,
                    "rate": round(n.rate, 1),
                    "status": n.status,
                }
                for n in self.nodes.values()
            ],
        }

    def _record_stats(self, node: NodeState, stats: dict[str, Any]) -> None:
        now = time.monotonic()
        sent, received = int(stats.get("sent", 0)), int(stats.get("received", 0))
        if node.reported_at:
            node.rate = (sent + received - node.sent - node.received) / max(now - node.reported_at, 1e-3)
        node.sent, node.received, node.reported_at = sent, received, now
        node.status = str(stats.get("status", ""))[:120]

    def status_line(self) -> str:
        """One line: each running node's message rate, then what nodes say they do."""
        rates = "  ".join(
            f"{n.spec.id} {n.rate:.0f}/s" for n in self.nodes.values() if n.state == "running" and n.reported_at
        )
        said = "  |  ".join(n.status for n in self.nodes.values() if n.status and n.state == "running")
        return f"{rates}  |  {said}" if said else rates

    def _flush(self, node_id: str, identity: bytes) -> dict[str, Any] | None:
        """Answer once every reader of `node_id` has the end of its streams (see Node.close)."""
        pending = {
            (reader, f"{node_id}/{output}")
            for output in self.nodes[node_id].spec.outputs
            for reader in self._readers.get(f"{node_id}/{output}", [])
            if self.nodes[reader].state in ("running", "pending", "restarting")
        } - self._eos
        if not pending:
            return {"ok": True, "pending": []}
        self._flushes[node_id] = (identity, pending)
        return None

    def _delivered(self, reader: str, source: str = "") -> None:
        """A reader has the end of `source` (or of everything, when it exited)."""
        if source:
            self._eos.add((reader, source))
        for node_id, (identity, pending) in list(self._flushes.items()):
            pending -= {(r, s) for r, s in pending if r == reader and (not source or s == source)}
            if not pending:
                del self._flushes[node_id]
                assert self._control is not None
                self._control.send_multipart([identity, zmq.utils.jsonapi.dumps({"ok": True, "pending": []})])

    # -- the end -----------------------------------------------------------------------
    def _shutdown(self) -> None:
        self.terminal.status("")
        self.timers.stop()
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                self._signal_group(node, signal.SIGKILL)
                node.proc.wait()
            if node.pid:
                try:  # anything the node left behind in its process group
                    os.killpg(node.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            node.log.close()
        self._ctx.destroy(linger=0)
        self.direct.close()
        remove_run(self.run_info)

    def summary(self) -> list[str]:
        """Lines describing how the run ended."""
        failed = [n for n in self.nodes.values() if n.state == "failed"]
        elapsed = time.monotonic() - self.started
        lines = [
            f"run `{self.run_info.name}` ended after {elapsed:.1f} s: {len(self.nodes) - len(failed)} of {len(self.nodes)} nodes ok"
        ]
        lines += [f"  node `{n.spec.id}` failed: {n.failure}" for n in failed]
        for node in self.nodes.values():
            for where, count in node.drops.items():
                lines.append(f"  node `{node.spec.id}` dropped {count} message(s): {where}")
        traffic = ", ".join(
            f"{n.spec.id} {n.sent} sent / {n.received} received" for n in self.nodes.values() if n.sent or n.received
        )
        if traffic:
            lines.append(f"  messages: {traffic}")
        for node_id, count in self.timers.undelivered.items():
            lines.append(f"  node `{node_id}` missed {count} timer tick(s): its queue was full")
        if self.timers.skipped:
            lines.append(f"  timers skipped {self.timers.skipped} tick(s): the machine was too busy")
        lines.append(f"  logs: {self.out_dir}/")
        return lines

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
