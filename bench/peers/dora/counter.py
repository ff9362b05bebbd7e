"""dora throughput receiver: count messages, time the first and last; write BENCH_OUT when the input closes."""

import json
import os
import time

import pinning
import pyarrow as pa
from dora import Node

pinning.apply()
node = Node()
node.send_output("ready", pa.array([1], pa.uint8()))
received, first, last = 0, 0, 0
for event in node:
    if event["type"] == "INPUT":
        received += 1
        last = time.perf_counter_ns()
        if received == 1:
            first = last
    elif event["type"] in ("INPUT_CLOSED", "STOP"):
        break
with open(os.environ["BENCH_OUT"], "w") as out:
    json.dump({"received": received, "first_ns": first, "last_ns": last}, out)
