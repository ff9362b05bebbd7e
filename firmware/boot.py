"""Runs at every reset, before main.py (and alone after a soft reset in the raw REPL)."""

import micropython

micropython.alloc_emergency_exception_buf(100)  # readable tracebacks from the encoder interrupts
