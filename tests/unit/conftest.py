"""The unit tier: tests that start no process and open no real socket, so all of it runs in seconds.

Every test here is held to that: starting a process, or binding or connecting a socket
(a ZeroMQ one or the operating system's), fails the test with a sentence saying where it
belongs instead (`tests/`, the end-to-end tier). Decisions are driven over in-memory
transports (car.transport.router.MemoryPort) and the parts' own in-memory back ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
from typing import Any, NoReturn

import pytest
import zmq


def _refuse(what: str) -> Any:
    def refused(*_: object, **__: object) -> NoReturn:
        raise AssertionError(f"a unit test {what}: it belongs in tests/ (the end-to-end tier), not tests/unit/")

    return refused


@pytest.fixture(autouse=True)
def no_processes_or_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse what the unit tier promises not to do."""
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("starts a process"))
    monkeypatch.setattr(os, "fork", _refuse("forks"))
    monkeypatch.setattr(os, "posix_spawn", _refuse("starts a process"))
    monkeypatch.setattr(socket.socket, "bind", _refuse("binds a socket"))
    monkeypatch.setattr(socket.socket, "connect", _refuse("connects a socket"))
    monkeypatch.setattr(zmq.Socket, "bind", _refuse("binds a ZeroMQ socket"))
    monkeypatch.setattr(zmq.Socket, "connect", _refuse("connects a ZeroMQ socket"))
