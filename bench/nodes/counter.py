"""Throughput receiver: count messages and time the first and last; write BENCH_OUT at STOP."""

import json
import os
import time

from car import Node

node = Node()
node.send_output("ready", None)
received, first, last = 0, 0, 0
for event in node:
    if event.type == "INPUT":
        received += 1
        last = time.perf_counter_ns()
        if received == 1:
            first = last
with open(os.environ["BENCH_OUT"], "w") as out:
    json.dump({"received": received, "first_ns": first, "last_ns": last, "drops": node.drop_counts()}, out)
