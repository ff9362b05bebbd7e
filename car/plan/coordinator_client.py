"""How the `car` command finds and asks a coordinator.

The address comes from `--coordinator-addr HOST[:PORT]`, else `$CAR_COORDINATOR`, else the
coordinator running on this host (it leaves `coordinator.json` in the runtime folder),
else 127.0.0.1 on dora's control port, 6012.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TypeVar

import zmq

from car.plan.runs import RunError, pid_alive, runtime_root
from car.transport import cluster, control
from car.transport.keys import COORDINATOR, KeysError, load_keys

R = TypeVar("R", bound=cluster.CoordinatorReply)
ENV_VAR = "CAR_COORDINATOR"


def coordinator_file() -> Path:
    """Where a coordinator on this host says where it listens."""
    return runtime_root() / "coordinator.json"


def local_coordinator() -> str:
    """The control endpoint of the coordinator running on this host, or ""."""
    try:
        entry = json.loads(coordinator_file().read_text())
        return str(entry["control"]) if pid_alive(int(entry["pid"])) else ""
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def endpoint(address: str, port: int) -> str:
    """tcp://HOST:PORT from `HOST`, `HOST:PORT` or `tcp://HOST:PORT`."""
    text = address.removeprefix("tcp://")
    host, _, given = text.rpartition(":") if ":" in text else (text, "", "")
    if given and not given.isdigit():
        raise RunError(f"`{address}`: the port must be a number (HOST or HOST:PORT)")
    return f"tcp://{host or '127.0.0.1'}:{given or port}"


def control_endpoint(address: str | None) -> tuple[str, bool]:
    """The coordinator to ask, and whether the user named it (or one runs here)."""
    given = address or os.environ.get(ENV_VAR)
    if given:
        return endpoint(given, cluster.CONTROL_PORT), True
    here = local_coordinator()
    return (here, True) if here else (f"tcp://127.0.0.1:{cluster.CONTROL_PORT}", False)


def ask(target: str, message: cluster.ClientToCoordinator, answer: type[R], timeout: float = 5.0) -> R:
    """One request to the coordinator at `target`; RunError with its reason when it declines or is silent."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        keys = load_keys()
        if keys is not None:
            keys.connect_to(sock, keys.peer(COORDINATOR))
        sock.connect(target)
        sock.send(control.encode(message))
        if not sock.poll(int(timeout * 1000)):
            secured = ""
            if keys is not None:
                secured = f" (with the keys in {keys.folder}: is trusted/coordinator.key its key, does it trust ours?)"
            raise RunError(
                f"no coordinator answered at {target} within {timeout:g} s{secured}: start one "
                "with `car up` (or `car coordinator`), or give --coordinator-addr HOST"
            )
        try:
            reply = control.decode(sock.recv(), cluster.CoordinatorReply)
        except control.ControlError as exc:
            raise RunError(f"the coordinator at {target} answered something this car cannot read: {exc}") from None
    except KeysError as exc:
        raise RunError(str(exc)) from None
    finally:
        sock.close()
    if isinstance(reply, cluster.Declined):
        raise RunError(reply.error)
    if not isinstance(reply, answer):
        raise RunError(f"the coordinator answered {type(reply).__name__}, not {answer.__name__}")
    return reply
