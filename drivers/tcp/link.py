"""A TCP connection as a :class:`ByteLink`: asyncio streams, bounded connect, keepalive.

It only moves bytes; the codec frames them and the exchange times requests out. What it adds
to a bare socket is what a long-lived connection to a box on a restaurant LAN needs:

- a connect timeout, so a POS that is switched off (no RST, packets dropped) costs
  ``connect_timeout_ms`` and not the OS's minutes of SYN retries;
- ``TCP_NODELAY``: frames are small and each one waits for an answer, so Nagle's delay
  would only add latency;
- TCP keepalive with short timers (idle ``keepalive_s``, then probes every third of it,
  three of them), where the OS lets us set them: an idle connection whose POS vanished
  (power cut, cable pulled) is noticed and dropped before the next payment needs it;
  ``TCP_USER_TIMEOUT`` (Linux) bounds how long sent bytes may go unacknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import socket

logger = logging.getLogger(__name__)

READ_BYTES = 65536
CLOSE_TIMEOUT_S = 1.0  # a graceful close waits this long for the peer, then resets


class TcpLink:
    """One TCP connection at a time to ``host:port``; see the module docstring."""

    def __init__(
        self, host: str, port: int, *, connect_timeout: float, keepalive_s: int = 15
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.keepalive_s = keepalive_s
        self.describe = f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        """Open a fresh connection. Raises ``OSError`` (refused, unreachable, timed out)."""
        await self.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.connect_timeout
            )
        except TimeoutError:
            raise TimeoutError(f"no answer to connect within {self.connect_timeout:g} s") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            configure_socket(sock, self.keepalive_s)
        self._reader, self._writer = reader, writer

    async def read(self) -> bytes:
        if self._reader is None:
            raise ConnectionError("not connected")
        return await self._reader.read(READ_BYTES)

    async def write(self, data: bytes) -> None:
        """Raises ``ConnectionError`` when not connected or the connection is gone: under
        uvloop, writing to a closed transport raises ``RuntimeError`` instead, which would
        escape the driver's error mapping as a bug (a crash test found it: three 500s)."""
        writer = self._writer
        if writer is None:
            raise ConnectionError("not connected")
        if writer.is_closing():
            raise ConnectionError("connection lost")
        writer.write(data)
        await writer.drain()

    async def close(self) -> None:
        """Close gracefully (FIN); reset instead if the peer does not take it in time."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is None:
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_S)
        except (TimeoutError, OSError):
            # A half-open peer never drains our buffer: do not wait on it.
            writer.transport.abort()


def configure_socket(sock: socket.socket, keepalive_s: int) -> None:
    """``TCP_NODELAY`` and, when ``keepalive_s`` > 0, keepalive with short timers.

    Each option is set only where this OS has it (Linux, macOS and Windows name them
    differently); one the OS refuses is logged, not fatal: the exchange's timeout still
    bounds every request.
    """
    options: list[tuple[int, int, int]] = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    if keepalive_s > 0:
        interval = max(1, keepalive_s // 3)
        options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
        for name, value in (
            ("TCP_KEEPIDLE", keepalive_s),  # Linux, Windows 10+
            ("TCP_KEEPALIVE", keepalive_s),  # macOS: idle time before probes
            ("TCP_KEEPINTVL", interval),
            ("TCP_KEEPCNT", 3),
            ("TCP_USER_TIMEOUT", (keepalive_s + 3 * interval) * 1000),  # Linux, ms
        ):
            if hasattr(socket, name):
                options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    for level, option, value in options:
        try:
            sock.setsockopt(level, option, value)
        except OSError as exc:
            logger.debug("socket option %d=%d refused: %s", option, value, exc)
