"""The tutorials' commands, run as a newcomer would type them: every `$ ` line of a page's ```console blocks, in
order, in a fresh folder; the lines shown under a command must be in what it printed.

Two lines are the set-up `make` already did for this suite (`make setup`, `. .venv/bin/activate`): the page must
still say them, and here they are the suite's environment. `cd DIR` moves the folder the next commands run in.

A page about two machines writes each command after its machine's prompt (`laptop$ `, `car$ `): each machine is a
terminal of its own, with a home, configuration and runtime folder of its own, as two hosts have. A command whose
next step is on the other machine goes on running in its terminal (a daemon, a pairing that waits) once it printed
what the page shows under it, as a reader waits to see it; the next command in the same terminal waits for it to
end, and the ones still running at the end get Ctrl-C. Questions are answered `y`, as the page says to.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
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
    "split-graph.md": "test_the_split_graph_tutorial_runs_on_two_machines_in_a_network_of_its_own, below",
}
PROMPT = re.compile(r"^(\w*)\$ (.*)$")
STEP_TIMEOUT_S = 600.0


@dataclass
class Step:
    """One command of a page, the machine it is typed on ("": the only one) and the lines the page shows it
    printing."""

    command: str
    machine: str = ""
    shown: list[str] = field(default_factory=list)


def steps(page: Path) -> list[Step]:
    """The `$ ` commands of the page's console blocks (and what each is shown printing), in order."""
    found: list[Step] = []
    for block in re.findall(r"```console\n(.*?)```", page.read_text(), re.S):
        for line in block.splitlines():
            prompt = PROMPT.match(line)
            if prompt:
                found.append(Step(prompt.group(2).strip(), prompt.group(1)))
            elif line.strip() and found:
                found[-1].shown.append(line.strip())
    return found


@dataclass
class Running:
    """A step still running in its terminal, its output going to `log`."""

    step: Step
    process: subprocess.Popen[bytes]
    log: Path

    def said(self) -> str:
        return self.log.read_text(errors="replace")


class Terminals:
    """The terminals a page's commands are typed in: one per machine, each with its environment and folder."""

    def __init__(self, folder: Path, page: str, netns: str = ""):
        self.folder, self.page, self.netns = folder, page, netns
        self.cwd: dict[str, Path] = {}
        self.envs: dict[str, dict[str, str]] = {}
        self.running: dict[str, Running] = {}
        self.jobs: list[subprocess.Popen[bytes]] = []  # `&` commands, for `kill %N`
        self.scratch: list[str] = []
        self.count = 0

    def env(self, machine: str) -> dict[str, str]:
        """A machine's environment: the suite's, with the caches and the car file in the page's folder (each
        machine's own home and runtime folder when the page has several)."""
        if machine not in self.envs:
            env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
            home = self.folder / f"{machine}-home" if machine else self.folder
            env["XDG_CACHE_HOME"] = str(home / ".cache")
            env["XDG_CONFIG_HOME"] = str(home / ".config")  # `car calibrate` writes the car file there, keys too
            if machine:
                runtime = tempfile.mkdtemp(prefix="tut", dir="/tmp")  # short: ipc:// paths have at most 107 bytes
                self.scratch.append(runtime)
                home.mkdir()
                env.update(HOME=str(home), XDG_STATE_HOME=str(home / ".local" / "state"), XDG_RUNTIME_DIR=runtime)
                env.pop("CAR_KEYS_DIR", None)
            self.envs[machine] = env
        return self.envs[machine]

    def argv(self, command: str) -> list[str]:
        inside = ["ip", "netns", "exec", self.netns] if self.netns else []
        return [*inside, "bash", "-c", command]

    def type(self, step: Step, next_step: Step | None) -> None:
        """Type one step in its machine's terminal (after what still runs there ends)."""
        if step.machine in self.running:
            self.finish(self.running.pop(step.machine))
        cwd = self.cwd.setdefault(step.machine, self.folder)
        if step.command.startswith("cd "):
            self.cwd[step.machine] = cwd / step.command[3:].strip()
        elif step.command.endswith("&"):
            self.jobs.append(self.background(step.command[:-1], cwd, self.env(step.machine)))
        elif re.fullmatch(r"kill %\d+", step.command):
            stop(self.jobs.pop(int(step.command[6:]) - 1), signal.SIGTERM)
        else:
            self.count += 1
            log = self.folder / f".step-{self.count}.log"
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    self.argv(step.command),
                    cwd=cwd,
                    env=self.env(step.machine),
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            assert process.stdin is not None
            process.stdin.write(b"y\n" * 4)  # the answers the page says to give
            process.stdin.close()
            running = Running(step, process, log)
            if next_step is not None and next_step.machine != step.machine:  # it goes on in its terminal
                self.running[step.machine] = running
                wait_until(
                    f"{self.page}: `{step.command}` to print {step.shown}",
                    lambda: all(line in running.said() for line in step.shown) or process.poll() is not None,
                    timeout=60,
                )
            else:
                self.finish(running)

    def finish(self, running: Running, interrupt: bool = False) -> None:
        """Wait for a step to end (Ctrl-C first when `interrupt`); it must have succeeded and said what is shown."""
        step, process = running.step, running.process
        if interrupt and process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        try:
            code = process.wait(timeout=30 if interrupt else STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stop(process, signal.SIGKILL)
            raise AssertionError(f"{self.page}: `{step.command}` did not end:\n{running.said()[-3000:]}") from None
        said = running.said()
        ok = code == 0 or (interrupt and code in (-signal.SIGINT, 128 + signal.SIGINT))
        assert ok, f"{self.page}: `{step.command}` exited {code}:\n{said[-3000:]}"
        for line in step.shown:
            assert line in said, f"{self.page}: `{step.command}` did not print {line!r}:\n{said[-3000:]}"

    def background(self, command: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start a background step; return once the file its output goes to (`> FILE`) has a line."""
        target = re.search(r">\s*(\S+)", command)
        assert target, f"`{command}`: a background command on a page sends its output to a file (`> FILE 2>&1 &`)"
        log = cwd / target.group(1)
        log.unlink(missing_ok=True)  # `>` empties it: what an earlier command wrote there is not this one's start
        job = subprocess.Popen(self.argv(f"exec {command}"), cwd=cwd, env=env, start_new_session=True)
        wait_until(f"`{command}` to start", lambda: log.is_file() and b"\n" in log.read_bytes(), timeout=30, alive=job)
        return job

    def close(self) -> None:
        """Ctrl-C what still runs in a terminal, stop the background jobs, remove the runtime folders."""
        try:
            for running in list(self.running.values()):
                self.finish(running, interrupt=True)
        finally:
            for process in [r.process for r in self.running.values()] + self.jobs:
                stop(process, signal.SIGTERM)
            for runtime in self.scratch:
                shutil.rmtree(runtime, ignore_errors=True)


def stop(process: subprocess.Popen[bytes], how: signal.Signals) -> None:
    """End a process group as `kill` does, and wait for it (killed after 30 s)."""
    if process.poll() is None:
        os.killpg(process.pid, how)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_tutorial(page: Path, folder: Path, netns: str = "") -> None:
    """Every step of `page` in `folder` (with the repository's dataflows, firmware, models and test tracks beside it,
    as in a clone), in the network namespace `netns` if given. A command ending in `&` runs in the background until
    `kill %N` (or the end of the page) stops it, as in one shell; the steps after it wait for the first line of the
    file its output goes to, as a reader would wait to see it start."""
    for name in CLONED:
        (folder / name).symlink_to(ROOT / name)
    found = [step for step in steps(page) if step.command not in SETUP_LINES]
    terminals = Terminals(folder, page.name, netns)
    try:
        for k, step in enumerate(found):
            terminals.type(step, found[k + 1] if k + 1 < len(found) else None)
    finally:
        terminals.close()


def test_every_tutorial_is_run_by_a_test() -> None:
    pages = {page.name for page in TUTORIALS.glob("*.md")}
    assert pages == {*RUN_HERE, *RUN_ELSEWHERE}
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


@pytest.fixture
def network_of_its_own() -> Iterator[str]:
    """A network namespace with only its loopback: the page's default ports are its own, whatever else runs here."""
    name = f"cartut{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"a network namespace cannot be made here (needs root and `ip netns`): {made.stderr.strip()}")
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_the_split_graph_tutorial_runs_on_two_machines_in_a_network_of_its_own(
    network_of_its_own: str, tmp_path: Path
) -> None:
    run_tutorial(TUTORIALS / "split-graph.md", tmp_path, netns=network_of_its_own)
    car_home, laptop_home = tmp_path / "car-home", tmp_path / "laptop-home"
    assert (car_home / "smartcar").is_dir()  # the car's node's folder, made by the sync
    assert (laptop_home / ".config" / "car" / "keys" / "trusted" / "car.key").is_file()  # paired
    runs = car_home / ".local" / "state" / "car" / "runs" / "split"
    assert (runs / "car_io.log").is_file() and not (runs / "line_detector.log").exists()  # each node on its machine
