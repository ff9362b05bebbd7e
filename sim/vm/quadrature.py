"""Quadrature encoder edges: the levels channels A and B go through (MicroPython and CPython).

The firmware counts both edges of channel A; after a forward step channel B is opposite
to A, after a backward step equal to it (`firmware/hardware.py`'s `Encoder`).
"""


def edges(current: int, target: int) -> list[tuple[int, int]]:
    """(level of A, level of B) after each A edge taking the count from `current` to `target`."""
    levels = []
    while current != target:
        step = 1 if target > current else -1
        current += step
        a = current % 2
        levels.append((a, 1 - a if step > 0 else a))
    return levels
