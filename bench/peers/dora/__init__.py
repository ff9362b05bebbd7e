"""The dora side of the benchmark: the same pipelines as `car`'s, run by dora 1.x (see runner.py)."""
