"""The tutorials' commands, run as a newcomer would type them: every `$ ` line of a page's ```console blocks, in
order, in a fresh folder; the lines shown under a command must be in what it printed.

Two lines are the set-up `make` already did for this suite (`make setup`, `. .venv/bin/activate`): the page must
still say them, and here they are the suite's environment. `cd DIR` moves the folder the next commands run in.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import ROOT, wait_until

pytestmark = pytest.mark.slow

SETUP_LINES = ("make setup", ". .venv/bin/activate")
TUTORIALS = ROOT / "docs" / "tutorials"
CLONED = ("dataflows", "firmware", "models", "tests")  # what the pages use of a clone
RUN_HERE = ("first-lap.md", "first-node.md")
RUN_ELSEWHERE = {
    "teach-a-track.md": "tests/test_learning_loop.py: what it makes is judged there",
    "real-car.md": "tests/test_bring_up.py: what it makes is judged there",
}
NOT_RUN_YET = ("split-graph.md",)  # issue 35: still prose around commands


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
    """Every step of `page` in `folder` (with the repository's dataflows, firmware, models and test tracks beside it,
    as in a clone; the caches and the car file in `folder`). A command ending in `&` runs in the background until
    `kill %N` (or the end of the page) stops it, as in one shell; the steps after it wait for the first line of the
    file its output goes to, as a reader would wait to see it start."""
    for name in CLONED:
        (folder / name).symlink_to(ROOT / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["XDG_CACHE_HOME"] = str(folder / ".cache")
    env["XDG_CONFIG_HOME"] = str(folder / ".config")  # `car calibrate` writes the car file there
    cwd = folder
    jobs: list[subprocess.Popen[bytes]] = []
    try:
        for step in steps(page):
            if step.command in SETUP_LINES:
                continue
            if step.command.startswith("cd "):
                cwd = cwd / step.command[3:].strip()
                continue
            if step.command.endswith("&"):
                jobs.append(_background(step.command[:-1], cwd, env))
                continue
            if re.fullmatch(r"kill %\d+", step.command):
                _stop(jobs.pop(int(step.command[6:]) - 1))
                continue
            done = subprocess.run(
                ["bash", "-c", step.command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
            )
            said = done.stdout + done.stderr
            assert done.returncode == 0, f"{page.name}: `{step.command}` exited {done.returncode}:\n{said[-3000:]}"
            for line in step.shown:
                assert line in said, f"{page.name}: `{step.command}` did not print {line!r}:\n{said[-3000:]}"
    finally:
        for job in jobs:
            _stop(job)


def _background(command: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a background step; return once the file its output goes to (`> FILE`) has a line."""
    job = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env, start_new_session=True)
    target = re.search(r">\s*(\S+)", command)
    assert target, f"`{command}`: a background command on a page sends its output to a file (`> FILE 2>&1 &`)"
    log = cwd / target.group(1)
    wait_until(
        f"`{command}` to start",
        lambda: log.is_file() and b"\n" in log.read_bytes(),
        timeout=30,
        alive=job,
    )
    return job


def _stop(job: subprocess.Popen[bytes]) -> None:
    """End a background step as `kill %N` does (SIGTERM), and wait for it."""
    if job.poll() is None:
        os.killpg(job.pid, signal.SIGTERM)
    try:
        job.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()


def test_every_tutorial_is_run_by_a_test() -> None:
    pages = {page.name for page in TUTORIALS.glob("*.md")}
    assert pages == {*RUN_HERE, *RUN_ELSEWHERE, *NOT_RUN_YET}
    assert all(len(steps(TUTORIALS / page)) >= 3 for page in (*RUN_HERE, *RUN_ELSEWHERE))


@pytest.mark.parametrize("page", RUN_HERE)
def test_a_tutorial_runs_as_written(page: str, tmp_path: Path) -> None:
    found = steps(TUTORIALS / page)
    assert len(found) >= 3, f"{page} has no console commands"
    if page == "first-lap.md":
        assert [s.command for s in found[:2]] == list(SETUP_LINES)  # what a newcomer types first
    run_tutorial(TUTORIALS / page, tmp_path)
    if page == "first-lap.md":
        assert (tmp_path / "lap.json").is_file() and (tmp_path / "lap.png").is_file()  # what the page says it wrote
