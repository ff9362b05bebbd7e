"""What runs on the car installs from Alpine's packages: the car side imports no third-party module but those the
install guide (docs/how-to/install-on-alpine.md) installs with apk (numpy, OpenCV, pyzmq, pyserial, PyYAML, msgpack), and no laptop-only one."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.helpers import ROOT

# A module the car side imports -> the Alpine package that has it (docs/how-to/install-on-alpine.md).
ALPINE = {
    "numpy": "py3-numpy",
    "cv2": "py3-opencv",
    "zmq": "py3-pyzmq",
    "serial": "py3-pyserial",
    "yaml": "py3-yaml",
    "msgpack": "py3-msgpack",
}
OURS = {"car", "hal", "sim", "nodes", "firmware", "view", "tools"}
# What the car runs: `car launch` and `car daemon` (the CLI, the daemons), the nodes of follow_line.yml and
# follow_line_ir.yml with --hw, and what they load once running on the board and the camera.
CAR_SIDE = [
    "car.commands.cli",
    "car.commands.launch",
    "car.commands.daemons",
    "car.daemon.daemon",
    "car.daemon.machine",
    "car.daemon.run_part",
    "nodes.launch_options",
    "nodes.car_io.__main__",
    "nodes.car_io.board",
    "nodes.controller",
    "nodes.line_detector",
    "nodes.ir_follower",
    "hal.board_client",
    "hal.camera",
]


def _imported_by(modules: list[str]) -> set[str]:
    """The top-level modules a fresh interpreter has after importing `modules`."""
    code = (
        "import json, sys\n"
        f"for name in {modules!r}: __import__(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert found.returncode == 0, found.stderr
    return set(json.loads(found.stdout))


def test_the_car_side_imports_only_what_alpine_packages() -> None:
    third_party = {
        name
        for name in _imported_by(CAR_SIDE)
        if name not in sys.stdlib_module_names
        and name not in OURS
        and name != "cython_runtime"  # made by Cython-compiled extensions (pyzmq, msgpack)
        and not name.startswith(("_", "__editable__"))
    }
    assert third_party <= set(ALPINE), (
        f"the car side needs {sorted(third_party - set(ALPINE))}, which apk does not install"
    )
    assert {"numpy", "cv2", "zmq", "serial", "yaml", "msgpack"} <= third_party  # the list is not longer than needed
    assert not {"view", "sim"} & _imported_by(
        ["nodes.car_io.__main__", "nodes.car_io.board", "nodes.controller", "nodes.ir_follower"]
    )


def test_the_install_guide_installs_exactly_those_packages() -> None:
    readme = (ROOT / "docs" / "how-to" / "install-on-alpine.md").read_text()
    found = re.search(r"^apk add (.+)$", readme, re.MULTILINE)
    assert found is not None, "docs/how-to/install-on-alpine.md has no `apk add` line for the car side"
    packages = set(found.group(1).split())
    assert set(ALPINE.values()) <= packages and packages - set(ALPINE.values()) <= {"python3", "py3-pip"}
