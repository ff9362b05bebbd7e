"""Types of the C module _sample_buffer.c (car.compat.dora.sample)."""

from typing import Any

class SampleBuffer:
    """The memory of an array, lent through the buffer protocol; it counts its views and can refuse new ones."""

    def __init__(self, array: Any) -> None: ...
    @property
    def views(self) -> int:
        """Views made from this buffer and not released yet."""
    @property
    def nbytes(self) -> int:
        """The buffer's size in bytes."""
    def refuse(self, why: str) -> None:
        """Refuse every new view from now on, with BufferError(why)."""
    def __buffer__(self, flags: int) -> memoryview: ...
