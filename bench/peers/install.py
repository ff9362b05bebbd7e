"""Install the comparison peers (dora, iceoryx2) into their own venvs under bench/, ahead of the benchmarks and
tests that compare with them (`make test-deps`). A peer that cannot be installed is said, not fatal: its cases
report it as unavailable."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/: where `peers` and `common` are

from peers import iceoryx2_runner
from peers.dora import runner as dora
from peers.venv import PeerUnavailable


def main() -> None:
    """Ensure each peer; print its version or why it is not there."""
    for name, ensure in (("dora", dora.ensure), ("iceoryx2", iceoryx2_runner.ensure)):
        try:
            print(f"test-deps: {name} {ensure()}", flush=True)
        except PeerUnavailable as exc:
            print(f"test-deps: {name} unavailable: {exc}", flush=True)


if __name__ == "__main__":
    main()
