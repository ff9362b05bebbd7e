"""dora's zero-copy send: `node.send_output_raw(output, length)` lends a buffer to fill, then sends it without a copy.

The buffer is a slot of the output's shared memory (car's `Node.allocate_output`), so the
send only tells readers on this machine where it is. dora's safety contract (its
`python-zero-copy-send` example, `test_contract.py`) holds:

- `as_buffer()` returns one `SampleBuffer` per sample; `with ... as buf` yields it. Every view
  made from it (`numpy.asarray(buf)`, `memoryview(buf)`, `struct.pack_into(...)`) is counted.
- `send()` is refused (RuntimeError) while a view is open, and the sample stays sendable; it
  sends once (a second `send()` is an error); after it, `as_buffer()`/`as_memoryview()` are a
  RuntimeError and a new view from a buffer kept from before is a BufferError.
- A sample dropped unsent invalidates its buffer (new views: BufferError) and frees its slot
  once the last view is gone; a `with` block that raises sends nothing.

The counting buffer is a small C type (`_sample_buffer.c`, built when car is installed):
CPython 3.11 lets no Python code raise from the buffer protocol. Where it could not be built
(no C compiler at install), `TRACKED` is False and the buffer is the plain array: the same
zero-copy sends, without the refusals.
"""

from __future__ import annotations

from typing import Any

try:
    from car.compat.dora import _sample_buffer
except ImportError:  # built without a C compiler: see the module's docstring
    _sample_buffer = None  # type: ignore[assignment]
TRACKED = _sample_buffer is not None

SENT = "this sample was sent already"
DROPPED = "this sample's handler is gone (it was dropped without being sent): its buffer is no longer valid"


class SampleHandler:
    """dora's buffer from `send_output_raw`: fill it (`as_buffer`, `as_memoryview`, or `with ... as buf`), then send."""

    def __init__(self, node: Any, output_id: str, array: Any, metadata: dict[str, Any] | None):
        self._node = node
        self._output = output_id
        self._array: Any = array
        self._metadata = metadata
        self._buffer: Any = None
        self._sent = False

    def as_buffer(self) -> Any:
        """The buffer to fill: the same object every time (its views are counted)."""
        if self._sent:
            raise RuntimeError(f"{SENT}: as_buffer() is no longer allowed")
        if self._buffer is None:
            self._buffer = _sample_buffer.SampleBuffer(self._array) if TRACKED else self._array
        return self._buffer

    def as_memoryview(self) -> memoryview:
        """A new writable memoryview of the buffer (release it before `send()`)."""
        if self._sent:
            raise RuntimeError(f"{SENT}: as_memoryview() is no longer allowed")
        return memoryview(self.as_buffer())

    def send(self) -> None:
        """Send the buffer on its output, once, when no view of it is open."""
        if self._sent:
            raise RuntimeError(f"{SENT}: a sample is sent once")
        views = getattr(self._buffer, "views", 0)
        if views:
            raise RuntimeError(
                f"{views} buffer view(s) still open: delete the arrays and release() the memoryviews made from "
                "the buffer before send()"
            )
        if self._buffer is not None and TRACKED:
            self._buffer.refuse(SENT)
        self._sent = True
        self._node.send_output(self._output, self._array, self._metadata)

    def __enter__(self) -> Any:
        return self.as_buffer()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.send()  # refused while a view is open: the error leaves the `with`

    def __del__(self) -> None:
        buffer = self._buffer
        if not self._sent and buffer is not None and TRACKED:
            buffer.refuse(DROPPED)
