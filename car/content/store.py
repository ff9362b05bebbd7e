"""Content hashes, and the cache folder's blobs: files kept by the SHA-256 of their content.

`$XDG_CACHE_HOME/car` (default `~/.cache/car`): `blobs/AB/ABCD...` hold contents, written
once (to a temporary name, then renamed), so a reader never sees half a blob and two
writers of one content do not clash.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


def cache_root() -> Path:
    """Where the cache lives: $XDG_CACHE_HOME/car, or ~/.cache/car."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "car"


def file_hash(path: Path) -> str:
    """The SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Seen:
    """A file as it was seen: its content's hash, and the stat that lets a later look skip hashing it."""

    sha256: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Seen:
        """The file now."""
        info = path.stat()
        return cls(file_hash(path), info.st_size, info.st_mtime_ns)

    def same_as(self, path: Path) -> bool:
        """Whether `path` holds the same content (by its stat when that is unchanged, else by its hash)."""
        try:
            info = path.stat()
        except OSError:
            return False
        if info.st_size != self.size:
            return False
        return info.st_mtime_ns == self.mtime_ns or file_hash(path) == self.sha256


class Blobs:
    """The contents kept in the cache folder, by hash."""

    def __init__(self, root: Path | None = None):
        """`root`: the cache folder (default `cache_root()`)."""
        self.root = root or cache_root()

    def keep(self, path: Path, seen: Seen) -> None:
        """Keep a file's content (once per content)."""
        blob = self._blob(seen.sha256)
        if not blob.exists():
            blob.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=blob.parent, delete=False) as handle, path.open("rb") as source:
                shutil.copyfileobj(source, handle, CHUNK)
            os.replace(handle.name, blob)

    def has(self, seen: Seen) -> bool:
        """Whether the content is kept."""
        return self._blob(seen.sha256).exists()

    def restore(self, path: Path, seen: Seen) -> None:
        """Write a kept content back to `path` (its folders made), with the modification time it had."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle,
            self._blob(seen.sha256).open("rb") as source,
        ):
            shutil.copyfileobj(source, handle, CHUNK)
        os.replace(handle.name, path)
        os.utime(path, ns=(seen.mtime_ns, seen.mtime_ns))

    def _blob(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
            handle.write(data)
        os.replace(handle.name, path)
