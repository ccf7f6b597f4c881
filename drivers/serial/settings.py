"""Line settings and the PBS1 timers derived from them (pure).

Every timer of the protocol is a function of the line's speed, so a frame is never
retransmitted while its first copy is still on the wire, at 1200 baud as at 115200.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivers.errors import DriverConfigError
from drivers.serial.frames import CONTROL_FRAME_BYTES

PARITIES = ("N", "E", "O", "M", "S")
STOPBITS = (1, 1.5, 2)

#: Time a peer may take to start its ACK after the last byte of a data frame arrives, on top
#: of the ACK's own wire time. Peers are asked to ACK within half of it.
TURNAROUND_S = 0.1
#: Retransmissions after the first copy, then the frame is given up (4 copies in all).
RETRANSMITS = 3
#: A partial frame that got no byte for this long is garbage: skip its STX and rescan.
RESYNC_IDLE_MIN_S = 0.1
RESYNC_IDLE_CHARS = 20


@dataclass(frozen=True, slots=True)
class LineSettings:
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1

    @property
    def bits_per_char(self) -> float:
        """Start bit, data bits, parity bit, stop bits: 10 for 8N1."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    def wire_time(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the line at this speed."""
        return nbytes * self.bits_per_char / self.baudrate


@dataclass(frozen=True, slots=True)
class Timers:
    """The protocol's timers for one line (``docs/drivers/serial.md``, "Timers")."""

    line: LineSettings
    turnaround_s: float = TURNAROUND_S
    retransmits: int = RETRANSMITS

    def ack_timeout(self, frame_bytes: int) -> float:
        """How long to wait for the ACK of a frame of ``frame_bytes``, from its write."""
        return self.line.wire_time(frame_bytes + CONTROL_FRAME_BYTES) + self.turnaround_s

    @property
    def ack_wait_after_rx(self) -> float:
        """While the peer is sending (its ACK may queue behind its own data frame), the ACK
        timer runs at least this long past the last byte received."""
        return self.ack_timeout(0)

    @property
    def resync_idle(self) -> float:
        return max(RESYNC_IDLE_MIN_S, self.line.wire_time(RESYNC_IDLE_CHARS))


def line_settings(options: dict[str, Any], *, pop: bool = False) -> LineSettings:
    """The line settings in ``options`` (URL query merged with config), checked.

    Codecs read them without popping (a vendor codec may want the speed too); the link pops
    them, so that :func:`drivers.options.reject_unknown` sees only what nobody read.

    Raises:
        DriverConfigError: a setting is out of range; ``key`` names it.
    """
    take = options.pop if pop else options.get
    baudrate = take("baudrate", 9600)
    if type(baudrate) is not int or not 50 <= baudrate <= 4_000_000:
        raise DriverConfigError("options.baudrate", "must be an integer from 50 to 4000000")
    bytesize = take("bytesize", 8)
    if bytesize != 8 or type(bytesize) is not int:
        raise DriverConfigError("options.bytesize", "must be 8: PBS1 frames are binary")
    parity = take("parity", "N")
    if parity not in PARITIES:
        raise DriverConfigError("options.parity", f"must be one of {', '.join(PARITIES)}")
    stopbits = take("stopbits", 1)
    try:
        stop = float(stopbits)
    except (TypeError, ValueError):
        stop = 0.0
    if isinstance(stopbits, bool) or stop not in STOPBITS:
        raise DriverConfigError("options.stopbits", "must be 1, 1.5 or 2")
    return LineSettings(baudrate, bytesize, parity, stop)
