"""Scale probe: write the wall-clock time of the first message to BENCH_OUT/<node id>.json, then keep reading."""

import json
import os
import time

from car import Node

node = Node()
written = False
for event in node:
    if event.type == "INPUT" and not written:
        with open(os.path.join(os.environ["BENCH_OUT"], f"{node.id}.json"), "w") as out:
            json.dump({"first_wall_ns": time.time_ns()}, out)
        written = True
