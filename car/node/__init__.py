"""The node side: the `Node` façade (`api`) over its parts, and subscribers that join a running graph."""

from car.node.api import Event, Node, UnknownOutputError

__all__ = ["Event", "Node", "UnknownOutputError"]
