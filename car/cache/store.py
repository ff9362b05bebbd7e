"""The cache folder: files by the SHA-256 of their content, and what each build step last did.

`$XDG_CACHE_HOME/car` (default `~/.cache/car`): `blobs/AB/ABCD...` hold contents, written
once (to a temporary name, then renamed); `steps/KEY.json` the record of a step (its inputs'
hashes and stats, its outputs' hashes), replaced whole on each run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from car.plan.files import file_hash

CHUNK = 1 << 20


def cache_root() -> Path:
    """Where the cache lives: $XDG_CACHE_HOME/car, or ~/.cache/car."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "car"


@dataclass(frozen=True)
class Seen:
    """A file as a step saw it: its content's hash, and the stat that lets a later look skip hashing it."""

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


@dataclass
class StepRecord:
    """What a step read and wrote when it last succeeded."""

    key: str
    command: str
    inputs: dict[str, Seen] = field(default_factory=dict)
    outputs: dict[str, Seen] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)  # files it removed: removed again when it is skipped
    seconds: float = 0.0

    def to_json(self) -> str:
        """The record as stored."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> StepRecord:
        """A stored record (ValueError when it is not one)."""
        raw: dict[str, Any] = json.loads(text)
        raw["inputs"] = {k: Seen(**v) for k, v in raw["inputs"].items()}
        raw["outputs"] = {k: Seen(**v) for k, v in raw["outputs"].items()}
        return cls(**raw)


class Store:
    """The cache folder (see the module's docstring)."""

    def __init__(self, root: Path | None = None):
        self.root = root or cache_root()

    def record(self, key: str) -> StepRecord | None:
        """The step's last successful record, or None (never run, or unreadable: it runs)."""
        try:
            return StepRecord.from_json((self.root / "steps" / f"{key}.json").read_text())
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def save(self, record: StepRecord) -> None:
        """Keep a step's record, replacing the last."""
        self._write(self.root / "steps" / f"{record.key}.json", record.to_json().encode())

    def forget(self, key: str) -> None:
        """A step that failed is never cached: its record goes."""
        (self.root / "steps" / f"{key}.json").unlink(missing_ok=True)

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
