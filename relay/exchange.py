"""One HTTP exchange on a venue's tunnel, with the relay's deadline, limits and typed errors.

Shared by aiohttp's route for the public URL map (``proxy.py``) and requests routed in over
NATS (``cluster.py``), so both answer alike: 503 ``venue_offline`` (no tunnel, or it went),
504 ``pos_timeout`` (no response head within ``limits.request_timeout_s``; the stream is
cancelled with ``TIMEOUT`` so the bridge stops working on it), 413 ``payload_too_large``,
502 ``venue_error`` (the bridge cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from common.errors import (
    ApiError,
    BadGatewayError,
    GatewayTimeoutError,
    PayloadTooLargeError,
    ServiceUnavailableError,
)
from relay.config import RelayLimits
from relay.registry import VenueLink
from tunnel.asyncio import (
    StreamCancelledError,
    TunnelConnection,
    TunnelGoneError,
    TunnelStream,
    pump,
)
from tunnel.messages import CancelCode, ResponseHead

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


async def _upload(read: BodyReader, conn: TunnelConnection, stream_id: int, limit: int) -> None:
    total = 0

    async def counted() -> bytes:
        nonlocal total
        data = await read()
        total += len(data)
        if total > limit:
            raise too_large(limit)
        return data

    await pump(counted, conn, stream_id)


class TunnelExchange:
    """One HTTP exchange on ``link``'s tunnel.

    Waiting: ``async with TunnelExchange(…) as (stream, head)`` takes a stream slot (queued
    within the deadline when all are busy), sends the request, pumps the body from ``read``
    (``b""`` at its end) while it waits for the response head, and yields the stream (to
    read the response body from) and the head. ``read`` as ``bytes``: the whole body, framed
    with the head (no upload task); ``None``: no body.

    Errors are ``ApiError``: 503 ``venue_offline``, 504 ``pos_timeout``, 413, 502
    ``venue_error``. On leaving, the upload is stopped, the stream released (cancelled if
    still live) and the slot given back.

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
        "_upload",
        "deadline",
        "stream",
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
        self.stream: TunnelStream | None = None
        self.deadline = 0.0  # loop time by which the response head must be here
        self._upload: asyncio.Task[None] | None = None
        self._cancel_code = CancelCode.CANCELLED

    async def __aenter__(self) -> tuple[TunnelStream, ResponseHead]:
        link, limits = self._link, self._limits
        self.deadline = asyncio.get_running_loop().time() + limits.request_timeout_s
        if not link.slots.try_take():  # all streams busy: queue for one, within the deadline
            try:
                async with asyncio.timeout_at(self.deadline):
                    await link.slots.take()
            except TimeoutError:
                raise pos_timeout(limits.request_timeout_s) from None
        try:
            stream = self._open()
            read = self._read
            if callable(read):
                upload = _upload(read, self._link.conn, stream.id, limits.max_body_bytes)
                self._upload = asyncio.create_task(upload)
            try:
                head = await _response_head(stream, self._upload, self.deadline)
            except (
                TimeoutError,
                PayloadTooLargeError,
                TunnelGoneError,
                StreamCancelledError,
            ) as exc:
                raise self.failure(exc) from None
        except BaseException:
            await self._finish()
            raise
        return stream, head

    async def __aexit__(self, *exc_info: object) -> None:
        await self._finish()

    def _open(self) -> TunnelStream:
        read = self._read
        whole = b"" if read is None else read if isinstance(read, bytes) else None
        try:
            self.stream = self._link.conn.open_stream(
                self._method, self._path, self._headers, whole
            )
        except TunnelGoneError:
            raise venue_offline(self._link.venue, self._limits.retry_after_s) from None
        return self.stream

    def failure(self, error: BaseException) -> BaseException:
        """What a caller gets for ``error`` ending the exchange before its response head
        (``TimeoutError``: the deadline passed), the stream's CANCEL code set to match."""
        if isinstance(error, TimeoutError):
            self._cancel_code = CancelCode.TIMEOUT
            return pos_timeout(self._limits.request_timeout_s)
        if isinstance(error, PayloadTooLargeError):
            self._cancel_code = CancelCode.TOO_LARGE
            return error
        if isinstance(error, TunnelGoneError | StreamCancelledError):
            return broken_off(error, self._link.venue, self._limits)
        return error

    async def _finish(self) -> None:
        upload = self._upload
        if upload is not None and not upload.done():
            upload.cancel()
            with contextlib.suppress(BaseException):
                await upload
        elif upload is not None and not upload.cancelled():
            upload.exception()  # already mapped above, or moot once the answer is out
        self._release()

    def _release(self) -> None:
        if self.stream is not None:
            self._link.conn.release(self.stream.id, self._cancel_code)
        self._link.slots.give()


def expire(head: asyncio.Future[ResponseHead]) -> None:
    """A response head's deadline passed (a timer's callback)."""
    if not head.done():
        head.set_exception(TimeoutError())


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


async def _response_head(
    stream: TunnelStream, upload: asyncio.Task[None] | None, deadline: float
) -> ResponseHead:
    if upload is None:  # one timer, no Timeout context: the common bodiless request
        timer = asyncio.get_running_loop().call_at(deadline, expire, stream.head)
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
