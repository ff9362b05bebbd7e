"""What each build step last did, beside the blobs of the cache folder (car.content.store).

`steps/KEY.json` holds the record of a step (its inputs' hashes and stats, its outputs'
hashes), replaced whole on each run; the outputs' contents are blobs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from car.content.store import Blobs, Seen


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


class Store(Blobs):
    """The cache folder: the blobs, and each step's last successful record."""

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
