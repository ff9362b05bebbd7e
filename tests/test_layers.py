"""The layering is checked, and the car's numbers come from its description, not from the simulator."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hal.description import CarDescription, DescriptionError, load_description, to_yaml
from tests.helpers import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """import-linter on the copy of the packages in `tree`, with its pyproject.toml's contracts."""
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True, env=env)


def test_the_import_contracts_catch_a_deliberate_violation(tmp_path: Path) -> None:
    for part in ("car", "hal", "sim", "nodes", "firmware", "view", "tools"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    kept = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert kept.returncode == 0, kept.stdout
    with (tmp_path / "nodes" / "controller.py").open("a") as f:
        f.write("\nimport sim.world  # a node on the --hw path reaching into the simulator\n")
    with (tmp_path / "car" / "daemon" / "timers.py").open("a") as f:
        f.write("\nimport car.node.api  # the daemon side reaching into the node side\n")
    with (tmp_path / "car" / "commands" / "common.py").open("a") as f:
        f.write("\nimport car.commands.cli  # a circle: the table imports what every command shares\n")
    broken = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert broken.returncode == 1
    assert "nodes.controller -> sim.world" in broken.stdout
    assert "car.daemon.timers -> car.node.api" in broken.stdout
    assert "No cycles are allowed in car.commands" in broken.stdout and "- .common -> .cli" in broken.stdout
    assert "Contracts: 5 kept, 3 broken." in broken.stdout


def test_the_hw_path_of_car_io_loads_nothing_of_the_simulator() -> None:
    code = "import sys, nodes.car_io.__main__, nodes.car_io.board, nodes.controller, nodes.line_detector, nodes.teleop"
    code += ", nodes.ir_follower\n"
    code += "print(sorted(m for m in sys.modules if m == 'sim' or m.startswith('sim.')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_shipped_description_is_the_simulators_car() -> None:
    shipped = ROOT / "hal" / "cars" / "sim.yml"
    assert load_description(shipped) == CarDescription()
    assert to_yaml(CarDescription()) in shipped.read_text()  # the file says every number, as the classes do


def test_a_real_cars_file_names_what_differs_and_mistakes_are_named(tmp_path: Path) -> None:
    mine = tmp_path / "my_car.yml"
    mine.write_text("car: {wheel_base: 0.16}\ncamera: {tilt_deg: 30}\n")
    description = load_description(mine)
    assert description.car.wheel_base == 0.16 and description.camera.tilt_deg == 30.0
    assert description.sensors == CarDescription().sensors
    for text, message in [
        ("car: {wheelbase: 0.16}", "`car` has no key `wheelbase` (keys: wheel_base"),
        ("car: {wheel_base: wide}", "`car.wheel_base` must be a float, not 'wide'"),
        ("camera: {width: .inf}", "`camera.width` must be a int"),
        ("car: {wheel_base: .nan}", "`car.wheel_base` must be a float, not nan"),
        ("wheel: {}", "unknown section wheel"),
        ("wheels: {left_motor: 2}", "the `wheels` motor and encoder signs are 1 or -1"),
        ("sensors: {line_tape: [1, 1]}", "`sensors.line_tape` needs one value for each of the 5 line sensors"),
        ("sensors: {line_floor: 0.1}", "`sensors.line_floor` must be a list of numbers"),
        ("[1, 2]", "a car description is a mapping"),
        ("car: {a: [", "not YAML"),
    ]:
        mine.write_text(text)
        with pytest.raises(DescriptionError, match=str(mine)) as info:
            load_description(mine)
        assert message in str(info.value), (text, str(info.value))
    with pytest.raises(DescriptionError, match="cannot read the car description"):
        load_description(tmp_path / "missing.yml")
