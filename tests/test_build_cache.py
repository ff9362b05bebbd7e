"""`car build` cached: real builds traced with strace, skipped while their inputs stay the same, their outputs restored
(car.cache)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.debian import debian_program
from tests.helpers import car

FLOW = """
nodes:
  - id: gen
    path: n.py
    build: cd src && cat a.txt b.txt > ../out/ab.txt && touch scratch && rm scratch && sort ../out/ab.txt > OUTSIDE
  - id: plain
    path: n.py
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the car commands this test runs inherit it
    folder = tmp_path / "project"
    (folder / "src").mkdir(parents=True)
    (folder / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (folder / "n.py").write_text("")
    (folder / "src" / "a.txt").write_text("b\n")
    (folder / "src" / "b.txt").write_text("a\n")
    (folder / "flow.yml").write_text(FLOW.replace("OUTSIDE", str(tmp_path / "elsewhere" / "sorted.txt")))
    return folder


def build(folder: Path, *options: str) -> tuple[int, dict[str, dict[str, object]], str]:
    result = car("build", str(folder / "flow.yml"), "--json", *options)
    rows = json.loads(result.stdout)["nodes"] if result.stdout.strip() else []
    return result.returncode, {row["node"]: row for row in rows}, result.stderr


def outcomes(row: dict[str, object]) -> list[str]:
    return [step["outcome"] for step in row["steps"]]  # type: ignore[attr-defined]


def test_a_traced_build_is_skipped_while_its_inputs_stay_the_same_and_its_lost_outputs_come_back(project: Path) -> None:
    debian_program("strace", "the build cache's tests")
    sorted_file = project.parent / "elsewhere" / "sorted.txt"
    code, nodes, stderr = build(project)
    assert code == 0, stderr
    assert set(nodes) == {"gen"} and nodes["gen"]["outcome"] == "ran"
    assert [s["command"] for s in nodes["gen"]["steps"]] == [  # type: ignore[attr-defined]
        "cat a.txt b.txt > ../out/ab.txt",
        "touch scratch",
        "rm scratch",
        f"sort ../out/ab.txt > {sorted_file}",
    ]
    assert sorted_file.read_text() == "a\nb\n"

    code, nodes, _ = build(project)
    assert code == 0 and outcomes(nodes["gen"]) == ["cached"] * 4 and nodes["gen"]["outcome"] == "cached"
    assert not (project / "src" / "scratch").exists()  # made and removed again, even when restored

    (project / "out" / "ab.txt").unlink()
    sorted_file.write_text("tampered\n")  # an output outside the dataflow's folder
    code, nodes, _ = build(project)
    steps = nodes["gen"]["steps"]
    assert outcomes(nodes["gen"]) == ["cached"] * 4
    assert steps[0]["restored"] == [str(project / "out" / "ab.txt")]  # type: ignore[index]
    assert steps[3]["restored"] == [str(sorted_file)]  # type: ignore[index]
    assert (project / "out" / "ab.txt").read_text() == "b\na\n" and sorted_file.read_text() == "a\nb\n"

    (project / "src" / "b.txt").write_text("c\n")
    code, nodes, _ = build(project)
    steps = nodes["gen"]["steps"]
    assert outcomes(nodes["gen"]) == ["ran", "cached", "cached", "ran"]  # only the steps whose inputs changed
    assert steps[0]["why"] == [f"{project / 'src' / 'b.txt'} changed"]  # type: ignore[index]
    assert steps[3]["why"] == [f"{project / 'out' / 'ab.txt'} changed"]  # type: ignore[index]
    assert sorted_file.read_text() == "b\nc\n"

    code, nodes, _ = build(project, "--force")
    assert outcomes(nodes["gen"]) == ["ran"] * 4 and nodes["gen"]["steps"][0]["why"] == ["--force"]  # type: ignore[index]


def test_a_failed_build_is_never_cached_and_says_so(project: Path) -> None:
    debian_program("strace", "the build cache's tests")
    flow = project / "flow.yml"
    flow.write_text(flow.read_text().replace("cat a.txt b.txt", "cat a.txt missing.txt"))
    for _ in range(2):
        code, nodes, stderr = build(project)
        assert code == 1 and nodes["gen"]["outcome"] == "failed", stderr
        assert nodes["gen"]["steps"] == [  # stopped at the failed step, which ran again: nothing was cached
            {
                "command": "cat a.txt missing.txt > ../out/ab.txt",
                "outcome": "failed",
                "seconds": nodes["gen"]["steps"][0]["seconds"],  # type: ignore[index]
                "why": ["first build"],
                "restored": [],
                "exit_code": 1,
            }
        ]
    plain = car("build", str(flow))
    assert plain.returncode == 1 and "`gen`: failed (exit code 1); nothing of it is cached" in plain.stderr


def test_without_strace_every_step_runs_and_that_is_said_once(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "tools"  # a PATH with what the build needs, and no strace
    tools.mkdir()
    for program in ("cat", "sort", "touch", "rm"):
        found = next(Path(d) / program for d in os.environ["PATH"].split(":") if (Path(d) / program).exists())
        (tools / program).symlink_to(found)
    monkeypatch.setenv("PATH", str(tools))
    for _ in range(2):
        code, nodes, stderr = build(project)
        assert code == 0 and outcomes(nodes["gen"]) == ["ran"] * 4, stderr
        assert stderr.count("strace is not installed, so builds are not cached") == 1
