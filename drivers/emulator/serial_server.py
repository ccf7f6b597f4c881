"""The emulated POS on a serial line, speaking PBS1 (``docs/drivers/serial.md``).

``serial:pty?baudrate=9600`` opens a pty pair and yields ``serial:///dev/pts/N?baudrate=9600``
for the bridge; ``serial:///dev/ttyS1?baudrate=9600`` serves on a real port (a null-modem
cable to the bridge's port). The POS codec runs on this side; the :class:`Faults` apply here:

- ``silent``: every byte is read and ignored: no ACK, no reply;
- ``delay_ms`` and ``drop_replies``: in :meth:`EmulatedPos.handle` (the ACK still goes at
  once: the link layer is not the POS's business logic);
- ``corrupt_per_mille``: each chunk written may get one flipped bit (:meth:`EmulatedPos.corrupt`);
- reboot: the codec is gone at once (half-received frames, queued replies and the SEQ it
  last delivered are forgotten), replies to requests from before the reboot are never sent,
  every byte is ignored and nothing is sent until the reboot is over; then a new codec
  powers on (a new random first SEQ and nonce) and sends its RST, as a real POS does, and
  delivers nothing until the bridge's RSTACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import SplitResult, urlencode

from drivers.emulator.pos import EmulatedPos
from drivers.emulator.ptys import Pty, open_pty
from drivers.options import merged_options
from drivers.serial.codec import Pbs1PosCodec
from drivers.serial.fdio import read_fd, write_fd
from drivers.serial.link import SerialLink
from drivers.serial.settings import line_settings
from drivers.wire.messages import Request

logger = logging.getLogger(__name__)


class SerialPosServer:
    """One POS codec on one byte stream (a pty master or a real port)."""

    def __init__(self, pos: EmulatedPos, options: dict[str, Any], link: Any) -> None:
        self.pos = pos
        self._options = options
        self._link = link
        self.codec = self._new_codec()  # powered on: its RST goes out when run() starts
        self._generation = 0
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        pos.on_reboot(self._rebooted)

    def _new_codec(self) -> Pbs1PosCodec:
        rng = self.pos.rng
        codec = Pbs1PosCodec(
            dict(self._options), first_seq=rng.randrange(256), first_nonce=rng.randrange(256)
        )
        codec.connection_made(time.monotonic())
        return codec

    def _rebooted(self) -> None:
        self._generation += 1
        self.codec = self._new_codec()  # memory gone now; what it would send is dropped
        task = asyncio.create_task(self._power_on(self._generation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._wake.set()

    async def _power_on(self, generation: int) -> None:
        """The reboot is over: a fresh codec announces itself with RST."""
        loop = asyncio.get_running_loop()
        while self.pos.rebooting:  # the loop may wake a hair early: the RST must not be lost
            await asyncio.sleep(max(0.001, self.pos.rebooting_until - loop.time()))
        if generation != self._generation:
            return  # rebooted again meanwhile: that reboot powers on
        self.codec = self._new_codec()
        await self._flush()
        self._wake.set()

    async def run(self) -> None:
        await self._flush()  # power-on: RST
        async with asyncio.TaskGroup() as group:
            group.create_task(self._read_loop())
            group.create_task(self._timer_loop())

    async def _read_loop(self) -> None:
        while True:
            data = await self._link.read()
            if not data:
                raise ConnectionResetError("serial line closed")
            if self.pos.rebooting or self.pos.faults.silent:
                continue
            self.codec.receive_data(data, time.monotonic())
            for request in self.codec.requests_received():
                task = asyncio.create_task(self._answer(request, self._generation))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await self._flush()
            self._wake.set()

    async def _answer(self, request: Request, generation: int) -> None:
        reply = await self.pos.handle(request)
        if reply is None or generation != self._generation or self.pos.faults.silent:
            return  # dropped, or the POS rebooted (or hung) while working on it
        self.codec.send_reply(reply, time.monotonic())
        await self._flush()
        self._wake.set()

    async def _timer_loop(self) -> None:
        while True:
            self._wake.clear()
            deadline = self.codec.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: see StreamExchange
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
                continue
            self.codec.handle_timeouts(time.monotonic())
            await self._flush()

    async def _flush(self) -> None:
        async with self._write_lock:
            data = self.codec.data_to_send()
            if data and not self.pos.faults.silent and not self.pos.rebooting:
                await self._link.write(self.pos.corrupt(data))


class _MasterLink:
    """The pty master as a byte stream."""

    def __init__(self, pty: Pty) -> None:
        self._pty = pty

    async def read(self) -> bytes:
        return await read_fd(self._pty.master)

    async def write(self, data: bytes) -> None:
        await write_fd(self._pty.master, data)


@contextlib.asynccontextmanager
async def serve(url: SplitResult, pos: EmulatedPos) -> AsyncIterator[str]:
    """Serve ``pos`` on a new pty (``serial:pty``) or a real port; yields the bridge's URL."""
    options = merged_options(url.query, {})
    line = line_settings(options)
    query = urlencode(
        {k: v for k, v in options.items() if k in ("baudrate", "parity", "stopbits")}
        or {"baudrate": line.baudrate}
    )
    pty: Pty | None = None
    link: Any
    if url.path == "pty":
        pty = open_pty()
        link, path = _MasterLink(pty), pty.path
    else:
        link = SerialLink(url.path, line)
        await link.connect()
        path = url.path  # the bridge opens its own end of the null-modem cable instead
    server = SerialPosServer(pos, options, link)
    task = asyncio.create_task(server.run(), name=f"serial POS on {path}")
    try:
        yield f"serial://{path}?{query}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if pty is not None:
            pty.close()
        else:
            await link.close()
