"""car: a dataflow runtime for small robots: dora-style YAML graphs of nodes, linked by socket pairs, shared
memory and ZeroMQ.

`from car import Node` is the node API (car.node.api); it is loaded on first use, so that
`car --version` and the command table import almost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from car.node.api import Event, Node, UnknownOutputError

__all__ = ["Event", "Node", "UnknownOutputError"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`car.Node`, `car.Event`, `car.UnknownOutputError`: imported when first asked for."""
    if name in __all__:
        from car.node import api

        return getattr(api, name)
    raise AttributeError(f"module 'car' has no attribute {name!r}")
