"""A :class:`~drivers.wire.stream.ByteLink` over a serial port (pyserial): bytes only.

pyserial opens and configures the port (speed, parity, stop bits; raw, no flow control);
the file descriptor is then non-blocking and watched with ``loop.add_reader`` /
``add_writer`` on POSIX, so no thread sits in a blocking read.

Windows has no ``add_reader`` for serial handles. There the link would poll: open with
``timeout=0`` and ``write_timeout=0``, and read ``port.in_waiting`` bytes every few
milliseconds with ``loop.call_later`` (pyserial-asyncio's fallback), or run a blocking
``port.read`` in one thread. Only POSIX is built and tested today; on Windows ``connect``
raises ``OSError`` naming that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

import serial

from drivers.serial.fdio import forget_fd, read_fd, write_fd
from drivers.serial.settings import LineSettings

_PARITY = {
    "N": serial.PARITY_NONE,
    "E": serial.PARITY_EVEN,
    "O": serial.PARITY_ODD,
    "M": serial.PARITY_MARK,
    "S": serial.PARITY_SPACE,
}
_STOPBITS = {
    1.0: serial.STOPBITS_ONE,
    1.5: serial.STOPBITS_ONE_POINT_FIVE,
    2.0: serial.STOPBITS_TWO,
}


class SerialLink:
    """One serial port; ``connect`` again after ``close`` reopens it."""

    def __init__(self, port: str, line: LineSettings) -> None:
        self.port = port
        self.line = line
        self.describe = f"serial {port} @{line.baudrate}"
        self._serial: Any = None
        self._fd = -1
        self._waiters: set[asyncio.Future[None]] = set()

    async def connect(self) -> None:
        """Open and configure the port. Raises ``OSError`` (pyserial's are ``OSError``s)."""
        if sys.platform == "win32":  # pragma: no cover - see the module docstring
            raise OSError("the serial link needs a POSIX system (Windows: see link.py)")
        port: Any = serial.serial_for_url(self.port, do_not_open=True)
        port.baudrate = self.line.baudrate
        port.bytesize = self.line.bytesize
        port.parity = _PARITY[self.line.parity]
        port.stopbits = _STOPBITS[self.line.stopbits]
        port.timeout = 0
        port.write_timeout = 0
        port.xonxoff = port.rtscts = port.dsrdtr = False  # binary frames: no in-band flow
        try:
            port.open()
        except (serial.SerialException, ValueError) as exc:
            raise OSError(f"cannot open {self.port}: {exc}") from exc
        fd = port.fileno()
        os.set_blocking(fd, False)
        self._serial, self._fd = port, fd

    async def read(self) -> bytes:
        """Some bytes; ``OSError`` when the port is gone (unplugged, pty closed: EIO)."""
        return await read_fd(self._open_fd(), self._waiters)

    async def write(self, data: bytes) -> None:
        await write_fd(self._open_fd(), data, self._waiters)

    async def close(self) -> None:
        port, fd, self._serial, self._fd = self._serial, self._fd, None, -1
        if port is not None:
            forget_fd(fd, self._waiters)
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()  # a port already gone: closing is all we wanted

    def _open_fd(self) -> int:
        if self._fd < 0:
            raise OSError(f"{self.port} is not open")
        return self._fd
