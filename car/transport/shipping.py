"""What `car sync` asks a machine's daemon (code and builds shipped to it), and its answers, named by direction.

They travel inside `cluster.AskMachine` (the CLI to the coordinator), `cluster.MachineRequest`
(the coordinator to the daemon) and back in `cluster.MachineAnswer` / `cluster.MachineReply`,
encoded by car.transport.control, over the coordinator's authenticated links.

- `ClientToMachine`: `OfferFiles` (the hashes of what a folder should hold), `WriteFiles`
  (pieces of the files that differ), `BuildHere` (run this machine's nodes' builds).
- `MachineReply`: `FilesWanted`, `FilesWritten`, `Built`.

A folder is a node's `working_dir` as the dataflow file says it: a relative one is in the
daemon's home folder (seed 001's rule), an empty one is the home folder itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from car.transport.control import ControlMessage

PIECE_BYTES = 1 << 20  # one piece of a file, at most
MESSAGE_BYTES = 4 << 20  # the pieces of one WriteFiles, at most (more go in the next)


@dataclass(frozen=True, kw_only=True)
class FileOffer:
    """A file a folder should hold: its path (POSIX, relative to the folder), content hash, size and mode."""

    path: str
    sha256: str
    size: int
    mode: int = 0o644


@dataclass(frozen=True, kw_only=True)
class FilePiece:
    """`data`: the bytes of file `path` from `offset` on; the file is complete (and checked against `sha256`)
    when `offset + len(data) == size`."""

    path: str
    offset: int
    data: bytes
    size: int
    sha256: str
    mode: int = 0o644


@dataclass(frozen=True)
class ClientToMachine(ControlMessage):
    """A request of the `car` command for a machine's daemon (relayed by the coordinator)."""


@dataclass(frozen=True)
class OfferFiles(ClientToMachine):
    """The files `folder` should hold: answered `FilesWanted` (those it lacks or holds otherwise)."""

    TYPE: ClassVar[str] = "offer_files"
    folder: str = ""
    files: list[FileOffer] = field(default_factory=list)


@dataclass(frozen=True)
class WriteFiles(ClientToMachine):
    """Pieces of files for `folder`, each file written whole or not at all (a temporary name, then renamed):
    answered `FilesWritten`, or declined naming the file that could not be."""

    TYPE: ClassVar[str] = "write_files"
    folder: str = ""
    pieces: list[FilePiece] = field(default_factory=list)


@dataclass(frozen=True)
class BuildHere(ClientToMachine):
    """Run the builds of this machine's nodes of the dataflow `text` (read from `file`), cached
    (car.cache.builds): answered `Built`."""

    TYPE: ClassVar[str] = "build_here"
    text: str = ""
    file: str = ""
    force: bool = False


@dataclass(frozen=True)
class MachineReply(ControlMessage):
    """A machine daemon's answer to a `ClientToMachine` request."""


@dataclass(frozen=True)
class FilesWanted(MachineReply):
    """The offered files the folder lacks or holds otherwise, and where the folder is on the machine."""

    TYPE: ClassVar[str] = "files_wanted"
    wanted: list[str] = field(default_factory=list)
    folder: str = ""


@dataclass(frozen=True)
class FilesWritten(MachineReply):
    """The files that the pieces completed."""

    TYPE: ClassVar[str] = "files_written"
    written: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Built(MachineReply):
    """What `car build --machine M --json` printed there (`report`: its JSON), what it said, and its exit code."""

    TYPE: ClassVar[str] = "built"
    report: str = ""
    said: str = ""
    code: int = 0
