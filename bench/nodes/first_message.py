"""Start-up probe: stamp perf_counter_ns at the first message, write BENCH_OUT, and end the run."""

import json
import os
import time

from car import Node

node = Node()
for event in node:
    if event.type == "INPUT":
        first = time.perf_counter_ns()
        with open(os.environ["BENCH_OUT"], "w") as out:
            json.dump({"first_ns": first}, out)
        node.stop_dataflow("first message arrived")
        break
