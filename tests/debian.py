"""Debian programs a test needs (`chromium`, `strace`): found on the PATH, or installed with apt-get by the test
set-up that needs them; the test is skipped with the reason when neither works."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def debian_program(program: str, package: str, needed_for: str) -> str:
    """The path of `program`, installing Debian's `package` when it is missing; skips the test when it cannot
    (`needed_for` says which test needs it, in the reason)."""
    found = shutil.which(program)
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip(f"{needed_for} needs {program}: it is not here and there is no apt-get to install {package}")
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    try:
        result = subprocess.run(install, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:  # a fresh machine may have no package lists yet
            subprocess.run(["apt-get", "update"], capture_output=True, text=True, timeout=300)
            result = subprocess.run(install, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"{needed_for} needs {program}: `apt-get install {package}` did not finish ({exc})")
    found = shutil.which(program)
    if result.returncode != 0 or not found:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"{needed_for} needs {program}: `apt-get install {package}` failed ({tail[0]})")
    return found
