"""A graph edited while it runs (car.daemon.edits): what each edit changes in the plan, and what it tells the nodes;
and a node's queues gaining and losing an input (car.node.queues). In memory: no process, no socket."""

from __future__ import annotations

from pathlib import Path

import pytest

from car.daemon import edits
from car.node.drops import DropFlag
from car.node.queues import InputQueues
from car.plan.build import RunPlace, RunPlan, Wiring, plan_machine
from car.spec.loader import check_node, load_dataflow
from car.spec.model import Dataflow, DataflowError
from car.transport import control
from car.transport.hlc import HybridLogicalClock

FLOW = """
nodes:
  - {id: src, path: n.py, inputs: {tick: dora/timer/millis/10}, outputs: [count, other]}
  - {id: sink, path: n.py, inputs: {count: src/count}}
  - id: ops
    operators:
      - {id: a, python: n.py, inputs: {count: src/count}}
"""
PLACE = RunPlace("r1", "run", "/tmp/run", "ipc:///tmp/run/control.sock")


Graph = tuple[Dataflow, RunPlan]


@pytest.fixture
def graph(tmp_path: Path) -> Graph:
    (tmp_path / "n.py").write_text("")
    (tmp_path / "flow.yml").write_text(FLOW)
    dataflow = load_dataflow(tmp_path / "flow.yml")
    return dataflow, plan_machine(dataflow, "r1", "run", "/tmp/run", PLACE.control_endpoint)


def test_connect_gives_the_reader_an_input_and_the_sender_a_destination(graph: Graph) -> None:
    dataflow, plan = graph
    edit = edits.connect(dataflow, plan, "src/other", "sink", "other", 3)
    assert edit.dataflow.node("sink").inputs["other"].source == "src/other"
    assert plan.nodes["sink"].inputs["other"].queue_size == 3
    assert edit.tell == [
        ("sink", control.AddInput("other", "src/other", 3)),
        ("src", control.AddDestination("other", "sink", plan.nodes["sink"].receive_endpoint, ["other"], 3)),
    ]
    assert [d.node for d in plan.nodes["src"].outputs["other"]] == ["sink"]
    again = edits.connect(edit.dataflow, plan, "src/count", "sink", "count2", 10)  # a source it reads already
    assert [d.inputs for d in plan.nodes["src"].outputs["count"] if d.node == "sink"] == [["count", "count2"]]
    assert again.tell[0] == ("sink", control.AddInput("count2", "src/count", 10))


def test_disconnect_stops_sending_only_when_no_input_of_the_reader_reads_the_source(graph: Graph) -> None:
    dataflow, plan = graph
    dataflow = edits.connect(dataflow, plan, "src/count", "sink", "count2", 10).dataflow
    edit = edits.disconnect(dataflow, plan, "src/count", "sink", "count2")
    assert edit.tell == [("sink", control.RemoveInput("count2"))]  # `count` still reads src/count
    edit = edits.disconnect(edit.dataflow, plan, "src/count", "sink", "count")
    assert edit.tell == [("sink", control.RemoveInput("count")), ("src", control.RemoveDestination("count", "sink"))]
    assert not [d for d in plan.nodes["src"].outputs["count"] if d.node == "sink"]
    assert "count" not in plan.nodes["sink"].inputs and not edit.dataflow.node("sink").inputs


@pytest.mark.parametrize(
    ("source", "node", "name", "refusal"),
    [
        ("src/cuont", "sink", "x", "`src` declares no output `cuont` (did you mean `count`?)"),
        ("srx/count", "sink", "x", "there is no node `srx` (did you mean `src`?)"),
        ("src/count", "snik", "x", "the graph has no node `snik` (did you mean `sink`?)"),
        ("src/count", "sink", "count", "node `sink` has an input `count` already (from `src/count`)"),
        ("src/count", "ops", "x", "node `ops` runs operators"),
        ("dora/timer/millis/5", "sink", "x", "a timer input goes in the node's definition"),
        ("src/count", "sink", "a b", "input name `a b` must not contain `/` or spaces"),
    ],
)
def test_a_connection_that_does_not_check_is_refused_with_car_check_s_words(
    graph: Graph,
    source: str,
    node: str,
    name: str,
    refusal: str,
) -> None:
    dataflow, plan = graph
    with pytest.raises(edits.EditRefused) as caught:
        edits.connect(dataflow, plan, source, node, name, 10)
    assert refusal in str(caught.value)


def test_an_added_node_is_wired_to_its_sources_and_timers(graph: Graph) -> None:
    dataflow, plan = graph
    spec = check_node(
        "id: extra\npath: n.py\ninputs: {c: src/count, t: dora/timer/hz/5}\noutputs: [d]\n", "x.yml", dataflow
    )
    edit = edits.add(dataflow, plan, spec, 1000, PLACE, Wiring())
    assert edit.start is spec and edit.config is plan.nodes["extra"]
    assert edit.config.receive_endpoint == "ipc:///tmp/run/n1000.sock"
    assert edit.timers == [("dora/timer/hz/5", "extra")]
    assert edit.tell == [("src", control.AddDestination("count", "extra", edit.config.receive_endpoint, ["c"], 10))]
    assert [n.id for n in edit.dataflow.nodes] == ["src", "sink", "ops", "extra"]


def test_an_added_node_is_checked_against_the_running_graph(graph: Graph) -> None:
    dataflow, _ = graph
    with pytest.raises(DataflowError) as caught:
        check_node(
            "id: sink\npath: n.py\ninputs:\n  c: src/cuont\n  b: {source: src/count, queue_policy: backpressure}\n",
            "x.yml",
            dataflow,
        )
    text = str(caught.value)
    assert "x.yml:1:1: the running graph has a node `sink` already" in text
    assert "x.yml:4:6: node `sink` input `c` reads `src/cuont`, but `src` declares no output `cuont`" in text
    assert "x.yml:5:6: node `sink` input `b`: a node added to a running graph cannot take backpressure" in text


def test_a_replacement_keeps_its_readers_and_must_still_send_what_they_read(graph: Graph) -> None:
    dataflow, plan = graph
    with pytest.raises(
        DataflowError, match="node `sink` input `count` reads `src/count`, which this `src` does not send"
    ):
        check_node("id: src\npath: n.py\noutputs: [other]\n", "x.yml", dataflow, replacing="src")
    readers = plan.nodes["src"].outputs["count"]
    spec = check_node(
        "id: src\npath: n.py\ninputs: {t: dora/timer/hz/2}\noutputs: [count, more]\n", "x.yml", dataflow, "src"
    )
    edit = edits.replace(dataflow, plan, spec, 0, PLACE, Wiring())
    assert edit.restart is spec and plan.nodes["src"].outputs["count"] is readers  # its readers go on reading it
    assert plan.nodes["src"].outputs["more"] == [] and plan.nodes["src"].receive_endpoint == "ipc:///tmp/run/n0.sock"
    assert edit.timers == [("dora/timer/hz/2", "src")]


def test_removing_a_node_stops_its_senders_sending_to_it(graph: Graph) -> None:
    dataflow, plan = graph
    edit = edits.remove(dataflow, plan, "sink")
    assert edit.stop == "sink" and [n.id for n in edit.dataflow.nodes] == ["src", "ops"]
    assert edit.tell == [("src", control.RemoveDestination("count", "sink"))]


def test_an_input_added_and_removed_in_a_node_s_queues() -> None:
    queues = InputQueues({}, HybridLogicalClock(), DropFlag(), lambda _: None, lambda _: None)
    queues.add_input("late", "src/count", 2)
    assert set(queues.inputs) == {"late"}
    queues.remove_input("late")
    event = queues.pop()
    assert event is not None and (event.type, event.id) == ("INPUT_CLOSED", "late")
    assert queues.inputs == {} and not queues.stop_seen  # a node that lost its last input goes on
