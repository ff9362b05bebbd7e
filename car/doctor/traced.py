"""The car side of a graph run under strace: which nodes, how they are launched, and whose each traced thread is.

The nodes of a machine are those that deploy there (every node, when the file deploys
nowhere); when the file places others elsewhere, the run is of a copy of the file with
only this machine's nodes (inputs from the others left unfed, and said so). The run is an
ordinary `car launch` (its daemon plays the machine's daemon) under `strace -f`, optionally
inside `python -m car.doctor.confine` (car.doctor.confine), for a fixed time or until it
ends. While it runs, the daemon is asked which process each node is, so every traced
thread can be named: a node, the daemon, or another program by its command line.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from car.doctor.confine import Rule, write_rules
from car.doctor.trace import Trace, read_trace
from car.plan.runs import RunError, ask, find_run
from car.spec.model import Dataflow
from car.transport import control

DAEMON = "daemon"
POLL_S = 0.25  # how often the daemon is asked for its nodes' processes
START_S = 90.0  # what a traced run may take beyond its duration (starting Python under strace is slow)
END_S = 20.0  # how long the nodes may take to end after the daemon did, before they are killed


class DoctorError(Exception):
    """A doctor run that could not be made; the message says what to do."""


@dataclass(frozen=True)
class CarSide:
    """The nodes of one machine, and the file that runs exactly them."""

    machine: str
    nodes: tuple[str, ...]
    left_out: tuple[str, ...]  # nodes of other machines, not run
    unfed: tuple[str, ...]  # inputs of the nodes here whose source is elsewhere: `node/input`
    file: Path  # the dataflow file to launch


@dataclass
class TracedRun:
    """What one traced run gave: the trace, the processes the daemon named, and how `car launch` ended."""

    trace: Trace
    node_pids: dict[int, str]  # a node's process -> its id
    daemon_pid: int
    returncode: int
    output: str  # what `car launch` printed (both streams)
    timed_out: bool
    programs: dict[tuple[str, ...], str] = field(default_factory=dict)  # a node's argv -> its id

    @cached_property
    def signatures(self) -> set[tuple[str, frozenset[str]]]:
        """Every (call, tokens) the run made: what a failing gap's fallback is told apart from."""
        return {(call.name, call.tokens) for call in self.trace.calls}

    @property
    def nodes(self) -> set[str]:
        """The nodes this run knows by process or by command line."""
        return set(self.node_pids.values()) | set(self.programs.values())

    def last_line_of(self, node: str) -> str:
        """The last line `node` printed (as `car launch` showed it), "" if none."""
        label = f"{node} | "
        lines = [line.strip() for line in self.output.splitlines() if line.lstrip().startswith(label)]
        return lines[-1][len(label) :] if lines else ""

    def who(self, tid: int) -> str:
        """The node (or "daemon", or another program's command line) thread `tid` belongs to; "" for `car
        doctor`'s own wrapper."""
        process = self.trace.process_of(tid)
        seen = set()
        while process and process not in seen:
            seen.add(process)
            if process in self.node_pids:
                return self.node_pids[process]
            program = tuple(self.trace.programs.get(process, ()))
            if program in self.programs:
                return self.programs[program]
            if process == self.daemon_pid:
                return DAEMON
            if program and "car.doctor.confine" not in program:
                return " ".join(program[:3])
            creator = self.trace.created_by.get(process)
            process = self.trace.process_of(creator) if creator else 0
        return ""


@contextmanager
def car_side(dataflow: Dataflow, machine: str) -> Iterator[CarSide]:
    """The nodes of `machine` in `dataflow` (every node when it deploys nowhere). When others are elsewhere, a file
    with only these, written in the dataflow's folder (so relative paths hold) and removed afterwards. DoctorError
    for a machine the file does not name."""
    machines = dataflow.machines()
    if not machines:
        yield CarSide(machine, tuple(n.id for n in dataflow.nodes), (), (), dataflow.file)
        return
    if machine not in machines:
        raise DoctorError(f"{dataflow.file} places no node on `{machine}` (its machines: {', '.join(machines)})")
    here = {n.id for n in dataflow.nodes if n.machine == machine}
    raw = yaml.safe_load(dataflow.file.read_text())
    kept, unfed = [], []
    for node in raw["nodes"]:
        if node["id"] not in here:
            continue
        inputs = node.get("inputs") or {}
        for name, given in list(inputs.items()):
            source = str(given.get("source", "") if isinstance(given, dict) else given)
            if not source.startswith("dora/") and source.split("/")[0] not in here:  # dora/: timers and logs
                unfed.append(f"{node['id']}/{name}")
                del inputs[name]
        kept.append(node)
    raw["nodes"] = kept
    file = dataflow.file.parent / f".{dataflow.file.stem}.doctor-{machine}-{os.getpid()}.yml"
    try:
        file.write_text(yaml.safe_dump(raw, sort_keys=False))
    except OSError as exc:
        raise DoctorError(f"cannot write the car side's file {file} ({exc.strerror})") from None
    try:
        left_out = tuple(n.id for n in dataflow.nodes if n.id not in here)
        yield CarSide(machine, tuple(n.id for n in dataflow.nodes if n.id in here), left_out, tuple(unfed), file)
    finally:
        file.unlink(missing_ok=True)


def strace_program() -> str:
    """The path of strace; DoctorError saying how to get it."""
    found = shutil.which("strace")
    if found is None:
        raise DoctorError("car doctor traces the graph with strace, which is not installed: `apt install strace`")
    return found


@contextmanager
def work_folder(keep: str | None) -> Iterator[Path]:
    """Where traces and logs go: `keep` (made if needed, left in place), else a temporary folder removed after."""
    if keep:
        folder = Path(keep)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="car-doctor-") as made:
        yield Path(made)


def run_traced(
    side: CarSide,
    launch_options: list[str],
    duration: float,
    folder: Path,
    label: str,
    rules: list[Rule] | None = None,
    programs: dict[tuple[str, ...], str] | None = None,
) -> TracedRun:
    """Launch the car side under strace for `duration` seconds (or until it ends), failing `rules` when given;
    its trace and logs go to `folder` (files named after `label`)."""
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-")  # a gap's name, as a file and run name
    name = f"doctor-{os.getpid()}-{label}"
    trace_file = folder / f"{label}.strace"
    launch = [sys.executable, "-m", "car", "launch", str(side.file), "--name", name, "--duration", f"{duration:g}"]
    launch += ["--out", str(folder / "logs"), *launch_options]
    command = [strace_program(), "-f", "-qq", "-s", "200", "-o", str(trace_file)]
    if rules is not None:
        rules_file = folder / f"{label}.rules.json"
        write_rules(rules, str(rules_file))
        command += [sys.executable, "-m", "car.doctor.confine", str(rules_file), "--"]
    output_file = folder / f"{label}.out"
    with open(output_file, "w") as output:
        process = subprocess.Popen(command + launch, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        node_pids, daemon_pid, timed_out = _watch(process, name, duration + START_S)
    with open(trace_file, errors="replace") as lines:
        trace = read_trace(lines)
    return TracedRun(
        trace, node_pids, daemon_pid, process.returncode or 0, output_file.read_text(errors="replace"), timed_out,
        programs or {},
    )  # fmt: skip


def _watch(process: subprocess.Popen[Any], name: str, limit_s: float) -> tuple[dict[int, str], int, bool]:
    """Ask the run which process each node is until strace ends (it ends once every traced process has); stop
    it all after `limit_s` seconds. The nodes' processes and the daemon's."""
    node_pids: dict[int, str] = {}
    daemon_pid = 0
    deadline = time.monotonic() + limit_s
    while process.poll() is None:
        if time.monotonic() > deadline:
            _end(process, node_pids, daemon_pid)
            return node_pids, daemon_pid, True
        try:
            status = ask(find_run(name), control.ListRun(), control.RunStatus, timeout=1.0)
        except RunError:  # not started yet, or ended
            time.sleep(POLL_S)
            continue
        daemon_pid = status.pid
        node_pids.update({row.pid: row.id for row in status.nodes if row.pid > 0})
        time.sleep(POLL_S)
    return node_pids, daemon_pid, False


def _end(process: subprocess.Popen[Any], node_pids: dict[int, str], daemon_pid: int) -> None:
    """Stop a run that overran: the daemon first (it stops its nodes), then whatever of ours is left."""
    for pid in [daemon_pid] if daemon_pid else []:
        _signal(pid, signal.SIGTERM)
    try:
        process.wait(timeout=END_S)
        return
    except subprocess.TimeoutExpired:
        pass
    for pid in [*node_pids, daemon_pid]:
        if pid:
            _signal(pid, signal.SIGKILL)
    os.killpg(process.pid, signal.SIGKILL)  # strace and the daemon: a session of their own, started here
    process.wait()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def node_programs(dataflow: Dataflow, nodes: tuple[str, ...]) -> dict[tuple[str, ...], str]:
    """Each node's command line (as its daemon starts it), to name a node whose process the daemon was not asked
    about in time (one that died at once)."""
    from car.daemon.processes import node_command

    found = {}
    for spec in dataflow.nodes:
        if spec.id in nodes and not spec.is_dynamic:
            argv, _ = node_command(spec, dataflow.node_folder(spec))
            found[tuple(argv)] = spec.id
    return found
