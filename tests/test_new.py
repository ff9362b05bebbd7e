"""`car new`: a project that launches at once and whose tests pass, a node added to it, and mistakes refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import car

pytestmark = pytest.mark.slow


def test_a_new_project_launches_its_tests_pass_and_a_node_added_joins_it(tmp_path: Path) -> None:
    made = car("new", "demo", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "demo"
    assert {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()} == {
        "dataflow.yml",
        "nodes/talker.py",
        "nodes/listener.py",
        "tests/test_graph.py",
        "tests/test_talker.py",
        "tests/test_listener.py",
        "README.md",
        ".gitignore",
    }
    launched = car("launch", "dataflow.yml", "--duration", "3", "--name", "first", "--quiet", cwd=project)
    assert launched.returncode == 0, launched.stderr
    assert "heard 3" in (project / "out" / "first" / "listener.log").read_text()

    added = car("new", "node", "doubler", cwd=project)
    assert added.returncode == 0, added.stderr
    assert car("check", "dataflow.yml", cwd=project).stdout.strip() == "dataflow.yml: ok (3 nodes, 3 inputs)"
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("new", "taken"), "taken exists and is not empty"),
        (("new", "node", "2fast", "--dir", "taken"), "node name `2fast`: use letters, digits and `_`"),
        (("new", "node", "talker", "--dir", "taken"), "a node `talker` is already there"),
        (("new", "node", "x", "--dir", "nowhere"), "no dataflow.yml in"),
        (("new", "a", "b"), "give one project folder, or `car new node NAME`"),
    ],
)
def test_new_refuses_what_cannot_be_made_and_writes_nothing(tmp_path: Path, args: tuple[str, ...], said: str) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "dataflow.yml").write_text("nodes:\n  - id: talker\n    path: t.py\n")
    before = sorted(p for p in tmp_path.rglob("*"))
    result = car(*args, cwd=tmp_path)
    assert result.returncode == 2 and said in result.stderr and "Traceback" not in result.stderr
    assert sorted(p for p in tmp_path.rglob("*")) == before
