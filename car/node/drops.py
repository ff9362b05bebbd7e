"""What drops on a node's behalf shares: a flag set when something was dropped since drops were last reported, and
what a source of drops beside the node's inbox and outbox offers for its reports."""

from __future__ import annotations

from typing import Protocol


class DropFlag:
    """Set when something was dropped since the node last reported drops (shared by its inbox, outbox and drop sources)."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = False


class DropSource(Protocol):
    """Something that drops messages on a node's behalf and counts them (car.operators.bounds): the node
    reports its drops with its own (car.node.api.Node.count_drops)."""

    def drop_counts(self) -> dict[str, int]:
        """Messages dropped so far, by where (`input NAME`)."""

    def unreported_drops(self) -> list[str]:
        """What was dropped since the last call, as phrases."""

    def superseded(self) -> int:
        """Messages replaced by newer ones by design (`queue_size: 1`): counted, not warned about."""
