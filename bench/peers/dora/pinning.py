"""Pin a dora benchmark node to the CPU in BENCH_CPUS (compare.py --pin), before dora starts its threads."""

import os


def apply() -> None:
    """Pin this process's thread to the CPUs BENCH_CPUS lists (`0` or `0,1`); nothing when it is unset."""
    cpus = os.environ.get("BENCH_CPUS")
    if cpus:
        os.sched_setaffinity(0, [int(cpu) for cpu in cpus.split(",")])
