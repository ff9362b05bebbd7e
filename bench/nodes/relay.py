"""Benchmark relay: forward every message unchanged, metadata included."""

from car import Node

node = Node()
for event in node:
    if event.type == "INPUT":
        node.send_output("data", event.value, event.metadata)
