"""What encoding and decoding one message costs (car.transport.wire), in one process, warm.

Cases: 64 B bytes with a metadata stamp, the same without metadata, a small dict value, a
921,600 B frame (a view, no copy), and a 100-element pyarrow struct array. Each figure is
`encode` + `unpack` of one message, timed over batches of --batch calls, --rounds times:
min, p25 and median µs per message.

`--against DIR` loads DIR's car/transport/wire.py too (another checkout, e.g. the commit
before a change) and alternates the two batch by batch, so the machine's drift falls on
both alike: the way to see a change of a few hundred nanoseconds on a noisy machine, which
node-to-node latencies cannot show. Its rows are `<case> (against)`, with the p25 ratio
(none for a value that checkout cannot send).

`--json` prints: machine, batch, rounds, cases {case: {min_us, p25_us, median_us}}, and
with --against, against {case: {...}} and p25_ratio {case: this / against}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from common import machine

from car.transport import wire

STAMP = {"t": 1_234_567_890_123}


def cases() -> dict[str, tuple[Any, dict[str, Any] | None]]:
    """Each case's value and metadata."""
    found: dict[str, tuple[Any, dict[str, Any] | None]] = {
        "bytes 64 B + metadata": (bytes(64), STAMP),
        "bytes 64 B": (bytes(64), None),
        "dict value + metadata": ({"offset": 0.01, "heading": 0.5}, STAMP),
        "frame 921,600 B (view)": (np.zeros(921_600, np.uint8), STAMP),
    }
    try:
        import pyarrow as pa
    except ImportError:
        return found
    struct = pa.array([{"x": float(i), "y": i, "label": f"object {i}"} for i in range(100)])
    found["pyarrow struct x100"] = (struct, STAMP)
    return found


def load_wire(folder: Path) -> ModuleType:
    """Another checkout's wire module (its imports resolve to this checkout's car package)."""
    spec = importlib.util.spec_from_file_location("wire_against", folder / "car" / "transport" / "wire.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"wire_cost.py: no car/transport/wire.py in {folder}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def batch_us(module: ModuleType, value: Any, metadata: dict[str, Any] | None, batch: int) -> float:
    """µs per message of `batch` encode + unpack calls."""
    encode, unpack = module.encode, module.unpack
    start = time.perf_counter_ns()
    for _ in range(batch):
        frames = encode(0, b"source/data", (1, 0), value, metadata)
        unpack(frames[0], frames[1] if len(frames) > 1 else None)
    return (time.perf_counter_ns() - start) / batch / 1000


def sends(module: ModuleType, value: Any) -> bool:
    """Whether that wire module can send such a value at all (an older one may not know Arrow)."""
    try:
        module.encode(0, b"source/data", (1, 0), value)
    except TypeError:
        return False
    return True


def summary(samples: list[float]) -> dict[str, float]:
    """min, p25 and median of the batch figures."""
    ordered = sorted(samples)
    return {
        "min_us": round(ordered[0], 3),
        "p25_us": round(ordered[len(ordered) // 4], 3),
        "median_us": round(ordered[len(ordered) // 2], 3),
    }


def main() -> None:
    """Parse the command line, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=500, help="messages per timed batch (default 500)")
    parser.add_argument("--rounds", type=int, default=200, help="batches per case (default 200)")
    parser.add_argument("--against", type=Path, help="another checkout whose wire.py to alternate with")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    other = load_wire(args.against) if args.against else None
    mine: dict[str, dict[str, float]] = {}
    theirs: dict[str, dict[str, float]] = {}
    for name, (value, metadata) in cases().items():
        against = other if other is not None and sends(other, value) else None
        here: list[float] = []
        there: list[float] = []
        for _ in range(args.rounds):
            here.append(batch_us(wire, value, metadata, args.batch))
            if against is not None:
                there.append(batch_us(against, value, metadata, args.batch))
        mine[name] = summary(here)
        if against is not None:
            theirs[name] = summary(there)
    report: dict[str, Any] = {"machine": machine(), "batch": args.batch, "rounds": args.rounds, "cases": mine}
    if other is not None:
        report["against"] = theirs
        report["p25_ratio"] = {k: round(mine[k]["p25_us"] / theirs[k]["p25_us"], 3) for k in theirs}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    info = report["machine"]
    print(f"{info['date']}, {info['cpus']} CPUs, Python {info['python']}; µs per message (encode + unpack)")
    print(f"{'case':<34}{'min':>9}{'p25':>9}{'median':>9}")
    for name, row in mine.items():
        print(f"{name:<34}{row['min_us']:>9.2f}{row['p25_us']:>9.2f}{row['median_us']:>9.2f}")
        if name in theirs:
            old = theirs[name]
            ratio = report["p25_ratio"][name]
            print(
                f"{name + ' (against)':<34}{old['min_us']:>9.2f}{old['p25_us']:>9.2f}{old['median_us']:>9.2f}"
                f"   this/against p25 {ratio:.3f}"
            )


if __name__ == "__main__":
    main()
