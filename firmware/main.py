"""The board's main program: the serial protocol over USB, the control loop, telemetry.

USB serial is shared with MicroPython's REPL: while this runs, Ctrl-C is off (binary
frames contain 0x03) and the host stops it with the MAINTENANCE command (`car flash`
does) to get the REPL back. The motors stop on any exit.
"""

import select
import sys
import time

import machine
import micropython
from app import Firmware
from hardware import Hardware
from pid import Pid

if sys.platform == "rp2":
    import board_pico as board
else:
    import board_esp32 as board


def board_id():
    """Eight hex digits of the chip's unique id."""
    return "".join(f"{b:02x}" for b in machine.unique_id())[-8:].encode()


def run():
    """Serve the host until MAINTENANCE."""
    hw = Hardware(board)
    out = sys.stdout.buffer
    firmware = Firmware(hw, out.write, board_id(), board.WHEEL_MM_PER_TICK, lambda: Pid(*board.PID_GAINS))
    poller = select.poll()
    poller.register(sys.stdin, select.POLLIN)
    micropython.kbd_intr(-1)
    start = time.ticks_ms()
    try:
        while firmware.running:
            data = b""
            while poller.poll(0) and len(data) < 64:
                data += sys.stdin.buffer.read(1)
            now_ms = time.ticks_diff(time.ticks_ms(), start)
            if data:
                firmware.receive(data, now_ms)
            firmware.step(now_ms)
            if not data:
                time.sleep_ms(1)
    finally:
        hw.set_duty(0.0, 0.0)
        micropython.kbd_intr(3)


run()
