"""A machine's daemon's decisions, in-process: the coordinator's messages go in, what it tells and does comes out.

car.daemon.machine.MachineDaemon acts through a `MachineIO`; here one in memory keeps
what it was told to do (messages to the coordinator, parts started, requests to parts)
and plays the parts' processes. The clock is moved by hand.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from car.daemon.machine import PART_ANSWER_S, REGISTER_AGAIN_S, MachineDaemon, PartProcess
from car.plan.runs import RunError
from car.transport import cluster, control
from car.transport.states import NodeStatus


class VirtualProc:
    """A part's process that runs until the test ends it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.code: int | None = None
        self.signals: list[str] = []
        self.stubborn = False  # does not end when waited for

    def poll(self) -> int | None:
        return self.code

    def wait(self, timeout: float | None = None) -> int:
        if self.code is None and self.stubborn:
            raise subprocess.TimeoutExpired("part", timeout or 0)
        return self.code or 0

    def terminate(self) -> None:
        self.signals.append("TERM")

    def kill(self) -> None:
        self.signals.append("KILL")
        self.code = -9


class Port:
    """A reserved port's socket: only closed."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


@dataclass
class MemoryIO:
    """The daemon's sockets and processes, in memory."""

    told: list[cluster.DaemonToCoordinator] = field(default_factory=list)
    started: list[tuple[Path, Path]] = field(default_factory=list)
    procs: list[VirtualProc] = field(default_factory=list)
    asked: list[tuple[str, control.ClientToDaemon]] = field(default_factory=list)
    replies: dict[type, control.DaemonReply] = field(default_factory=dict)
    silent: bool = False  # parts do not answer
    told_parts: list[tuple[str, control.ClientToDaemon]] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    relayed: list[tuple[str, bytes]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    ports: list[Port] = field(default_factory=list)
    no_ports: bool = False

    def tell(self, message: cluster.DaemonToCoordinator) -> None:
        self.told.append(message)

    def start_part(self, spec_file: Path, log: Path) -> VirtualProc:
        self.started.append((spec_file, log))
        self.procs.append(VirtualProc(5000 + len(self.procs)))
        return self.procs[-1]

    def ask_part(self, part: PartProcess, message: control.ClientToDaemon, timeout: float) -> control.DaemonReply:
        self.asked.append((part.spec.run_id, message))
        if self.silent:
            raise RunError(f"run `{part.spec.name}` did not answer within {timeout:g} s")
        return self.replies.get(type(message), control.Done())

    def tell_part(self, part: PartProcess, message: control.ClientToDaemon) -> None:
        self.told_parts.append((part.spec.run_id, message))

    def forget_part(self, run_id: str) -> None:
        self.forgotten.append(run_id)

    def relay(self, part: PartProcess, token: str, request: bytes) -> None:
        self.relayed.append((token, request))

    def drop_relay(self, token: str) -> None:
        self.dropped.append(token)

    def reserve_port(self, host: str) -> tuple[Any, int]:
        if self.no_ports:
            raise OSError(98, "Address already in use")
        self.ports.append(Port())
        return self.ports[-1], 7000 + len(self.ports)

    def take(self, kind: type) -> list[Any]:
        found = [m for m in self.told if isinstance(m, kind)]
        self.told = [m for m in self.told if not isinstance(m, kind)]
        return found


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Machine:
    daemon: MachineDaemon
    io: MemoryIO
    clock: Clock
    said: list[str]
    flow: str  # the dataflow file's text

    def prepare(self, run_id: str = "r1") -> None:
        self.daemon.handle(cluster.PrepareRun(run_id, "split", self.flow, "/flows/split.yml", [], ""))

    def start(self, run_id: str = "r1") -> VirtualProc:
        self.prepare(run_id)
        self.daemon.handle(cluster.StartRun(run_id, {"viewer/image": "tcp://10.0.0.9:7777"}))
        return self.io.procs[-1]


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    node = tmp_path / "camera.py"
    node.write_text("")
    flow = f"""\
nodes:
  - id: camera
    path: {node}
    deploy: {{machine: car}}
    outputs: [image]
    inputs:
      steer: viewer/seen
  - id: viewer
    path: /opt/viewer.py
    deploy: {{machine: laptop}}
    inputs:
      image: camera/image
    outputs: [seen]
"""
    io, clock, said = MemoryIO(), Clock(), []
    daemon = MachineDaemon(
        "car",
        tmp_path / "runs",
        io,
        listen_host="127.0.0.1",
        lost_grace=10.0,
        say=said.append,
        clock=clock,
        wall_ns=lambda: int(clock.now * 1e9),
    )
    return Machine(daemon, io, clock, said, flow)


def test_it_registers_while_the_coordinator_is_silent_and_not_more_often_than_it_must(machine: Machine) -> None:
    machine.daemon.tick(machine.clock.now)
    (register,) = machine.io.take(cluster.Register)
    assert register.machine == "car" and register.runs == []
    machine.clock.now += REGISTER_AGAIN_S / 2
    machine.daemon.tick(machine.clock.now)
    assert machine.io.take(cluster.Register) == []
    machine.daemon.handle(cluster.Welcome())
    machine.daemon.handle(cluster.Ping(123))
    assert machine.io.take(cluster.Pong) == [cluster.Pong("car", 123, int(machine.clock.now * 1e9))]
    machine.clock.now += REGISTER_AGAIN_S * 0.9
    machine.daemon.tick(machine.clock.now)
    assert machine.io.take(cluster.Register) == []  # pinged lately: nothing to say


def test_a_refusal_ends_the_daemon(machine: Machine) -> None:
    machine.daemon.handle(cluster.Welcome("machine id `car` is taken by the daemon at 10.0.0.3"))
    assert machine.daemon.done() and "taken" in machine.daemon.refused


def test_preparing_checks_its_nodes_and_holds_a_port_for_each_link_from_elsewhere(machine: Machine) -> None:
    machine.prepare()
    (prepared,) = machine.io.take(cluster.Prepared)
    assert prepared.run_id == "r1" and len(machine.io.ports) == len(prepared.listen) == 1  # viewer/seen comes here
    assert all(endpoint.startswith("tcp://:7") for endpoint in prepared.listen.values())  # the coordinator adds ours
    machine.daemon.handle(cluster.AbortRun("r1"))
    assert all(port.closed for port in machine.io.ports)


def test_a_node_that_is_not_there_fails_the_preparation_with_where(machine: Machine, tmp_path: Path) -> None:
    machine.flow = machine.flow.replace(str(tmp_path / "camera.py"), str(tmp_path / "nowhere.py"))
    machine.prepare()
    (failed,) = machine.io.take(cluster.PrepareFailed)
    assert "nowhere.py" in failed.problems[0] and machine.io.started == []


def test_no_free_port_fails_the_preparation_naming_the_machine(machine: Machine) -> None:
    machine.io.no_ports = True
    machine.prepare()
    (failed,) = machine.io.take(cluster.PrepareFailed)
    assert failed.problems == ["machine `car`: cannot prepare the run (Address already in use)"]


def test_a_started_part_runs_until_its_process_ends_and_the_coordinator_hears_how(machine: Machine) -> None:
    proc = machine.start()
    ((spec_file, log),) = machine.io.started
    assert spec_file.exists() and "tcp://10.0.0.9:7777" in spec_file.read_text()
    log.write_text("starting\nall nodes ended\n")
    machine.daemon.tick(machine.clock.now)
    assert machine.io.take(cluster.RunEnded) == []
    proc.code = 0
    machine.daemon.tick(machine.clock.now)
    (ended,) = machine.io.take(cluster.RunEnded)
    assert (ended.run_id, ended.code, ended.summary) == ("r1", 0, ["starting", "all nodes ended"])
    assert all(port.closed for port in machine.io.ports) and machine.daemon.parts == {}


def test_an_ended_parts_logs_can_still_be_read(machine: Machine) -> None:
    proc = machine.start()
    out = machine.io.started[0][1].parent
    (out / "camera.log").write_text("frame 1\nframe 2\n")
    proc.code = 0
    machine.daemon.tick(machine.clock.now)
    machine.daemon.handle(cluster.ReadLog("t1", "r1", "camera", offset=6))
    (text,) = machine.io.take(cluster.LogText)
    assert (text.text, text.next_offset, text.error) == ("1\nframe 2\n", 16, "")
    machine.daemon.handle(cluster.ReadLog("t2", "r9", "camera"))
    assert machine.io.take(cluster.LogText)[0].error == "no run r9 on this machine"


def test_node_states_go_to_the_coordinator_only_when_they_changed(machine: Machine) -> None:
    machine.start()
    row = control.NodeRow(id="camera", state=NodeStatus.RUNNING, pid=7, restarts=0, rate=30.0, status="")
    machine.io.replies[control.ListRun] = control.RunStatus("split", "r1", "f", "/", 1, 1.0, [row], 0)
    machine.daemon.report_states()
    machine.daemon.report_states()
    assert machine.io.take(cluster.RunState) == [cluster.RunState("car", "r1", [row])]


def test_what_the_coordinator_says_of_other_machines_reaches_a_running_part_only(machine: Machine) -> None:
    proc = machine.start()
    gone = control.ReadersGone(["viewer"])
    machine.daemon.handle(cluster.ForPart("r1", control.encode(gone)))
    assert machine.io.told_parts == [("r1", gone)]
    proc.code = 0  # ended, not yet reaped: nobody would read it
    machine.daemon.handle(cluster.ForPart("r1", control.encode(control.ReadersBack(["viewer"]))))
    assert machine.io.told_parts == [("r1", gone)]
    machine.daemon.tick(machine.clock.now)
    assert machine.io.forgotten == ["r1"]


def test_timers_start_when_every_machine_is_ready_and_a_silent_part_is_said(machine: Machine) -> None:
    machine.start()
    machine.daemon.handle(cluster.AllReady("r1"))
    assert machine.io.asked[-1] == ("r1", control.StartTimers())
    machine.io.silent = True
    machine.daemon.handle(cluster.AllReady("r1"))
    assert any("could not start its timers" in line for line in machine.said)


def test_a_commands_request_is_relayed_and_answered_or_given_up_in_time(machine: Machine) -> None:
    machine.start()
    machine.daemon.handle(cluster.PartRequest("t1", "r1", b"asked"))
    assert machine.io.relayed == [("t1", b"asked")]
    machine.daemon.part_answered("t1", b"answer")
    assert machine.io.take(cluster.PartAnswer) == [cluster.PartAnswer("car", "t1", b"answer")]
    machine.daemon.handle(cluster.PartRequest("t2", "r1", b"asked"))
    machine.clock.now += PART_ANSWER_S + 0.1
    machine.daemon.tick(machine.clock.now)
    (late,) = machine.io.take(cluster.PartAnswer)
    assert late.error == "run `split` on machine `car` did not answer" and machine.io.dropped == ["t2"]
    machine.daemon.part_answered("t2", b"too late")
    assert machine.io.take(cluster.PartAnswer) == []


def test_without_the_coordinator_for_the_grace_period_its_runs_stop_once(machine: Machine) -> None:
    machine.start()
    machine.daemon.handle(cluster.Welcome())
    machine.clock.now += 10.5
    machine.daemon.tick(machine.clock.now)
    machine.clock.now += 1.0
    machine.daemon.tick(machine.clock.now)
    stops = [m for _, m in machine.io.asked if isinstance(m, control.StopRun)]
    assert stops == [control.StopRun("the coordinator was lost", 0.0)]


def test_leaving_stops_every_part_and_ends_when_they_have(machine: Machine) -> None:
    proc = machine.start()
    machine.io.silent = True  # not answering yet: SIGTERM instead
    machine.daemon.handle(cluster.Leave("`car down`"))
    assert proc.signals == ["TERM"] and not machine.daemon.done()
    proc.code = 0
    machine.daemon.tick(machine.clock.now)
    assert machine.daemon.done()


def test_at_the_end_a_part_that_does_not_stop_is_killed(machine: Machine) -> None:
    proc = machine.start()
    proc.stubborn = True
    machine.daemon.shutdown()
    assert proc.signals == ["KILL"] and machine.io.take(cluster.RunEnded)[0].code == -9
