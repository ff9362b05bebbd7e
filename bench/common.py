"""Shared by the benchmarks: percentiles, machine facts, running `car` on a generated dataflow."""

from __future__ import annotations

import atexit
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from car.daemon import affinity

BENCH = Path(__file__).resolve().parent
NODES = BENCH / "nodes"


def percentiles_us(samples_ns: list[int], skip: int = 10) -> dict[str, float]:
    """p50, p99 and max in microseconds, after dropping `skip` warm-up samples."""
    data = np.asarray(samples_ns[skip:] if len(samples_ns) > 2 * skip else samples_ns, dtype=np.float64) / 1000
    if data.size == 0:
        return {"p50_us": float("nan"), "p99_us": float("nan"), "max_us": float("nan"), "n": 0}
    return {
        "p50_us": round(float(np.percentile(data, 50)), 1),
        "p99_us": round(float(np.percentile(data, 99)), 1),
        "max_us": round(float(data.max()), 1),
        "n": int(data.size),
    }


def sink_report(path: Path) -> dict[str, Any]:
    """What a latency run's sink wrote: p50/p99/max of its latencies, and the CPUs it could run on."""
    found = read_json(path)
    return {**percentiles_us(found["latencies_ns"]), "sink_cpus": found["cpus"]}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def pipeline_cpus(pinned: bool, position: int) -> tuple[int, ...]:
    """The CPU of a pipeline's `position`-th node (0: the source): pinned, the first two CPUs in turn
    (source 0, relay 1, sink 0; sender 0, receiver 1); not pinned, any (an empty tuple)."""
    if not pinned:
        return ()
    cpus = sorted(os.sched_getaffinity(0))[:2]
    return (cpus[position % len(cpus)],)


def start_pinned(command: list[str], pinned: bool, position: int) -> subprocess.Popen[bytes]:
    """Start one process of a bare peer's pipeline, on the CPU of its place in it when pinned."""
    with affinity.inherited(pipeline_cpus(pinned, position)):
        return subprocess.Popen(command)


@contextmanager
def removing_new_shm_files(pattern: str) -> Iterator[None]:
    """Delete the /dev/shm files matching `pattern` that appear while the block runs (a peer's leftovers)."""
    shm = Path("/dev/shm")
    before = set(shm.glob(pattern))
    try:
        yield
    finally:
        for leftover in set(shm.glob(pattern)) - before:
            leftover.unlink(missing_ok=True)


_SCRATCH: list[Path] = []


def scratch(prefix: str) -> Path:
    """A new folder for one run's files under the system's temporary folder, removed when this benchmark process
    ends (so a day of benchmarks leaves nothing behind; CAR_BENCH_KEEP=1 keeps them to look at)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if not _SCRATCH and not os.environ.get("CAR_BENCH_KEEP"):
        atexit.register(_remove_scratch)
    _SCRATCH.append(folder)
    return folder


def _remove_scratch() -> None:
    for folder in _SCRATCH:
        shutil.rmtree(folder, ignore_errors=True)


def messages(seconds: float, hz: float) -> int:
    """How many messages a latency run's source sends after its warm-up (then the run ends): `seconds` of them at
    `hz`, counted rather than timed, so a slow start never shortens what is measured."""
    return max(1, round(seconds * hz))


def run_car(yaml_text: str, duration: float | None, timeout: float = 120, name: str = "") -> Path:
    """Write the dataflow into a fresh folder, `car launch` it (as run `name`, if given), return the folder."""
    folder = scratch("car-bench-")
    (folder / "flow.yml").write_text(yaml_text.replace("@NODES", str(NODES)).replace("@OUT", str(folder)))
    args = [sys.executable, "-m", "car", "launch", str(folder / "flow.yml"), "--quiet", "--out", str(folder / "out")]
    if duration is not None:
        args += ["--duration", str(duration)]
    if name:
        args += ["--name", name]
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"car launch failed ({result.returncode}):\n{result.stderr}")
    return folder


def read_json(path: Path) -> Any:
    """Parse a JSON file a benchmark node wrote."""
    return json.loads(path.read_text())


def simulated_run(flow: Path, track: str, laps: int, folder: Path, extra: list[str]) -> dict[str, Any]:
    """`car launch FLOW --track TRACK --laps N` in the simulator at realtime factor 0; its report (or, when it did
    not write one, {"completed": False, "error": its last line})."""
    report = folder / "report.json"
    report.unlink(missing_ok=True)
    command = [sys.executable, "-m", "car", "launch", str(flow), "--track", track, "--laps", str(laps)]
    command += ["--headless", "--realtime-factor", "0", "--report", str(report), "--out", str(folder / "runs"), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=BENCH.parent)
    if not report.exists():
        return {"completed": False, "error": result.stderr.strip().splitlines()[-1:] or ["no report"]}
    figures: dict[str, Any] = json.loads(report.read_text())
    return figures
