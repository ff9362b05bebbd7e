"""What the node's inbox and outbox share: a flag set when something was dropped since drops were last reported."""

from __future__ import annotations


class DropFlag:
    """Set when something was dropped since the node last reported drops (shared by inbox and outbox)."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = False
