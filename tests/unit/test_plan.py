"""The run plan of a machine: one function builds it from the dataflow; it gains and loses subscribers."""

from __future__ import annotations

from pathlib import Path

from car.plan.build import SUBSCRIBER_LINES, Wiring, plan_machine, remote_keys
from car.spec.loader import load_dataflow
from tests.helpers import write_flow

SPLIT = """
    nodes:
      - id: camera
        path: a.py
        inputs: {tick: dora/timer/millis/33}
        outputs: [image]
        deploy: {machine: car}
      - id: detector
        path: a.py
        inputs: {image: camera/image}
        outputs: [line]
        deploy: {machine: laptop, working_dir: /srv/car}
      - id: controller
        path: a.py
        inputs: {line: detector/line, image: camera/image}
        outputs: [cmd]
        deploy: {machine: car}
"""


def test_a_machines_plan_holds_its_own_nodes_and_reaches_the_others_over_tcp(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, SPLIT, a_py="")
    dataflow = load_dataflow(flow)
    assert remote_keys(dataflow, "car") == ["controller"] and remote_keys(dataflow, "laptop") == ["detector"]
    wiring = Wiring(listen={"controller": "tcp://127.0.0.1:7001"}, reach={"detector": "tcp://10.0.0.2:7002"})
    car = plan_machine(dataflow, "r", "r", str(tmp_path), "ipc://x", machine="car", wiring=wiring)
    assert sorted(car.nodes) == ["camera", "controller"] and car.machine == "car"
    local, remote = car.nodes["camera"].outputs["image"]
    assert (local.node, local.remote, local.line) == ("controller", False, 0)
    assert (remote.node, remote.endpoint, remote.remote, remote.line) == ("detector", "tcp://10.0.0.2:7002", True, -1)
    assert car.nodes["camera"].shared["image"].readers == 1  # the reader elsewhere maps nothing here
    assert car.nodes["controller"].remote_endpoint == "tcp://127.0.0.1:7001"
    assert car.nodes["controller"].inputs["line"].shm_prefix == ""  # from another machine: no shared memory
    laptop = plan_machine(dataflow, "r", "r", str(tmp_path), "ipc://x", machine="laptop")
    assert list(laptop.nodes) == ["detector"]
    assert laptop.nodes["detector"].outputs["line"] == []  # not wired: no coordinator gave endpoints
    everything = plan_machine(dataflow, "r", "r", str(tmp_path), "ipc://x")  # car launch: one machine
    assert sorted(everything.nodes) == ["camera", "controller", "detector"]
    assert not any(d.remote for c in everything.nodes.values() for ds in c.outputs.values() for d in ds)


def test_a_backpressure_input_from_another_machine_listens_on_a_socket_of_its_own(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - {id: a, path: a.py, outputs: [x], deploy: {machine: m1}}
          - id: b
            path: a.py
            inputs: {x: {source: a/x, queue_policy: backpressure, queue_size: 3}, y: a/x}
            deploy: {machine: m2}
        """,
        a_py="",
    )
    dataflow = load_dataflow(flow)
    assert remote_keys(dataflow, "m2") == ["b/x", "b"] and remote_keys(dataflow, "m1") == []
    reach = {"b/x": "tcp://h:1", "b": "tcp://h:2"}
    sender = plan_machine(dataflow, "r", "r", str(tmp_path), "ipc://x", "m1", Wiring(reach=reach))
    credit, plain = sender.nodes["a"].outputs["x"]
    assert (credit.endpoint, credit.backpressure, credit.queue_size, credit.inputs) == ("tcp://h:1", True, 3, ["x"])
    assert (plain.endpoint, plain.backpressure, plain.inputs) == ("tcp://h:2", False, ["y"])
    reader = plan_machine(dataflow, "r", "r", str(tmp_path), "ipc://x", "m2", Wiring(listen=reach))
    assert reader.nodes["b"].inputs["x"].endpoint == "tcp://h:1" and reader.nodes["b"].remote_endpoint == "tcp://h:2"


def test_subscribers_get_spare_reader_lines_and_give_them_back(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, SPLIT, a_py="")
    plan = plan_machine(load_dataflow(flow), "r", "r", str(tmp_path), "ipc://x")
    shared = plan.nodes["camera"].shared["image"]
    assert shared.readers == 2 and shared.lines == 2 + SUBSCRIBER_LINES
    targets = [plan.add_subscriber(f"s{k}", "camera/image", f"ipc://s{k}", 5) for k in range(SUBSCRIBER_LINES + 1)]
    assert [t.destination.line for t in targets] == [2, 3, 4, 5, -1]  # past the spare lines: copied, not shared
    assert targets[0].shm_prefix == shared.prefix and targets[-1].shm_prefix == ""
    assert plan.readers("camera/image") == ["detector", "controller"]  # subscribers are not node readers
    assert [t.node for t in plan.remove_subscriber("s1")] == ["camera"]
    again = plan.add_subscriber("s9", "camera/image", "ipc://s9", 5)
    assert again.destination.line == 3  # the line s1 gave back
    assert sum(1 for d in plan.nodes["camera"].outputs["image"] if d.subscription) == SUBSCRIBER_LINES + 1
