"""Peers that live in virtual environments of their own under bench/, installed on demand.

`ensure(name, venv, requirements, probe)` runs `probe` (a command that prints the peer's
version); only when that fails does it make the venv and `pip install` the requirements,
then probes again. Nothing is installed into the project's own environment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


class PeerUnavailable(Exception):
    """A peer could not be installed or does not run here; the message says why."""


def _probe(probe: list[str]) -> str:
    result = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip()


def ensure(name: str, venv: Path, requirements: list[str], probe: list[str]) -> str:
    """Peer `name`'s version (what `probe` prints), after installing it into `venv` if it is not there yet."""
    try:
        return _probe(probe)
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.CalledProcessError as exc:
        lines = exc.stderr.strip().splitlines() if isinstance(exc.stderr, str) else []
        errors = [line for line in lines if line.startswith("ERROR")] or lines  # pip's warnings are noise here
        raise PeerUnavailable(f"installing {name} failed ({'; '.join(errors[-2:]) or exc}); no network?") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerUnavailable(f"installing {name} failed: {exc}") from None
    try:
        return _probe(probe)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PeerUnavailable(f"{name} does not run after installing it: {exc}") from None
