"""`car train` skipped when nothing it depends on changed: the cache of `car build` (car.cache.store), for a model.

Training is a pure function of its inputs: the recordings and their cleaning sidecars
(by content), the car description (the wheel base turns measured speeds into labels), the
parameters (the seed among them), the training code (`learn/`, `nodes/pilot_model.py`) and
the versions of JAX, optax, equinox and onnx. With all of them as last time, the model and
its loss curves come back from the cache in a moment instead of minutes; `--force` trains.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from car.cache.store import StepRecord, Store
from car.content.store import Seen, file_hash
from hal.description import default_path
from learn.sidecar import Sidecar

LIBRARIES = ("jax", "optax", "equinox", "onnx")
CODE = (Path(__file__).parent, Path(__file__).parent.parent / "nodes" / "pilot_model.py")


def training_key(paths: list[Path], params: dict[str, Any]) -> str:
    """What names a training in the cache (see the module's docstring); `params`: the training's parameters."""
    inputs: list[tuple[str, str]] = []
    for path in paths:
        inputs.append((path.name, file_hash(path)))
        cleaned = Sidecar.path_for(path)
        if cleaned.exists():
            inputs.append((cleaned.name, file_hash(cleaned)))
    code = sorted(
        (str(p.relative_to(CODE[0].parent)), file_hash(p))
        for root in CODE
        for p in ([root] if root.is_file() else sorted(root.rglob("*.py")))
    )
    versions = {name: _version(name) for name in LIBRARIES}
    description = default_path()
    text = json.dumps([inputs, params, code, versions, file_hash(description)], sort_keys=True)
    return "train-" + hashlib.sha256(text.encode()).hexdigest()


def restore(store: Store, key: str, output: Path) -> bool:
    """Write the model (and its curves) of a training with this key to `output`; False when there is none kept."""
    record = store.record(key)
    if record is None or not all(store.has(seen) for seen in record.outputs.values()):
        return False
    for name, seen in record.outputs.items():
        target = output.with_suffix(Path(name).suffix)
        if not seen.same_as(target):
            store.restore(target, seen)
    return True


def keep(store: Store, key: str, output: Path, seconds: float) -> None:
    """Keep what a training wrote: the model and its loss curves."""
    record = StepRecord(key, f"car train -o {output.name}", seconds=round(seconds, 1))
    for path in (output, output.with_suffix(".png")):
        if path.is_file():
            seen = Seen.of(path)
            store.keep(path, seen)
            record.outputs[path.name] = seen
    store.save(record)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""
