"""`car keys pair`: two hosts' keys exchanged once both people confirm the same short code; a code not confirmed on
both trusts nothing; a paired daemon is let in by its coordinator (real processes, real TCP; car.transport.pairing)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq.auth

from car.transport.pairing import Channel, Hello, short_code
from tests.helpers import car

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pair(tmp_path: Path, answers: tuple[str, str]) -> tuple[subprocess.CompletedProcess[str], ...]:
    """`car keys pair --listen` in folder a (the coordinator's host), `car keys pair` from folder b as m1."""
    for name, extra in (("a", ["--coordinator"]), ("b", [])):
        assert car("keys", "init", "--dir", str(tmp_path / name), *extra).returncode == 0
    port = free_port()
    base = [sys.executable, "-m", "car", "keys", "pair"]
    listener = subprocess.Popen(
        [*base, "--listen", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path / "a")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert listener.stdout is not None and "waiting for" in listener.stdout.readline()
    joiner = subprocess.Popen(
        [*base, f"127.0.0.1:{port}", "--dir", str(tmp_path / "b"), "--as", "m1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    codes = []
    for proc, answer in zip((listener, joiner), answers, strict=True):
        assert proc.stdout is not None and proc.stdin is not None
        shown = proc.stdout.readline()  # "pairing with `NAME`: the code is 123 456"
        codes.append(shown.rsplit("is ", 1)[1].strip())
        proc.stdin.write(answer + "\n")
        proc.stdin.flush()
    results = []
    for proc in (listener, joiner):
        out, err = proc.communicate(timeout=30)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert codes[0] == codes[1] and len(codes[0]) == 7  # both hosts show the same code: "123 456"
    return tuple(results)


def public(path: Path) -> bytes:
    return zmq.auth.load_certificate(path)[0]


def test_confirmed_on_both_hosts_each_trusts_the_other_and_a_daemon_is_then_let_in(tmp_path: Path) -> None:
    listener, joiner = pair(tmp_path, ("y", "yes"))
    assert listener.returncode == 0 and joiner.returncode == 0, (listener.stderr, joiner.stderr)
    assert public(tmp_path / "a" / "trusted" / "m1.key") == public(tmp_path / "b" / "self.key")
    assert public(tmp_path / "b" / "trusted" / "coordinator.key") == public(tmp_path / "a" / "self.key")
    # the pairing is what CurveZMQ needs: the coordinator lets the paired daemon in
    runtime = tmp_path / "rt"
    runtime.mkdir()
    daemon_port, control_port = free_port(), free_port()
    env = {"XDG_RUNTIME_DIR": str(runtime), "XDG_STATE_HOME": str(tmp_path / "state")}
    coordinator = start(
        "coordinator",
        "--bind",
        "127.0.0.1",
        "--daemon-port",
        str(daemon_port),
        "--control-port",
        str(control_port),
        keys=tmp_path / "a",
        env=env,
    )
    daemon = start(
        "daemon", "--machine-id", "m1", "--coordinator-addr", f"127.0.0.1:{daemon_port}", keys=tmp_path / "b", env=env
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            listed = car_env(env, tmp_path / "a", "machines", "--coordinator-addr", f"127.0.0.1:{control_port}")
            if "m1" in listed.stdout:
                break
            assert time.monotonic() < deadline, (listed.stdout, listed.stderr)
            time.sleep(0.2)
    finally:
        for proc in (daemon, coordinator):
            proc.terminate()
            proc.communicate(timeout=30)


def test_a_code_not_confirmed_on_both_hosts_trusts_nothing(tmp_path: Path) -> None:
    listener, joiner = pair(tmp_path, ("y", "n"))
    assert listener.returncode == 1 and joiner.returncode == 1
    assert "nothing was trusted" in listener.stderr and "nothing was trusted" in joiner.stderr
    assert not (tmp_path / "a" / "trusted" / "m1.key").exists()
    assert not (tmp_path / "b" / "trusted" / "coordinator.key").exists()


def test_the_code_depends_on_both_keys_in_either_order_and_a_swapped_key_changes_it() -> None:
    a, b, mallory = "A" * 40, "B" * 40, "M" * 40
    assert short_code(a, b) == short_code(b, a)
    assert short_code(a, mallory) != short_code(a, b) != short_code(mallory, b)
    left, right = socket.socketpair()
    ends = Channel(left), Channel(right)
    ends[0].send({"name": "x", "public": a})
    assert ends[1].hello(Hello("y", b)) == Hello("x", a)
    ends[0].close()
    ends[1].close()


def start(*args: str, keys: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "car", *args],
        env={**os.environ, **env, "CAR_KEYS_DIR": str(keys)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def car_env(env: dict[str, str], keys: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "car", *args],
        env={**os.environ, **env, "CAR_KEYS_DIR": str(keys)},
        capture_output=True,
        text=True,
        timeout=30,
    )
