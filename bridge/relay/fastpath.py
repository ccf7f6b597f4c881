"""The relay's public listener: plain ``/v/{venue}/…`` requests relayed without aiohttp's web
layer; every other request (and connection) is aiohttp's.

Why: aiohttp's request parsing, routing, middleware, response objects and writer were about
40 % of the relay's CPU per relayed bill fetch (py-spy, ``bench/relay_profile.py``), the
largest part of what it adds to a request. This path reads a request in the narrow form
``bridge/http/head.py`` accepts (GET or POST, an unreserved path with an optional plain query,
one ``Content-Length`` up to :data:`FAST_BODY_BYTES`), puts it down the venue's tunnel with
the same :class:`~bridge.relay.exchange.TunnelExchange` aiohttp's route uses (same deadline,
stream slots, typed errors, ``X-Forwarded-*``, rate limit, metrics), and writes the bridge's
answer back as bytes: whole with a ``Content-Length`` when it came whole with its head, else
streamed (by the bridge's ``Content-Length``, or chunked) with backpressure. When a stream
slot is free, the request leaves at once and is answered from its response head's callback:
no task per request (a task only to wait for a slot, or to stream a long answer).

The head fields added are those aiohttp's ``web.Response``/``StreamResponse`` add (a
``Content-Length`` for a whole body, ``Content-Type: application/octet-stream`` when a body
has none, ``Date``, ``Server``, ``Connection: close``); ``tests/relay/test_public_fast_path.py``
compares both listeners on the same requests. Everything else goes to aiohttp from its first
byte (``bridge/http/fastconn.py``): the tunnel's websocket upgrade, the health and metrics
URLs, other methods, chunked or large bodies, percent-encoded or dot segments, and, on a
relay in a NATS cluster, a venue whose tunnel this relay does not hold.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web

from bridge.answers import INTERNAL_ANSWER, error_answer
from bridge.errors import ApiError
from bridge.http.fastconn import FastConnection, FastListener, encode_answer, encode_head
from bridge.http.head import HAND_OVER, TOKEN, HandOver, Head, body_of, read_head
from bridge.http.headers import end_to_end
from bridge.http.responses import SERVER, http_date
from bridge.relay.config import RelayLimits
from bridge.relay.exchange import TunnelExchange, expire, venue_offline, waiting_parts
from bridge.relay.proxy import forwarded_headers
from bridge.tunnel.messages import ResponseHead
from bridge.tunnel_io import StreamCancelledError, TunnelGoneError, TunnelStream

if TYPE_CHECKING:
    from bridge.relay.app import Relay

logger = logging.getLogger(__name__)

#: Largest request body read whole here; a larger one is streamed by aiohttp's route.
FAST_BODY_BYTES = 64 * 1024

#: ``/v/{venue}/`` and a path of unreserved characters, then an optional query of
#: unreserved characters, sub-delimiters and well-formed percent escapes.
RELAY_REQUEST_LINE = re.compile(
    rb"(GET|POST) (/v/[A-Za-z0-9._~-]+/[A-Za-z0-9._~/-]*"
    rb"(?:\?(?:[A-Za-z0-9._~=&+,:@/-]|%[0-9A-Fa-f]{2})*)?) HTTP/1\.1"
)


@dataclass(frozen=True, slots=True)
class RelayRequest:
    """A request relayed here: its venue, the path (and query) after ``/v/{venue}``, its
    fields as sent, its body, and what ``fastconn`` needs."""

    method: str
    venue: str
    path: str
    fields: list[tuple[bytes, bytes]]
    body: bytes
    close: bool
    length: int


def read_relay_request(buffer: bytes | bytearray, max_body: int) -> RelayRequest | HandOver | None:
    """The relayable request at the start of ``buffer`` (sans I/O), :data:`HAND_OVER`, or
    ``None`` while incomplete. ``max_body``: the relay's limit (aiohttp answers 413 past it)."""
    head = read_head(buffer, min(max_body, FAST_BODY_BYTES), RELAY_REQUEST_LINE)
    if not isinstance(head, Head):
        return head
    target = split_target(head.target)
    if target is None:
        return HAND_OVER
    body = body_of(buffer, head)
    if body is None:
        return None
    venue, path = target
    return RelayRequest(
        head.method.decode("ascii"),
        venue,
        path,
        head.fields,
        body,
        head.close,
        head.body_start + head.body_length,
    )


def split_target(target: str) -> tuple[str, str] | None:
    """``/v/{venue}/{rest}`` as (venue, ``/{rest}``); ``None`` for a target whose path has an
    empty (but the last), ``.`` or ``..`` segment: aiohttp's to normalise or refuse."""
    path, _, _ = target.partition("?")
    segments = path.split("/")[2:]  # venue, then the rest
    if any(segment in ("", ".", "..") for segment in segments[:-1]):
        return None
    if segments[-1] in (".", ".."):
        return None
    venue = segments[0]
    return venue, target[len("/v/") + len(venue) :]


def relay_listener(relay: Relay, aiohttp_server: web.Server) -> FastListener[RelayRequest]:
    """The relay's public listener: relayable requests here, the rest to ``aiohttp_server``
    (the relay's aiohttp application)."""
    limits = relay.config.limits
    read_request = partial(read_relay_request, max_body=limits.max_body_bytes)

    def read(buffer: bytearray) -> RelayRequest | HandOver | None:
        request = read_request(buffer)
        if (
            isinstance(request, RelayRequest)
            and relay.cluster is not None
            and relay.registry.get(request.venue) is None
        ):
            return HAND_OVER  # routed over NATS by aiohttp's route
        return request

    def serve(connection: FastConnection[RelayRequest], request: RelayRequest) -> None:
        """Send the request down the tunnel and answer it from the head's callback: no task
        per request unless all stream slots are busy or the answer must be streamed."""
        began = time.monotonic()
        try:
            relay.requests.check(request.venue)
            link = relay.registry.get(request.venue)
            if link is None:
                raise venue_offline(request.venue, limits.retry_after_s)
            headers = forwarded_headers(request.fields, connection.remote, connection.scheme)
            exchange = TunnelExchange(
                link, request.method, request.path, headers, request.body, limits
            )
            stream = exchange.start_nowait()
        except Exception as exc:
            done(connection, request, answer_error(connection, request, exc), 0, began)
            return
        if stream is None:  # all stream slots busy: wait for one in a task
            connection.spawn(relay_waiting(connection, request, exchange, began), request)
            return
        timer = asyncio.get_running_loop().call_at(exchange.deadline, expire, stream.head)
        stream.head.add_done_callback(
            partial(on_head, connection, request, exchange, stream, timer, began)
        )

    def on_head(
        connection: FastConnection[RelayRequest],
        request: RelayRequest,
        exchange: TunnelExchange,
        stream: TunnelStream,
        timer: asyncio.TimerHandle,
        began: float,
        arrived: asyncio.Future[ResponseHead],
    ) -> None:
        timer.cancel()
        status, sent, rest = 500, 0, None
        try:
            if arrived.cancelled():
                raise TunnelGoneError("the response head was cancelled")
            error = arrived.exception()
            if error is not None:
                raise exchange.failure(error)
            head = arrived.result()
            status = head.status
            sent, rest = start_response(connection, stream, head, request, limits)
        except Exception as exc:
            status = answer_error(connection, request, exc)
        if rest is not None:  # the body streams in a task; the exchange ends with it
            streaming = stream_rest(request, exchange, rest, status, sent, began)
            connection.spawn(streaming, request)
            return
        exchange.release()
        done(connection, request, status, sent, began)

    async def stream_rest(
        request: RelayRequest,
        exchange: TunnelExchange,
        rest: Awaitable[int],
        status: int,
        sent: int,
        began: float,
    ) -> None:
        try:
            sent += await rest
        finally:
            exchange.release()
            relay.metrics.observe(request.venue, status, len(request.body), sent, began)

    async def relay_waiting(
        connection: FastConnection[RelayRequest],
        request: RelayRequest,
        exchange: TunnelExchange,
        began: float,
    ) -> None:
        status, sent = 500, 0
        try:
            async with exchange as (stream, head):
                status = head.status
                sent, rest = start_response(connection, stream, head, request, limits)
                if rest is not None:
                    sent += await rest
        except Exception as exc:
            status = answer_error(connection, request, exc)
        finally:
            relay.metrics.observe(request.venue, status, len(request.body), sent, began)

    def done(
        connection: FastConnection[RelayRequest],
        request: RelayRequest,
        status: int,
        sent: int,
        began: float,
    ) -> None:
        relay.metrics.observe(request.venue, status, len(request.body), sent, began)
        connection.finish(request)

    return FastListener(aiohttp_server, read, serve)


#: Statuses whose answers have no body, whatever their headers say (aiohttp's rule).
_EMPTY = frozenset({204, 304})
_UNSENDABLE_VALUE = re.compile(rb"[\r\n\0]")
#: Field names already checked to be tokens: a venue sends the same few on every answer.
_SENDABLE_NAMES: set[bytes] = set()
_CONTENT_LENGTH = b"content-length"


def answer_error(
    connection: FastConnection[RelayRequest], request: RelayRequest, error: Exception
) -> int:
    """Answer a request that failed before its answer's head was written: an ``ApiError``
    as its typed JSON, anything else as a logged 500 (as aiohttp's error middleware does).
    Returns the status sent."""
    if isinstance(error, ApiError):
        connection.write(encode_answer(error_answer(error), request.close))
        return error.status
    logger.error("relaying %s %s failed", request.method, request.path, exc_info=error)
    connection.write(encode_answer(INTERNAL_ANSWER, request.close))
    return 500


def start_response(
    connection: FastConnection[RelayRequest],
    stream: TunnelStream,
    head: ResponseHead,
    request: RelayRequest,
    limits: RelayLimits,
) -> tuple[int, Awaitable[int] | None]:
    """Write the bridge's answer on ``stream`` to ``connection`` as far as it is here: all of
    it when it came whole with its head (or has no body), else its head. Returns the body
    bytes written and, for a body still to come, the coroutine that streams the rest (and
    returns its byte count).

    Raises:
        ApiError: the stream broke off before anything was written (``waiting_parts``).
        ValueError: the bridge's head cannot be sent (a field with a line break, a name not
            a token): nothing was written; a 500 follows, as aiohttp's route answers.
    """
    status, close = head.status, request.close
    fields = []
    declared: int | None = None
    for name, value in end_to_end(head.headers):
        if name not in _SENDABLE_NAMES:
            if not TOKEN.fullmatch(name):
                raise ValueError(
                    f"the venue's answer has a field name that is not a token: {name!r}"
                )
            if len(_SENDABLE_NAMES) < 1024:
                _SENDABLE_NAMES.add(name)
        if _UNSENDABLE_VALUE.search(value):
            raise ValueError(f"the venue's answer has a line break or NUL in field {name!r}")
        if name.lower() == _CONTENT_LENGTH:
            declared = int(value) if value.isdigit() and declared is None else -1
            continue
        fields.append((name, value))
    parts, whole = waiting_parts(stream, request.venue, limits)
    if status in _EMPTY or status < 200:
        connection.write(encode_head(status, _defaults(fields, None), close))
        return 0, None
    if whole:  # the answer came with its head: one write, with its length
        body = b"".join(parts)
        connection.write(encode_head(status, _defaults(fields, len(body)), close) + body)
        return len(body), None
    chunked = declared is None or declared < 0
    framing = [(b"Transfer-Encoding", b"chunked")] if chunked else []
    connection.write(encode_head(status, _defaults(fields, declared, framing), close))
    length = None if chunked else declared
    return 0, _stream_body(connection, stream, parts, length, limits.request_timeout_s)


def _defaults(
    fields: list[tuple[bytes, bytes]],
    length: int | None,
    framing: list[tuple[bytes, bytes]] | None = None,
) -> list[tuple[bytes, bytes]]:
    """``fields`` plus what aiohttp's response adds: the length (or framing), a
    ``Content-Type`` for a body that has none, ``Date`` and ``Server`` unless given."""
    names = {name.lower() for name, _ in fields}
    out = list(fields)
    if framing:
        out += framing
    elif length is not None:
        out.append((b"Content-Length", str(length).encode("ascii")))
    if length != 0 and (framing or length is not None) and b"content-type" not in names:
        out.append((b"Content-Type", b"application/octet-stream"))
    if b"date" not in names:
        out.append((b"Date", http_date()))
    if b"server" not in names:
        out.append((b"Server", SERVER))
    return out


async def _stream_body(
    connection: FastConnection[RelayRequest],
    stream: TunnelStream,
    parts: list[bytes],
    length: int | None,
    idle_s: float,
) -> int:
    """The rest of a body as it arrives: chunked (``length`` ``None``) or by the bridge's
    ``Content-Length``, waiting for the client to take what was written. A body that breaks
    off, or does not match its length, cuts the connection: the client sees a truncated
    answer, never a complete-looking wrong one."""
    sent = 0
    try:
        for part in parts:
            sent += await _send(connection, part, length, sent)
        while True:
            data = stream.read_nowait()
            if data is None:  # the idle timeout is armed only around a real wait
                async with asyncio.timeout(idle_s):
                    data = await stream.read()
            if not data:
                break
            sent += await _send(connection, data, length, sent)
            if connection.gone:
                return sent  # the client left; leaving the exchange cancels the stream
        if length is None:
            connection.write(b"0\r\n\r\n")
        elif sent != length:
            raise ValueError(f"the venue's body ended at {sent} of {length} bytes")
    except (TimeoutError, TunnelGoneError, StreamCancelledError, ValueError) as exc:
        logger.warning("response body from the venue broke off: %r", exc)
        connection.abort()
    except BaseException:
        connection.abort()
        raise
    return sent


async def _send(
    connection: FastConnection[RelayRequest], data: bytes, length: int | None, sent: int
) -> int:
    if length is None:
        connection.write(b"%x\r\n%b\r\n" % (len(data), data))
    elif sent + len(data) > length:
        raise ValueError(f"the venue's body runs past its length of {length} bytes")
    else:
        connection.write(data)
    await connection.drain()
    return len(data)
