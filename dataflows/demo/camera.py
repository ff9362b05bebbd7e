"""Synthetic camera: a 320x240 floor with a dark line whose position sways over time."""

import math
import time

import numpy as np

from car import Node

WIDTH, HEIGHT = 320, 240

node = Node()
rng = np.random.default_rng(0)
floor = rng.integers(170, 200, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
columns = np.arange(WIDTH)
for event in node:
    if event.type == "INPUT":
        centre = WIDTH / 2 + 0.3 * WIDTH * math.sin(time.monotonic())
        frame = floor.copy()
        frame[:, np.abs(columns - centre) < 6] = 30
        node.send_output("image", frame, {"captured_ns": time.perf_counter_ns()})
