"""Throughput sender: once the counter says it is ready, send BENCH_COUNT small messages as fast as possible."""

import json
import os
import time

from car import Node

count = int(os.environ["BENCH_COUNT"])
payload = bytes(int(os.environ["BENCH_SIZE"]))
node = Node()
for event in node:
    if event.type == "INPUT" and event.id == "go":
        break
start = time.perf_counter_ns()
for _ in range(count):
    node.send_output("data", payload)
elapsed = time.perf_counter_ns() - start
node.close()
with open(os.environ["BENCH_OUT"] + ".sender", "w") as out:
    json.dump({"sent": count, "send_ns": elapsed, "drops": node.drop_counts()}, out)
