"""Running dataflows on this machine: where their sockets live and how to reach them.

Each run gets a private folder under the runtime root (`$XDG_RUNTIME_DIR/car`, else
`/tmp/car-<uid>`) holding its ipc:// sockets and a `run.json` that other `car`
commands (`car list`, `car stop`, `car run-node`) read to find its control socket.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import zmq

from car.transport import control
from car.transport.shm import remove_segments, segment_dir

R = TypeVar("R", bound=control.DaemonReply)


class RunError(Exception):
    """A run could not be found or did not answer."""


@dataclass(kw_only=True)
class RunInfo:
    """What `run.json` says about a running dataflow."""

    run_id: str
    name: str
    pid: int
    dataflow: str
    started: float
    out_dir: str
    control: str
    folder: str
    machine: str = ""  # "" for `car launch`; else this machine's part of a run a coordinator placed


def runtime_root() -> Path:
    """The folder that holds every run's private folder (created, mode 0700)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    root = Path(xdg) / "car" if xdg and os.access(xdg, os.W_OK) else Path(f"/tmp/car-{os.getuid()}")
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


def create_run(name: str, dataflow: str, out_dir: str, run_id: str = "", machine: str = "") -> RunInfo:
    """Make a run folder and its `run.json` for a run started by this process (`car launch`), or for
    `machine`'s part of the run `run_id` a coordinator placed (whose name the coordinator keeps unique)."""
    if not machine and name in {run.name for run in list_runs() if not run.machine}:
        raise RunError(f"a run named `{name}` is already running: pick another --name or `car stop {name}`")
    run_id = run_id or secrets.token_hex(4)
    folder = run_folder(run_id, machine)
    folder.mkdir(mode=0o700)
    info = RunInfo(
        run_id=run_id,
        name=name,
        pid=os.getpid(),
        dataflow=dataflow,
        started=time.time(),
        out_dir=out_dir,
        control=control_endpoint(folder),
        folder=str(folder),
        machine=machine,
    )
    (folder / "run.json").write_text(json.dumps(asdict(info)))
    return info


def run_folder(run_id: str, machine: str = "") -> Path:
    """The private folder of a run (of one machine's part of it, when several machines share this one)."""
    return runtime_root() / (f"{run_id}@{machine}" if machine else run_id)


def control_endpoint(folder: Path) -> str:
    """Where the daemon of the run in `folder` answers."""
    return f"ipc://{folder}/control.sock"


def remove_run(info: RunInfo) -> None:
    """Delete a run's folder (its sockets and run.json) and its shared-memory files."""
    remove_segments(segment_dir(info.folder), info.run_id)
    shutil.rmtree(info.folder, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """True while a process with this pid exists (ours or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_runs() -> list[RunInfo]:
    """Runs whose daemon is alive, oldest first; folders of dead runs are removed."""
    runs = []
    for meta in runtime_root().glob("*/run.json"):
        try:
            info = RunInfo(**json.loads(meta.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if pid_alive(info.pid):
            runs.append(info)
        else:
            remove_run(info)
    return sorted(runs, key=lambda r: r.started)


def find_run(name: str | None, machine: str = "") -> RunInfo:
    """The run called `name`, or the only run when `name` is None: of those `car launch` started, or
    `machine`'s parts of runs a coordinator placed."""
    runs = [run for run in list_runs() if run.machine == machine]
    if name is None:
        if len(runs) == 1:
            return runs[0]
        if not runs:
            raise RunError("no dataflow is running: start one with `car launch FILE`")
        raise RunError(f"several dataflows are running ({', '.join(r.name for r in runs)}): name one")
    for run in runs:
        if name in (run.name, run.run_id):
            return run
    known = ", ".join(r.name for r in runs) or "none"
    raise RunError(f"no running dataflow named `{name}` (running: {known})")


def request(info: RunInfo, message: control.ClientToDaemon, timeout: float = 3.0) -> control.DaemonReply:
    """Send one request to a run's control socket and return its answer (RunError if none, or unreadable)."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(info.control)
        sock.send(control.encode(message))
        if not sock.poll(int(timeout * 1000)):
            raise RunError(f"run `{info.name}` (pid {info.pid}) did not answer within {timeout:g} s")
        try:
            return control.decode(sock.recv(), control.DaemonReply)
        except control.ControlError as exc:
            raise RunError(
                f"run `{info.name}` (pid {info.pid}) answered something this car cannot read: {exc}"
            ) from None
    finally:
        sock.close()


def claim_dynamic_node(node_id: str) -> str:
    """The configuration (JSON) of the dynamic node `node_id` of a run on this machine, for this process to be it."""
    runs = list_runs()
    if not runs:
        raise RunError(f"no dataflow is running to start node `{node_id}` in: start one with `car launch FILE` first")
    refusals = []
    for info in runs:
        reply = request(info, control.GetNodeConfig(node_id, os.getpid()))
        if isinstance(reply, control.NodeConfigText):
            return reply.config
        refusals.append(f"run `{info.name}`: {getattr(reply, 'error', type(reply).__name__)}")
    raise RunError(f"no running dataflow has node `{node_id}` waiting to be started ({'; '.join(refusals)})")


def ask(info: RunInfo, message: control.ClientToDaemon, answer: type[R], timeout: float = 3.0) -> R:
    """`request`, expecting an answer of type `answer`; a refusal is a RunError with the daemon's reason."""
    reply = request(info, message, timeout)
    if isinstance(reply, control.Refused):
        raise RunError(reply.error)
    if not isinstance(reply, answer):
        raise RunError(f"run `{info.name}` answered {type(reply).__name__}, not {answer.__name__}")
    return reply
