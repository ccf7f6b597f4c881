"""The public URL map: ``/v/{venue}/{path}`` goes down the venue's tunnel, verbatim.

Method, raw path and query, and end-to-end headers travel unchanged (hop-by-hop headers are
dropped, ``X-Forwarded-For`` and ``X-Forwarded-Proto`` set); the bridge's status, headers and
body come back streamed, chunk by chunk, so a body never sits whole in the relay's memory.
Every byte of the platform's request was read by aiohttp's parser: this is the only way in.

Failures are the bridge's typed JSON errors (``exchange.py``): 503 ``venue_offline`` with
``Retry-After`` (no tunnel), 413 ``payload_too_large`` (over ``limits.max_body_bytes``,
announced or counted), 504 ``pos_timeout``, 502 ``venue_error``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiohttp import web
from yarl import URL

from relay.config import RelayLimits
from relay.exchange import TunnelExchange, too_large, venue_offline, waiting_parts
from relay.registry import Registry
from tunnel.asyncio import (
    HOP_BY_HOP,
    READ_BYTES,
    StreamCancelledError,
    TunnelGoneError,
    TunnelStream,
    end_to_end,
)
from tunnel.messages import ResponseHead

logger = logging.getLogger(__name__)


#: Not copied from the request: hop-by-hop, and the ``X-Forwarded-*`` the relay sets itself.
_NOT_FORWARDED = HOP_BY_HOP | {b"x-forwarded-for", b"x-forwarded-proto"}


def forwarded_headers(
    raw: Iterable[tuple[bytes, bytes]], remote: str | None, scheme: str
) -> list[tuple[bytes, bytes]]:
    """The request's end-to-end headers ``raw``, in order, plus ``X-Forwarded-For`` (any
    chain the caller sent, then its address ``remote``) and ``X-Forwarded-Proto``."""
    raw = list(raw)
    headers = end_to_end(raw, _NOT_FORWARDED)
    chain = [v for k, v in raw if k.lower() == b"x-forwarded-for"]
    chain.append((remote or "unknown").encode("latin-1"))
    headers.append((b"X-Forwarded-For", b", ".join(chain)))
    headers.append((b"X-Forwarded-Proto", scheme.encode("latin-1")))
    return headers


def tunnel_path(url: URL) -> str:
    """The raw path and query after ``/v/{venue}``, starting with ``/``: the venue's segment
    is skipped as sent (percent-encoded or not), never re-encoded from its decoded name.

    ``url`` is the request's ``rel_url``, not its ``raw_path``: for an absolute-form target
    (``GET http://host/v/cafe/x HTTP/1.1``) ``raw_path`` is the whole target as sent, while
    aiohttp's parser gives ``rel_url`` the path and query alone (``URL(target, encoded=True)
    .relative()``), as it does for an origin-form one. Both keep the bytes as sent: yarl
    removes no dot segments and re-encodes nothing in ``encoded=True`` URLs."""
    path = url.raw_path
    rest = path.split("/", 3)[3] if path.count("/") >= 3 else ""
    query = url.raw_query_string
    return "/" + rest + ("?" + query if query else "")


async def forward(
    request: web.Request, registry: Registry, limits: RelayLimits
) -> web.StreamResponse:
    """Forward one request to its venue's tunnel (see the module docstring)."""
    venue = request.match_info["venue"]
    link = registry.get(venue)
    if link is None:
        raise venue_offline(venue, limits.retry_after_s)
    length = request.content_length
    if length is not None and length > limits.max_body_bytes:
        raise too_large(limits.max_body_bytes)
    content = request.content
    async with TunnelExchange(
        link,
        request.method,
        tunnel_path(request.rel_url),
        forwarded_headers(request.raw_headers, request.remote, request.scheme),
        (lambda: content.read(READ_BYTES)) if request.can_read_body else None,
        limits,
    ) as (stream, head):
        return await _stream_response(request, stream, head, venue, limits)


#: Statuses whose responses have no body, whatever their headers say.
_NO_BODY = frozenset({204, 304})


def sent_whole(method: str, status: int) -> bool:
    """Whether a complete answer may leave as one ``web.Response`` (which would give a HEAD's
    or a 204's answer a body framing): here, and for answers routed in over NATS."""
    return method != "HEAD" and status not in _NO_BODY


async def _stream_response(
    request: web.Request, stream: TunnelStream, head: ResponseHead, venue: str, limits: RelayLimits
) -> web.StreamResponse:
    # A list, not a CIMultiDict: aiohttp copies what it is given into its own CIMultiDict.
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in end_to_end(head.headers)
    ]
    parts, whole = waiting_parts(stream, venue, limits)
    if whole and sent_whole(request.method, head.status):
        # The whole answer came with its head (a bill, a payment): one Response, written by
        # aiohttp in one go, instead of a head write, a body write and an end.
        return web.Response(status=head.status, body=b"".join(parts), headers=headers)
    response = web.StreamResponse(status=head.status, headers=headers)
    await response.prepare(request)
    if not sent_whole(request.method, head.status):
        # No body may follow the head (aiohttp's StreamResponse would write what it is given,
        # and the caller would read it as the start of the next answer).
        await response.write_eof()
        return response
    try:
        for part in parts:
            await response.write(part)
        ended = whole
        while not ended:
            data = stream.read_nowait()
            if data is None:  # the idle timeout is armed only around a real wait
                async with asyncio.timeout(limits.request_timeout_s):
                    data = await stream.read()
            if data:
                await response.write(data)
            else:
                ended = True
    except (TimeoutError, TunnelGoneError, StreamCancelledError) as exc:
        # The head is out: no error document can follow. Cut the connection so the client
        # sees a truncated body, never a complete-looking wrong one.
        logger.warning("response body from the venue broke off: %r", exc)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response
