"""The supervisor's decisions about node lifecycles, in-process: a process table in memory, the clock by hand.

The supervisor is given a `Processes` back end that pretends (as python-can's VirtualBus
does for a bus): a started node "runs" until the test says it exited; signals are kept
in a list. STOP and CLOSED notices, timers and the messages to nodes are recorded too.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from car.daemon.flushes import Flushes
from car.daemon.logs import LogReader, NodeLog, Terminal
from car.daemon.processes import VANISHED, Asked, NodeState, Processes
from car.daemon.subscriptions import Subscriptions
from car.daemon.supervisor import KILL_AFTER_S, RunServices, Supervisor
from car.plan.build import plan_machine
from car.plan.config import ENV_VAR
from car.spec.loader import check_text
from car.transport import control, wire
from car.transport.states import NodeStatus

CHAIN = """\
env: {LEVEL: file}
nodes:
  - id: camera
    path: -m camera
    env: {LEVEL: node, ONLY: camera}
    inputs:
      tick: dora/timer/millis/100
    outputs: [image]
  - id: detector
    path: -m detector
    inputs:
      image: camera/image
    outputs: [line]
  - id: pilot
    path: -m pilot
    inputs:
      line: detector/line
    outputs: [cmd]
"""


class VirtualProcess:
    """A node process that runs until the test ends it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.code: int | None = None

    def poll(self) -> int | None:
        return self.code

    def wait(self, timeout: float | None = None) -> int:
        return self.code or 0


@dataclass
class VirtualProcesses(Processes):
    """Processes in memory: started ones, signals sent, pids that live, nodes that cannot start."""

    started: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    signals: list[tuple[str, int]] = field(default_factory=list)
    alive_pids: set[int] = field(default_factory=set)
    broken: set[str] = field(default_factory=set)
    next_pid: int = 1000

    def start(self, node: NodeState, folder: Path, env: dict[str, str], fds: list[int], cpus: tuple[int, ...]) -> str:
        if node.spec.id in self.broken:
            return f"could not start `{node.spec.path}`: No such file or directory"
        self.next_pid += 1
        node.proc = VirtualProcess(self.next_pid)
        node.pid = self.next_pid
        self.started.append((node.spec.id, env))
        return ""

    def signal(self, node: NodeState, sig: int) -> None:
        node.signalled = True
        self.signals.append((node.spec.id, sig))

    def alive(self, pid: int) -> bool:
        return pid in self.alive_pids


class Said(Terminal):
    """A terminal that keeps what car says."""

    def __init__(self) -> None:
        super().__init__([], quiet=True)
        self.lines: list[str] = []

    def say(self, text: str) -> None:
        self.lines.append(text)


@dataclass
class Run:
    """A supervisor over a dataflow, and everything it acted on."""

    supervisor: Supervisor
    processes: VirtualProcesses
    terminal: Said
    nodes: dict[str, NodeState]
    now: list[float]
    notices: list[tuple[str, int, bytes]] = field(default_factory=list)
    told: list[tuple[str, control.DaemonToNode]] = field(default_factory=list)
    timers: set[str] = field(default_factory=set)

    def at(self, seconds: float) -> None:
        """Move the clock to `seconds` and let the supervisor look."""
        self.now[0] = seconds
        self.supervisor.tick(seconds)

    def exit(self, node: str, code: int) -> None:
        """The node's process ends with `code`; the supervisor notices on its next look."""
        proc = self.nodes[node].proc
        assert isinstance(proc, VirtualProcess)
        proc.code = code
        self.supervisor.tick(self.now[0])

    def ready(self, *nodes: str) -> None:
        for node in nodes:
            self.supervisor.ready(self.nodes[node], self.nodes[node].pid)

    def closed(self) -> list[tuple[str, str]]:
        """(receiving node's endpoint's node, source) of every CLOSED sent so far."""
        by_endpoint = {n.config.receive_endpoint: n.spec.id for n in self.nodes.values()}
        return [(by_endpoint.get(e, e), s.decode()) for e, kind, s in self.notices if kind == wire.KIND_CLOSED]

    def stops(self) -> list[str]:
        by_endpoint = {n.config.receive_endpoint: n.spec.id for n in self.nodes.values()}
        return [by_endpoint.get(e, e) for e, kind, _ in self.notices if kind == wire.KIND_STOP]


class Recorder:
    """Stands in for the notifier and the timers thread."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def send(self, endpoint: str, kind: int, source: bytes, value: Any = None) -> None:
        self.run.notices.append((endpoint, kind, source))

    def enable(self, node_id: str) -> None:
        self.run.timers.add(node_id)

    def disable(self, node_id: str) -> None:
        self.run.timers.discard(node_id)


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Any]:
    readers: list[LogReader] = []
    logs: list[NodeLog] = []

    def make(text: str = CHAIN, extra_env: dict[str, str] | None = None, grace: float = 2.0) -> Run:
        dataflow = check_text(text, "flow.yml", tmp_path / "flow.yml")
        plan = plan_machine(dataflow, "r1", "run", str(tmp_path / "run"), "ipc:///nowhere")
        terminal = Said()
        reader = LogReader()
        readers.append(reader)
        nodes = {}
        for spec in dataflow.nodes:
            log = NodeLog(spec.id, tmp_path / f"{spec.id}.log", terminal, reader)
            logs.append(log)
            nodes[spec.id] = NodeState(spec, plan.nodes[spec.id], log)
        processes = VirtualProcesses()
        now = [100.0]
        run = Run(None, processes, terminal, nodes, now)  # type: ignore[arg-type]  # the supervisor comes next
        recorder = Recorder(run)
        told = run.told
        parts = RunServices(
            processes=processes,
            inherited=lambda _: [],
            timers=recorder,
            subscriptions=Subscriptions(plan, lambda node, message: told.append((node, message))),
            notices=recorder,
            flushes=Flushes(lambda _: None),
            tell=lambda node, message: told.append((node, message)),
        )
        run.supervisor = Supervisor(
            dataflow, plan, nodes, parts, terminal, grace, extra_env or {}, clock=lambda: now[0]
        )
        return run

    yield make
    for log in logs:
        log.close(timeout=0)
    for reader in readers:
        reader.stop()


def states(run: Run) -> dict[str, NodeStatus]:
    return {node_id: node.state for node_id, node in run.nodes.items()}


def test_every_node_starts_with_the_file_then_node_then_launch_environment_and_its_configuration(make_run: Any) -> None:
    run = make_run(extra_env={"LEVEL": "launch"})
    run.supervisor.start()
    assert [node for node, _ in run.processes.started] == ["camera", "detector", "pilot"]
    camera_env = dict(run.processes.started[0][1])
    assert camera_env["LEVEL"] == "launch" and camera_env["ONLY"] == "camera" and ENV_VAR in camera_env
    assert set(states(run).values()) == {NodeStatus.RUNNING}


def test_timers_tick_only_once_every_node_said_ready(make_run: Any) -> None:
    run = make_run()
    run.supervisor.start()
    run.ready("camera", "detector")
    assert run.timers == set()
    run.ready("pilot")
    assert run.timers == {"camera", "detector", "pilot"}


def test_a_node_that_ends_well_closes_its_readers_inputs_and_its_senders_stop_sending_to_it(make_run: Any) -> None:
    run = make_run()
    run.supervisor.start()
    run.ready("camera", "detector", "pilot")
    run.exit("detector", 0)
    assert run.nodes["detector"].state == NodeStatus.EXITED
    assert run.closed() == [("pilot", "detector/line")]
    assert ("camera", control.ReaderGone("detector")) in run.told
    assert "detector" not in run.timers and not run.supervisor.stopping


def test_a_critical_node_that_fails_stops_the_run_naming_it_and_its_last_stderr_lines(make_run: Any) -> None:
    run = make_run()
    run.supervisor.start()
    run.nodes["detector"].log.take(b"Traceback: boom", err=True)
    run.now[0] = 103.5
    run.exit("detector", 1)
    assert run.nodes["detector"].state == NodeStatus.FAILED and run.supervisor.any_failed()
    failed = next(line for line in run.terminal.lines if line.startswith("node `detector` failed"))
    assert "exit code 1 after 3.5 s" in failed and "| Traceback: boom" in failed
    assert run.supervisor.stopping and any("mark it `critical: false`" in line for line in run.terminal.lines)
    assert sorted(run.stops()) == ["camera", "pilot"]


def test_a_node_marked_not_critical_fails_alone_and_the_run_goes_on(make_run: Any) -> None:
    run = make_run(CHAIN.replace("    path: -m detector\n", "    path: -m detector\n    critical: false\n"))
    run.supervisor.start()
    run.exit("detector", 3)
    assert run.nodes["detector"].state == NodeStatus.FAILED and not run.supervisor.stopping
    assert run.closed() == [("pilot", "detector/line")]


def test_on_failure_restarts_after_the_delay_up_to_the_limit_then_fails(make_run: Any) -> None:
    restart = "    path: -m detector\n    restart_policy: on-failure\n    restart_delay: 0.5\n    max_restarts: 2\n"
    run = make_run(CHAIN.replace("    path: -m detector\n", restart))
    run.supervisor.start()
    for attempt in (1, 2):
        run.exit("detector", 1)
        assert run.nodes["detector"].state == NodeStatus.RESTARTING
        run.at(run.now[0] + 0.4)
        assert run.nodes["detector"].state == NodeStatus.RESTARTING  # not before its delay
        run.at(run.now[0] + 0.2)
        assert run.nodes["detector"].state == NodeStatus.RUNNING and run.nodes["detector"].restarts == attempt
    assert run.closed() == []  # a restart is a gap for its readers, not an end
    run.exit("detector", 1)
    assert run.nodes["detector"].state == NodeStatus.FAILED


def test_on_failure_does_not_restart_a_node_that_ended_well_and_always_does(make_run: Any) -> None:
    run = make_run(CHAIN.replace("    path: -m detector\n", "    path: -m detector\n    restart_policy: on-failure\n"))
    run.supervisor.start()
    run.exit("detector", 0)
    assert run.nodes["detector"].state == NodeStatus.EXITED
    run = make_run(CHAIN.replace("    path: -m detector\n", "    path: -m detector\n    restart_policy: always\n"))
    run.supervisor.start()
    run.exit("detector", 0)
    run.at(run.now[0])
    assert run.nodes["detector"].state == NodeStatus.RUNNING and run.nodes["detector"].restarts == 1


def test_a_restarted_node_that_is_ready_again_is_announced_to_its_senders(make_run: Any) -> None:
    run = make_run(CHAIN.replace("    path: -m detector\n", "    path: -m detector\n    restart_policy: always\n"))
    run.supervisor.start()
    run.ready("camera", "detector", "pilot")
    run.exit("detector", 0)
    run.at(run.now[0])
    assert ("camera", control.ReaderBack("detector")) not in run.told
    run.ready("detector")
    assert ("camera", control.ReaderBack("detector")) in run.told and "detector" in run.timers


def test_stop_sends_stop_then_sigterm_after_the_grace_then_sigkill(make_run: Any) -> None:
    run = make_run(grace=2.0)
    run.supervisor.start()
    run.supervisor.stop("SIGINT received")
    assert sorted(run.stops()) == ["camera", "detector", "pilot"]
    run.exit("camera", 0)
    run.at(101.9)
    assert run.processes.signals == []
    run.at(102.1)
    assert sorted(run.processes.signals) == [("detector", signal.SIGTERM), ("pilot", signal.SIGTERM)]
    run.at(102.1 + KILL_AFTER_S)
    assert ("pilot", signal.SIGKILL) in run.processes.signals
    run.exit("detector", -signal.SIGTERM)
    run.exit("pilot", -signal.SIGKILL)
    assert run.supervisor.finished() and not run.supervisor.any_failed()
    assert any("did not stop within 2 s of STOP: killed by SIGKILL" in line for line in run.terminal.lines)


def test_asked_to_stop_twice_it_waits_no_longer(make_run: Any) -> None:
    run = make_run(grace=5.0)
    run.supervisor.start()
    run.supervisor.stop("SIGINT received")
    run.supervisor.stop("SIGINT received")
    run.at(100.0)
    assert len(run.processes.signals) == 3 and {sig for _, sig in run.processes.signals} == {signal.SIGTERM}


def test_node_restart_stops_that_node_alone_and_starts_it_again(make_run: Any) -> None:
    run = make_run()
    run.supervisor.start()
    assert run.supervisor.stop_node(run.nodes["detector"], Asked.RESTART) == ""
    assert run.stops() == ["detector"]
    run.exit("detector", 0)
    run.at(run.now[0])
    assert run.nodes["detector"].state == NodeStatus.RUNNING and run.nodes["detector"].restarts == 1
    assert run.closed() == [] and not run.supervisor.stopping


def test_node_restart_that_is_not_obeyed_is_signalled_after_the_grace(make_run: Any) -> None:
    run = make_run(grace=1.0)
    run.supervisor.start()
    run.supervisor.stop_node(run.nodes["detector"], Asked.RESTART)
    run.at(100.5)
    assert run.processes.signals == []
    run.at(101.1)
    assert run.processes.signals == [("detector", signal.SIGTERM)]


def test_node_stop_ends_that_node_for_good_and_its_readers_get_the_end(make_run: Any) -> None:
    run = make_run()
    run.supervisor.start()
    run.supervisor.stop_node(run.nodes["detector"], Asked.STOP)
    run.exit("detector", 0)
    assert run.nodes["detector"].state == NodeStatus.EXITED and run.closed() == [("pilot", "detector/line")]
    assert run.supervisor.stop_node(run.nodes["detector"], Asked.STOP) == "node `detector` is exited"


def test_a_node_that_cannot_start_fails_with_why(make_run: Any) -> None:
    run = make_run(CHAIN.replace("    path: -m pilot\n", "    path: -m pilot\n    critical: false\n"))
    run.processes.broken.add("pilot")
    run.supervisor.start()
    assert run.nodes["pilot"].state == NodeStatus.FAILED
    assert "node `pilot` failed: could not start `-m pilot`: No such file or directory" in run.terminal.lines
    run.ready("camera", "detector")
    assert run.timers == {"camera", "detector"}  # a failed node holds up no timer


DYNAMIC = CHAIN.replace("    path: -m pilot\n", "    path: dynamic\n")


def test_a_dynamic_node_waits_for_run_node_and_goes_back_to_waiting_whatever_its_end(make_run: Any) -> None:
    run = make_run(DYNAMIC)
    run.supervisor.start()
    assert run.nodes["pilot"].state == NodeStatus.WAITING
    assert any("`car run-node pilot -- COMMAND`" in line for line in run.terminal.lines)
    pilot = run.nodes["pilot"]
    assert run.supervisor.hand_out(pilot, 0) == ""
    run.supervisor.ready(pilot, 4242)
    assert pilot.state == NodeStatus.RUNNING and pilot.pid == 4242
    assert run.supervisor.hand_out(pilot, 0) == "node `pilot` is running (pid 4242); stop that process first"
    assert run.supervisor.exited_by_hand(pilot, 1) == ""
    assert pilot.state == NodeStatus.WAITING and pilot.pid == 0
    assert ("detector", control.ReaderGone("pilot")) in run.told


def test_a_dynamic_node_started_without_run_node_is_watched_and_noticed_when_it_vanishes(make_run: Any) -> None:
    run = make_run(DYNAMIC)
    run.supervisor.start()
    pilot = run.nodes["pilot"]
    run.processes.alive_pids.add(777)
    run.supervisor.hand_out(pilot, 777)
    run.supervisor.ready(pilot, 777)
    run.at(101.0)
    assert pilot.state == NodeStatus.RUNNING
    run.processes.alive_pids.clear()
    run.at(102.0)
    assert pilot.state == NodeStatus.WAITING and pilot.exit_code == VANISHED


def test_what_may_not_be_asked_of_nodes_is_refused_with_why(make_run: Any) -> None:
    run = make_run(DYNAMIC)
    run.supervisor.start()
    assert run.supervisor.hand_out(run.nodes["camera"], 0).endswith("set `path: dynamic` to run it by hand")
    assert run.supervisor.exited_by_hand(run.nodes["camera"], 0).endswith("not by `car run-node`")
    assert "is dynamic" in run.supervisor.stop_node(run.nodes["pilot"], Asked.STOP)
    run.supervisor.stop("done")
    assert run.supervisor.stop_node(run.nodes["camera"], Asked.RESTART) == "the run is stopping"


def test_a_run_with_a_dynamic_node_that_never_came_finishes_once_stopping(make_run: Any) -> None:
    run = make_run(DYNAMIC)
    run.supervisor.start()
    run.exit("camera", 0)
    run.exit("detector", 0)
    assert not run.supervisor.finished()
    run.supervisor.stop("done")
    assert run.supervisor.finished()


def test_a_closing_node_waits_only_for_its_live_readers(make_run: Any) -> None:
    run = make_run()
    run.supervisor.start()
    assert run.supervisor.ends_to_deliver("camera") == {control.StreamEnd("detector", "camera/image")}
    run.exit("detector", 0)
    assert run.supervisor.ends_to_deliver("camera") == set()


def test_on_several_machines_timers_wait_for_every_machine_and_ends_go_elsewhere(make_run: Any) -> None:
    run = make_run()

    class Elsewhere:
        def __init__(self) -> None:
            self.heard: list[Any] = []

        def part_ready(self) -> None:
            self.heard.append("ready")

        def nodes_gone(self, nodes: list[str], sources: list[str]) -> None:
            self.heard.append(("gone", nodes, sources))

        def nodes_back(self, nodes: list[str]) -> None:
            self.heard.append(("back", nodes))

        def ends_delivered(self, ends: list[control.StreamEnd]) -> None:
            self.heard.append(("ends", ends))

    elsewhere = Elsewhere()
    supervisor = run.supervisor
    supervisor.elsewhere = elsewhere
    supervisor._timers_open = False  # as a part placed by a coordinator starts
    supervisor.start()
    run.ready("camera", "detector", "pilot")
    assert elsewhere.heard == ["ready"] and run.timers == set()
    supervisor.open_timers()
    assert run.timers == {"camera", "detector", "pilot"}
    run.exit("pilot", 0)
    assert ("gone", ["pilot"], ["pilot/cmd"]) in elsewhere.heard
