"""Every test that starts nodes in tmp_path must leave no process behind, and none reads the user's car file.

The whole session (each worker of a parallel one: pytest-xdist) has runtime folders of
its own ($XDG_RUNTIME_DIR, where runs and coordinators say where they are), so a run
the developer has going, or another worker's, is never "the only one running" to a test.
JAX (training, in the tests and in the `car train` they start) keeps to one thread: two
workers share two cores, and a training that took both starved the other worker's
daemons past their heartbeat timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, wait_until_gone

# files the tests copy and run as they are (dora's examples among them), not tests of this suite
collect_ignore_glob = ["fixtures/*"]

_RUNTIME: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """A private $XDG_RUNTIME_DIR for this session (or worker), inherited by every process it starts; refused when
    `--dist loadgroup` would silently not group (pytest 9.2 with pytest-xdist up to 3.8: pytest-xdist #1386), for a
    module-scoped fixture would then run on both workers."""
    if config.getoption("dist", "no") == "loadgroup":
        from importlib.metadata import version

        from packaging.version import Version

        if Version(pytest.__version__) >= Version("9.2") and Version(version("pytest-xdist")) <= Version("3.8.0"):
            raise pytest.UsageError(
                f"pytest {pytest.__version__} breaks pytest-xdist {version('pytest-xdist')}'s --dist loadgroup (its "
                "groups are ignored): install the versions pyproject.toml pins (`make setup`)"
            )
    folder = tempfile.mkdtemp(prefix="cr-", dir="/tmp")  # short: ipc:// socket paths have at most 107 bytes
    os.chmod(folder, 0o700)
    _RUNTIME.append(folder)
    os.environ["XDG_RUNTIME_DIR"] = folder
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's runtime folder."""
    for folder in _RUNTIME:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_orphans(tmp_path: Path) -> Iterator[None]:
    """Fail the test if a process started from tmp_path outlives it (and kill it)."""
    yield
    alive = wait_until_gone(str(tmp_path), timeout=10)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not alive, f"processes left running: {alive}"


@pytest.fixture(autouse=True)
def own_config(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """$XDG_CONFIG_HOME in a folder of the test's: a developer's ~/.config/car/car.yml does not change the car."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    monkeypatch.delenv("CAR_DESCRIPTION", raising=False)
    monkeypatch.delenv("CAR_SIM_DESCRIPTION", raising=False)


@pytest.fixture
def two_namespaces() -> Iterator[tuple[str, str]]:
    """Network namespaces joined by a veth pair (10.78.0.1, 10.78.0.2: bench/machines.py makes them); skipped
    where that cannot be."""
    sys.path.insert(0, str(ROOT / "bench"))
    import machines as bench_machines

    try:
        with bench_machines.namespaces() as pair:
            yield pair
    except RuntimeError as exc:
        pytest.skip(f"network namespaces cannot be made here (needs root and `ip netns`): {exc}")
