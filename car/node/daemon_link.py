"""A node's control channel to its daemon, and the thread that watches the daemon.

The node tells its daemon typed messages (car.transport.control: `Ready`, `Stats`,
`EndOfStream`, `Flush`, `Bye`, `StopDataflow`) on a DEALER socket; a watcher thread
reports message counts once a second and stops the node when its daemon is gone (even
after SIGKILL: it waits on a pidfd).
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from collections.abc import Callable

import zmq

from car.plan.config import NodeConfig
from car.plan.runs import pid_alive
from car.transport import control, wire
from car.transport.hlc import Timestamp

STATS_PERIOD_S = 1.0  # how often a node reports its message counts and status to the daemon
DAEMON_GONE_GRACE_S = 3.0


class DaemonLink:
    """Tells the daemon what the node does; `watch` runs the watcher thread."""

    def __init__(self, config: NodeConfig, ctx: zmq.Context[zmq.Socket[bytes]], linger_ms: int):
        self.config = config
        self._ctx = ctx
        self._socket = ctx.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, linger_ms)
        self._socket.connect(config.control_endpoint)
        self.daemon_gone = False
        self._telling = threading.Lock()
        self._wake_watcher, self._watcher_wakes = os.pipe()
        self._watcher: threading.Thread | None = None

    def tell(self, message: control.NodeToDaemon) -> None:
        """Send without waiting; nothing happens when no daemon listens."""
        try:
            with self._telling:  # a node's threads may tell at once (an operator runtime's workers)
                self._socket.send(control.encode(message), zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # no daemon to tell

    def flush(self, deadline: float) -> list[str] | None:
        """Ask the daemon to answer once every reader has this node's end of stream; the readers
        still pending (empty: all have it), or None when no answer came before `deadline`."""
        try:
            self._socket.send(control.encode(control.Flush(self.config.node_id)))
            while self._socket.poll(max(0, int((deadline - time.monotonic()) * 1000))):
                try:
                    reply = control.decode(self._socket.recv(), control.DaemonReply)
                except control.ControlError:
                    continue
                if isinstance(reply, control.Flushed):
                    return reply.pending
        except zmq.ZMQError:
            pass
        return None

    def watch(self, stats: Callable[[], control.Stats], period: Callable[[], float]) -> None:
        """Start the watcher thread: `stats()` is sent every `period()` seconds."""
        self._watcher = threading.Thread(target=self._watch, args=(stats, period), name="car-daemon-watch", daemon=True)
        self._watcher.start()

    def report_now(self) -> None:
        """Make the watcher thread report at once (someone started watching: see Node._stats_period)."""
        os.write(self._watcher_wakes, b"r")

    def close(self) -> None:
        """End the watcher thread (the socket goes with the node's context)."""
        os.write(self._watcher_wakes, b"x")
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=2.0)

    def _watch(self, stats: Callable[[], control.Stats], period: Callable[[], float]) -> None:
        """Report message counts every `period()` seconds; stop this node when its daemon is gone."""
        pid = self.config.daemon_pid
        try:
            fd = os.pidfd_open(pid) if pid else -1
        except OSError:
            fd = -1
        reporter = self._ctx.socket(zmq.DEALER)
        reporter.setsockopt(zmq.LINGER, 0)
        reporter.connect(self.config.control_endpoint)
        waits = [self._wake_watcher] + ([fd] if fd >= 0 else [])
        while True:
            ready = select.select(waits, [], [], period())[0]
            if self._wake_watcher in ready and b"x" in os.read(self._wake_watcher, 64):  # the node is closing
                reporter.close()
                return
            if fd in ready or (pid and fd < 0 and not pid_alive(pid)):
                break
            try:
                reporter.send(control.encode(stats()), zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # the daemon is busy; the next report will do
        reporter.close()
        self.daemon_gone = True
        try:
            sock = self._ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.config.receive_endpoint)
            sock.send_multipart(wire.encode(wire.KIND_STOP, b"", Timestamp(time.time_ns(), 0)), zmq.NOBLOCK)
            sock.close()
            print(f"car: the daemon (pid {pid}) is gone; stopping node `{self.config.node_id}`", file=sys.stderr)
        except (zmq.ZMQError, OSError):
            pass  # our stderr went with the daemon, or the node is closing anyway
        finally:
            time.sleep(DAEMON_GONE_GRACE_S)
            os._exit(1)
