"""`car new PROJECT`: a project that `car launch` runs at once; `car new node NAME`: a node added to one.

As `dora new` and `ros2 pkg create` do: a folder with a dataflow (`dataflow.yml`), two
nodes (`nodes/talker.py` counts on a timer, `nodes/listener.py` prints what it hears), a
test for each (`tests/`: the node's logic alone, and the graph launched for a few seconds)
and a README that says what to run. `car new node NAME`, in a project's folder, writes
`nodes/NAME.py` and its test and appends the node to `dataflow.yml` (reading the talker),
keeping the rest of the file as it was.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from car.commands.common import UserError

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a node's name is its module's name too

DATAFLOW = """\
# {project}: a dataflow. `car launch dataflow.yml` runs it; `car check dataflow.yml` checks it.
nodes:
  - id: talker
    path: nodes/talker.py
    inputs:
      tick: dora/timer/millis/100   # ten times a second
    outputs:
      - count

  - id: listener
    path: nodes/listener.py
    inputs:
      count: talker/count
"""

TALKER = '''\
"""Counts on each tick and sends the count (an output of the dataflow: `talker/count`)."""

from car import Node


def next_count(count: int) -> int:
    """The count after one more tick: the node's logic, kept apart so that a test can call it."""
    return count + 1


def main() -> None:
    node = Node()
    count = 0
    for event in node:
        if event.type == "INPUT" and event.id == "tick":
            count = next_count(count)
            node.send_output("count", {{"n": count}})
            node.set_status(f"count {{count}}")


if __name__ == "__main__":
    main()
'''

LISTENER = '''\
"""Prints every count it hears (its lines go to the run's log: out/RUN/listener.log)."""

from car import Node


def describe(value: dict[str, int]) -> str:
    """What the listener prints for one message."""
    return f"heard {{value['n']}}"


def main() -> None:
    node = Node()
    for event in node:
        if event.type == "INPUT":
            print(describe(event.value), flush=True)


if __name__ == "__main__":
    main()
'''

NODE = '''\
"""{name}: a node of this project. It reads `talker/count` and sends `{name}/out`."""

from car import Node


def handle(value: dict[str, int]) -> dict[str, int]:
    """What {name} sends for one input: the node's logic, kept apart so that a test can call it."""
    return {{"n": value["n"] * 2}}


def main() -> None:
    node = Node()
    for event in node:
        if event.type == "INPUT":
            node.send_output("out", handle(event.value), metadata=event.metadata)


if __name__ == "__main__":
    main()
'''

NODE_ENTRY = """
  - id: {name}
    path: nodes/{name}.py
    inputs:
      count: talker/count
    outputs:
      - out
"""

GRAPH_TEST = '''\
"""The whole graph, launched for a few seconds with real processes: the listener hears the talker."""

import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def test_the_listener_hears_the_talker(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "car", "launch", str(PROJECT / "dataflow.yml"), "--duration", "3", "--name", "test"]
        + ["--out", str(tmp_path), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    heard = (tmp_path / "test" / "listener.log").read_text()
    assert "heard 1" in heard and "heard 5" in heard
'''

NODE_TEST = '''\
"""{name}'s logic, without a running graph."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "nodes"))

from {module} import {function}  # noqa: E402


def test_{name}() -> None:
    assert {call} == {expected}
'''

README = """\
# {project}

A dataflow for `car` (smartcar): `talker` counts ten times a second, `listener` prints what
it hears.

    car launch dataflow.yml --duration 5   # run it; its nodes' logs are in out/RUN/
    car check dataflow.yml                 # check it
    python -m pytest tests                 # its tests: each node's logic, and the graph run
    car new node NAME                      # add a node (nodes/NAME.py, its test, dataflow.yml)

Each node is a Python file in `nodes/`: it loops over its events (`for event in node:`) and
sends outputs the dataflow declares (`node.send_output("count", ...)`).
"""


def new_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car new`."""
    parser.add_argument("what", metavar="PROJECT | node", help="the project's folder to make, or `node`")
    parser.add_argument("name", nargs="?", help="with `node`: the new node's name (in a project's folder)")
    parser.add_argument(
        "--dir", default=".", metavar="DIR", help="with `node`: the project's folder (default: this one)"
    )


def cmd_new(args: argparse.Namespace) -> int:
    """Make a project, or add a node to one."""
    if args.what == "node" and args.name:
        return _new_node(Path(args.dir), args.name)
    if args.name:
        raise UserError(f"`car new {args.what} {args.name}`: give one project folder, or `car new node NAME`")
    return _new_project(Path(args.what))


def _new_project(folder: Path) -> int:
    if folder.exists() and any(folder.iterdir()):
        raise UserError(f"{folder} exists and is not empty: pick another name, or `car new node NAME` inside it")
    project = folder.resolve().name
    files = {
        "dataflow.yml": DATAFLOW.format(project=project),
        "nodes/talker.py": TALKER.format(),
        "nodes/listener.py": LISTENER.format(),
        "tests/test_graph.py": GRAPH_TEST,
        "tests/test_talker.py": NODE_TEST.format(
            name="talker", module="talker", function="next_count", call="next_count(41)", expected="42"
        ),
        "tests/test_listener.py": NODE_TEST.format(
            name="listener", module="listener", function="describe", call='describe({"n": 3})', expected='"heard 3"'
        ),
        "README.md": README.format(project=project),
        ".gitignore": "out/\n__pycache__/\n",
    }
    _write(folder, files)
    print(f"made {folder}/: dataflow.yml, nodes/talker.py, nodes/listener.py, tests/, README.md")
    print(f"  cd {folder} && car launch dataflow.yml --duration 5")
    return 0


def _new_node(project: Path, name: str) -> int:
    if not NAME.match(name):
        raise UserError(
            f"node name `{name}`: use letters, digits and `_`, not starting with a digit (it names a module)"
        )
    flow = project / "dataflow.yml"
    if not flow.is_file():
        raise UserError(f"no dataflow.yml in {project.resolve()}: run `car new node` in a project made by `car new`")
    text = flow.read_text(encoding="utf-8")
    if re.search(rf"^\s*-\s*id:\s*{re.escape(name)}\s*$", text, re.MULTILINE):
        raise UserError(f"{flow}: a node `{name}` is already there: pick another name")
    if not re.search(r"^\s*-\s*id:\s*talker\s*$", text, re.MULTILINE):
        print(f"car: {flow} has no `talker`: wire {name}'s input `count` to an output of yours", file=sys.stderr)
    files = {
        f"nodes/{name}.py": NODE.format(name=name),
        f"tests/test_{name}.py": NODE_TEST.format(
            name=name, module=name, function="handle", call='handle({"n": 21})', expected='{"n": 42}'
        ),
    }
    _write(project, files)
    flow.write_text(text.rstrip("\n") + "\n" + NODE_ENTRY.format(name=name), encoding="utf-8")
    print(f"added node `{name}`: nodes/{name}.py, tests/test_{name}.py, and its entry in dataflow.yml")
    return 0


def _write(folder: Path, files: dict[str, str]) -> None:
    for relative in files:
        if (folder / relative).exists():
            raise UserError(f"{folder / relative} exists: nothing was written over it")
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
