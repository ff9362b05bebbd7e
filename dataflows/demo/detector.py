"""Find the dark line in the lower part of each frame; send its offset from the centre (-1..1)."""

import os

import numpy as np

from car import Node

roi_top = float(os.environ.get("ROI_TOP", "0.6"))
node = Node()
for event in node:
    if event.type == "INPUT":
        frame = event.value
        roi = frame[int(frame.shape[0] * roi_top) :, :, 1]
        column = int(np.argmin(roi.mean(axis=0)))
        offset = 2 * column / (frame.shape[1] - 1) - 1
        node.send_output("line", {"offset": round(offset, 3)}, event.metadata)
