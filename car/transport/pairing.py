"""Pairing two hosts' CurveZMQ keys with a short code both people compare (as Bluetooth and Signal do).

Over one plain TCP connection each side sends a `Hello` (the name the other should trust it
as, and its public key), then both derive the same six-digit code from the two keys
(`short_code`): a machine in the middle that swapped the keys would give each side a code
of its own. Each person compares the code on both screens and answers; each side sends its
answer, and a side trusts the other's key only when both answered yes. Public keys are
public: nothing secret crosses the wire.
"""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import asdict, dataclass

VERSION = 1
LINE_MAX = 4096


class PairingError(Exception):
    """The other side went away, or sent something that is not pairing."""


@dataclass(frozen=True)
class Hello:
    """What a side says first: the name to trust it as, and its public key (Z85)."""

    name: str
    public: str


def short_code(a: str, b: str) -> str:
    """The six digits both sides show for the public keys `a` and `b` (in either order)."""
    first, second = sorted((a, b))
    digest = hashlib.sha256(f"car-pair-v{VERSION}\n{first}\n{second}".encode()).digest()
    number = int.from_bytes(digest[:4], "big") % 1_000_000
    return f"{number // 1000:03d} {number % 1000:03d}"


class Channel:
    """One side of a pairing connection: lines of JSON each way."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._file = sock.makefile("rb")

    def send(self, record: dict[str, object]) -> None:
        """One line."""
        self._sock.sendall(json.dumps({"v": VERSION, **record}).encode() + b"\n")

    def receive(self) -> dict[str, object]:
        """The next line (PairingError when the other side went away or speaks something else)."""
        try:
            line = self._file.readline(LINE_MAX)
        except OSError as exc:
            raise PairingError(f"the other side went away ({exc})") from None
        if not line:
            raise PairingError("the other side went away before pairing ended (nothing was trusted)")
        try:
            record = json.loads(line)
        except ValueError:
            raise PairingError("the other side does not speak car's pairing") from None
        if not isinstance(record, dict) or record.get("v") != VERSION:
            raise PairingError("the other side speaks another version of car's pairing")
        return record

    def hello(self, mine: Hello) -> Hello:
        """Exchange hellos; the other side's."""
        self.send(asdict(mine))
        theirs = self.receive()
        name, public = theirs.get("name"), theirs.get("public")
        if not isinstance(name, str) or not isinstance(public, str) or len(public) != 40:
            raise PairingError("the other side sent no name and public key")
        return Hello(name, public)

    def both_confirm(self, mine: bool) -> bool:
        """Exchange the answers; whether both sides said yes."""
        self.send({"confirmed": mine})
        return mine and self.receive().get("confirmed") is True

    def close(self) -> None:
        """Close the connection."""
        self._file.close()
        self._sock.close()
