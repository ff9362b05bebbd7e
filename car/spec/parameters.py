"""A node's parameters: named, typed values with a default, an optional range and a description.

A node declares them through the node API (`Node.declare_parameter`); `car param set`
changes one in the running node. The one check of a value against its declaration
lives here, used by the node (its default) and by the daemon (every value set), so a bad
value is refused before it reaches the node, with what would be accepted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

TYPES: dict[str, tuple[type[Any], ...]] = {"float": (float, int), "int": (int,), "bool": (bool,), "str": (str,)}


@dataclass(frozen=True)
class Parameter:
    """One declared parameter (its value travels as JSON text: see car.transport.control)."""

    name: str
    type: str  # float | int | bool | str
    default_json: str
    description: str = ""
    has_range: bool = False
    minimum: float = 0.0
    maximum: float = 0.0

    @property
    def default(self) -> Any:
        """The default value."""
        return json.loads(self.default_json)

    def accepts(self) -> str:
        """What values it takes, in words: `a float in [0, 2]`."""
        kind = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "a string"}[self.type]
        return f"{kind} in [{self.minimum:g}, {self.maximum:g}]" if self.has_range else kind


def declare(
    name: str, default: Any, description: str = "", value_range: tuple[float, float] | None = None
) -> Parameter:
    """A parameter of the type of `default`; ValueError when the declaration itself is wrong."""
    kind = next((k for k, types in TYPES.items() if type(default) in types[:1]), "")
    if not kind:
        raise ValueError(
            f"parameter `{name}`: a default of type {type(default).__name__} (use float, int, bool or str)"
        )
    low, high = value_range if value_range is not None else (0.0, 0.0)
    if value_range is not None and (kind not in ("float", "int") or not low <= high):
        raise ValueError(f"parameter `{name}`: a range needs a number default and minimum <= maximum")
    parameter = Parameter(name, kind, json.dumps(default), description, value_range is not None, low, high)
    problem = check(parameter, default)
    if problem:
        raise ValueError(f"parameter `{name}`: its default {problem}")
    return parameter


def check(parameter: Parameter, value: Any) -> str:
    """What is wrong with `value` for `parameter`, naming what would be right; "" when nothing is."""
    types = TYPES[parameter.type]
    if (isinstance(value, bool) and parameter.type != "bool") or not isinstance(value, types):
        return f"{json.dumps(value)} is not {parameter.accepts()}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not {parameter.accepts()}"
    if parameter.has_range and not parameter.minimum <= value <= parameter.maximum:
        return f"{json.dumps(value)} is out of range: `{parameter.name}` takes {parameter.accepts()}"
    return ""


def coerce(parameter: Parameter, value: Any) -> Any:
    """The value as the parameter's own type (an integer given for a float parameter becomes a float)."""
    return float(value) if parameter.type == "float" else value
