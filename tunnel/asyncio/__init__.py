"""The asyncio shell around the sans-I/O tunnel protocol, shared by the relay and the bridge.

- ``connection``: :class:`TunnelConnection`, one protocol driven over one aiohttp websocket;
- ``stream``: :class:`TunnelStream`, one HTTP exchange on it, and its errors.
"""

from tunnel.asyncio.connection import (
    CLOSE_TIMEOUT_S,
    DEFAULT_MAX_MESSAGE_BYTES,
    READ_BYTES,
    TunnelConnection,
    pump,
)
from tunnel.asyncio.stream import StreamCancelledError, TunnelGoneError, TunnelStream
from tunnel.headers import HOP_BY_HOP, end_to_end

__all__ = [
    "CLOSE_TIMEOUT_S",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "HOP_BY_HOP",
    "READ_BYTES",
    "StreamCancelledError",
    "TunnelConnection",
    "TunnelGoneError",
    "TunnelStream",
    "end_to_end",
    "pump",
]
