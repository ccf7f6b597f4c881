"""A serial cable between two ttys, with the faults and the speed of a real one.

:func:`serial_line` opens a tty (the emulator's pty slave) as a device on the far end of a
cable would, opens a new pty pair for the bridge, and copies bytes both ways. On the way it
can (seeded, per byte, per direction) insert garbage bytes, drop bytes and flip bits, and it
can pace each direction at ``baudrate`` (ptys move bytes as fast as the CPU can, a cable at
``baudrate / bits_per_char`` bytes per second). Tests use it to put noise on the line; the
benchmark uses it to get a 9600-baud wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from drivers.emulator.ptys import open_pty, open_tty
from drivers.serial.fdio import read_fd, write_fd

#: Paced bytes are released in slices this small, so a frame trickles in as on a wire.
PACE_SLICE_BYTES = 8


@dataclass(frozen=True, slots=True)
class Noise:
    """Chances per byte; each direction draws from its own seeded generator."""

    garbage: float = 0.0  # a random byte inserted before this one
    drop: float = 0.0  # this byte lost
    flip: float = 0.0  # one bit of this byte flipped
    seed: int = 1


@dataclass(slots=True)
class DirectionStats:
    bytes_in: int = 0
    bytes_out: int = 0
    garbage: int = 0
    dropped: int = 0
    flipped: int = 0


@dataclass(slots=True)
class LineStats:
    to_pos: DirectionStats = field(default_factory=DirectionStats)
    to_bridge: DirectionStats = field(default_factory=DirectionStats)

    @property
    def damage(self) -> int:
        return sum(d.garbage + d.dropped + d.flipped for d in (self.to_pos, self.to_bridge))

    @property
    def bytes_delivered(self) -> int:
        return self.to_pos.bytes_out + self.to_bridge.bytes_out


def _damage(data: bytes, noise: Noise, rng: random.Random, stats: DirectionStats) -> bytes:
    out = bytearray()
    for byte in data:
        if rng.random() < noise.garbage:
            out.append(rng.randrange(256))
            stats.garbage += 1
        if rng.random() < noise.drop:
            stats.dropped += 1
            continue
        if rng.random() < noise.flip:
            byte ^= 1 << rng.randrange(8)
            stats.flipped += 1
        out.append(byte)
    return bytes(out)


async def _pump(
    source: int,
    sink: int,
    stats: DirectionStats,
    noise: Noise | None,
    rng: random.Random,
    byte_time: float,
) -> None:
    loop = asyncio.get_running_loop()
    line_free_at = 0.0
    while True:
        data = await read_fd(source)
        if not data:
            return
        stats.bytes_in += len(data)
        # The line is busy until the bytes before these are out; sleeping late on one slice
        # must not slow the line down, so the schedule runs from this, not from each wake-up.
        line_free_at = max(line_free_at, loop.time())
        if noise is not None:
            data = _damage(data, noise, rng, stats)
        step = PACE_SLICE_BYTES if byte_time else max(len(data), 1)
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            if byte_time:
                line_free_at += len(piece) * byte_time
                await asyncio.sleep(line_free_at - loop.time())
            await write_fd(sink, piece)
            stats.bytes_out += len(piece)


@contextlib.asynccontextmanager
async def serial_line(
    pos_port: str,
    *,
    noise: Noise | None = None,
    baudrate: int | None = None,
    bits_per_char: int = 10,
) -> AsyncIterator[tuple[str, LineStats]]:
    """A cable from ``pos_port`` to a new pty; yields (the bridge's port path, counters).

    Args:
        noise: damage to do on the way, both directions; none by default.
        baudrate: pace each direction at this speed (``bits_per_char`` per byte, 10 for
            8N1); unpaced by default.
    """
    far = open_tty(pos_port)
    near = open_pty()
    stats = LineStats()
    byte_time = bits_per_char / baudrate if baudrate else 0.0
    seed = noise.seed if noise else 0
    pumps = [
        asyncio.create_task(
            _pump(near.master, far, stats.to_pos, noise, random.Random(seed), byte_time)
        ),
        asyncio.create_task(
            _pump(far, near.master, stats.to_bridge, noise, random.Random(seed + 1), byte_time)
        ),
    ]
    try:
        yield near.path, stats
    finally:
        for task in pumps:
            task.cancel()
        for task in pumps:
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        near.close()
        os.close(far)
