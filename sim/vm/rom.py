"""The emulated board's start-up, run by the MicroPython VM: what an RP2040's firmware does at reset.

    micropython rom.py FS_DIR LINK_OUT_FD LINK_IN_FD hard|soft

Mounts FS_DIR as the board's flash at `/`, replaces `machine`, `time`, `sys` and
`micropython` with the board's (`board_machine`), then: `hard` runs boot.py and main.py
and starts the friendly REPL; `soft` (a soft reset in the raw REPL) runs boot.py only and
answers with the raw REPL's prompt. The REPL reads the serial port (stdin) and writes to
it (stdout). `machine.reset()` and a soft reset end the process with status 3 or 4; the
emulator then starts it again, as the chip restarts.
"""

import os
import sys

import board_machine
from repl_protocol import RAW_PROMPT, ReplProtocol

HARD_RESET = 3
SOFT_RESET_RAW = 4
BANNER = b"MicroPython v1.29.0 on 2026-08-29; Raspberry Pi Pico (car board emulator, MicroPython VM) with RP2040\r\n"

out = sys.stdout.buffer
session: "dict[str, object]" = {}


def new_session():
    """Forget variables, as after a reset."""
    session.clear()
    session["__name__"] = "__main__"


def run(code, name):
    """Run code on the board; its output goes to the port as it comes; returns the error text."""
    board_machine.set_mode("run")
    try:
        exec(compile(code, name, "exec"), session)
        return ""
    except SystemExit as exc:
        if exc.args and exc.args[0] in (HARD_RESET, SOFT_RESET_RAW):
            raise
        return ""
    except BaseException as exc:  # what the board prints, any error (KeyboardInterrupt too)
        return traceback_text(exc)
    finally:
        board_machine.set_mode("idle")


def evaluate(line):
    """The friendly REPL's line: an expression's value is printed."""
    try:
        code = compile(line, "<stdin>", "eval")
    except SyntaxError:
        return run(line, "<stdin>")
    board_machine.set_mode("run")
    try:
        value = eval(code, session)
        return "" if value is None else repr(value) + "\n"
    except BaseException as exc:
        if isinstance(exc, SystemExit) and exc.args and exc.args[0] in (HARD_RESET, SOFT_RESET_RAW):
            raise
        return traceback_text(exc)
    finally:
        board_machine.set_mode("idle")


def traceback_text(exc):
    import io

    text = io.StringIO()
    sys.print_exception(exc, text)
    return text.getvalue()


def soft_reset(raw):
    out.write(b"OK\r\nMPY: soft reboot\r\n" if raw else b"\r\nMPY: soft reboot\r\n")
    raise SystemExit(SOFT_RESET_RAW if raw else HARD_RESET)


def run_file(name):
    """Run boot.py or main.py from the flash, if there; errors printed as the board prints them."""
    try:
        os.stat(name)
    except OSError:
        return False
    with open(name) as f:
        source = f.read()
    error = run(source, name)
    out.write(error.replace("\n", "\r\n").encode())
    return True


def main():
    fs, link_out, link_in, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    board_machine.install(link_out, link_in)
    os.umount("/")
    os.mount(os.VfsPosix(fs), "/")  # type: ignore[attr-defined]  # the unix port's
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]
    for name in list(sys.modules):  # the ROM's own modules stay loaded, out of the board's way
        if name in ("quadrature", "repl_protocol", "rom"):
            del sys.modules[name]
    new_session()
    repl = ReplProtocol(BANNER, out.write, run, evaluate, soft_reset)
    board_machine.set_mode("idle")
    run_file("boot.py")
    if start == "soft":
        repl.raw = True
        out.write(RAW_PROMPT)
    else:
        run_file("main.py")
        new_session()
        repl.greet()
    while True:
        try:
            data = sys.stdin.buffer.read(1)
        except KeyboardInterrupt:  # Ctrl-C between two commands: the REPL sees it as a byte
            continue
        if not data:
            return
        try:
            repl.byte(data[0])
        except SystemExit:
            raise
        except Exception as exc:  # a REPL never dies of what it is sent (say, undecodable bytes)
            out.write(traceback_text(exc).replace("\n", "\r\n").encode())


try:
    main()
except SystemExit as exc:
    sys.exit(exc.args[0] if exc.args else 0)
