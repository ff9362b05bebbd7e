"""Node processes: the command that starts one, its state, how it ended, and signals to its group."""

from __future__ import annotations

import enum
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from car.daemon.logs import NodeLog
from car.plan.config import NodeConfig
from car.spec.model import NodeSpec


class NodeStatus(enum.StrEnum):
    """Where a node is in its life."""

    PENDING = "pending"  # not started yet
    WAITING = "waiting"  # a dynamic node: waits for `car run-node`
    RUNNING = "running"
    RESTARTING = "restarting"  # ended; starts again after its restart_delay
    EXITED = "exited"  # ended without error, or was stopped
    FAILED = "failed"  # ended with an error and is not restarted


ALIVE = (NodeStatus.PENDING, NodeStatus.RUNNING, NodeStatus.RESTARTING)


@dataclass
class NodeState:
    """The daemon's view of one node."""

    spec: NodeSpec
    config: NodeConfig
    log: NodeLog
    proc: subprocess.Popen[bytes] | None = None
    state: NodeStatus = NodeStatus.PENDING
    started_at: float = 0.0
    restarts: int = 0
    restart_at: float = 0.0
    signalled: bool = False  # car sent it SIGTERM/SIGKILL
    exit_code: int | None = None
    failure: str = ""
    drops: dict[str, int] = field(default_factory=dict)
    superseded: int = 0  # messages replaced in its queue_size 1 inputs (by design)
    pid: int = 0
    sent: int = 0  # messages, as the node last reported them
    received: int = 0
    rate: float = 0.0  # messages per second, sent and received, over the last report period
    status: str = ""  # what the node says it is doing (Node.set_status)
    reported_at: float = 0.0
    ready: bool = False  # said Ready since it last started
    handed_out: bool = False  # a dynamic node's configuration went to `car run-node`, which has not said it ended


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


def signal_group(node: NodeState, sig: int) -> None:
    """Send `sig` to the node's process group (it runs in a session of its own)."""
    node.signalled = True
    try:
        os.killpg(node.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
