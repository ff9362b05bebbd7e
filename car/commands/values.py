"""Message values as a person (or a script) wants to see them: never megabytes of numbers.

JSON values stay as they are; numpy and Arrow arrays become their type, shape and summary
statistics; bytes their length. Used by `car topic` (car.commands.topic).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

NUMERIC_KINDS = "biuf"  # numpy dtype kinds with a min, max and mean


def is_arrow(value: Any) -> bool:
    """Whether `value` is a pyarrow array (without importing pyarrow for values that are not)."""
    return type(value).__module__.startswith("pyarrow")


def type_name(value: Any) -> str:
    """A short name of a value's type: `uint8[480,640,3]`, `arrow int64[100]`, `json object`, `bytes`."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype}[{','.join(str(n) for n in value.shape)}]"
    if is_arrow(value):
        return f"arrow {value.type}[{len(value)}]"
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "json " + names.get(type(value), "null" if value is None else type(value).__name__)


def size_of(value: Any) -> int:
    """About how many bytes a value takes on the wire (its payload: arrays' data, JSON's text)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if is_arrow(value):
        return int(value.nbytes)
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    return len(json.dumps(value, default=str))


def _statistics(array: np.ndarray[Any, Any]) -> dict[str, Any]:
    """min, max and mean of a numeric array (NaN and missing values left out); none for other arrays."""
    if array.dtype.kind not in NUMERIC_KINDS:
        return {}
    if array.dtype.kind == "f":
        array = array[np.isfinite(array)]
    if not array.size:
        return {}
    mean = float(np.sum(array / array.size, dtype=np.float64))  # each term divided first: no sum overflows
    return {"min": array.min().item(), "max": array.max().item(), "mean": round(mean, 4)}


def summary(value: Any) -> Any:
    """A JSON-able picture of a value: JSON values as they are, arrays as dtype, shape and statistics."""
    if isinstance(value, np.ndarray):
        return {"dtype": str(value.dtype), "shape": list(value.shape), **_statistics(value)}
    if is_arrow(value):
        described: dict[str, Any] = {"arrow": str(value.type), "length": len(value), "nulls": value.null_count}
        if value.type.num_fields == 0:  # a flat array: numbers get statistics
            try:
                described.update(_statistics(value.to_numpy(zero_copy_only=False)))
            except (TypeError, ValueError):  # not convertible (strings with nulls, ...)
                pass
        return described
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": size_of(value)}
    return value


def text(value: Any) -> str:
    """One line for a terminal: JSON as JSON; an array as `uint8[480,640,3] min 0 max 255 mean 12.3`."""
    pictured = summary(value)
    if pictured is value or not isinstance(pictured, dict):
        return json.dumps(value, default=str)
    stats = " ".join(f"{k} {pictured[k]}" for k in ("min", "max", "mean", "nulls") if k in pictured)
    return f"{type_name(value)} {stats}".rstrip()


def field(value: Any, path: str) -> Any:
    """The part of a JSON value at a dotted `path` (`pose.x`, `points.0`); KeyError naming what is there."""
    found = value
    for step in path.split("."):
        if isinstance(found, dict) and step in found:
            found = found[step]
        elif isinstance(found, list) and step.lstrip("-").isdigit() and -len(found) <= int(step) < len(found):
            found = found[int(step)]
        else:
            there = ", ".join(map(str, found)) if isinstance(found, dict) else f"a {type_name(found)}"
            raise KeyError(f"no field `{step}` in `{path}` (there: {there})")
    return found
