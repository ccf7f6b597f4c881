"""Each REQUEST_HEAD from the relay becomes a real HTTP request to the bridge's own listener.

Why a loopback HTTP request rather than calling the aiohttp application in-process: it goes
through exactly the same parser, limits (``server.max_body_bytes``), middlewares and
streaming as a direct call, using only aiohttp's public client API; in-process dispatch would
need aiohttp's private request factory. The price is one loopback round trip per request.

Bytes pass verbatim: no decompression, no added ``Accept-Encoding`` or ``User-Agent``, the
raw path and query untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from bridge.tunnel.messages import CancelCode, RequestHead
from bridge.tunnel_io import (
    READ_BYTES,
    StreamCancelledError,
    TunnelGoneError,
    TunnelStream,
    end_to_end,
    pump,
)

logger = logging.getLogger(__name__)

_SKIP_AUTO = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
_UNREACHABLE = (
    b'{"error":"bridge_unreachable","message":"the bridge did not answer its tunnel","details":{}}'
)


def _text_headers(headers: tuple[tuple[bytes, bytes], ...]) -> CIMultiDict[str]:
    return CIMultiDict(
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in end_to_end(headers)
        if k.lower() != b"host"
    )


async def dispatch(
    session: aiohttp.ClientSession, base_url: str, head: RequestHead, stream: TunnelStream
) -> None:
    """Answer one tunnel stream from the local listener at ``base_url``."""
    conn, sid = stream.conn, head.stream_id
    head_sent = False
    try:
        first = await stream.read()

        async def body() -> AsyncIterator[bytes]:
            data = first
            while data:
                yield data
                data = await stream.read()

        async with session.request(
            head.method,
            URL(base_url + head.path, encoded=True),
            headers=_text_headers(head.headers),
            data=body() if first else None,
            allow_redirects=False,
            auto_decompress=False,
            skip_auto_headers=_SKIP_AUTO,
        ) as response:
            conn.protocol.send_response_head(sid, response.status, end_to_end(response.raw_headers))
            head_sent = True
            conn.kick()
            await pump(lambda: response.content.read(READ_BYTES), conn, sid)
    except (StreamCancelledError, TunnelGoneError, asyncio.CancelledError):
        raise
    except (aiohttp.ClientError, OSError) as exc:
        logger.warning("tunnel request %s %s failed locally: %r", head.method, head.path, exc)
        if not head_sent and conn.alive:
            headers = [(b"Content-Type", b"application/json")]
            conn.protocol.send_response_head(sid, 502, headers)
            conn.protocol.send_body(sid, _UNREACHABLE)
            conn.end_body(sid)
    finally:
        conn.release(sid, CancelCode.INTERNAL_ERROR)
