"""A recording's cleaning: the time ranges to leave out of training, in a small file beside it.

`car clean DATA.mcap` (learn.clean) writes `DATA.clean.json`; the recording itself is never
rewritten. `car train` (learn.dataset) leaves out every frame inside a dropped range:

    {"recording": "DATA.mcap", "drop": [{"start_ns": 1765000000000000000, "end_ns": ...}, ...]}

Times are the recording's log times (nanoseconds), inclusive at both ends.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUFFIX = ".clean.json"


class SidecarError(ValueError):
    """A cleaning file that cannot be read: the message names it and what is wrong."""


@dataclass(frozen=True)
class Dropped:
    """One range of a recording to leave out."""

    start_ns: int
    end_ns: int


@dataclass
class Sidecar:
    """The ranges of one recording to leave out."""

    drop: list[Dropped] = field(default_factory=list)

    @staticmethod
    def path_for(recording: Path) -> Path:
        """Where a recording's cleaning is kept: beside it, `NAME.clean.json`."""
        return recording.with_name(recording.stem + SUFFIX)

    @classmethod
    def load(cls, recording: Path) -> Sidecar:
        """The recording's cleaning (none dropped when there is no file)."""
        path = cls.path_for(recording)
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SidecarError(f"{path}: not a cleaning file ({exc}); remove it or clean again") from None
        return cls.from_json(raw, str(path))

    @classmethod
    def from_json(cls, raw: Any, label: str) -> Sidecar:
        """Parse the file's content; SidecarError naming `label` and the field."""
        if not isinstance(raw, dict) or not isinstance(raw.get("drop", []), list):
            raise SidecarError(f'{label}: a cleaning file is {{"drop": [{{"start_ns": N, "end_ns": N}}, ...]}}')
        ranges = []
        for k, item in enumerate(raw.get("drop", []), start=1):
            start, end = (item.get(key) if isinstance(item, dict) else None for key in ("start_ns", "end_ns"))
            if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) or end < start:
                raise SidecarError(f"{label}: drop range {k} needs whole-number start_ns <= end_ns, got {item!r}")
            ranges.append(Dropped(start, end))
        return cls(sorted(ranges, key=lambda r: r.start_ns))

    def keeps(self, stamp_ns: int) -> bool:
        """Whether a message logged at `stamp_ns` is kept for training."""
        return not any(r.start_ns <= stamp_ns <= r.end_ns for r in self.drop)

    def to_json(self, recording: Path) -> dict[str, Any]:
        """The file's content."""
        return {"recording": recording.name, "drop": [{"start_ns": r.start_ns, "end_ns": r.end_ns} for r in self.drop]}

    def save(self, recording: Path) -> Path:
        """Write the cleaning beside the recording (atomically); its path."""
        path = self.path_for(recording)
        temporary = path.with_name(path.name + ".partial")
        temporary.write_text(json.dumps(self.to_json(recording), indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)
        return path
