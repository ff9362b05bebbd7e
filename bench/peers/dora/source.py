"""dora benchmark source: on every tick after the warm-up, send BENCH_SIZE bytes stamped with perf_counter_ns."""

import os
import time

import numpy as np
import pyarrow as pa
from dora import Node

payload = pa.array(np.zeros(int(os.environ["BENCH_SIZE"]), np.uint8))
warmup_ns = int(float(os.environ.get("BENCH_WARMUP_S", "0.5")) * 1e9)
node = Node()
start = None
for event in node:
    if event["type"] == "INPUT":
        now = time.perf_counter_ns()
        start = start or now
        if now - start >= warmup_ns:
            node.send_output("data", payload, {"t": time.perf_counter_ns()})
