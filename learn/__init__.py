"""Teaching the car (laptop only): collect data with the simulator's expert, clean it, train a pilot, export it.

`car collect` (learn.collect), `car clean` (learn.clean), `car train` (learn.train). The
model they make runs on the car through nodes.pilot_model, which needs only OpenCV.
"""
