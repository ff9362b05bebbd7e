"""Run the benchmark pipelines on dora 1.x, installed on demand into a virtual environment of its own.

`ensure()` makes `bench/.dora-venv` (`pip install dora-rs-cli dora-rs pyarrow numpy`) the
first time and reuses it after; every later call only checks that `dora` answers.
`latency()` and `throughput()` write a dataflow with this folder's nodes and run it with
`dora run` (no coordinator), the dora venv's bin folder first on PATH so that the nodes
run on its Python.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from common import messages, pipeline_cpus, removing_new_shm_files, scratch

from peers import venv

HERE = Path(__file__).resolve().parent
VENV = HERE.parent.parent / ".dora-venv"
BIN = VENV / "bin"
REQUIREMENTS = ["dora-rs-cli>=1.1,<2", "dora-rs>=1.1,<2", "pyarrow>=15", "numpy>=1.26"]


def ensure() -> str:
    """Install dora into its own venv unless it is there; return `dora --version` (PeerUnavailable if neither works)."""
    return venv.ensure("dora", VENV, REQUIREMENTS, [str(BIN / "dora"), "--version"])


def _node(node_id: str, script: str, env: dict[str, str], inputs: str, outputs: str = "") -> str:
    lines = [f"  - id: {node_id}", f"    path: {HERE / script}", f"    inputs: {inputs}"]
    if outputs:
        lines.append(f"    outputs: [{outputs}]")
    lines.append(f"    env: {json.dumps(env)}")
    return "\n".join(lines)


def _run(folder: Path, nodes: list[str], stop_after: float | None, timeout: float) -> None:
    flow = folder / "dataflow.yml"
    flow.write_text("nodes:\n" + "\n".join(nodes) + "\n")
    args = [str(BIN / "dora"), "run", str(flow), "--log-level", "warn"]
    if stop_after is not None:
        args += ["--stop-after", f"{round(stop_after * 1000)}ms"]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(VENV)}
    with removing_new_shm_files("*.zenoh"):  # dora's transport leaves one behind per run
        result = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"dora run failed ({result.returncode}):\n{result.stderr[-2000:]}")


def _pin(pinned: bool, position: int) -> dict[str, str]:
    """The environment that pins a pipeline's `position`-th node (see pinning.py), as for every peer."""
    cpus = pipeline_cpus(pinned, position)
    return {"BENCH_CPUS": ",".join(map(str, cpus))} if cpus else {}


def latency(
    size: int,
    hz: int,
    hops: int,
    seconds: float,
    warmup: float,
    loaned: bool = False,
    pinned: bool = False,
    arrow: str = "",
) -> Path:
    """One run, timer source -> [relay ->] sink, `size`-byte messages at `hz`: the file the sink wrote
    (latencies_ns, and the CPUs it could run on).

    loaned: the source writes each frame into a `send_output_raw` buffer (zero-copy send).
    arrow: what the source sends, "uint8" (a UInt8Array of `size`) or "struct" (100 structs); see source.py.
    pinned: each node on the CPU of its place in the pipeline (common.pipeline_cpus).
    """
    folder = scratch("dora-bench-")
    out = folder / "sink.json"
    upstream = "relay" if hops == 2 else "source"
    source_env = {
        "BENCH_SIZE": str(size),
        "BENCH_WARMUP_S": str(warmup),
        "BENCH_LOANED": str(int(loaned)),
        "BENCH_COUNT": str(messages(seconds, hz)),  # counted, not timed: as car's and the bare peers' runs
    }
    if arrow:
        source_env["BENCH_ARROW"] = arrow
    timer = f"{{tick: dora/timer/millis/{round(1000 / hz)}}}"
    nodes = [_node("source", "source.py", {**source_env, **_pin(pinned, 0)}, timer, "data")]
    if hops == 2:
        nodes.append(_node("relay", "relay.py", _pin(pinned, 1), "{data: source/data}", "data"))
    nodes.append(_node("sink", "sink.py", {"BENCH_OUT": str(out), **_pin(pinned, hops)}, f"{{data: {upstream}/data}}"))
    _run(folder, nodes, stop_after=None, timeout=seconds + warmup + 120)
    return out


def throughput(size: int, count: int, pinned: bool = False) -> dict[str, Any]:
    """Deliver `count` small messages as fast as the sender can; what the receiver got, and when."""
    folder = scratch("dora-bench-")
    out = folder / "count.json"
    env = {"BENCH_SIZE": str(size), "BENCH_COUNT": str(count), "BENCH_OUT": str(out)}
    nodes = [
        _node("flood", "flood.py", {**env, **_pin(pinned, 0)}, "{go: counter/ready}", "data"),
        _node(
            "counter",
            "counter.py",
            {**env, **_pin(pinned, 1)},
            "{data: {source: flood/data, queue_size: 1000}}",
            "ready",
        ),
    ]
    _run(folder, nodes, stop_after=None, timeout=600)
    result: dict[str, Any] = json.loads(out.read_text())
    return result
