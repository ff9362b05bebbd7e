"""The coordinator's decisions, driven in-process over in-memory ports (no socket, no daemon process).

Each test plays the machines' daemons and the `car` command: it delivers their messages,
moves the clock, and reads what the coordinator sent whom, through the wire's encoding.
"""

from __future__ import annotations

import pytest

from car.coordinator import coordinator as coordinator_module
from car.coordinator.coordinator import FINISHED_KEPT, LEAVE_WAIT_S, PREPARE_TIMEOUT_S, Coordinator
from car.coordinator.machines import STARTING_TIMEOUT_S
from car.coordinator.relays import RELAY_TIMEOUT_S
from car.transport import cluster, control
from car.transport.router import MemoryPort
from car.transport.states import FlowState, MachineState, NodeStatus, PartState

SPLIT = """\
nodes:
  - id: camera
    path: /opt/car/camera.py
    deploy: {machine: car}
    outputs: [image]
  - id: viewer
    path: /opt/car/viewer.py
    deploy: {machine: laptop}
    inputs:
      image: camera/image
    outputs: [seen]
"""
CLI = b"cli"


class Clock:
    """Monotonic seconds a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall_ns(self) -> int:
        return int(self.now * 1e9)


class Cluster:
    """A coordinator, its two in-memory ports, and what it said."""

    def __init__(self, timeout: float = 3.0) -> None:
        self.clock = Clock()
        self.said: list[str] = []
        self.coordinator = Coordinator(
            MemoryPort,
            MemoryPort,
            heartbeat=0.5,
            timeout=timeout,
            say=self.said.append,
            clock=self.clock,
            wall_ns=self.clock.wall_ns,
        )
        daemons, clients = self.coordinator.daemons, self.coordinator.clients
        assert isinstance(daemons, MemoryPort) and isinstance(clients, MemoryPort)
        self.daemons, self.clients = daemons, clients

    def join(
        self, machine: str, address: str = "10.0.0.2", pid: int = 1, runs: list[cluster.HeldRun] | None = None
    ) -> None:
        self.daemons.deliver(machine.encode(), cluster.Register(machine, "host", pid, runs or []), address)

    def to(self, machine: str, kind: type | None = None) -> list:
        return self.daemons.take(machine.encode(), kind)

    def for_part(self, machine: str) -> list[tuple[str, control.ControlMessage]]:
        """The control messages the coordinator had `machine`'s daemon pass to a part: (run id, message)."""
        return [
            (m.run_id, control.decode(m.message, control.ClientToDaemon)) for m in self.to(machine, cluster.ForPart)
        ]

    def ask(self, request: cluster.ClientToCoordinator) -> list:
        self.clients.deliver(CLI, request)
        return self.clients.take(CLI)

    def start(self, text: str = SPLIT, name: str = "split") -> str:
        """Start `text` on its machines, each preparing it; its run id."""
        assert self.ask(cluster.StartDataflow(text=text, file="/flows/split.yml", name=name)) == []
        prepares = {m: self.to(m, cluster.PrepareRun) for m in ("car", "laptop")}
        run_id = prepares["car"][0].run_id
        self.daemons.deliver(b"car", cluster.Prepared("car", run_id, {"camera/image": "tcp://:7001"}))
        self.daemons.deliver(b"laptop", cluster.Prepared("laptop", run_id, {}))
        (started,) = self.clients.take(CLI)
        assert isinstance(started, cluster.Started) and started.run_id == run_id
        return run_id

    def flow(self, name: str = "split") -> cluster.DataflowRow:
        (listing,) = self.ask(cluster.ListDataflows())
        return next(row for row in listing.dataflows if row.name == name)


@pytest.fixture
def two() -> Cluster:
    """A coordinator with machines `car` and `laptop` connected."""
    cl = Cluster()
    cl.join("car", "10.0.0.2")
    cl.join("laptop", "127.0.0.1", pid=2)
    cl.to("car")
    cl.to("laptop")
    return cl


def test_a_machine_that_registers_is_welcomed_and_listed_with_where_it_connects_from(two: Cluster) -> None:
    (machines,) = two.ask(cluster.ListMachines())
    rows = {row.machine: row for row in machines.machines}
    assert rows["car"].state == MachineState.CONNECTED and rows["car"].address == "10.0.0.2"
    assert rows["laptop"].address == "127.0.0.1" and not rows["car"].encrypted
    assert any("`car` joined" in line for line in two.said)


def test_a_second_daemon_claiming_a_live_machine_id_is_refused_with_where_the_first_is(two: Cluster) -> None:
    two.daemons.deliver(b"other", cluster.Register("car", "elsewhere", 99), "10.0.0.9")
    (welcome,) = two.daemons.take(b"other")
    assert isinstance(welcome, cluster.Welcome) and "is taken by the daemon at 10.0.0.2" in welcome.error


def test_a_silent_machine_is_lost_after_the_timeout_and_back_when_it_answers(two: Cluster) -> None:
    two.clock.now += 2.0
    two.coordinator.ping(two.clock.now)
    (ping,) = two.to("car", cluster.Ping)
    two.daemons.deliver(b"laptop", cluster.Pong("laptop", ping.sent_ns, two.clock.wall_ns()))
    two.clock.now += 2.0
    two.coordinator.ping(two.clock.now)
    (machines,) = two.ask(cluster.ListMachines())
    states = {row.machine: row.state for row in machines.machines}
    assert states == {"car": MachineState.LOST, "laptop": MachineState.CONNECTED}
    assert any("machine `car` lost: no heartbeat for 4.0 s" in line for line in two.said)
    two.daemons.deliver(b"car", cluster.Pong("car", two.clock.wall_ns(), two.clock.wall_ns()))
    assert any("`car` answers again" in line for line in two.said)


def test_the_heartbeat_measures_the_round_trip_and_the_daemons_clock_offset(two: Cluster) -> None:
    sent = two.clock.wall_ns()
    two.clock.now += 0.010  # the answer comes 10 ms later, from a clock 250 ms ahead
    two.daemons.deliver(b"car", cluster.Pong("car", sent, sent + 5_000_000 + 250_000_000))
    (machines,) = two.ask(cluster.ListMachines())
    car = next(row for row in machines.machines if row.machine == "car")
    assert car.rtt_ms == pytest.approx(10.0) and car.offset_ms == pytest.approx(250.0)


def test_a_pong_from_another_identity_is_not_taken_as_the_machines(two: Cluster) -> None:
    two.clock.now += 4.0
    two.daemons.deliver(b"impostor", cluster.Pong("car", two.clock.wall_ns(), two.clock.wall_ns()))
    two.coordinator.ping(two.clock.now)
    (machines,) = two.ask(cluster.ListMachines())
    assert next(row for row in machines.machines if row.machine == "car").state == MachineState.LOST


def test_a_machine_starting_a_runs_nodes_may_be_silent_longer(two: Cluster) -> None:
    two.start()
    two.clock.now += 5.0  # past the timeout (3 s), within the starting allowance
    two.coordinator.ping(two.clock.now)
    assert two.flow().state == FlowState.RUNNING
    two.clock.now += STARTING_TIMEOUT_S
    two.coordinator.ping(two.clock.now)
    assert two.flow().state == FlowState.DEGRADED


def test_a_start_on_a_machine_that_is_not_connected_is_declined_naming_it_and_what_to_run(two: Cluster) -> None:
    text = SPLIT.replace("machine: laptop", "machine: robot")
    (declined,) = two.ask(cluster.StartDataflow(text=text, file="/flows/split.yml"))
    assert isinstance(declined, cluster.Declined)
    assert "machine robot not connected (connected: car, laptop)" in declined.error
    assert "car daemon --machine-id ID" in declined.error
    assert two.to("car") == []


def test_nodes_that_name_no_machine_go_to_the_daemon_beside_the_coordinator() -> None:
    cl = Cluster()
    cl.join("far", "10.0.0.7")
    cl.join("near", "127.0.0.1")
    text = "nodes:\n  - id: solo\n    path: -m solo\n"
    assert cl.ask(cluster.StartDataflow(text=text, file="/flows/solo.yml")) == []
    assert cl.to("near", cluster.PrepareRun) and not cl.to("far", cluster.PrepareRun)


def test_nodes_that_name_no_machine_are_declined_when_no_daemon_is_beside_the_coordinator() -> None:
    cl = Cluster()
    cl.join("far", "10.0.0.7")
    cl.join("farther", "10.0.0.8")
    (declined,) = cl.ask(cluster.StartDataflow(text="nodes:\n  - id: solo\n    path: -m solo\n", file="/f/solo.yml"))
    assert "some nodes name no machine" in declined.error and "deploy: {machine: ID}" in declined.error


def test_a_dataflow_that_does_not_check_is_declined_with_its_problems(two: Cluster) -> None:
    (declined,) = two.ask(cluster.StartDataflow(text="nodes:\n  - id: a\n", file="/flows/bad.yml"))
    assert isinstance(declined, cluster.Declined) and "bad.yml" in declined.error and "path" in declined.error


def test_a_start_is_answered_once_every_machine_prepared_and_each_learns_where_the_others_listen(two: Cluster) -> None:
    assert two.ask(cluster.StartDataflow(text=SPLIT, file="/flows/split.yml", name="split")) == []
    (prepare,) = two.to("car", cluster.PrepareRun)
    assert two.to("laptop", cluster.PrepareRun)
    two.daemons.deliver(b"car", cluster.Prepared("car", prepare.run_id, {"camera/image": "tcp://:7001"}))
    assert two.clients.take(CLI) == []  # the laptop has not prepared yet
    two.daemons.deliver(b"laptop", cluster.Prepared("laptop", prepare.run_id, {}))
    (started,) = two.clients.take(CLI)
    assert started == cluster.Started(prepare.run_id, "split", ["car", "laptop"])
    for machine in ("car", "laptop"):
        (start,) = two.to(machine, cluster.StartRun)
        assert start.reach == {"camera/image": "tcp://10.0.0.2:7001"}  # the address the car connects from
    assert two.flow().state == FlowState.RUNNING


def test_a_machine_that_cannot_prepare_starts_nothing_anywhere(two: Cluster) -> None:
    two.ask(cluster.StartDataflow(text=SPLIT, file="/flows/split.yml"))
    (prepare,) = two.to("car", cluster.PrepareRun)
    two.daemons.deliver(b"laptop", cluster.Prepared("laptop", prepare.run_id, {}))
    two.daemons.deliver(b"car", cluster.PrepareFailed("car", prepare.run_id, ["camera.py: no such file"]))
    (declined,) = two.clients.take(CLI)
    assert declined.error == "nothing was started:\non machine `car`: camera.py: no such file"
    assert two.to("car", cluster.AbortRun) and two.to("laptop", cluster.AbortRun)
    assert not two.to("laptop", cluster.StartRun)
    (listing,) = two.ask(cluster.ListDataflows())
    assert listing.dataflows == []


def test_a_machine_that_does_not_prepare_in_time_fails_the_start_naming_it(two: Cluster) -> None:
    two.ask(cluster.StartDataflow(text=SPLIT, file="/flows/split.yml"))
    (prepare,) = two.to("car", cluster.PrepareRun)
    two.daemons.deliver(b"car", cluster.Prepared("car", prepare.run_id, {}))
    two.clock.now += PREPARE_TIMEOUT_S + 0.1
    two.coordinator.expire(two.clock.now)
    (declined,) = two.clients.take(CLI)
    assert f"machine `laptop` did not prepare the run within {PREPARE_TIMEOUT_S:g} s" in declined.error
    assert two.to("car", cluster.AbortRun)


def test_a_name_in_use_is_declined_and_an_unnamed_start_gets_a_name_of_its_own(
    two: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    two.start(name="split")
    (declined,) = two.ask(cluster.StartDataflow(text=SPLIT, file="/flows/split.yml", name="split"))
    assert "a dataflow named `split` is running: pick another --name or `car stop split`" in declined.error
    assert two.ask(cluster.StartDataflow(text=SPLIT, file="/flows/split.yml")) == []
    (prepare,) = two.to("car", cluster.PrepareRun)
    assert prepare.name.startswith("split-") and prepare.name != "split"


def test_stop_reaches_every_running_part_and_an_ended_flow_cannot_be_stopped(two: Cluster) -> None:
    run_id = two.start()
    (answer,) = two.ask(cluster.StopDataflowNamed(name="split", grace=1.5))
    assert isinstance(answer, cluster.Started) and answer.run_id == run_id
    for machine in ("car", "laptop"):
        (stop,) = two.to(machine, cluster.StopRunHere)
        assert stop.grace == 1.5 and stop.reason == "requested by `car stop`"
    assert two.flow().state == FlowState.STOPPING
    for machine in ("car", "laptop"):
        two.daemons.deliver(machine.encode(), cluster.RunEnded(machine, run_id, 0))
    assert two.flow().state == FlowState.FINISHED
    (declined,) = two.ask(cluster.StopDataflowNamed(name="split"))
    assert declined.error == "dataflow `split` has already ended (finished)"


def test_a_stop_without_a_name_needs_exactly_one_running_dataflow(two: Cluster) -> None:
    (none,) = two.ask(cluster.StopDataflowNamed(name=""))
    assert none.error == "no dataflow is running"
    two.start(name="one")
    two.start(name="two")
    (several,) = two.ask(cluster.StopDataflowNamed(name=""))
    assert several.error == "several dataflows are running (one, two): name one"
    (unknown,) = two.ask(cluster.StopDataflowNamed(name="three"))
    assert unknown.error == "no dataflow named `three` (running: one, two)"


def test_timers_start_everywhere_only_once_every_machines_nodes_are_ready(two: Cluster) -> None:
    run_id = two.start()
    two.daemons.deliver(b"car", cluster.PartReady("car", run_id))
    assert not two.to("car", cluster.AllReady)
    two.daemons.deliver(b"laptop", cluster.PartReady("laptop", run_id))
    assert two.to("car", cluster.AllReady) == two.to("laptop", cluster.AllReady) == [cluster.AllReady(run_id)]


def test_a_part_that_ends_closes_its_readers_elsewhere_and_the_flow_ends_with_the_last(two: Cluster) -> None:
    run_id = two.start()
    two.to("laptop")
    two.daemons.deliver(b"car", cluster.RunEnded("car", run_id, 0, ["done"]))
    assert two.for_part("laptop") == [(run_id, control.CloseInputs(["camera/image"]))]
    assert two.flow().state == FlowState.RUNNING
    two.daemons.deliver(b"laptop", cluster.RunEnded("laptop", run_id, 1))
    row = two.flow()
    assert row.state == FlowState.FAILED
    assert {p.machine: p.state for p in row.parts} == {"car": PartState.FINISHED, "laptop": PartState.FAILED}
    assert any("dataflow `split` failed" in line for line in two.said)


def test_nodes_that_end_on_one_machine_stop_their_senders_elsewhere_and_come_back(two: Cluster) -> None:
    run_id = two.start()
    two.daemons.deliver(b"laptop", cluster.NodesGone("laptop", run_id, ["viewer"], ["viewer/seen"]))
    assert two.for_part("car") == [(run_id, control.ReadersGone(["viewer"]))]
    two.daemons.deliver(b"laptop", cluster.NodesBack("laptop", run_id, ["viewer"]))
    assert two.for_part("car") == [(run_id, control.ReadersBack(["viewer"]))]


def test_a_lost_machine_degrades_the_flow_and_its_return_with_the_run_restores_it(two: Cluster) -> None:
    run_id = two.start()
    two.to("laptop")
    two.clock.now += STARTING_TIMEOUT_S + 4.0
    two.daemons.deliver(b"laptop", cluster.Pong("laptop", two.clock.wall_ns(), two.clock.wall_ns()))
    two.coordinator.ping(two.clock.now)
    row = two.flow()
    assert row.state == FlowState.DEGRADED and {p.machine: p.state for p in row.parts}["car"] == PartState.LOST
    assert two.for_part("laptop") == [(run_id, control.CloseInputs(["camera/image"]))]
    held = cluster.HeldRun(run_id, "split", SPLIT, "/flows/split.yml")
    two.join("car", runs=[held])
    assert two.flow().state == FlowState.RUNNING
    assert two.for_part("laptop") == []  # the laptop's viewer never sent to the car
    assert two.to("car", cluster.Welcome) == [cluster.Welcome()]


def test_a_lost_machine_that_returns_without_the_run_fails_it(two: Cluster) -> None:
    run_id = two.start()
    two.clock.now += STARTING_TIMEOUT_S + 4.0
    two.daemons.deliver(b"laptop", cluster.Pong("laptop", two.clock.wall_ns(), two.clock.wall_ns()))
    two.coordinator.ping(two.clock.now)
    two.join("car", runs=[])
    assert {p.machine: p.state for p in two.flow().parts}["car"] == PartState.FAILED
    two.daemons.deliver(b"laptop", cluster.RunEnded("laptop", run_id, 0))
    assert two.flow().state == FlowState.FAILED


def test_a_restarted_coordinator_knows_a_run_again_from_the_daemons_that_hold_it() -> None:
    cl = Cluster()
    nodes = [control.NodeRow(id="camera", state=NodeStatus.RUNNING, pid=7, restarts=0, rate=30.0, status="")]
    held = cluster.HeldRun("r1", "split", SPLIT, "/flows/split.yml", uptime_s=12.0, nodes=nodes)
    cl.join("car", runs=[held])
    row = cl.flow()
    assert row.state == FlowState.RUNNING and row.uptime_s == 12.0
    assert {p.machine: p.state for p in row.parts} == {"car": PartState.RUNNING, "laptop": PartState.UNKNOWN}
    cl.clock.now += 2 * 3.0 + 0.1  # the laptop's daemon had its time to register
    cl.coordinator.expire(cl.clock.now)
    assert {p.machine: p.state for p in cl.flow().parts}["laptop"] == PartState.LOST
    assert cl.flow().state == FlowState.DEGRADED


def test_ends_of_streams_a_machines_readers_received_go_to_each_senders_machine(two: Cluster) -> None:
    run_id = two.start()
    end = control.StreamEnd("viewer", "camera/image")
    two.daemons.deliver(b"laptop", cluster.EndsReceived("laptop", run_id, [end]))
    assert two.for_part("car") == [(run_id, control.EndsDelivered([end]))]
    assert two.for_part("laptop") == []


def test_a_log_request_is_passed_to_the_nodes_machine_and_its_answer_back(two: Cluster) -> None:
    run_id = two.start()
    assert two.ask(cluster.ReadLogs(name="split", node="viewer", offset=5)) == []
    (read,) = two.to("laptop", cluster.ReadLog)
    assert read.run_id == run_id and read.node == "viewer" and read.offset == 5
    two.daemons.deliver(b"laptop", cluster.LogText("laptop", read.token, "hello\n", 11))
    assert two.clients.take(CLI) == [cluster.LogChunk("hello\n", 11, False)]
    (declined,) = two.ask(cluster.ReadLogs(name="split", node="nobody"))
    assert declined.error == "dataflow `split` has no node `nobody` (nodes: camera, viewer)"


def test_a_request_a_machine_does_not_answer_in_time_is_declined_and_a_late_answer_dropped(two: Cluster) -> None:
    two.start()
    two.ask(cluster.AskPart(name="split", machine="car", request=b"q"))
    (asked,) = two.to("car", cluster.PartRequest)
    two.clock.now += RELAY_TIMEOUT_S + 0.1
    two.coordinator.expire(two.clock.now)
    assert two.clients.take(CLI) == [cluster.Declined("machine `car` did not answer")]
    two.daemons.deliver(b"car", cluster.PartAnswer("car", asked.token, b"late"))
    assert two.clients.take(CLI) == []


def test_a_part_request_is_answered_with_the_parts_reply_and_its_machines_key(two: Cluster) -> None:
    two.start()
    two.ask(cluster.AskPart(name="split", machine="car", request=b"q"))
    (asked,) = two.to("car", cluster.PartRequest)
    two.daemons.deliver(b"car", cluster.PartAnswer("car", asked.token, b"answer"))
    assert two.clients.take(CLI) == [cluster.PartReply(b"answer", "")]
    (declined,) = two.ask(cluster.AskPart(name="split", machine="robot", request=b"q"))
    assert declined.error == "dataflow `split` has no part on machine `robot` (car, laptop)"


def test_an_error_answer_to_a_passed_on_request_is_declined_with_it(two: Cluster) -> None:
    two.start()
    two.ask(cluster.ReadLogs(name="split", node="camera"))
    (read,) = two.to("car", cluster.ReadLog)
    two.daemons.deliver(b"car", cluster.LogText("car", read.token, error="cannot read camera.log: gone"))
    assert two.clients.take(CLI) == [cluster.Declined("cannot read camera.log: gone")]


def test_shutdown_asks_every_machine_to_leave_and_ends_once_their_runs_have(two: Cluster) -> None:
    run_id = two.start()
    assert two.ask(cluster.Shutdown()) == []
    assert two.to("car", cluster.Leave) == [cluster.Leave("`car down`")]
    assert not two.coordinator.done(two.clock.now)
    for machine in ("car", "laptop"):
        two.daemons.deliver(machine.encode(), cluster.RunEnded(machine, run_id, 0))
    assert two.coordinator.done(two.clock.now)
    two.coordinator.close()
    assert two.clients.take(CLI) == [cluster.Accepted()]


def test_shutdown_gives_up_on_daemons_that_do_not_answer(two: Cluster) -> None:
    two.start()
    two.coordinator.begin_shutdown("SIGTERM received")
    assert not two.coordinator.done(two.clock.now + LEAVE_WAIT_S - 1)
    assert two.coordinator.done(two.clock.now + LEAVE_WAIT_S + 1)


def test_an_unreadable_request_or_one_of_the_wrong_direction_is_refused_and_serving_goes_on(two: Cluster) -> None:
    two.clients.dispatch(CLI, b"\xc1 not msgpack")
    (refused,) = two.clients.take(CLI)
    assert isinstance(refused, cluster.Declined) and refused.error.startswith("bad request: not a control message")
    two.clients.deliver(CLI, cluster.Pong("car"))  # a daemon's message on the command port
    (wrong,) = two.clients.take(CLI)
    assert "is not a ClientToCoordinator message" in wrong.error
    (listing,) = two.ask(cluster.ListDataflows())
    assert isinstance(listing, cluster.Dataflows)


def test_only_the_latest_ended_flows_are_kept(two: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coordinator_module, "FINISHED_KEPT", 2)
    for k in range(4):
        run_id = two.start(name=f"run{k}")
        two.clock.now += 1
        for machine in ("car", "laptop"):
            two.daemons.deliver(machine.encode(), cluster.RunEnded(machine, run_id, 0))
    two.coordinator.expire(two.clock.now)
    (listing,) = two.ask(cluster.ListDataflows())
    assert [row.name for row in listing.dataflows] == ["run2", "run3"]
    assert FINISHED_KEPT >= 2


def test_node_states_a_machine_reports_are_what_list_shows(two: Cluster) -> None:
    run_id = two.start()
    row = control.NodeRow(id="camera", state=NodeStatus.RUNNING, pid=42, restarts=1, rate=29.9, status="ok")
    two.daemons.deliver(b"car", cluster.RunState("car", run_id, [row]))
    car = next(p for p in two.flow().parts if p.machine == "car")
    assert car.nodes == [row] and car.nodes[0].state is NodeStatus.RUNNING
    two.daemons.deliver(b"car", cluster.RunEnded("car", run_id, 0))
    car = next(p for p in two.flow().parts if p.machine == "car")
    assert car.nodes[0].state is NodeStatus.EXITED and car.nodes[0].pid == 0


def test_while_a_flow_stops_its_parts_are_not_asked_to_close_each_others_inputs(two: Cluster) -> None:
    run_id = two.start()
    two.ask(cluster.StopDataflowNamed(name="split"))
    two.to("laptop")
    two.daemons.deliver(b"car", cluster.RunEnded("car", run_id, 0))
    assert two.for_part("laptop") == []  # its readers have STOP already
    two.daemons.deliver(b"laptop", cluster.RunEnded("laptop", run_id, 0))
    assert two.flow().state == FlowState.FINISHED
