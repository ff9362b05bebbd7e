"""MicroPython's REPL protocols as mpremote uses them: one byte stream in, actions out.

Friendly REPL (`>>> `, lines echoed and run, `... ` for blocks), raw REPL (Ctrl-A; code
ends with Ctrl-D, answered `OK`, then stdout, 0x04, stderr, 0x04, `>`), raw-paste mode
(`0x05 A 0x01`, answered `R 0x01`, a 16-bit window, and 0x01 for each window consumed),
Ctrl-B back to the friendly REPL, Ctrl-C, Ctrl-D with no code (soft reset).

Runs under MicroPython (the emulator's board ROM, `rom.py`) and under CPython (the
emulator's fallback, `sim.repl`), so it uses only builtins. The caller supplies:
`write(bytes)`, `run(code_bytes, name)` (runs code, writing its output as it goes, and
returns the error text, empty when none), `evaluate(line)` (the friendly REPL's line: an
expression's value printed) and `soft_reset(raw)`.
"""

try:
    from collections.abc import Callable
except ImportError:  # MicroPython: annotations are never evaluated there
    pass

RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
PASTE_WINDOW = 128
BANNER_END = b'Type "help()" for more information.\r\n'


class ReplProtocol:
    """The REPL's state between bytes."""

    def __init__(
        self,
        banner: bytes,
        write: "Callable[[bytes], object]",
        run: "Callable[[bytes, str], str]",
        evaluate: "Callable[[str], str]",
        soft_reset: "Callable[[bool], None]",
    ) -> None:
        self.banner = banner
        self.write = write
        self.run = run
        self.evaluate = evaluate
        self.soft_reset = soft_reset
        self.raw = False
        self.code = bytearray()
        self.paste: bytearray | None = None  # raw-paste data being received
        self.paste_count = 0
        self.escape = b""
        self.line = bytearray()  # the friendly REPL's line being typed
        self.block: list[str] = []  # lines of a compound statement (friendly REPL)

    def greet(self) -> None:
        """The banner and prompt a board prints when its program ends."""
        self.write(self.banner + BANNER_END + b">>> ")

    def feed(self, data: bytes) -> None:
        """Bytes from the host."""
        for byte in data:
            self.byte(byte)

    def byte(self, byte: int) -> None:
        """One byte from the host."""
        if self.paste is not None:
            self._paste_byte(byte)
        elif self.escape:
            self.escape += bytes((byte,))
            if len(self.escape) == 3:
                if self.escape == b"\x05A\x01":
                    self.paste, self.paste_count = bytearray(), 0
                    self.write(b"R\x01" + bytes((PASTE_WINDOW & 0xFF, PASTE_WINDOW >> 8)))
                self.escape = b""
        elif byte == 0x01:  # Ctrl-A: raw REPL
            self.raw, self.code = True, bytearray()
            self.write(b"\r\n" + RAW_PROMPT)
        elif byte == 0x02:  # Ctrl-B: friendly REPL
            self.raw, self.line, self.block = False, bytearray(), []
            self.write(b"\r\n" + self.banner + BANNER_END + b">>> ")
        elif byte == 0x03:  # Ctrl-C: drop what was typed
            self.code, self.line, self.block = bytearray(), bytearray(), []
            if not self.raw:
                self.write(b"\r\nKeyboardInterrupt\r\n>>> ")
        elif byte == 0x04:  # Ctrl-D: run the raw REPL's code, or soft reset when there is none
            if self.raw and self.code:
                code, self.code = bytes(self.code), bytearray()
                self.write(b"OK")
                self._run_raw(code)
            elif not self.line and not self.block:
                self.soft_reset(self.raw)
        elif byte == 0x05 and self.raw and not self.code:
            self.escape = b"\x05"
        elif self.raw:
            self.code.append(byte)
        else:
            self._friendly_byte(byte)

    def _run_raw(self, code: bytes) -> None:
        error = self.run(code, "<stdin>")
        self.write(b"\x04" + _crlf(error) + b"\x04>")

    def _paste_byte(self, byte: int) -> None:
        assert self.paste is not None
        if byte == 0x04:
            code, self.paste = bytes(self.paste), None
            self.write(b"\x04")
            self._run_raw(code)
            return
        self.paste.append(byte)
        self.paste_count += 1
        if self.paste_count % PASTE_WINDOW == 0:
            self.write(b"\x01")

    def _friendly_byte(self, byte: int) -> None:
        if byte in (0x08, 0x7F):  # backspace
            if self.line:
                self.line = self.line[:-1]
                self.write(b"\x08 \x08")
        elif byte == 0x0D:  # Enter
            self.write(b"\r\n")
            line, self.line = bytes(self.line).decode(), bytearray()
            self._friendly_line(line)
        elif byte >= 0x20:
            self.line.append(byte)
            self.write(bytes((byte,)))

    def _friendly_line(self, line: str) -> None:
        if self.block:
            if line.strip():
                self.block.append(line)
                self.write(b"... ")
                return
            code, self.block = "\n".join(self.block) + "\n", []
            self.write(_crlf(self.run(code.encode(), "<stdin>")) + b">>> ")
            return
        if line.rstrip().endswith(":"):
            self.block = [line]
            self.write(b"... ")
            return
        if line.strip():
            self.write(_crlf(self.evaluate(line)))
        self.write(b">>> ")


def _crlf(text: str | bytes) -> bytes:
    """Board output ends its lines with CR LF."""
    if isinstance(text, str):
        text = text.encode()
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
