"""Benchmark sink: record send-to-receive latency of each message; write BENCH_OUT at STOP."""

import json
import os
import time

from car import Node

node = Node()
latencies = []
for event in node:
    if event.type == "INPUT":
        latencies.append(time.perf_counter_ns() - event.metadata["t"])
with open(os.environ["BENCH_OUT"], "w") as out:
    json.dump({"latencies_ns": latencies, "drops": node.drop_counts(), "cpus": sorted(os.sched_getaffinity(0))}, out)
