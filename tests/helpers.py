"""Helpers shared by the tests: run `car`, write dataflows, find leftover processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from mcap.reader import make_reader

from car.plan.runs import RunError, ask, find_run
from car.recording import channels as mcap_channels
from car.spec.loader import load_dataflow
from car.spec.model import DataflowError, Problem
from car.transport import control

ROOT = Path(__file__).resolve().parent.parent


def car(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m car ARGS` to completion and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "car", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def launch(flow: Path) -> str:
    """`car launch` a dataflow in its folder (logs in out/), require success; its stderr."""
    result = car("launch", str(flow), "--out", str(flow.parent / "out"), cwd=flow.parent, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stderr


def start_car(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start `python -m car ARGS` in the background (output captured)."""
    return subprocess.Popen(
        [sys.executable, "-m", "car", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def launched(flow: Path | str, name: str, nodes: tuple[str, ...], folder: Path, *options: str) -> Iterator[None]:
    """`car launch` a flow in the background (in `folder`, logs in folder/out) until the block ends, once
    `nodes` run; then `car stop` it, and it must end cleanly."""
    proc = start_car("launch", str(flow), *options, "--name", name, "--out", str(folder / "out"), cwd=folder)
    try:
        wait_for_nodes(name, nodes, timeout=60)
        yield
        stopped = car("stop", "-d", name)
        assert stopped.returncode == 0, stopped.stderr
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def run_status(name: str) -> control.RunStatus:
    """What the daemon of run `name` says of it (`car list`)."""
    return ask(find_run(name), control.ListRun(), control.RunStatus)


def wait_for_nodes(name: str, nodes: tuple[str, ...], timeout: float = 30.0) -> control.RunStatus:
    """Wait until run `name` exists and `nodes` are running in it; its status then."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = run_status(name)
            states = {n.id: n.state for n in status.nodes}
            if all(states.get(node) == "running" for node in nodes):
                return status
        except RunError:  # still starting
            pass
        assert time.monotonic() < deadline, f"run {name}: {nodes} not running after {timeout:g} s"
        time.sleep(0.1)


# `src` (counting_source) on a 20 ms timer, and `sink`, which reads both its outputs: one machine, no deploy. The
# tests count every message, so the sink's queues hold 2 s of them (dora's default 10 drops the oldest after 0.2 s of
# a reader held up, which a busy machine does).
COUNTING_FLOW = """
nodes:
  - id: src
    path: src.py
    inputs: {tick: dora/timer/millis/20}
    outputs: [small, frame]
  - id: sink
    path: sink.py
    inputs: {small: {source: src/small, queue_size: 100}, frame: {source: src/frame, queue_size: 100}}
"""


def counting_source(count: int) -> str:
    """A node that sends `small` ({"n": n}) and `frame` (480 x 640 x 3, every byte n % 256, metadata n) on each
    input, and ends after `count` of them."""
    return f"""
import numpy as np
from car import Node

node = Node()
n = 0
for event in node:
    if event.type == "INPUT":
        n += 1
        node.send_output("small", {{"n": n}})
        node.send_output("frame", np.full((480, 640, 3), n % 256, np.uint8), {{"n": n}})
        if n >= {count}:
            break
"""


# A sender of 3000 messages of 1 kB as fast as it can, and a reader that takes 1 ms for each (3 s in all, longer
# than a sender's linger): what the sender dropped goes to burst.json, what the reader got to lagging.json.
BURST_PY = """
import json
from car import Node
node = Node()
for n in range(3000):
    node.send_output("n", {"n": n, "pad": "x" * 1000})
node.close()
json.dump(node.drop_counts(), open("burst.json", "w"))
"""
LAGGING_PY = """
import json, time
from car import Node
node = Node()
got = []
for event in node:
    if event.type == "INPUT":
        got.append(event.value["n"])
        time.sleep(0.001)
json.dump({"got": got, "drops": node.drop_counts()}, open("lagging.json", "w"))
"""


def burst_accounted(folder: Path) -> tuple[list[int], int]:
    """What the lagging reader of BURST_PY got, and how many messages were dropped (by the sender or its queue)."""
    report = json.loads((folder / "lagging.json").read_text())
    sender_drops = sum(json.loads((folder / "burst.json").read_text()).values())
    return report["got"], sender_drops + sum(report["drops"].values())


SINK = """
    from car import Node
    for event in Node():
        pass
"""


def read_recording(path: Path) -> dict[str, list[tuple[int, object, dict[str, object]]]]:
    """Every channel's messages: log time, value and metadata, decoded as `car replay` would."""
    found: dict[str, list[tuple[int, object, dict[str, object]]]] = {}
    with open(path, "rb") as stream:
        for schema, channel, message in make_reader(stream).iter_messages():
            assert schema is not None
            value, metadata = mcap_channels.decode(schema.name, message.data)
            found.setdefault(channel.topic, []).append((message.log_time, value, metadata))
    return found


def write_flow(folder: Path, yaml_text: str, **nodes: str) -> Path:
    """Write `flow.yml` and the node scripts (name=code, `_` in names becomes `.`)."""
    for name, code in nodes.items():
        (folder / name.replace("_py", ".py")).write_text(textwrap.dedent(code))
    path = folder / "flow.yml"
    path.write_text(textwrap.dedent(yaml_text))
    return path


def problems(folder: Path, text: str, files: tuple[str, ...] = ("a.py", "b.py")) -> list[Problem]:
    """Write dataflow `text` (and empty node files) to `folder`, load it, return the problems it must have."""
    for name in files:
        (folder / name).write_text("")
    path = folder / "flow.yml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    with pytest.raises(DataflowError) as info:
        load_dataflow(path)
    return info.value.problems


def assert_problems_mention(found: list[Problem], *expected: str) -> None:
    """Every `expected` text appears in the problems found (their locations included)."""
    text = "\n".join(str(p) for p in found)
    for part in expected:
        assert part in text, part


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if text in cmdline and "zombie" not in state:
            found.append(int(entry.name))
    return found


def wait_until(
    what: str,
    done: Callable[[], object],
    timeout: float = 30.0,
    poll: float = 0.01,
    alive: subprocess.Popen[Any] | None = None,
) -> None:
    """Poll until `done()` is true (the event itself), failing with `what` after a generous deadline,
    or at once (with its output) if the process `alive` it depends on has ended."""
    deadline = time.monotonic() + timeout
    while not done():
        if alive is not None and alive.poll() is not None:
            out, err = alive.communicate()
            raise AssertionError(f"{what}: the process ended with {alive.returncode}\n{out}\n{err}")
        assert time.monotonic() < deadline, f"not seen within {timeout:g} s: {what}"
        time.sleep(poll)


def wait_until_gone(text: str, timeout: float) -> list[int]:
    """Wait until no process mentions `text`; return those still alive at the timeout."""
    deadline = time.monotonic() + timeout
    alive = processes_mentioning(text)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = processes_mentioning(text)
    return alive


class Emulator(NamedTuple):
    """A running board emulator: its pty path and its process."""

    port: str
    process: subprocess.Popen[str]


@contextmanager
def board_emulator(*args: str, capture_stderr: bool = False) -> Iterator[Emulator]:
    """Run `python -m sim.board_emulator ARGS` for the duration of the block (its stderr in a pipe if asked)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.board_emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if capture_stderr else None,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/pts/"), port
        yield Emulator(port, proc)
    finally:
        proc.send_signal(signal.SIGCONT)  # in case a test stopped it
        proc.terminate()
        proc.wait(timeout=10)


def drive(board: Any, left: float, right: float, seconds: float) -> tuple[float, float]:
    """Command the wheels for `seconds` (a BoardClient, feeding its watchdog); the mean measured wheel speeds
    over the second half (one reading is coarse: a 10 ms window holds a handful of encoder ticks)."""
    end = time.monotonic() + seconds
    settled = end - seconds / 2
    seen: dict[float, tuple[float, float]] = {}
    while time.monotonic() < end:
        board.set_wheel_speeds(left, right)
        reading = board.latest()
        if reading is not None and time.monotonic() >= settled:
            seen[reading.t] = reading.wheel_speeds
        time.sleep(0.02)
    speeds = list(seen.values()) or [(0.0, 0.0)]
    return sum(s[0] for s in speeds) / len(speeds), sum(s[1] for s in speeds) / len(speeds)
