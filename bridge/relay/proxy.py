"""The public URL map: ``/v/{venue}/{path}`` goes down the venue's tunnel, verbatim.

Method, raw path and query, and end-to-end headers travel unchanged (hop-by-hop headers are
dropped, ``X-Forwarded-For`` and ``X-Forwarded-Proto`` set); the bridge's status, headers and
body come back streamed, chunk by chunk, so a body never sits whole in the relay's memory.

Failures are the bridge's typed JSON errors: 503 ``venue_offline`` with ``Retry-After`` (no
tunnel), 413 ``payload_too_large`` (over ``limits.max_body_bytes``, announced or counted),
504 ``pos_timeout`` (no response head within ``limits.request_timeout_s``; the stream is
cancelled with ``TIMEOUT`` so the bridge stops working on it), 502 ``venue_error`` (the bridge
cancelled the exchange).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from bridge.errors import (
    ApiError,
    BadGatewayError,
    GatewayTimeoutError,
    PayloadTooLargeError,
    ServiceUnavailableError,
)
from bridge.relay.config import RelayLimits
from bridge.relay.registry import Registry, VenueLink
from bridge.tunnel.messages import CancelCode, ResponseHead
from bridge.tunnel_io import (
    HOP_BY_HOP,
    READ_BYTES,
    StreamCancelledError,
    TunnelGoneError,
    TunnelStream,
    end_to_end,
    pump,
)

logger = logging.getLogger(__name__)


#: Reads the next piece of a request body; ``b""`` at its end.
BodyReader = Callable[[], Awaitable[bytes]]


def venue_offline(venue: str, retry_after_s: int) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "venue_offline",
        "the venue's bridge is not connected to the relay; try again shortly",
        {"venue": venue, "retryAfterSeconds": retry_after_s},
        {"Retry-After": str(retry_after_s)},
    )


def too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        "payload_too_large",
        f"the request body exceeds the relay's limit of {limit} bytes",
        {"maxBodyBytes": limit},
    )


def pos_timeout(seconds: float) -> GatewayTimeoutError:
    return GatewayTimeoutError(
        "pos_timeout",
        f"the venue did not answer within {seconds:g} s; retry with the same ids",
        {"timeoutSeconds": seconds},
    )


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


def tunnel_path(raw_path: str) -> str:
    """The raw path and query after ``/v/{venue}``, starting with ``/``: the venue's segment
    is skipped as sent (percent-encoded or not), never re-encoded from its decoded name."""
    rest = raw_path.split("/", 3)[3] if raw_path.count("/") >= 3 else ""
    return "/" + rest


async def _upload(read: BodyReader, stream: TunnelStream, limit: int) -> None:
    total = 0

    async def counted() -> bytes:
        nonlocal total
        data = await read()
        total += len(data)
        if total > limit:
            raise too_large(limit)
        return data

    await pump(counted, stream.conn, stream.id)


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
        tunnel_path(request.raw_path),
        forwarded_headers(request.raw_headers, request.remote, request.scheme),
        (lambda: content.read(READ_BYTES)) if request.can_read_body else None,
        limits,
    ) as (stream, head):
        return await _stream_response(request, stream, head, venue, limits)


class TunnelExchange:
    """One HTTP exchange on ``link``'s tunnel, as ``async with TunnelExchange(…) as (stream,
    head)``: the request body is pumped from ``read`` (``b""`` at its end) while this waits
    for the response head; ``bytes``: the whole body, framed with the head (no upload task);
    ``None``: no body, END_OF_BODY goes with the head;
    yields the stream (to read the response body from) and the head. Shared by the public URL
    map and by requests routed in over NATS (``cluster.py``), so both get the same deadlines,
    limits and errors: 503 ``venue_offline``, 504 ``pos_timeout``, 413, 502 ``venue_error``,
    as ``ApiError``. On leaving, the upload is stopped, the stream released (cancelled if still
    live) and the slot given back.

    A class, not an ``asynccontextmanager``: every relayed request enters one, and an async
    generator costs a generator, a wrapper object and the event loop's first-iteration hook
    (a ``WeakSet`` add and remove) on top of the work.
    """

    __slots__ = (
        "_cancel_code",
        "_headers",
        "_limits",
        "_link",
        "_method",
        "_path",
        "_read",
        "_stream",
        "_upload",
    )

    def __init__(
        self,
        link: VenueLink,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        read: BodyReader | bytes | None,
        limits: RelayLimits,
    ) -> None:
        self._link = link
        self._method = method
        self._path = path
        self._headers = headers
        self._read = read
        self._limits = limits
        self._stream: TunnelStream | None = None
        self._upload: asyncio.Task[None] | None = None
        self._cancel_code = CancelCode.CANCELLED

    async def __aenter__(self) -> tuple[TunnelStream, ResponseHead]:
        link, limits = self._link, self._limits
        venue = link.venue
        deadline = asyncio.get_running_loop().time() + limits.request_timeout_s
        if link.slots.locked():  # all streams busy: queue for one, within the deadline
            try:
                async with asyncio.timeout_at(deadline):
                    await link.slots.acquire()
            except TimeoutError:
                raise pos_timeout(limits.request_timeout_s) from None
        else:
            await link.slots.acquire()  # free: no timer needed
        try:
            read = self._read
            whole = b"" if read is None else read if isinstance(read, bytes) else None
            try:
                stream = self._stream = link.conn.open_stream(
                    self._method, self._path, self._headers, whole
                )
            except TunnelGoneError:
                raise venue_offline(venue, limits.retry_after_s) from None
            if whole is None:
                assert callable(read)
                upload = _upload(read, stream, limits.max_body_bytes)
                self._upload = asyncio.create_task(upload)
            try:
                head = await _response_head(stream, self._upload, deadline)
            except TimeoutError:
                self._cancel_code = CancelCode.TIMEOUT
                raise pos_timeout(limits.request_timeout_s) from None
            except PayloadTooLargeError:
                self._cancel_code = CancelCode.TOO_LARGE
                raise
            except (TunnelGoneError, StreamCancelledError) as exc:
                raise broken_off(exc, venue, limits) from None
        except BaseException:
            await self._finish()
            raise
        return stream, head

    async def __aexit__(self, *exc_info: object) -> None:
        await self._finish()

    async def _finish(self) -> None:
        upload = self._upload
        if upload is not None and not upload.done():
            upload.cancel()
            with contextlib.suppress(BaseException):
                await upload
        elif upload is not None and not upload.cancelled():
            upload.exception()  # already mapped above, or moot once the answer is out
        if self._stream is not None:
            self._link.conn.release(self._stream.id, self._cancel_code)
        self._link.slots.release()


def broken_off(
    error: TunnelGoneError | StreamCancelledError, venue: str, limits: RelayLimits
) -> ApiError:
    """The typed error for an exchange that broke off before its answer's head was sent:
    503 ``venue_offline`` (the tunnel went), 413 (the bridge refused the body's size) or
    502 ``venue_error`` (the bridge cancelled it)."""
    if isinstance(error, TunnelGoneError):
        return venue_offline(venue, limits.retry_after_s)
    if error.code == CancelCode.TOO_LARGE:
        return too_large(limits.max_body_bytes)
    return BadGatewayError(
        "venue_error", "the venue's bridge abandoned the request", {"cancelCode": error.code}
    )


def waiting_parts(
    stream: TunnelStream, venue: str, limits: RelayLimits
) -> tuple[list[bytes], bool]:
    """The answer's body pieces already here (bounded by the stream's window), and whether
    they are all of it; before anything is written, so a stream broken off already gets its
    typed error (:func:`broken_off`), not a 500."""
    parts: list[bytes] = []
    try:
        while data := stream.read_nowait():
            parts.append(data)
    except (TunnelGoneError, StreamCancelledError) as exc:
        raise broken_off(exc, venue, limits) from None
    return parts, data == b""


def _expire(head: asyncio.Future[ResponseHead]) -> None:
    if not head.done():
        head.set_exception(TimeoutError())


async def _response_head(
    stream: TunnelStream, upload: asyncio.Task[None] | None, deadline: float
) -> ResponseHead:
    if upload is None:  # one timer, no Timeout context: the common bodiless request
        timer = asyncio.get_running_loop().call_at(deadline, _expire, stream.head)
        try:
            return await stream.head
        finally:
            timer.cancel()
    async with asyncio.timeout_at(deadline):
        while not stream.head.done():
            waiting: set[asyncio.Future[object]] = {stream.head}  # type: ignore[arg-type]
            if not upload.done():
                waiting.add(upload)  # type: ignore[arg-type]
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if upload.done() and not upload.cancelled() and upload.exception() is not None:
                error = upload.exception()
                if isinstance(error, ApiError | TunnelGoneError):
                    raise error
                logger.info("request body could not be read: %s", error)
                raise BadGatewayError("bad_request_body", "the request body could not be read")
        return stream.head.result()


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
