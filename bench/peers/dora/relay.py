"""dora benchmark relay: forward every message unchanged, metadata included."""

from dora import Node

node = Node()
for event in node:
    if event["type"] == "INPUT":
        node.send_output("data", event["value"], event["metadata"])
