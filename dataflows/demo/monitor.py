"""Print the line offset, the detection rate and the camera-to-monitor latency once a second."""

import time

from car import Node

node = Node()
count, offset, latencies = 0, 0.0, []
for event in node:
    if event.type != "INPUT":
        continue
    if event.id == "line":
        count += 1
        offset = event.value["offset"]
        latencies.append(time.perf_counter_ns() - event.metadata["captured_ns"])
    elif event.id == "report":
        latency = sorted(latencies)[len(latencies) // 2] / 1e6 if latencies else float("nan")
        bar = [" "] * 41
        bar[round((offset + 1) * 20)] = "|"
        print(f"[{''.join(bar)}] offset {offset:+.2f}  {count:3d} frames/s  latency p50 {latency:.2f} ms")
        count, latencies = 0, []
