"""Typed values out of YAML nodes, each mistake a located problem: what the dataflow loader is built on.

Nothing here raises for bad input: a value YAML cannot construct (an unknown `!tag`,
`!!int xyz`) is reported and read as UNREADABLE, and only the first problem at a place
is kept, so what follows from it is not reported again.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, NamedTuple

import yaml

from car.spec.model import Location, Problem


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """`did you mean ...?` for the closest of `choices`, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else ""


class _Unreadable:
    """What `_Checker.scalar` gives for a value YAML cannot construct (already reported)."""

    def __repr__(self) -> str:
        return "an unreadable value"


UNREADABLE = _Unreadable()


class Entry(NamedTuple):
    """One `key: value` of a YAML mapping, with the nodes that say where each is."""

    key: str
    key_node: yaml.Node
    value: yaml.Node


class ValueReader:
    """Reads typed values out of YAML nodes, collecting a located problem for each that is wrong."""

    def __init__(self, label: str):
        self.label = label
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")

    def loc(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.label, mark.line + 1, mark.column + 1)

    def problem(self, node: yaml.Node, message: str, hint: str = "") -> None:
        """Report a problem (one per place: what follows from an unreadable value is not reported again)."""
        location = self.loc(node)
        if all(p.location != location for p in self.problems):
            self.problems.append(Problem(location, message, hint))

    def scalar(self, node: yaml.Node) -> Any:
        """The value YAML gives `node`, or UNREADABLE (reported) when it gives none: an unknown tag, `!!int xyz`."""
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError, AttributeError) as exc:
            if isinstance(exc, AttributeError):  # PyYAML's constructor of a tag whose pattern the value misses
                reason = f"`{str(node.value)[:40]}` is not a {node.tag.rsplit(':', 1)[-1]}"
            else:
                reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self.problem(node, f"cannot read this value: {reason}", "write a plain value (no `!tag`)")
            return UNREADABLE

    def mapping(self, node: yaml.Node, what: str) -> list[Entry] | None:
        """The entries of a mapping, or None after reporting."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping (`key: value` lines)")
            return None
        seen: dict[str, yaml.Node] = {}
        pairs: list[Entry] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, f"keys in {what} must be plain names")
                continue
            key = str(self.scalar(key_node))
            if key in seen:
                first = self.loc(seen[key])
                self.problem(key_node, f"duplicate key `{key}` in {what} (first at line {first.line})")
                continue
            seen[key] = key_node
            pairs.append(Entry(key, key_node, value_node))
        return pairs

    def known_keys(
        self,
        pairs: list[Entry],
        allowed: tuple[str, ...],
        unsupported: dict[str, str],
        what: str,
    ) -> dict[str, yaml.Node]:
        values = {}
        for key, key_node, value_node in pairs:
            if key in allowed:
                values[key] = value_node
            elif key in unsupported:
                self.problem(key_node, f"`{key}` in {what} is a dora key car does not support", unsupported[key])
            else:
                hint = suggest(key, allowed) or f"known keys: {', '.join(k for k in allowed if not k.startswith('_'))}"
                self.problem(key_node, f"unknown key `{key}` in {what}", hint)
        return values

    def string(self, node: yaml.Node, what: str) -> str | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str) or not value.strip():
            self.problem(node, f"{what} must be a non-empty string")
            return None
        return value

    def number(self, node: yaml.Node, what: str, minimum: float, inclusive: bool = True) -> float | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(node, f"{what} must be a number")
            return None
        if not math.isfinite(value):
            self.problem(node, f"{what} must be a finite number, got {value}")
            return None
        if value < minimum or (not inclusive and value == minimum):
            bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
            self.problem(node, f"{what} must be {bound}, got {value}")
            return None
        return float(value)

    def integer(self, node: yaml.Node, what: str, minimum: int) -> int | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(node, f"{what} must be a whole number")
            return None
        if value < minimum:
            self.problem(node, f"{what} must be >= {minimum}, got {value}")
            return None
        return value

    def boolean(self, node: yaml.Node, what: str) -> bool:
        value = self.scalar(node)
        if isinstance(value, bool):
            return value
        self.problem(node, f"{what} must be true or false, not `{value}`")
        return True

    def choice(self, node: yaml.Node, what: str, choices: tuple[str, ...]) -> str | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if value not in choices:
            hint = suggest(str(value), choices) or f"use one of: {', '.join(choices)}"
            self.problem(node, f"{what} must be one of {', '.join(choices)}, got `{value}`", hint)
            return None
        return str(value)

    def env(self, node: yaml.Node, what: str) -> dict[str, str]:
        pairs = self.mapping(node, what)
        env: dict[str, str] = {}
        for key, _key_node, value_node in pairs or []:
            value = self.scalar(value_node) if isinstance(value_node, yaml.ScalarNode) else None
            if value is None or not isinstance(value, (str, int, float, bool)):
                self.problem(value_node, f"{what} `{key}` must be a string, number or boolean")
                continue
            env[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return env

    # -- the file --------------------------------------------------------------------
