"""Every test that starts nodes in tmp_path must leave no process behind, and none reads the user's car file."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until_gone


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
