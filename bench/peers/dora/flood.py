"""dora throughput sender: once the counter is ready, send BENCH_COUNT small messages as fast as possible."""

import json
import os
import time

import numpy as np
import pinning
import pyarrow as pa
from dora import Node

count = int(os.environ["BENCH_COUNT"])
payload = pa.array(np.zeros(int(os.environ["BENCH_SIZE"]), np.uint8))
pinning.apply()
node = Node()
for event in node:
    if event["type"] == "INPUT" and event["id"] == "go":
        break
start = time.perf_counter_ns()
for _ in range(count):
    node.send_output("data", payload)
elapsed = time.perf_counter_ns() - start
with open(os.environ["BENCH_OUT"] + ".sender", "w") as out:
    json.dump({"sent": count, "send_ns": elapsed}, out)
