"""The `car` command as a user types it: real processes, real runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import ROOT, car, launched, run_status, write_flow

TICKER = """
    nodes:
      - id: ticker
        path: ticker.py
        inputs: {tick: dora/timer/millis/20}
    """
TICKER_PY = """
    from car import Node
    for event in Node():
        if event.type == "INPUT":
            print("tick", event.id, flush=True)
"""


def test_logs_of_an_ended_run_are_read_from_its_folder_at_once(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, TICKER, ticker_py=TICKER_PY)
    ran = car("launch", str(flow), "--name", "short", "--duration", "1", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    started = time.monotonic()
    named = car("logs", "ticker", "-d", "short", cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    assert "ticker | tick tick" in named.stdout
    assert time.monotonic() - started < 4.5  # it did not wait 5 s for a coordinator (sanity bound, generous)
    latest = car("logs", "ticker", "--json", "--lines", "2", cwd=tmp_path)
    lines = [json.loads(line) for line in latest.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]["node"] == "ticker"
    missing = car("logs", "nobody", "-d", "short", cwd=tmp_path)
    assert missing.returncode == 2 and "has no log of a node `nobody` (nodes with logs: ticker)" in missing.stderr


def test_the_only_running_graph_needs_no_name_and_what_prints_data_prints_json(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, TICKER, ticker_py=TICKER_PY)
    checked = car("check", str(flow), "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)["nodes"][0]["id"] == "ticker"
    with launched(flow, "only", ("ticker",), tmp_path):
        listed = json.loads(car("list", "--json").stdout)
        assert [run["name"] for run in listed["runs"]] == ["only"] and listed["placed"] == []
        assert listed["runs"][0]["nodes"][0]["state"] == "running"
        restarted = car("node", "restart", "ticker")  # no -d: the only graph running
        assert restarted.returncode == 0, restarted.stderr
        assert run_status("only").nodes[0].restarts == 1
        nodes = json.loads(car("node", "list", "--json").stdout)
        assert [(n["id"], n["restarts"]) for n in nodes] == [("ticker", 1)]


def test_a_taken_view_port_is_refused_before_anything_starts_naming_the_option(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        flow = write_flow(tmp_path, TICKER, ticker_py=TICKER_PY)
        result = car("launch", str(flow), "--view", "--view-port", str(port), "--duration", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert f"--view-port {port}: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "pick another --view-port" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing started


def test_version_imports_almost_nothing() -> None:
    code = (
        "import sys\nfrom car.commands.cli import main\nmain(['--version'])\n"
        "print(sorted(m for m in ('zmq', 'numpy', 'yaml', 'msgpack', 'car.daemon', 'car.node') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    version, heavy = result.stdout.splitlines()
    assert version.startswith("car ") and heavy == "[]"


def test_the_board_emulator_leaves_no_folder_behind(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "car", "board", "emulator"],
        env={**os.environ, "XDG_RUNTIME_DIR": str(scratch)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert emulator.stdout is not None
        device = emulator.stdout.readline().strip()  # printed once the board runs
        assert device.startswith("/dev/pts/"), emulator.stderr.read() if emulator.stderr else ""
        assert [p.name[:13] for p in scratch.iterdir()] == ["car-board-fs-"]
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=30)
    assert list(scratch.iterdir()) == []
