"""Debian programs the tests need (`chromium`, `strace`): installed before the tests by `make test-deps` (this file
run as a script: apt-get, when there is one and it may), found on the PATH by the tests, which skip with the reason
when a program is not there."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

PACKAGES = {"strace": "strace", "chromium": "chromium"}  # program -> the Debian package that has it


def debian_program(program: str, needed_for: str) -> str:
    """The path of `program` (one of PACKAGES); skips the test, saying why, when it is missing (`needed_for`:
    which test needs it)."""
    found = shutil.which(program)
    if found is None:
        package = PACKAGES[program]
        pytest.skip(f"{needed_for} needs {program}: not installed (`make test-deps` installs Debian's {package})")
    return found


def install(program: str, package: str) -> str:
    """Install `package` with apt-get unless `program` is there; what happened, as a line to print."""
    if shutil.which(program):
        return f"{program}: here"
    if shutil.which("apt-get") is None:
        return f"{program}: missing, and no apt-get to install {package} (its tests will skip)"
    command = ["apt-get", "install", "-y", "--no-install-recommends", package]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:  # a fresh machine may have no package lists yet
            subprocess.run(["apt-get", "update"], capture_output=True, text=True, timeout=300)
            result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{program}: `apt-get install {package}` did not finish ({exc}); its tests will skip"
    if result.returncode != 0 or not shutil.which(program):
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"{program}: `apt-get install {package}` failed ({tail[0]}); its tests will skip"
    return f"{program}: installed ({package})"


if __name__ == "__main__":
    for name in sys.argv[1:] or list(PACKAGES):
        print(f"test-deps: {install(name, PACKAGES[name])}", flush=True)
