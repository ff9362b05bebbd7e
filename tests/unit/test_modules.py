"""dora's modules, expanded when a dataflow loads: names, wiring, params, nesting, and each mistake located in the
file it is in (car.spec.modules, car.spec.loader). No process: files only."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pytest

from car.spec.loader import check_text, load_dataflow
from car.spec.model import DataflowError, Placement
from car.spec.modules import MAX_FILE_BYTES
from tests.helpers import ROOT


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder / "flow.yml"


def problems_of(flow: Path) -> list[str]:
    with pytest.raises(DataflowError) as caught:
        load_dataflow(flow)
    return [str(p) for p in caught.value.problems]


def test_dora_s_module_example_expands_to_named_nodes_wired_through() -> None:
    flow = load_dataflow(ROOT / "tests" / "fixtures" / "dora_modules" / "dataflow.yml")
    by_id = {node.id: node for node in flow.nodes}
    assert list(by_id) == ["sender", "pipeline.doubler", "pipeline.filter", "receiver"]
    assert by_id["pipeline.doubler"].inputs["data"].source == "sender/value"
    assert by_id["pipeline.filter"].inputs["data"].source == "pipeline.doubler/doubled"
    assert by_id["receiver"].inputs["filtered"].source == "pipeline.filter/filtered"
    assert by_id["pipeline.doubler"].path == "modules/doubler.py"  # from the module's folder
    assert by_id["pipeline.doubler"].location.file.endswith("modules/transform_module.yml")


NESTED = {
    "flow.yml": """
        nodes:
          - id: cam
            path: n.py
            outputs: [image]
          - id: vision
            module: mods/outer.yml
            env: {SHARED: "1"}
            params: {gain: 2.5}
            deploy: {machine: car}
            inputs: {frames: cam/image}
          - id: show
            path: n.py
            inputs: {boxes: vision/boxes, said: vision/said}
        """,
    "n.py": "",
    "mods/outer.yml": """
        module:
          name: outer
          inputs: [frames]
          inputs_optional: [config]
          outputs: [boxes, said]
        build: echo outer
        nodes:
          - id: pre
            path: pre.py
            args: --gain $PARAM_GAIN
            env: {SHARED: "own"}
            inputs: {image: _mod/frames, config: _mod/config}
            outputs: [clean]
          - id: inner
            module: inner/detect.yml
            inputs: {image: pre/clean}
          - id: ops
            operators:
              - id: speak
                python: speak.py
                inputs: {boxes: inner/boxes}
                outputs: [said]
        """,
    "mods/pre.py": "",
    "mods/speak.py": "",
    "mods/inner/detect.yml": """
        module: {name: detect, inputs: [image], outputs: [boxes]}
        nodes:
          - id: net
            path: net.py
            inputs: {image: _mod/image}
            outputs: [boxes]
        """,
    "mods/inner/net.py": "",
}


def test_nested_modules_params_env_deploy_operators_and_optional_ports(tmp_path: Path) -> None:
    flow = load_dataflow(write(tmp_path, NESTED))
    by_id = {node.id: node for node in flow.nodes}
    assert list(by_id) == ["cam", "vision.pre", "vision.inner.net", "vision.ops", "show"]
    pre, net, ops, show = by_id["vision.pre"], by_id["vision.inner.net"], by_id["vision.ops"], by_id["show"]
    assert pre.args == ("--gain", "2.5") and pre.env == {"SHARED": "own", "PARAM_GAIN": "2.5"}
    assert set(pre.inputs) == {"image"}  # the optional port is not wired: its input goes
    assert net.inputs["image"].source == "vision.pre/clean" and net.path == "mods/inner/net.py"
    assert ops.operators[0].inputs["boxes"].source == "vision.inner.net/boxes"
    assert ops.operators[0].python == "mods/speak.py"
    assert show.inputs["boxes"].source == "vision.inner.net/boxes"
    assert show.inputs["said"].source == "vision.ops/speak/said"
    assert {pre.machine, net.machine, ops.machine} == {"car"}
    assert pre.builds == ("(cd mods && echo outer)",)


def test_module_mistakes_are_located_in_the_file_they_are_in(tmp_path: Path) -> None:
    files = dict(NESTED)
    files["flow.yml"] = files["flow.yml"].replace("inputs: {frames: cam/image}", "inputs: {frame: cam/image}")
    files["flow.yml"] = files["flow.yml"].replace("vision/said", "vision/sad")
    files["mods/outer.yml"] = files["mods/outer.yml"].replace("_mod/config", "_mod/settings")
    files["mods/inner/detect.yml"] = files["mods/inner/detect.yml"].replace("outputs: [boxes]\n", "outputs: [box]\n", 1)
    found = problems_of(write(tmp_path, files))
    flow, outer, inner = (str(tmp_path / name) for name in ("flow.yml", "mods/outer.yml", "mods/inner/detect.yml"))
    expected = [
        f"{flow}:6:5: module node `vision` does not wire its module's input `frames`",
        f"{flow}:11:14: module node `vision`: its module has no input `frame`",
        f"{flow}:14:41: node `show` input `said` reads `vision/sad`, but module `vision` has no such output",
        f"{outer}:13:42: node `pre` input `config` reads `_mod/settings`, which the module does not declare",
    ]
    text = "\n".join(found)
    for part in expected:
        assert part in text, (part, found)
    assert "outer.yml:6:13" not in text  # what follows from the nested module's mistake is not said again
    assert f"{inner}:2:51: the module's output `boxes` is sent by none of its nodes" in text, found


@pytest.mark.parametrize(
    ("module_text", "expected"),
    [
        ("module: {name: m}\nnodes:\n  - id: loop\n    module: m.yml\n", "module `m.yml` uses itself"),
        ("nodes: []\n", "the module file has no `module:` header"),
        ("module: {inputs: [a]}\nnodes:\n  - {id: a, path: n.py}\n", "the `module:` header has no `name`"),
        (
            "module: {name: m, outputs: [o]}\nnodes:\n  - {id: a, path: n.py, outputs: [o]}\n"
            "  - {id: b, path: n.py, outputs: [o]}\n",
            "the module's output `o` is sent by 2 of its nodes (m.a/o, m.b/o)",
        ),
        ("module: {name: m}\nnodes:\n  - id: a\n    path: n.py\n    inputs: {x: far/out}\n", "through `_mod/PORT`"),
        (": :\n", "YAML syntax error"),
    ],
)
def test_a_bad_module_file_is_one_clear_problem(tmp_path: Path, module_text: str, expected: str) -> None:
    (tmp_path / "m.yml").write_text(module_text)
    (tmp_path / "n.py").write_text("")
    flow = tmp_path / "flow.yml"
    flow.write_text("nodes:\n  - id: m\n    module: m.yml\n  - {id: n, path: n.py}\n")
    found = problems_of(flow)
    assert any(expected in p for p in found), found


def test_module_files_stay_inside_the_dataflow_s_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "outside.yml").write_text("module: {name: x}\nnodes:\n  - {id: a, path: a.py}\n")
    flow = tmp_path / "sub" / "flow.yml"
    flow.write_text("nodes:\n  - {id: m, module: ../outside.yml}\n  - {id: b, module: /etc/passwd}\n")
    found = "\n".join(problems_of(flow))
    assert "its module file `../outside.yml` is outside the dataflow's folder" in found
    assert "its module file `/etc/passwd` is outside the dataflow's folder" in found


def test_module_files_read_are_kept_and_given_ones_are_read_instead_of_the_disk(tmp_path: Path) -> None:
    """What `car start` sends with the dataflow (Dataflow.modules), and what a machine without the folder checks
    with: the texts, never its own disk."""
    flow = load_dataflow(write(tmp_path, NESTED))
    assert set(flow.modules) == {"mods/outer.yml", "mods/inner/detect.yml"}
    assert flow.modules["mods/inner/detect.yml"] == (tmp_path / "mods" / "inner" / "detect.yml").read_text()
    elsewhere = Path("/nonexistent-laptop/project/flow.yml")  # the CLI's path: not on this machine
    placement = Placement(frozenset({"laptop"}), "laptop", checking="")  # as the coordinator checks it
    checked = check_text(NESTED_FLOW, str(elsewhere), elsewhere, placement, flow.modules)
    assert [node.id for node in checked.nodes] == [node.id for node in flow.nodes]
    assert checked.modules == flow.modules
    with pytest.raises(DataflowError) as caught:
        check_text(
            NESTED_FLOW, str(elsewhere), elsewhere, placement, {"mods/outer.yml": flow.modules["mods/outer.yml"]}
        )
    (problem,) = caught.value.problems
    assert "module file `inner/detect.yml` was not sent with the dataflow (sent: mods/outer.yml)" in str(problem)
    assert problem.location.file.endswith("mods/outer.yml")  # located in the module file that names it
    oversized = {**flow.modules, "mods/outer.yml": "#" * (MAX_FILE_BYTES + 1)}
    with pytest.raises(DataflowError, match=r"module file `mods/outer.yml` is \d+ bytes"):
        check_text(NESTED_FLOW, str(elsewhere), elsewhere, placement, oversized)


NESTED_FLOW = textwrap.dedent(NESTED["flow.yml"]).replace(
    "deploy: {machine: car}", "deploy: {machine: car, working_dir: proj}"
)


def test_a_module_node_s_working_dir_is_where_its_nodes_run_on_its_machine(tmp_path: Path) -> None:
    """`deploy: {machine: car, working_dir: proj}` on a module node: its nodes (nested ones too) run in `proj` on
    the car, each at its module file's place in it; checked there, not refused for their relative paths."""
    files = {**NESTED, "flow.yml": NESTED_FLOW}
    flow = load_dataflow(write(tmp_path, files), Placement(frozenset({"laptop"}), "laptop"))
    by_id = {node.id: node for node in flow.nodes}
    for node_id, path in (("vision.pre", "mods/pre.py"), ("vision.inner.net", "mods/inner/net.py")):
        assert (by_id[node_id].machine, by_id[node_id].working_dir, by_id[node_id].path) == ("car", "proj", path)
    assert by_id["cam"].working_dir == ""
    without = files["flow.yml"].replace(", working_dir: proj", "")
    with pytest.raises(DataflowError, match="node `pre` runs on machine `car`, which does not share"):
        load_dataflow(write(tmp_path, {"flow.yml": without}), Placement(frozenset({"laptop"}), "laptop"))


def test_car_start_sends_the_module_files_it_read_with_the_dataflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from car.commands import placed
    from car.daemon import machine
    from car.transport import cluster

    sent: list[cluster.ClientToCoordinator] = []

    def ask(target: str, message: cluster.ClientToCoordinator, answer: type, timeout: float = 5.0) -> object:
        sent.append(message)
        return cluster.Started("flow", "0123abcd", ["car"])

    monkeypatch.setattr(placed, "ask", ask)
    monkeypatch.setattr(machine, "local_machines", lambda: ["car"])
    file = write(tmp_path, NESTED)
    options = {"name": "", "attach": False, "record": None, "record_machine": None, "topics": []}
    args = argparse.Namespace(file=str(file), no_sync=True, coordinator_addr="127.0.0.1:1", **options)
    assert placed.cmd_start(args) == 0
    (message,) = sent
    assert isinstance(message, cluster.StartDataflow) and message.text == file.read_text()
    assert message.modules == load_dataflow(file).modules and len(message.modules) == 2
