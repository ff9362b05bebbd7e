"""car: a dataflow runtime for small robots; dora-style YAML graphs of nodes over ZeroMQ."""

from car.node import Event, Node, UnknownOutputError

__all__ = ["Event", "Node", "UnknownOutputError"]
__version__ = "0.1.0"
