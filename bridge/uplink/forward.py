"""Each tunnel stream forwarded to the bridge's own HTTP listener on 127.0.0.1, and back.

Why a real HTTP request to its own listener, as cloudflared and frp forward to their local
origin: the bridge's aiohttp server then reads every tunnelled byte exactly as it reads a
platform's direct request (one parser, its limits, ``client_max_size``, every middleware,
its error pages), and nothing here writes or reads HTTP/1.1 by hand. aiohttp's client writes
the request, aiohttp's parser reads the answer.

What is kept as sent: the method; the path and query (the URL is built with
``encoded=True``, and aiohttp's client writes ``url.raw_path_qs`` on the request line, so no
dot segment is removed and nothing is re-encoded); every end-to-end header in order, repeats
included (aiohttp's own ``User-Agent``, ``Accept``, ``Accept-Encoding`` and ``Content-Type``
are skipped; ``Host`` is the listener's own, as a client of it sends). The body is not
decompressed and redirects are not followed: the platform gets the bridge's bytes.

Marked as tunnelled: every forwarded request carries ``X-Pos-Bridge-Tunnelled: 1``, and any
copy of that header the caller sent is dropped first, so the bridge can tell a request that
came through the relay from one made on the venue's network (both arrive from 127.0.0.1).
The technician's pages (``bridge/web/pages/``) answer such a request 404. A local caller can
add the header too, but that only refuses itself.

Flow control, both ways: the request body is read from the tunnel stream only as fast as
aiohttp's client writes it to the socket (its writes wait for the transport to drain), and
the answer's body is read from the socket only as fast as the tunnel frames it
(:meth:`~tunnel.asyncio.TunnelConnection.send_body` waits while more than a frame is
queued for a window).

Cancellation: the relay's CANCEL cancels the stream's task, which cancels the client
request; aiohttp closes that connection, and the bridge's server sees its client go. The
bridge's server does not cancel a handler whose client left (aiohttp's
``handler_cancellation`` is off by default, and ``bridge/cli/serve.py`` leaves it off), so a
payment is still taken to its end and its answer kept for the platform's retry.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from yarl import URL

from tunnel.asyncio import (
    HOP_BY_HOP,
    TunnelConnection,
    TunnelGoneError,
    TunnelStream,
    end_to_end,
)
from tunnel.messages import CancelCode, RequestHead

logger = logging.getLogger(__name__)

_UNREACHABLE = (
    b'{"error":"bridge_unreachable","message":"the bridge did not answer its tunnel","details":{}}'
)
_BAD_REQUEST = (
    b'{"error":"bad_request","message":"the tunnelled request cannot be sent as HTTP/1.1 '
    b'unchanged","details":{}}'
)
_JSON = [(b"Content-Type", b"application/json")]
#: Set on every request this module forwards (see the module's docstring); never a caller's.
TUNNELLED_HEADER = "X-Pos-Bridge-Tunnelled"
#: Request headers not forwarded: hop-by-hop ones, ``Host`` (the listener's own is sent), and
#: the tunnelled mark (ours is added).
_NOT_FORWARDED = HOP_BY_HOP | {b"host", TUNNELLED_HEADER.lower().encode()}
#: Headers aiohttp's client would add on its own; a platform's are forwarded, not these.
_SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
#: Idle keep-alive connections to the listener are closed after this long: well under the
#: server's keep-alive (aiohttp's 75 s), so the client never reuses one the server just
#: closed (a POST on such a connection is not retried).
KEEPALIVE_S = 15.0


@dataclass(frozen=True, slots=True)
class LocalOrigin:
    """The bridge's own listener, where tunnelled requests go: ``host`` and ``port``."""

    host: str
    port: int

    def url(self, target: str) -> URL:
        """The URL for ``target`` (path and query as sent), encoded as it is."""
        path, mark, query = target.partition("?")
        return URL.build(
            scheme="http",
            host=self.host,
            port=self.port,
            path=path,
            query_string=query if mark else "",
            encoded=True,
        )


def local_session() -> aiohttp.ClientSession:
    """The pooled keep-alive client for :class:`LocalOrigin`: no cookie jar (a response's
    cookies are the platform's, not to be sent again), no decompression, no overall
    timeout (the relay's deadline cancels a stream), no proxy from the environment, no
    pool limit (the tunnels' stream limits bound what is in flight)."""
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
        skip_auto_headers=_SKIP_AUTO_HEADERS,
    )


def _request_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The end-to-end headers as ``str`` for aiohttp's client, which writes them as UTF-8:
    a value that is not UTF-8 could not be written unchanged; then the tunnelled mark.

    Raises:
        UnicodeDecodeError: a name or value is not UTF-8.
    """
    headers = [(name.decode(), value.decode()) for name, value in end_to_end(raw, _NOT_FORWARDED)]
    headers.append((TUNNELLED_HEADER, "1"))
    return headers


async def forward(
    origin: LocalOrigin,
    session: aiohttp.ClientSession,
    conn: TunnelConnection,
    head: RequestHead,
    stream: TunnelStream,
) -> None:
    """Answer one tunnel stream from the bridge's listener at ``origin``.

    Raises:
        StreamCancelledError, TunnelGoneError: the relay gave up on the stream, or the tunnel
            went; the local request is abandoned with it.
    """
    sid = head.stream_id
    answer = _Answer(conn, sid)
    try:
        first = await stream.read()
        try:
            headers = _request_headers(list(head.headers))
            url = origin.url(head.path)
        except ValueError as exc:  # UnicodeDecodeError too
            logger.warning("tunnel request refused: %s", exc)
            answer.error(400, _BAD_REQUEST)
            return
        body = _body(stream, first) if first else None
        try:
            async with session.request(
                head.method, url, headers=headers, data=body, allow_redirects=False
            ) as response:
                await answer.stream(response)
        except (aiohttp.ClientError, OSError) as exc:
            logger.warning("tunnel request %s %s failed locally: %r", head.method, head.path, exc)
            if not answer.head_sent:  # else the release below cuts the stream short
                answer.error(502, _UNREACHABLE)
            return
        except ValueError as exc:  # aiohttp's client would not write it (a control byte…)
            logger.warning("tunnel request refused: %s", exc)
            answer.error(400, _BAD_REQUEST)
            return
        await conn.drain(sid)
    finally:
        conn.release(sid, CancelCode.INTERNAL_ERROR)


async def _body(stream: TunnelStream, first: bytes) -> AsyncIterator[bytes]:
    """The request body: what was read, then the rest as the client takes it."""
    yield first
    while data := await stream.read():
        yield data


class _Answer:
    """The answer to one tunnel stream, and whether its head has left (after which a failure
    can only cut the stream short: the relay then cuts its caller's connection)."""

    def __init__(self, conn: TunnelConnection, sid: int) -> None:
        self.conn = conn
        self.sid = sid
        self.head_sent = False

    async def stream(self, response: aiohttp.ClientResponse) -> None:
        """Whole in one call when it is all here with its head (a bill, a payment), else the
        head, then each piece once the tunnel has framed the one before."""
        conn, sid = self.conn, self.sid
        headers = end_to_end(response.raw_headers)
        content = response.content
        data = await content.readany()
        if not conn.alive:
            raise TunnelGoneError("the tunnel closed before the answer")
        self.head_sent = True
        if content.at_eof():
            conn.protocol.send_response(sid, response.status, headers, data)
            conn.kick()
            return
        conn.protocol.send_response_head(sid, response.status, headers)
        while data:
            await conn.send_body(sid, data)
            data = await content.readany()
        conn.end_body(sid)

    def error(self, status: int, body: bytes) -> None:
        if self.conn.alive:
            self.conn.protocol.send_response(self.sid, status, _JSON, body)
            self.conn.kick()
