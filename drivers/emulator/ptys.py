"""Pseudo-terminals for the serial emulator and the test line: real ttys, raw, non-blocking.

A pty pair is what a USB serial adapter looks like to the bridge: a path under /dev/pts that
pyserial opens and configures like any port, with the POS (or a line in between) on the
master side.
"""

from __future__ import annotations

import contextlib
import os
import tty
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pty:
    master: int
    slave: int
    path: str  # the slave's path: what the other side opens

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):  # already closed
                os.close(fd)


def open_pty() -> Pty:
    """A raw pty pair (no echo, no line editing, 8 bits through); the master non-blocking.

    The slave stays open here too: a pty master reads EIO while no slave is open, and the
    bridge opens and closes its side as it reconnects.
    """
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    return Pty(master, slave, os.ttyname(slave))


def open_tty(path: str) -> int:
    """``path`` opened raw and non-blocking, as a program on the far end of a cable would."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    return fd
