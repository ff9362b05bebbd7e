"""Requests of the `car` command that the coordinator passes on to a machine's daemon, until it answers.

Each has a token the daemon's answer repeats (`cluster.ReadLog`, `cluster.PartRequest`),
and a deadline after which the command is told the machine did not answer.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

RELAY_TIMEOUT_S = 3.0  # a daemon's answer to a request passed on to it


@dataclass(frozen=True)
class Relay:
    """A CLI's request passed on to a daemon, waiting for its answer."""

    asker: bytes
    deadline: float
    run_id: str
    machine: str


class Relays:
    """The requests passed on and not yet answered, by token."""

    def __init__(self) -> None:
        """None yet."""
        self.waiting: dict[str, Relay] = {}

    def add(self, asker: bytes, run_id: str, machine: str, now: float, timeout: float = RELAY_TIMEOUT_S) -> str:
        """The token of a new request from `asker` passed on to `machine`, given up after `timeout` seconds."""
        token = secrets.token_hex(6)
        self.waiting[token] = Relay(asker, now + timeout, run_id, machine)
        return token

    def answered(self, token: str) -> Relay | None:
        """The request an answer with `token` is for (None: unknown, or given up already)."""
        return self.waiting.pop(token, None)

    def expired(self, now: float) -> list[Relay]:
        """The requests whose machine has not answered in time (forgotten from now on)."""
        late = [token for token, relay in self.waiting.items() if now > relay.deadline]
        return [self.waiting.pop(token) for token in late]
