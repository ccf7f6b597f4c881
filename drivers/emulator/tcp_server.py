"""The emulated POS on a TCP port, speaking PBT1 (``docs/drivers/tcp.md``).

``serve(urlsplit("tcp://127.0.0.1:0"), pos)`` listens (port 0 picks a free one) and yields
the driver URL with the real port. Each connection has its own :class:`TcpPosCodec`; every
request is carried out in its own task, so pipelined requests on one connection, and requests
on many connections, are served concurrently and answered in whatever order they finish.

The POS-side rules of the spec this server keeps, and the faults it plays
(``drivers/emulator/pos.py``):

- a frame error (bad magic, version, CRC…) closes that connection at once;
- a request read from a connection the bridge has already closed is not carried out: the
  bridge only closes a connection it has given up on, and it will ask ``find_payment``
  before sending that payment again;
- ``silent``: bytes are read, nothing is answered; ``delay_ms``: answers wait;
  ``corrupt_per_mille``: written bytes may get a flipped bit; ``drop_replies``: requests are
  carried out, their replies never sent;
- reboot: every connection is cut and the port stops listening (connections are refused)
  until the reboot is over; then it listens on the same port again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import SplitResult

from drivers.emulator.pos import EmulatedPos
from drivers.tcp.codec import FrameError, TcpPosCodec
from drivers.wire.messages import Request

logger = logging.getLogger(__name__)


class TcpPosServer:
    """Listens for bridges on ``host:port`` and answers them from ``pos``."""

    def __init__(self, pos: EmulatedPos, host: str, port: int) -> None:
        self.pos = pos
        self.host = host
        self.port = port
        self.connections: set[_PosConnection] = set()
        self._server: asyncio.Server | None = None
        self._reopen: asyncio.Task[None] | None = None
        pos.on_reboot(self._rebooted)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _PosConnection(self), self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
        self._stop_listening()
        for connection in list(self.connections):
            connection.abort()
        tasks = [t for c in self.connections for t in c.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _rebooted(self) -> None:
        """Cut every connection and refuse new ones until the POS is back."""
        logger.info("emulated POS rebooting: connections cut, port closed")
        self._stop_listening()
        for connection in list(self.connections):
            connection.abort()
        if self._reopen is not None:
            self._reopen.cancel()
        self._reopen = asyncio.get_running_loop().create_task(self._listen_after_reboot())

    async def _listen_after_reboot(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self.pos.rebooting_until - loop.time()))
        await self.start()
        logger.info("emulated POS back: listening on %s:%d", self.host, self.port)


class _PosConnection(asyncio.Protocol):
    """One bridge's connection: a codec, and a task per request."""

    def __init__(self, server: TcpPosServer) -> None:
        self.server = server
        self.pos = server.pos
        self.codec = TcpPosCodec({})
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.pos.rebooting:
            self.abort()
            return
        self.server.connections.add(self)
        self.codec.connection_made(asyncio.get_running_loop().time())

    def data_received(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        try:
            self.codec.receive_data(data, now)
        except FrameError as exc:
            logger.warning("emulated POS: %s; closing the connection", exc)
            self.abort()
            return
        self._write()  # bad_request answers to unreadable payloads
        for request in self.codec.requests_received():
            task = asyncio.get_running_loop().create_task(self._carry_out(request))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def eof_received(self) -> bool:
        self.closed = True
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def _carry_out(self, request: Request) -> None:
        # Two turns of the loop let an end-of-stream or reset that arrived with the request
        # be seen first (a POS resumed after a stall reads both at once): a request from a
        # connection the bridge has abandoned is not carried out (docs/drivers/tcp.md).
        for _ in range(2):
            await asyncio.sleep(0)
        if self.closed:
            logger.info("emulated POS: request %d (%s) dropped: connection closed", *_id(request))
            return
        reply = await self.pos.handle(request)
        if reply is None or self.closed:
            return
        self.codec.send_reply(reply, asyncio.get_running_loop().time())
        self._write()

    def _write(self) -> None:
        data = self.codec.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(self.pos.corrupt(data))


def _id(request: Request) -> tuple[int, str]:
    return request.id, request.op


@asynccontextmanager
async def serve(url: SplitResult, pos: EmulatedPos) -> AsyncIterator[str]:
    """Serve ``pos`` on ``tcp://HOST:PORT`` (port 0: any free one); yields the driver URL."""
    host = url.hostname or "127.0.0.1"
    server = TcpPosServer(pos, host, url.port or 0)
    await server.start()
    try:
        shown = f"[{host}]" if ":" in host else host
        yield f"tcp://{shown}:{server.port}"
    finally:
        await server.stop()
