"""What a node receives: one `Event` per message, end of stream, STOP or error."""

from __future__ import annotations

from typing import Any

from car.transport.hlc import Timestamp


class Event:
    """One event: `.type` is INPUT, INPUT_CLOSED, STOP or ERROR.

    Also readable as `event["type"]`, `event["id"]`, `event["value"]`,
    `event["metadata"]` like dora's events.
    """

    __slots__ = ("error", "id", "metadata", "source", "timestamp", "type", "value")

    def __init__(
        self,
        type: str,
        id: str = "",
        value: Any = None,
        metadata: dict[str, Any] | None = None,
        timestamp: Timestamp | None = None,
        source: str = "",
        error: str = "",
    ):
        self.type = type
        self.id = id
        self.value = value
        self.metadata = metadata if metadata is not None else {}
        self.timestamp = timestamp
        self.source = source
        self.error = error

    def __getitem__(self, key: str) -> Any:
        if key in Event.__slots__:
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        """Like dict.get."""
        return getattr(self, key) if key in Event.__slots__ else default

    def keys(self) -> tuple[str, ...]:
        """The keys `event[...]` answers."""
        return Event.__slots__

    def __contains__(self, key: object) -> bool:
        return key in Event.__slots__

    def __repr__(self) -> str:
        detail = f" id={self.id!r}" if self.id else ""
        if self.error:
            detail += f" error={self.error!r}"
        return f"<Event {self.type}{detail}>"
