"""The asyncio shell around the sans-I/O tunnel protocol, shared by the relay and the bridge.

- ``connection``: :class:`TunnelConnection`, one protocol driven over one aiohttp websocket;
- ``stream``: :class:`TunnelStream`, one HTTP exchange on it, and its errors.
"""

from bridge.http.headers import HOP_BY_HOP, end_to_end
from bridge.tunnel_io.connection import (
    CLOSE_TIMEOUT_S,
    DEFAULT_MAX_MESSAGE_BYTES,
    READ_BYTES,
    TunnelConnection,
    pump,
)
from bridge.tunnel_io.stream import StreamCancelledError, TunnelGoneError, TunnelStream

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
