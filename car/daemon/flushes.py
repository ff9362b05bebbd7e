"""End-of-stream bookkeeping: which readers have the end of which streams, and who waits for it.

A node that closes (Node.close) sends the end of its streams to its readers and asks the
daemon (`Flush`) to answer once every live reader has them; readers say so
(`EndOfStream`; readers on other machines through the coordinator, `EndsDelivered`), or end,
which counts for every stream they read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from car.transport.control import StreamEnd


@dataclass
class _Waiting:
    identity: bytes  # the sender's control identity, answered when `pending` is empty
    pending: set[StreamEnd]


class Flushes:
    """The run's end-of-stream deliveries; `answer(identity)` replies to a sender waiting for them."""

    def __init__(self, answer: Callable[[bytes], None]):
        self._answer = answer
        self._delivered: set[StreamEnd] = set()
        self._waiting: dict[str, _Waiting] = {}  # sender node id -> what it waits for

    def wait(self, sender: str, identity: bytes, expected: set[StreamEnd]) -> bool:
        """True when `expected` has all arrived; otherwise `identity` is answered once it has."""
        pending = expected - self._delivered
        if not pending:
            return True
        self._waiting[sender] = _Waiting(identity, pending)
        return False

    def delivered(self, reader: str, source: str = "") -> None:
        """`reader` has the end of `source`, or of every stream when `source` is empty (it ended)."""
        if source:
            self._delivered.add(StreamEnd(reader, source))
        for sender, waiting in list(self._waiting.items()):
            waiting.pending = {d for d in waiting.pending if d.reader != reader or (source and d.source != source)}
            if not waiting.pending:
                del self._waiting[sender]
                self._answer(waiting.identity)
