"""`car launch --hot-reload`: the Python files of a run's nodes and operators, watched for changes.

Each node whose `path` is a Python file, and each operator, is watched by its file's
modification time and size (a stat every RELOAD_CHECK_S: no inotify, which the car's
kernel may lack). What a change means (`Reload`):

- an operator's file: its runtime re-imports the file and makes a new instance of the
  operator in place, between two of its events, keeping the old instance's attributes
  (as dora's hot reload does); a file that does not import leaves the old code running,
  and the runtime says why (car.operators.runtime).
- a node's file: the node is restarted (as `car node restart` does) once the file
  compiles; one that does not compile leaves the node running its old code, and says why.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

from car.spec.model import Dataflow

RELOAD_CHECK_S = 0.3


class Reload(enum.Enum):
    """What a changed file asks for."""

    OPERATOR = "operator"  # re-import it and make a new instance of the operator in its runtime
    NODE = "node"  # restart the node


@dataclass(frozen=True)
class Watched:
    """One watched file: whose code it is."""

    path: Path
    node: str
    operator: str = ""  # "" for a node's own file

    @property
    def reload(self) -> Reload:
        """What a change of this file asks for."""
        return Reload.OPERATOR if self.operator else Reload.NODE


class FileWatch:
    """The Python files of the nodes of `node_ids` in `dataflow`, and what changed since the last look."""

    def __init__(self, dataflow: Dataflow, node_ids: set[str]):
        self.watched: list[Watched] = []
        for spec in dataflow.nodes:
            if spec.id not in node_ids:
                continue
            folder = dataflow.node_folder(spec)
            if spec.operators:
                self.watched += [Watched(folder / op.python, spec.id, op.id) for op in spec.operators]
            elif spec.path.endswith(".py"):
                self.watched.append(Watched(folder / spec.path, spec.id))
        self._seen = {w.path: _stamp(w.path) for w in self.watched}

    def changed(self) -> list[Watched]:
        """The files whose content changed since the last call (or since the watch began)."""
        found = []
        for watched in self.watched:
            stamp = _stamp(watched.path)
            if stamp != self._seen[watched.path]:
                self._seen[watched.path] = stamp
                if stamp is not None:  # removed (an editor's save may remove it first): wait for it again
                    found.append(watched)
        return found


def compile_error(path: Path) -> str:
    """Why a node's Python file does not compile ("" when it does)."""
    try:
        source = path.read_bytes()
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        return f"{exc.filename}:{exc.lineno}: {exc.msg}"
    except (OSError, ValueError) as exc:
        return str(exc)
    return ""


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size
