"""Benchmark subscriber: join run NAME, record the latency of each `source/data` message; write OUT at STOP."""

import json
import sys
import time

from car.node.subscriber import Subscriber
from car.plan.runs import RunError

name, out = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 30
while True:
    try:
        sub = Subscriber(["source/data"], run=name)
        break
    except RunError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.02)
latencies = []
for event in sub:
    if event.type == "INPUT":
        latencies.append(time.perf_counter_ns() - event.metadata["t"])
with open(out, "w") as f:
    json.dump({"latencies_ns": latencies, "dropped": sub.dropped}, f)
sub.close()
