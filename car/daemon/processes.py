"""Node processes: their state, the command that starts one, starting it, how it ended, signals to its group."""

from __future__ import annotations

import enum
import os
import shutil
import signal
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from car.daemon import affinity
from car.daemon.logs import NodeLog
from car.daemon.usage import Usage
from car.plan.config import NodeConfig
from car.plan.runs import pid_alive
from car.spec.model import NodeSpec
from car.spec.parameters import Parameter
from car.transport.states import NodeStatus

COMPAT_DIR = Path(__file__).parent.parent / "compat"  # car's `dora` package, for dora's Python nodes


class Asked(enum.Enum):
    """What `car node` asked of one running node (it is sent STOP alone, then signalled as in a run's stop)."""

    RESTART = "restart"  # start it again once it ended: its readers see a gap, not an end
    RELOAD = "reload"  # as RESTART, for its new code (`car launch --hot-reload`: car.daemon.reloads)
    REPLACE = "replace"  # as RESTART, with its new definition (`car node replace`: car.daemon.edits)
    STOP = "stop"  # it ends for good: its readers get the end of its streams
    REMOVE = "remove"  # as STOP, and it leaves the graph (`car node remove`)

    @property
    def again(self) -> bool:
        """Whether the node starts again once it ended."""
        return self not in (Asked.STOP, Asked.REMOVE)

    @property
    def why(self) -> str:
        """Who asked, in words."""
        return "its file changed (--hot-reload)" if self is Asked.RELOAD else f"asked by `car node {self.value}`"


class Process(Protocol):
    """A started node's process, as the supervisor watches it (a `subprocess.Popen`, or a test's)."""

    pid: int

    def poll(self) -> int | None:
        """Its exit code, or None while it runs."""

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to end; its exit code."""


@dataclass
class NodeState:
    """The daemon's view of one node."""

    spec: NodeSpec
    config: NodeConfig
    log: NodeLog
    proc: Process | None = None
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
    usage: Usage = field(default_factory=Usage)  # rates, CPU, memory, latency, from its reports (car.daemon.usage)
    status: str = ""  # what the node says it is doing (Node.set_status)
    ready: bool = False  # said Ready since it last started
    was_ready: bool = False  # said Ready before: a later Ready is a restart, of which its senders are told
    parameters: dict[str, Parameter] = field(default_factory=dict)  # declared by the node (their values: config)
    asked: Asked | None = None  # `car node restart|stop` sent it STOP alone, at `asked_at`
    asked_at: float = 0.0
    handed_out: bool = False  # a dynamic node's configuration went to `car run-node`, which has not said it ended
    watched: bool = False  # a dynamic node started without `car run-node`: the daemon watches its pid


def node_command(spec: NodeSpec, cwd: Path) -> tuple[list[str], Path]:
    """The argv that starts a node in the folder `cwd` (`Dataflow.node_folder`), and that folder."""
    if spec.path.startswith("-m "):
        return [sys.executable, "-u", "-m", spec.path[3:].strip(), *spec.args], cwd
    target = cwd / spec.path
    if spec.path.endswith(".py"):
        return [sys.executable, "-u", str(target), *spec.args], cwd
    if target.exists():
        return [str(target), *spec.args], cwd
    return [shutil.which(spec.path) or spec.path, *spec.args], cwd


VANISHED = 1 << 16  # the exit "code" of a process car did not start that ended without closing its node


def describe_exit(code: int) -> str:
    """`exit code 1` or `killed by SIGSEGV`."""
    if code == VANISHED:
        return "its process ended without closing the node (car did not start it: its exit status is unknown)"
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


def with_compat_path(env: dict[str, str]) -> dict[str, str]:
    """`env` with car's dora-compatible `dora` package first on PYTHONPATH, as every node gets it."""
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(COMPAT_DIR), env.get("PYTHONPATH", "")]))}


# Each node's numeric libraries work on its own thread unless the file or the environment says otherwise: their
# pools cost a small computer memory, start-up time and, spinning while they wait (OpenCV's), CPU the other nodes need.
THREAD_POOLS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENCV_FOR_THREADS_NUM": "1"}


def start_process(node: NodeState, folder: Path, env: dict[str, str], fds: list[int], cpus: tuple[int, ...]) -> str:
    """Start the node's process in `folder` (in a session of its own, pinned to `cpus`, inheriting `fds`), its
    output followed by its log (setting `node.proc` and `node.pid`); why it could not start, or "" when it runs."""
    argv, cwd = node_command(node.spec, folder)
    full = {**THREAD_POOLS, **os.environ, **env}
    full["PYTHONUNBUFFERED"] = "1"
    full = with_compat_path(full)
    try:
        with affinity.inherited(cpus):
            node.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=full,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=fds,
            )
    except OSError as exc:
        if not Path(cwd).is_dir():  # Popen names the program, not the folder it could not enter
            return f"could not start `{' '.join(argv)}`: its folder {cwd} does not exist (`car sync` makes it)"
        return f"could not start `{' '.join(argv)}`: {exc.strerror or exc}"
    assert node.proc.stdout is not None and node.proc.stderr is not None
    node.log.follow(node.proc.stdout, err=False)
    node.log.follow(node.proc.stderr, err=True)
    node.pid = node.proc.pid
    return ""


class Processes(ABC):
    """How a run's node processes are started, signalled and looked for. `OsProcesses` is the operating
    system's; a back end only starts, signals and looks, and `escalate` is decided once, here."""

    @abstractmethod
    def start(self, node: NodeState, folder: Path, env: dict[str, str], fds: list[int], cpus: tuple[int, ...]) -> str:
        """Start the node's process (setting `node.proc` and `node.pid`); "" or why it could not start."""

    @abstractmethod
    def signal(self, node: NodeState, sig: int) -> None:
        """Send `sig` to the node's process group (and note that car signalled it)."""

    @abstractmethod
    def alive(self, pid: int) -> bool:
        """Whether a process car did not start (a dynamic node's) still runs."""

    def escalate(self, node: NodeState, now: float, term_at: float, kill_at: float) -> None:
        """A stopping node: SIGTERM when it still runs at `term_at`, SIGKILL at `kill_at`."""
        if node.state != NodeStatus.RUNNING or node.proc is None or node.proc.poll() is not None:
            return
        if now >= kill_at:
            self.signal(node, signal.SIGKILL)
        elif now >= term_at and not node.signalled:
            self.signal(node, signal.SIGTERM)


class OsProcesses(Processes):
    """Node processes of the operating system: sessions of their own, output followed by their logs."""

    def start(self, node: NodeState, folder: Path, env: dict[str, str], fds: list[int], cpus: tuple[int, ...]) -> str:
        """See `start_process`."""
        return start_process(node, folder, env, fds, cpus)

    def signal(self, node: NodeState, sig: int) -> None:
        """See `signal_group`."""
        signal_group(node, sig)

    def alive(self, pid: int) -> bool:
        """Whether `pid` runs (and is not a zombie)."""
        return pid_alive(pid)


def kill_what_is_left(node: NodeState) -> None:
    """At the end of a run: SIGKILL a node process car started that still runs, and its process group."""
    if node.proc is None:
        return  # not started by car (a dynamic node): not ours to stop
    if node.proc.poll() is None:
        signal_group(node, signal.SIGKILL)
        node.proc.wait()
    if node.pid:
        try:  # anything the node left behind in its process group
            os.killpg(node.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
