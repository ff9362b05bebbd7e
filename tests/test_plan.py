"""The run plan of a machine: one function builds it from the dataflow; it gains and loses subscribers."""

from __future__ import annotations

from pathlib import Path

from car.plan.build import SUBSCRIBER_LINES, RemoteLink, plan_machine
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


def test_a_machines_plan_holds_its_own_nodes_and_lists_the_links_to_others(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, SPLIT, a_py="")
    dataflow = load_dataflow(flow)
    car = plan_machine(dataflow, "r", "r", str(tmp_path), "ipc://x", machine="car")
    assert sorted(car.nodes) == ["camera", "controller"] and car.machine == "car"
    assert car.remote_links == [RemoteLink("camera/image", "detector", ("image",), "laptop")]
    assert [d.node for d in car.nodes["camera"].outputs["image"]] == ["controller"]  # the local reader only
    assert car.nodes["controller"].inputs["line"].shm_prefix == ""  # from another machine: no shared memory
    laptop = plan_machine(dataflow, "r", "r", str(tmp_path), "ipc://x", machine="laptop")
    assert list(laptop.nodes) == ["detector"]
    assert laptop.remote_links == [RemoteLink("detector/line", "controller", ("line",), "car")]
    everything = plan_machine(dataflow, "r", "r", str(tmp_path), "ipc://x")  # car launch: one machine
    assert sorted(everything.nodes) == ["camera", "controller", "detector"] and everything.remote_links == []


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
