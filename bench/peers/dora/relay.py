"""dora benchmark relay: forward every message unchanged, metadata included."""

import pinning
from dora import Node

pinning.apply()
node = Node()
for event in node:
    if event["type"] == "INPUT":
        node.send_output("data", event["value"], event["metadata"])
