"""`car sync FILE`: send each machine the files its nodes need, then run their builds there (and `car start` first).

For every node placed on a machine that does not share this host's files, the files it needs
(car.plan.files) go into its `working_dir` on that machine, through the coordinator over its
authenticated links (car.transport.shipping): the machine says which of the offered files it
lacks or holds otherwise (by content hash), and only those are sent, each written whole or
not at all. Then that machine runs its nodes' builds, cached (`car build --machine M`: a
build whose inputs are unchanged is skipped). A file a machine cannot take, or a build that
fails, is one error naming the machine and the file or node, and nothing starts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

from car.commands.common import byte_size, coordinator_option, dataflow_text, json_option, load_or_refuse, say
from car.content.store import file_hash
from car.plan.coordinator_client import ask, control_endpoint
from car.plan.files import FilesError, node_files
from car.plan.runs import RunError
from car.spec.model import Dataflow, Placement
from car.transport import cluster, control, shipping
from car.transport.states import MachineState

OFFER_TIMEOUT_S = 60.0  # a machine hashing what its folder holds
WRITE_TIMEOUT_S = 60.0  # a machine writing one message's pieces
BUILD_TIMEOUT_S = 900.0  # a machine's builds, by default

R = TypeVar("R", bound=shipping.MachineReply)


class BuildFailed(RunError):
    """A build on a machine failed (`car sync` exits 1, as `car build` does)."""


@dataclass(frozen=True)
class Destination:
    """A folder on a machine, and the files it takes from a folder here."""

    machine: str
    working_dir: str  # as the dataflow says it: relative ones are in the machine's home folder
    source: Path
    paths: tuple[str, ...]


@dataclass
class MachineSync:
    """What one machine got: files sent and unchanged (as paths in its home folder), bytes sent, its builds."""

    sent: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    bytes: int = 0
    builds: list[dict[str, object]] = field(default_factory=list)  # `car build --json`'s node rows
    seconds: float = 0.0


def sync_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car sync`."""
    parser.add_argument("file", help="a dataflow file (YAML)")
    parser.add_argument("--force", action="store_true", help="run every build step there, even unchanged ones")
    parser.add_argument(
        "--build-timeout", type=float, default=BUILD_TIMEOUT_S, metavar="S", help="give a machine's builds this long"
    )
    json_option(parser)
    coordinator_option(parser)


def cmd_sync(args: argparse.Namespace) -> int:
    """Send every machine its nodes' files and run their builds there."""
    from car.daemon.machine import local_machines

    here = frozenset(local_machines())
    dataflow = load_or_refuse(args.file, Placement(here, checking=None))
    text = dataflow_text(args.file)
    target, _ = control_endpoint(args.coordinator_addr)
    try:
        report = sync(dataflow, text, target, force=args.force, build_timeout=args.build_timeout, quiet=args.json)
    except BuildFailed as exc:
        say(str(exc))
        return 1
    if args.json:
        print(json.dumps({"machines": {machine: _row(done) for machine, done in report.items()}}))
    elif not report:
        say("every node runs on a machine that shares this host's files: nothing to send")
    return 0


def sync(
    dataflow: Dataflow,
    text: str,
    target: str,
    force: bool = False,
    build_timeout: float = BUILD_TIMEOUT_S,
    quiet: bool = False,
) -> dict[str, MachineSync]:
    """Ship and build for every machine of `dataflow` that does not share this host's files (its placement's
    `here`); RunError for the first file or build that fails (nothing is started by it)."""
    tell = (lambda _: None) if quiet else say
    report: dict[str, MachineSync] = {}
    found = destinations(dataflow)
    if found:
        machines = ask(target, cluster.ListMachines(), cluster.Machines).machines
        connected = sorted(row.machine for row in machines if row.state == MachineState.CONNECTED)
        missing = sorted({d.machine for d in found} - set(connected))
        if missing:
            raise RunError(cluster.not_connected(missing, connected))
    for destination in found:
        done = report.setdefault(destination.machine, MachineSync())
        started = time.monotonic()
        _ship(target, destination, done)
        done.seconds += time.monotonic() - started
        tell(
            f"machine `{destination.machine}`: {_count(done.sent)} sent ({byte_size(done.bytes)}), "
            f"{len(done.unchanged)} unchanged"
        )
    for machine in sorted(report):
        if not any(node.builds for node in dataflow.nodes if node.machine == machine):
            continue
        started = time.monotonic()
        built = _ask(
            target,
            machine,
            shipping.BuildHere(text, str(dataflow.file), force),
            shipping.Built,
            build_timeout,
        )
        report[machine].seconds += time.monotonic() - started
        rows = _build_rows(machine, built)
        report[machine].builds = rows
        for row in rows:
            tell(f"machine `{machine}`: `{row['node']}` built: {row['outcome']} ({row['seconds']} s)")
        if built.code != 0:
            failed = next((row["node"] for row in rows if row["outcome"] == "failed"), "")
            what = f"the build of node `{failed}`" if failed else "its builds"
            raise BuildFailed(
                f"machine `{machine}`: {what} failed, so nothing was started:\n{_tail(built.said)}".rstrip()
            )
    return report


def destinations(dataflow: Dataflow) -> list[Destination]:
    """The folders on machines that do not share this host's files, and what each takes (FilesError: too much)."""
    placement = dataflow.placement or Placement(frozenset())
    grouped: dict[tuple[str, str], tuple[Path, set[str]]] = {}
    for node in dataflow.nodes:
        if not node.machine or placement.is_local(node.machine):
            continue
        _, paths = grouped.setdefault((node.machine, node.working_dir), (dataflow.source_folder(node), set()))
        try:
            paths.update(node_files(dataflow, node))
        except FilesError as exc:
            raise RunError(str(exc)) from None
    return [
        Destination(machine, working_dir, source, tuple(sorted(paths)))
        for (machine, working_dir), (source, paths) in sorted(grouped.items())
    ]


def _ship(target: str, destination: Destination, done: MachineSync) -> None:
    """Offer the destination's files; send those the machine wants, in messages of at most MESSAGE_BYTES."""
    offers = []
    for path in destination.paths:
        local = destination.source / path
        try:
            info = local.stat()
            offers.append(shipping.FileOffer(path=path, sha256=file_hash(local), size=info.st_size, mode=info.st_mode))
        except OSError as exc:
            raise RunError(f"cannot read {local} to send it: {exc.strerror or exc}") from None
    offer = shipping.OfferFiles(destination.working_dir, offers)
    wanted = set(_ask(target, destination.machine, offer, shipping.FilesWanted, OFFER_TIMEOUT_S).wanted)
    shown = {o.path: str(PurePosixPath(destination.working_dir) / o.path) for o in offers}
    done.unchanged.extend(shown[o.path] for o in offers if o.path not in wanted)
    batch: list[shipping.FilePiece] = []
    batch_bytes = 0
    for offer_ in (o for o in offers if o.path in wanted):
        for piece in _pieces(destination.source, offer_):
            if batch and batch_bytes + len(piece.data) > shipping.MESSAGE_BYTES:
                _write(target, destination, batch)
                batch, batch_bytes = [], 0
            batch.append(piece)
            batch_bytes += len(piece.data)
        done.sent.append(shown[offer_.path])
        done.bytes += offer_.size
    if batch:
        _write(target, destination, batch)


def _pieces(source: Path, offer: shipping.FileOffer) -> list[shipping.FilePiece]:
    """A file's content in pieces of at most PIECE_BYTES, with the hash of what was read (not what was offered:
    a file changed meanwhile is sent as it is now)."""
    try:
        data = (source / offer.path).read_bytes()
    except OSError as exc:
        raise RunError(f"cannot read {source / offer.path} to send it: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    step = shipping.PIECE_BYTES
    return [
        shipping.FilePiece(
            path=offer.path,
            offset=at,
            data=data[at : at + step],
            size=len(data),
            sha256=digest,
            mode=offer.mode & 0o777,
        )
        for at in range(0, max(len(data), 1), step)
    ]


def _write(target: str, destination: Destination, pieces: list[shipping.FilePiece]) -> None:
    _ask(target, destination.machine, shipping.WriteFiles(destination.working_dir, pieces), shipping.FilesWritten)


def _ask(
    target: str, machine: str, request: shipping.ClientToMachine, answer: type[R], timeout: float = WRITE_TIMEOUT_S
) -> R:
    """One request to `machine`'s daemon through the coordinator; RunError with its reason when it fails."""
    message = cluster.AskMachine(machine, control.encode(request), timeout)
    reply = ask(target, message, cluster.MachineReply, timeout=timeout + 5.0)
    try:
        found = control.decode(reply.reply, shipping.MachineReply)
    except control.ControlError as exc:
        raise RunError(f"machine `{machine}` answered something this car cannot read: {exc}") from None
    if not isinstance(found, answer):
        raise RunError(f"machine `{machine}` answered {type(found).__name__}, not {answer.__name__}")
    return found


def _build_rows(machine: str, built: shipping.Built) -> list[dict[str, object]]:
    """The node rows of `car build --json` as the machine printed them (none if it printed no report)."""
    try:
        rows = json.loads(built.report)["nodes"] if built.report.strip() else []
    except (ValueError, KeyError, TypeError):
        raise RunError(f"machine `{machine}`: its build printed no report:\n{_tail(built.said)}") from None
    return [row for row in rows if isinstance(row, dict)]


def _row(done: MachineSync) -> dict[str, object]:
    return {
        "sent": done.sent,
        "unchanged": done.unchanged,
        "bytes": done.bytes,
        "builds": done.builds,
        "seconds": round(done.seconds, 3),
    }


def _count(paths: list[str]) -> str:
    return f"{len(paths)} file{'s' if len(paths) != 1 else ''}"


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
