"""Record when each timer tick arrives (perf_counter_ns) and its delivery delay; write BENCH_OUT at STOP."""

import json
import os
import time

from car import Node

node = Node()
arrivals, delays = [], []
for event in node:
    if event.type == "INPUT":
        arrivals.append(time.perf_counter_ns())
        delays.append(time.time_ns() - event.timestamp.wall_ns)
with open(os.environ["BENCH_OUT"], "w") as out:
    json.dump({"arrivals_ns": arrivals, "delays_ns": delays, "drops": node.drop_counts()}, out)
