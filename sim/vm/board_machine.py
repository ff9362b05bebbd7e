"""MicroPython's `machine`, `time`, `sys` and `micropython` for the emulated board, inside the VM.

The simulated car lives in the emulator (a CPython process); this module talks to it over
a pair of pipes (`Link`). Writes (pin levels, PWM duty, I2C writes) are lines sent one
way; reads (ADC, I2C, `time_pulse_us`, the clock) are questions answered at once from the
car's state at that moment. The board's clock is the emulator's: each `time.ticks_ms()`
asks for it, and its answer carries the encoders' counts, whose edges are then played on
the encoder pins and their interrupt handlers run, as a board's interrupts run between
two bytecodes.
"""

import sys

import quadrature

TICKS_PERIOD = 1 << 30
UNIQUE_ID = b"\xe6\x61\x41\x04\xe3\x01\xa7\xed"


class Link:
    """Lines to the emulator; answers are a length byte and that many bytes."""

    def __init__(self, fd_out, fd_in):
        self._out = open(fd_out, "wb")  # noqa: SIM115 (open while the VM lives)
        self._in = open(fd_in, "rb")  # noqa: SIM115

    def tell(self, *words):
        """A message that needs no answer."""
        self._out.write((" ".join(str(w) for w in words) + "\n").encode())

    def ask(self, *words):
        """A question; its answer's words."""
        self.tell(*words)
        size = self._in.read(1)
        if not size:
            raise OSError(5, "the emulator has gone")
        return self._in.read(size[0]).decode().split()


link: "Link"  # set by `install`
_pins: "dict[int, Pin]" = {}  # pin id -> Pin, for the encoder edges the clock brings
_encoders: "dict[int, list[int]]" = {}  # channel A pin id -> [B pin id, count played so far]


def _clock():
    """The board's time in ms; plays the encoder edges that happened since the last call."""
    answer = link.ask("T")
    words = answer[1:]
    for k in range(0, len(words), 3):
        a, b, count = int(words[k]), int(words[k + 1]), int(words[k + 2])
        state = _encoders.get(a)
        if state is None:
            state = _encoders[a] = [b, 0]
        for level_a, level_b in quadrature.edges(state[1], count):
            pin_b = _pins.get(b)
            if pin_b is not None:
                pin_b.level = level_b
            pin_a = _pins.get(a)
            if pin_a is not None:
                pin_a.drive(level_a)
        state[1] = count
    return int(answer[0])


class Pin:
    """A GPIO pin; output levels go to the car, input levels come from it."""

    IN, OUT, OPEN_DRAIN = 0, 1, 2
    PULL_UP, PULL_DOWN = 1, 2
    IRQ_RISING, IRQ_FALLING = 1, 2

    def __init__(self, pin_id, mode=-1, pull=-1, value=None):
        self.id = pin_id
        self.level = 0
        self.handler = None
        _pins[pin_id] = self
        if value is not None:
            self.value(value)

    def value(self, level=None):
        """Read the level, or drive it."""
        if level is None:
            return self.level
        self.level = 1 if level else 0
        link.tell("P", self.id, self.level)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __call__(self, level=None):
        return self.value(level)

    def irq(self, handler=None, trigger=3):
        """Run `handler(pin)` on the pin's edges."""
        self.handler = handler

    def drive(self, level):
        """An edge from the car: the level changes and the handler runs."""
        if level != self.level:
            self.level = level
            if self.handler is not None:
                self.handler(self)


class PWM:
    """A PWM output; its duty drives a motor."""

    def __init__(self, pin, freq=0, duty_u16=0):
        self.pin = pin
        self._freq = freq
        self._duty = 0
        self.duty_u16(duty_u16)

    def freq(self, value=None):
        if value is None:
            return self._freq
        self._freq = value
        return None

    def duty_u16(self, value=None):
        if value is None:
            return self._duty
        self._duty = int(value)
        link.tell("D", self.pin.id, self._duty)
        return None

    def deinit(self):
        self.duty_u16(0)


class ADC:
    """An analog input, read from the car."""

    def __init__(self, pin):
        self.pin = pin if isinstance(pin, Pin) else Pin(pin)

    def read_u16(self):
        return int(link.ask("A", self.pin.id)[0])


class I2C:
    """An I2C bus whose devices are the car's."""

    def __init__(self, bus, sda=None, scl=None, freq=400000):
        self.bus = bus

    def scan(self):
        return [int(w) for w in link.ask("S")]

    def writeto_mem(self, address, register, data):
        link.tell("W", address, register, bytes(data).hex())

    def readfrom_mem(self, address, register, count):
        return bytes.fromhex(link.ask("R", address, register, count)[0])


def time_pulse_us(pin, level, timeout_us=1000000):
    """How long `pin` stays at `level` (the ranger's echo), or -2 / -1 on timeout."""
    return int(link.ask("E", pin.id, level, timeout_us)[0])


def unique_id():
    return UNIQUE_ID


def reset():
    """A hard reset: the emulator starts the board afresh (boot.py, then main.py)."""
    raise SystemExit(3)


def soft_reset():
    raise SystemExit(3)


def freq(value=None):
    return 125000000


def idle():
    pass


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


class BoardTime:
    """`time` on the board: the emulator's clock, the VM's own sleeps."""

    def __init__(self, real):
        self._real = real

    def ticks_ms(self):
        return _clock() % TICKS_PERIOD

    def ticks_us(self):
        return (_clock() * 1000) % TICKS_PERIOD

    def ticks_add(self, ticks, delta):
        return (ticks + delta) % TICKS_PERIOD

    def ticks_diff(self, end, start):
        return ((end - start + TICKS_PERIOD // 2) % TICKS_PERIOD) - TICKS_PERIOD // 2

    def __getattr__(self, name):  # sleep, sleep_ms, sleep_us, time, localtime, ...
        return getattr(self._real, name)


class BoardSys:
    """`sys` on the board: an RP2040's platform, the VM's everything else."""

    platform = "rp2"

    def __getattr__(self, name):
        return getattr(sys, name)


class BoardMicropython:
    """`micropython` on the board: `kbd_intr` tells the emulator whether Ctrl-C interrupts."""

    def __init__(self, real):
        self._real = real

    def kbd_intr(self, char):
        set_mode("run" if char == 3 else "bin")

    def alloc_emergency_exception_buf(self, size):
        pass  # a board's; the unix port has no such buffer

    def __getattr__(self, name):
        return getattr(self._real, name)


def set_mode(mode):
    """Tell the emulator what bytes mean now: `idle` (the REPL reads them, its output gets CR LF),
    `run` (code runs: Ctrl-C interrupts it), `bin` (a program owns the port: nothing is changed)."""
    link.ask("M", mode)


def install(fd_out, fd_in):
    """Connect to the emulator and put this board's modules in place of the unix port's."""
    global link
    import time

    import micropython

    link = Link(fd_out, fd_in)
    sys.modules["machine"] = sys.modules["board_machine"]
    sys.modules["time"] = BoardTime(time)  # type: ignore[assignment]
    sys.modules["sys"] = BoardSys()  # type: ignore[assignment]
    sys.modules["micropython"] = BoardMicropython(micropython)  # type: ignore[assignment]
