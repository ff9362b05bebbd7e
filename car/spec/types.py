"""dora's type annotations: `output_types` and `input_types` name each port's type by URN.

A URN is `std/<category>/v<version>/<Name>`, optionally with parameters
(`std/media/v1/AudioFrame[sample_type=f32]`); projects add their own types in a `types/`
folder next to the dataflow (`types/myproject/sensors/v1.yml` defines
`myproject/sensors/v1/<Name>` for each name under its `types:`). A connection is right
when both ends name the same type (a parameter missing on one side matches any value), when the
sender's type widens to the reader's (UInt8 -> UInt32 -> UInt64, Int32 -> Int64,
Float32 -> Float64), when the reader takes `std/core/v1/Bytes` (any type), or when the
file's `type_rules` say so. Timers send `std/core/v1/UInt64`. (The loader reads `types/`;
this module imports nothing heavy, as every node imports it.)

At send, a value on an output of a core type (the numbers, String, Bool) must be of that
type; struct types (Image, Pose, ...) and Bytes are not checked there, as in dora.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

CORE = "std/core/v1/"
TIMER_TYPE = CORE + "UInt64"
LOG_TYPE = CORE + "String"  # a log entry (dora/logs, send_logs_as): one JSON object
BYTES = CORE + "Bytes"

CORE_ARROW = {  # the core types a value is checked against at send: name -> str() of its pyarrow type
    "Float32": "float",
    "Float64": "double",
    "Int32": "int32",
    "Int64": "int64",
    "UInt8": "uint8",
    "UInt32": "uint32",
    "UInt64": "uint64",
    "String": "string",
    "Bool": "bool",
}
STANDARD = {  # dora's standard type library: URN -> what it is in Arrow
    **{CORE + name: f"Arrow {arrow}" for name, arrow in CORE_ARROW.items()},
    BYTES: "large binary (any type may go to it)",
    "std/math/v1/Vector3": "struct x, y, z",
    "std/math/v1/Quaternion": "struct x, y, z, w",
    "std/math/v1/Pose": "struct position, orientation",
    "std/math/v1/Transform": "struct translation, rotation",
    "std/control/v1/Twist": "struct linear, angular",
    "std/control/v1/JointState": "struct names, positions, velocities, efforts",
    "std/control/v1/Odometry": "struct pose, twist, frame_id",
    "std/media/v1/Image": "struct width, height, encoding, data",
    "std/media/v1/CompressedImage": "large binary (JPEG, PNG)",
    "std/media/v1/PointCloud": "struct points, width, height",
    "std/media/v1/AudioFrame": "struct sample_rate, channels, data",
    "std/vision/v1/BoundingBox": "struct x, y, width, height, confidence, label",
    "std/vision/v1/Detection": "struct boxes",
    "std/vision/v1/Segmentation": "struct width, height, num_classes, mask, class_names",
}
WIDENS_TO = {
    CORE + a: CORE + b
    for a, b in (("UInt8", "UInt32"), ("UInt32", "UInt64"), ("Int32", "Int64"), ("Float32", "Float64"))
}

_NUMPY_TO_ARROW = {"float32": "float", "float64": "double", "bool": "bool"}  # other numeric dtypes: same name
_PATTERN_KEYS = ("request_id", "goal_id", "goal_status")  # dora: messages of a pattern are not checked
_URN = re.compile(r"^(?P<base>[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*/v\d+/[A-Za-z0-9_]+)(?:\[(?P<params>[^\]]*)\])?$")


class TypeRef(NamedTuple):
    """A parsed type URN: its base and its parameters."""

    base: str
    params: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        inner = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.base}[{inner}]" if inner else self.base


def parse(urn: str) -> TypeRef:
    """`std/media/v1/AudioFrame[sample_type=f32]` as a TypeRef (ValueError saying what is wrong)."""
    match = _URN.match(urn.strip())
    if match is None:
        raise ValueError(f"`{urn}` is not a type URN: write `std/core/v1/Int64` (`category/v1/Name`)")
    params: list[tuple[str, str]] = []
    for part in filter(None, (match["params"] or "").split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"`{urn}`: a parameter must be `name=value`, not `{part}`")
        params.append((key.strip(), value.strip()))
    return TypeRef(match["base"], tuple(sorted(params)))


def compatible(sent: TypeRef, wanted: TypeRef, rules: set[tuple[str, str]]) -> bool:
    """Whether a port of type `sent` may feed a port of type `wanted` (see the module's docstring)."""
    if wanted.base == BYTES or (sent.base, wanted.base) in rules:
        return True
    base, hops = sent.base, 0
    while base != wanted.base:
        base, hops = WIDENS_TO.get(base, ""), hops + 1
        if not base or hops > 3:
            return False
    mine, theirs = dict(sent.params), dict(wanted.params)
    return all(theirs[k] == v for k, v in mine.items() if k in theirs)


def send_mismatch(urn: str, value: Any, metadata: dict[str, Any] | None) -> str:
    """Why `value` may not go on an output declared `urn`: a description of what it is, or "" when it may."""
    if not urn.startswith(CORE) or urn == BYTES or (metadata and any(k in metadata for k in _PATTERN_KEYS)):
        return ""
    expected = CORE_ARROW.get(parse(urn).base[len(CORE) :])
    actual, what = _arrow_name(value)
    return "" if expected is None or actual == expected else what


def _arrow_name(value: Any) -> tuple[str, str]:
    """The Arrow type name a value travels as, and how to describe it."""
    kind = type(value)
    if kind.__module__ == "pyarrow.lib":
        return str(value.type), f"an Arrow {value.type} array"
    if kind.__module__ == "numpy" and hasattr(value, "dtype"):
        name = value.dtype.name
        return _NUMPY_TO_ARROW.get(name, name), f"a numpy {name} {'array' if value.ndim else 'number'}"
    if isinstance(value, bool):
        return "bool", "a Python bool"
    if isinstance(value, int):
        return "int64", "a Python int"
    if isinstance(value, float):
        return "double", "a Python float"
    if isinstance(value, str):
        return "string", "a Python str"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "uint8", "bytes"
    if isinstance(value, list) and value:
        names = {_arrow_name(item)[0] for item in value}
        if len(names) == 1:
            return names.pop(), f"a list of {_arrow_name(value[0])[1].split(' ', 1)[1]}s"
    return kind.__name__, f"a {kind.__name__}"
