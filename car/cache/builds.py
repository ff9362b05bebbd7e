"""`car build`, cached: each step of a node's build runs under strace once, and is skipped while its inputs stay the same.

A build is cut into steps at its top-level `&&` (the seed's lesson: skip at the leaves, so a
build of several commands reruns only the one whose input changed). A step's key is its
node, command, folder and the environment variables that decide what a build does
(RELEVANT_ENV and the dataflow's and node's own). It runs traced (car.cache.accesses) and,
when it succeeds, its record keeps the hash and stat of every file it read and every
program it ran (so the interpreters' versions count) and the content of every file it wrote
that is still there (car.cache.store). Next time, a step whose record matches every input
is skipped; outputs that went missing or changed are written back from the cache without
running it. Any changed input runs it again, and every reason is said; a failed step is
never cached. Without strace (not installed, macOS) every step runs, and why is said once.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from car.cache.accesses import TRACED_CALLS, read_accesses
from car.cache.store import StepRecord, Store
from car.content.store import Seen

RELEVANT_ENV = ("PATH", "PYTHONPATH", "VIRTUAL_ENV", "LANG", "LC_ALL", "CC", "CFLAGS", "LDFLAGS")


class Outcome(enum.StrEnum):
    """What a build step did."""

    RAN = "ran"
    CACHED = "cached"
    FAILED = "failed"


@dataclass
class StepResult:
    """One step of a node's build: what it did, how long it took, and why."""

    node: str
    command: str
    outcome: Outcome
    seconds: float
    why: list[str] = field(default_factory=list)  # why it ran, or what restoring it took
    restored: list[str] = field(default_factory=list)
    exit_code: int = 0


@dataclass(frozen=True)
class Step:
    """One command of a build, and the folder it runs in relative to the node's (a `cd` before it moved there)."""

    command: str
    folder: str = ""


SHELL_STATE = ("export", "source", ".", "set", "unset", "alias", "shopt", "umask", "ulimit", "pushd", "popd")


def steps_of(build: str) -> list[Step]:
    """A build's commands, cut at its top-level `&&` (not inside quotes or parentheses); a plain `cd DIR` is not a
    step but the folder of the steps after it. A build that changes other shell state for the commands after it
    (`export`, `source`, an assignment, ...) stays one step."""
    parts, depth, quote, start, k = [], 0, "", 0, 0
    while k < len(build):
        char = build[k]
        if quote:
            if char == "\\" and quote == '"':
                k += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif build.startswith("&&", k) and depth == 0:
            parts.append(build[start:k].strip())
            start = k + 2
            k += 1
        k += 1
    parts.append(build[start:].strip())
    parts = [part for part in parts if part]
    steps, folder = [], ""
    for part in parts:
        words = part.split()
        if words[0] in SHELL_STATE or ("=" in words[0] and not words[0].startswith(("=", "-"))):
            return [Step(build.strip())]
        if words[0] == "cd" and len(words) == 2 and not any(c in words[1] for c in "$`~*?;|<>"):
            folder = os.path.normpath(os.path.join(folder, words[1]))
            folder = "" if folder == "." else folder
            continue
        steps.append(Step(part, folder))
    return steps


def step_key(node: str, command: str, cwd: Path, own_env: dict[str, str]) -> str:
    """What names a step in the cache: its node, command, folder and the environment that decides it (RELEVANT_ENV
    as it is here, and the dataflow's and node's own `env`)."""
    relevant = {**{name: os.environ.get(name, "") for name in RELEVANT_ENV}, **own_env}
    text = json.dumps([node, command, str(cwd), relevant], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Builder:
    """Runs build steps, traced and cached (see the module's docstring)."""

    def __init__(self, store: Store | None = None, force: bool = False, say: Callable[[str], None] = print):
        self.store = store or Store()
        self.force = force
        self.say = say
        self.strace = shutil.which("strace")
        self._said_untraced = False

    def step(self, node: str, command: str, cwd: Path, own_env: dict[str, str]) -> StepResult:
        """Run one step in `cwd` with this environment and `own_env` (the dataflow's and node's `env`), or skip it
        (restoring its outputs) when its inputs are what they were."""
        key = step_key(node, command, cwd, own_env)
        env = {**os.environ, **own_env}
        record = None if self.force else self.store.record(key)
        why = ["--force"] if self.force else ["first build"] if record is None else self._changed(record)
        if record is not None and not why:
            restored = self._restore(record)
            return StepResult(node, command, Outcome.CACHED, 0.0, ["inputs unchanged"], restored)
        began = time.monotonic()
        if self.strace is None:
            if not self._said_untraced:
                self.say(
                    "car: strace is not installed, so builds are not cached: every step runs (`apt install strace`)"
                )
                self._said_untraced = True
            code = subprocess.run(command, shell=True, cwd=cwd, env=env).returncode
            outcome = Outcome.RAN if code == 0 else Outcome.FAILED
            return StepResult(node, command, outcome, time.monotonic() - began, ["not traced"], exit_code=code)
        code, saved = self._traced(key, command, cwd, env)
        seconds = time.monotonic() - began
        if code != 0:
            self.store.forget(key)
            return StepResult(node, command, Outcome.FAILED, seconds, why, exit_code=code)
        assert saved is not None
        saved.seconds = round(seconds, 3)
        self.store.save(saved)
        return StepResult(node, command, Outcome.RAN, seconds, why)

    def _changed(self, record: StepRecord) -> list[str]:
        """Every reason the step must run again ([]: none)."""
        reasons = []
        for name, seen in record.inputs.items():
            path = Path(name)
            if not path.exists():
                reasons.append(f"{name} is gone")
            elif not seen.same_as(path):
                reasons.append(f"{name} changed")
        for name, seen in record.outputs.items():
            if not self.store.has(seen) and not seen.same_as(Path(name)):
                reasons.append(f"the cache lost {name}")
        return reasons

    def _restore(self, record: StepRecord) -> list[str]:
        """Write back the outputs that went missing or changed, and delete again what the step deleted."""
        restored = []
        for name, seen in record.outputs.items():
            path = Path(name)
            if not seen.same_as(path):
                self.store.restore(path, seen)
                restored.append(name)
        for name in record.deleted:
            Path(name).unlink(missing_ok=True)
        return restored

    def _traced(self, key: str, command: str, cwd: Path, env: dict[str, str]) -> tuple[int, StepRecord | None]:
        """Run the step under strace; its exit code, and (on success) its record with its outputs kept."""
        assert self.strace is not None
        with tempfile.TemporaryDirectory(prefix="car-build-") as work:
            prefix = Path(work) / "trace"
            argv = [self.strace, "-ff", "-qq", "-y", "-s", "65535", "-e", f"trace={TRACED_CALLS}", "-o", str(prefix)]
            code = subprocess.run([*argv, "sh", "-c", command], cwd=cwd, env=env).returncode
            if code != 0:
                return code, None
            root = _root_pid(prefix)
            accesses = read_accesses(prefix, root, cwd, ignore=(self.store.root, Path(work)))
        record = StepRecord(key, command)
        for path in accesses.inputs():
            record.inputs[str(path)] = Seen.of(path)
        for path in accesses.outputs():
            seen = Seen.of(path)
            self.store.keep(path, seen)
            record.outputs[str(path)] = seen
        record.deleted = [str(path) for path in accesses.deleted()]
        return 0, record


def _root_pid(prefix: Path) -> int:
    """The process strace started: the one whose trace begins with running `sh -c`."""
    pids = sorted(int(p.name.rsplit(".", 1)[1]) for p in prefix.parent.glob(f"{prefix.name}.*"))
    for pid in pids:
        first = Path(f"{prefix}.{pid}").read_text(errors="replace").split("\n", 1)[0]
        if first.startswith("execve(") and '"-c"' in first:
            return pid
    return pids[0] if pids else 0
