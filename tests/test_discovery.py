"""Coordinators and daemons that find each other on a LAN (mDNS): two network namespaces joined by a veth pair, a
daemon started without --coordinator-addr, and `car machines --discover` on both sides (car.transport.discovery)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import wait_until_gone

pytestmark = pytest.mark.slow


def test_a_daemon_finds_its_coordinator_and_each_side_sees_the_other(two_namespaces: tuple[str, str]) -> None:
    pytest.importorskip("zeroconf", reason="discovery needs the zeroconf package (the dev extra installs it)")
    a, b = two_namespaces
    root = Path(tempfile.mkdtemp(prefix="cl", dir="/tmp"))
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(root / "rt"),
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_CONFIG_HOME": str(root / "config"),
    }
    (root / "rt").mkdir()
    car = [sys.executable, "-m", "car"]
    keys = {ns: root / f"keys-{ns}" for ns in (a, b)}  # beyond 127.0.0.1 only with keys: the hub in a, m2 in b
    for command in (
        ["keys", "init", "--coordinator", "--dir", str(keys[a])],
        ["keys", "init", "--dir", str(keys[b])],
        ["keys", "trust", "coordinator", str(keys[a] / "self.key"), "--dir", str(keys[b])],
        ["keys", "trust", "m2", str(keys[b] / "self.key"), "--dir", str(keys[a])],
    ):
        subprocess.run([*car, *command], env=env, check=True, capture_output=True)

    def start(ns: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, *car, *args],
            env={**env, "CAR_KEYS_DIR": str(keys[ns])},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *car, *args],
            env={**env, "CAR_KEYS_DIR": str(keys[ns])},
            capture_output=True,
            text=True,
            timeout=60,
        )

    coordinator = start(a, "coordinator", "--bind", "10.78.0.1")
    daemon = None
    try:
        deadline = time.monotonic() + 30
        while not any(
            f["kind"] == "coordinator"
            for f in json.loads(run(b, "machines", "--discover", "--seconds", "1", "--json").stdout or "[]")
        ):
            assert time.monotonic() < deadline and coordinator.poll() is None, "the coordinator was not announced"
        daemon = start(b, "daemon", "--machine-id", "m2", "--listen", "*")  # no --coordinator-addr: it looks
        while True:
            listed = run(a, "machines", "--json", "--coordinator-addr", "10.78.0.1:6012")
            if any(m["machine"] == "m2" and m["state"] == "connected" for m in json.loads(listed.stdout or "[]")):
                break
            assert time.monotonic() < deadline and daemon.poll() is None, (listed.stdout, listed.stderr)
            time.sleep(0.2)
        seen_from_a = json.loads(run(a, "machines", "--discover", "--seconds", "2", "--json").stdout)
        m2 = next(f for f in seen_from_a if f["kind"] == "daemon")
        assert (m2["name"], m2["address"], m2["paired"]) == ("m2", "10.78.0.2", True), seen_from_a
        seen_from_b = json.loads(run(b, "machines", "--discover", "--seconds", "2", "--json").stdout)
        hub = next(f for f in seen_from_b if f["kind"] == "coordinator")
        assert hub["address"] == "10.78.0.1" and hub["port"] == 53290 and hub["control_port"] == 6012
        assert hub["paired"] is True and len(hub["public_key"]) == 40  # m2 trusts the hub's key
    finally:
        said = {}
        for name, proc in (("daemon", daemon), ("coordinator", coordinator)):
            if proc is not None:
                proc.terminate()
                said[name] = proc.communicate(timeout=30)[1]
        left = wait_until_gone(str(root), timeout=10)
        assert not left
    assert "found the coordinator on" in said["daemon"] and "(10.78.0.1:53290)" in said["daemon"], said
