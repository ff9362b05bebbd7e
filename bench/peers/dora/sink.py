"""dora benchmark sink: record send-to-receive latency of each message; write BENCH_OUT at the end."""

import json
import os
import time

import pinning
from dora import Node

pinning.apply()
node = Node()
latencies = []
for event in node:
    if event["type"] == "INPUT":
        now = time.perf_counter_ns()
        sent = event["metadata"].get("t")
        if sent is None:  # a zero-copy frame: the stamp is in its first 8 bytes
            sent = int.from_bytes(event["value"][:8].to_numpy().tobytes(), "little")
        latencies.append(now - sent)
with open(os.environ["BENCH_OUT"], "w") as out:
    json.dump({"latencies_ns": latencies, "cpus": sorted(os.sched_getaffinity(0))}, out)
