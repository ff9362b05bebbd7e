"""The tutorials' commands, run as a newcomer would type them: every `$ ` line of a page's ```console blocks, in
order, in a fresh folder; the lines shown under a command must be in what it printed.

Two lines are the set-up `make` already did for this suite (`make setup`, `. .venv/bin/activate`): the page must
still say them, and here they are the suite's environment. `cd DIR` moves the folder the next commands run in.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow

SETUP_LINES = ("make setup", ". .venv/bin/activate")
TUTORIALS = ROOT / "docs" / "tutorials"


@dataclass
class Step:
    """One command of a page and the lines the page shows it printing."""

    command: str
    shown: list[str] = field(default_factory=list)


def steps(page: Path) -> list[Step]:
    """The `$ ` commands of the page's console blocks (and what each is shown printing), in order."""
    found: list[Step] = []
    for block in re.findall(r"```console\n(.*?)```", page.read_text(), re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append(Step(line[2:].strip()))
            elif line.strip() and found:
                found[-1].shown.append(line.strip())
    return found


def run_tutorial(page: Path, folder: Path) -> None:
    """Every step of `page` in `folder` (with the repository's dataflows beside it, as in a clone)."""
    (folder / "dataflows").symlink_to(ROOT / "dataflows")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cwd = folder
    for step in steps(page):
        if step.command in SETUP_LINES:
            continue
        if step.command.startswith("cd "):
            cwd = cwd / step.command[3:].strip()
            continue
        done = subprocess.run(
            ["bash", "-c", step.command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        said = done.stdout + done.stderr
        assert done.returncode == 0, f"{page.name}: `{step.command}` exited {done.returncode}:\n{said[-3000:]}"
        for line in step.shown:
            assert line in said, f"{page.name}: `{step.command}` did not print {line!r}:\n{said[-3000:]}"


@pytest.mark.parametrize("page", ["first-lap.md", "first-node.md"])
def test_a_tutorial_runs_as_written(page: str, tmp_path: Path) -> None:
    found = steps(TUTORIALS / page)
    assert len(found) >= 3, f"{page} has no console commands"
    if page == "first-lap.md":
        assert [s.command for s in found[:2]] == list(SETUP_LINES)  # what a newcomer types first
    run_tutorial(TUTORIALS / page, tmp_path)
    if page == "first-lap.md":
        assert (tmp_path / "lap.json").is_file() and (tmp_path / "lap.png").is_file()  # what the page says it wrote
