"""Files `car sync` sends to this machine: which of them a folder lacks, and writing them whole or not at all.

A folder is a node's `working_dir` as the dataflow says it: a relative one is in this
machine's home folder (seed 001's rule), an absolute one stays as it is. A file arrives in
pieces (car.transport.shipping.FilePiece) into a hidden temporary file beside it; the last
piece checks the content's hash and renames it into place, so a reader never sees half a
file and a failed sync leaves the old file as it was. Any file that cannot be taken (disk
full, permission, a folder in the way, a path that leaves the folder) is a `ShipmentError`
naming it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path, PurePosixPath

from car.content.store import file_hash
from car.transport.shipping import FileOffer, FilePiece

PARTIAL_SUFFIX = ".car-partial"


class ShipmentError(Exception):
    """A file this machine cannot take: says which and why."""


def machine_folder(working_dir: str) -> Path:
    """Where a node's `working_dir` is on this machine (`""`: the home folder)."""
    return Path.home() / working_dir  # an absolute working_dir stays as it is


def inside(folder: Path, path: str) -> Path:
    """`path` (POSIX, relative) under `folder`; ShipmentError when it would leave it."""
    pure = PurePosixPath(path)
    if not pure.parts or pure.is_absolute() or ".." in pure.parts or "\0" in path:
        raise ShipmentError(f"refused `{path}`: a file sent must stay inside its folder {folder}")
    return folder.joinpath(*pure.parts)


def wanted(folder: Path, offers: list[FileOffer]) -> list[str]:
    """The offered files that `folder` lacks or holds with other content; a file whose content matches but
    whose mode does not gets its mode here and now. The folder is made: a node's `working_dir` exists once it is
    synced, even when nothing is sent to it (a node run from an installed module)."""
    folder.mkdir(parents=True, exist_ok=True)
    missing = []
    for offer in offers:
        target = inside(folder, offer.path)
        try:
            info = target.stat()
            same = target.is_file() and info.st_size == offer.size and file_hash(target) == offer.sha256
        except OSError:
            same = False
        if not same:
            missing.append(offer.path)
        elif info.st_mode & 0o777 != offer.mode & 0o777:
            try:
                target.chmod(offer.mode & 0o777)
            except OSError:
                missing.append(offer.path)
    return missing


def write(folder: Path, pieces: list[FilePiece]) -> list[str]:
    """Write the pieces (in order); the paths of the files they completed. ShipmentError for the first file that
    cannot be taken, whose partial file is removed (files completed before it stay: each one is whole)."""
    written = []
    for piece in pieces:
        target = inside(folder, piece.path)
        partial = target.with_name(f".{target.name}{PARTIAL_SUFFIX}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if piece.offset == 0:
                partial.unlink(missing_ok=True)
            elif not partial.is_file() or partial.stat().st_size != piece.offset:
                raise ShipmentError(f"{target}: a piece at {piece.offset} came without the ones before it")
            with open(partial, "ab") as out:
                out.write(piece.data)
            if piece.offset + len(piece.data) < piece.size:
                continue
            if file_hash(partial) != piece.sha256:
                raise ShipmentError(f"{target}: its content arrived changed (hash mismatch): sync again")
            partial.chmod(piece.mode & 0o777)
            os.replace(partial, target)
            written.append(piece.path)
        except (OSError, ShipmentError) as exc:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            if isinstance(exc, ShipmentError):
                raise
            raise ShipmentError(f"cannot write {target}: {exc.strerror or exc}") from None
    return written
