"""Every test that starts nodes in tmp_path must leave no process behind."""

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
