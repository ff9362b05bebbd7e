"""Run the latency pipelines on iceoryx2, installed on demand into a virtual environment of its own.

A reference for what the machine allows rather than a rival runtime: iceoryx2 is a
zero-copy shared-memory middleware with a compiled (Rust) core, driven here from Python
(iceoryx2_peer.py), with no scheduling, queues or dataflow around it. `ensure()` makes
`bench/.iceoryx2-venv` (`pip install iceoryx2 numpy`) the first time; `latency()` starts
the pipeline's processes (receiver first) on that venv's Python.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from common import removing_new_shm_files, scratch, start_pinned

from peers import venv

HERE = Path(__file__).resolve().parent
VENV = HERE.parent / ".iceoryx2-venv"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = ["iceoryx2>=0.10,<0.11", "numpy>=1.26"]
VERSION = "import importlib.metadata as m; print('iceoryx2', m.version('iceoryx2'))"


def ensure() -> str:
    """Install iceoryx2 into its own venv unless it is there; its version (PeerUnavailable if neither works)."""
    return venv.ensure("iceoryx2", VENV, REQUIREMENTS, [str(PYTHON), "-c", VERSION])


def latency(
    size: int, hz: int, hops: int, seconds: float, warmup: float, loaned: bool = False, pinned: bool = False
) -> Path:
    """One run, sender -> [relay ->] receiver, `size`-byte samples at `hz`: the file the receiver wrote.

    loaned: the sender fills each loan before it stamps it (nothing copied after the stamp).
    """
    folder = scratch("iceoryx2-bench-")
    out = folder / "out.json"
    run = f"carbench/{uuid.uuid4().hex[:12]}"
    first, last = f"{run}/hop1", f"{run}/hop{hops}"
    peer = [str(PYTHON), str(HERE / "iceoryx2_peer.py")]
    procs = []
    with removing_new_shm_files("iox2_*"):  # iceoryx2's global state, made by this run
        try:
            procs.append(start_pinned([*peer, "receiver", last, str(out)], pinned, hops))
            if hops == 2:
                procs.append(start_pinned([*peer, "relay", first, last, str(size)], pinned, 1))
            sender = ["sender", first, str(size), str(hz), str(seconds), str(warmup), str(int(loaned))]
            procs.append(start_pinned([*peer, *sender], pinned, 0))
            for proc in procs:
                proc.wait(timeout=seconds + warmup + 60)
        finally:
            for proc in procs:  # only if waiting failed: none is left running
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    if not out.exists():
        raise RuntimeError(f"the iceoryx2 receiver wrote no results (exit codes {[p.returncode for p in procs]})")
    return out
