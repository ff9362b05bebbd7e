"""The board's serial port, on kernels without some terminal ioctls (StarryOS: `car doctor`).

pyserial opens a device by setting its attributes (TCGETS, TCSETS), raising DTR and RTS
(TIOCMBIS, whose ENOTTY and EINVAL it ignores) and flushing its input (`tcflush`: TCFLSH,
whose failure ends the open with a `termios.error`). `SerialPort` is pyserial's own port
with two changes: without TCFLSH the input is flushed by reading what is there, and DTR and
RTS are left as they are on a kernel that has no modem-control ioctls at all (ENOSYS).
URLs (`loop://`, `socket://`, `rfc2217://`) are pyserial's `serial_for_url`'s, as before.

`read_some` hands on what has arrived as soon as it arrives: pyserial's `read(size)` waits
until `size` bytes have gathered or the timeout passed, which held telemetry frames back
for up to the whole timeout.
"""

from __future__ import annotations

import errno
import os
import select
import termios
from collections.abc import Callable
from typing import Any

import serial

UNSUPPORTED = (errno.ENOTTY, errno.EINVAL, errno.ENOSYS)  # how a kernel says it has no such ioctl
READ_BYTES = 4096


class SerialPort(serial.Serial):  # type: ignore[misc]  # pyserial has no type hints
    """pyserial's port for a device path, which opens and flushes without TCFLSH and modem-control ioctls."""

    def _reset_input_buffer(self) -> None:
        try:
            super()._reset_input_buffer()
        except termios.error as exc:
            if exc.args[0] not in UNSUPPORTED:
                raise
            self._read_what_is_there()

    def _read_what_is_there(self) -> None:
        """Discard the input the port holds now (pyserial opens it non-blocking)."""
        while True:
            try:
                if not os.read(self.fd, READ_BYTES):
                    return
            except (BlockingIOError, InterruptedError):
                return

    def read_some(self, size: int) -> bytes:
        """Up to `size` bytes, as soon as any are there (waiting up to the port's timeout for the first)."""
        if not self.is_open:
            raise serial.PortNotOpenError()
        if not select.select([self.fd], [], [], self.timeout)[0]:
            return b""
        try:
            data = os.read(self.fd, size)
        except (BlockingIOError, InterruptedError):
            return b""
        if not data:
            raise serial.SerialException("the device has gone (readable, but no data)")
        return data

    def _update_dtr_state(self) -> None:
        _unless_unsupported(super()._update_dtr_state)

    def _update_rts_state(self) -> None:
        _unless_unsupported(super()._update_rts_state)


def _unless_unsupported(update: Callable[[], None]) -> None:
    """Set a modem line, unless the kernel has no modem-control ioctls."""
    try:
        update()
    except OSError as exc:
        if exc.errno not in UNSUPPORTED:
            raise


def read_some(port: serial.SerialBase, size: int) -> bytes:
    """Up to `size` bytes from any open port, as soon as some have arrived (b"" after its timeout)."""
    if isinstance(port, SerialPort):
        return port.read_some(size)
    first: bytes = port.read(1)
    return first + port.read(min(size - 1, port.in_waiting)) if first else first


def open_port(url: str, **settings: Any) -> serial.SerialBase:
    """The open port at `url`: a device path (`SerialPort`), or any pyserial URL (`loop://`, `socket://`, ...)."""
    if "://" in url:
        return serial.serial_for_url(url, **settings)
    return SerialPort(url, **settings)
