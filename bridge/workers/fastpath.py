"""A worker's listener: LOKE's four URLs answered here, every other request handed to aiohttp.

Why: aiohttp's web layer was about half of a worker's CPU per payment (``docs/scaling.md``).
Each new connection starts with :class:`FastPathProtocol`, which reads requests with
``head.py``: a request it recognises (LOKE's URLs in a narrow, unambiguous form of HTTP/1.1)
goes to ``bridge/platforms/loke/operations.py``, the same code aiohttp's routes call, and its
:class:`~bridge.answers.Answer` is written back as bytes. At the first request it does not
recognise, the connection is handed to aiohttp's own protocol (``web.Server``) together with
every byte not yet answered, and stays aiohttp's: from then on that connection is served as
if this module did not exist (the technician's API, odd requests, aiohttp's own 4xx).

One request at a time per connection: pipelined requests wait in the buffer and are answered
in order. A payment whose caller hangs up is still taken (the owner finishes it); only its
answer is dropped, as with aiohttp. A connection with no request in flight is closed after
:data:`KEEPALIVE_S` of silence (aiohttp's default keep-alive), and at shutdown. A request
whose head or body never completes counts as silence: it holds nothing.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import cast

from aiohttp import web

from bridge.answers import Answer
from bridge.http.head import FastRequest, HandOver, read_request
from bridge.http.responses import sendable
from bridge.platforms.loke import operations
from bridge.platforms.loke.backend import LokeBackend

#: Seconds a connection with nothing in flight may stay silent (aiohttp's keep-alive default).
KEEPALIVE_S = 75.0
#: Buffered bytes past which reading pauses while a request is in flight (pipelining).
MAX_BUFFERED = 256 * 1024

_PHRASES = {status.value: status.phrase for status in HTTPStatus}


class FastPath:
    """The listener's shared state: the LOKE backend, aiohttp's server for hand-overs, and
    the open connections (for shutdown)."""

    def __init__(
        self,
        backend: LokeBackend,
        aiohttp_server: web.Server,
        max_body: int,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.backend = backend
        self.aiohttp_server = aiohttp_server
        self.max_body = max_body
        self.keepalive_s = keepalive_s
        self.connections: set[FastPathProtocol] = set()

    def protocol(self) -> FastPathProtocol:
        return FastPathProtocol(self)

    async def shutdown(self, timeout: float) -> None:
        """Close idle connections now and the others once their answer is written."""
        for connection in list(self.connections):
            connection.close_when_idle()
        deadline = asyncio.get_running_loop().time() + timeout
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)


class FastPathProtocol(asyncio.Protocol):
    def __init__(self, owner: FastPath) -> None:
        self._owner = owner
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._busy = False  # a request is being answered
        self._closing = False  # close once idle
        self._paused = False
        self._last_activity = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None  # the answer in flight (a reference kept)

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._owner.connections.add(self)
        self._touch()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._busy:
            if len(self._buffer) > MAX_BUFFERED and self._transport is not None:
                self._transport.pause_reading()
                self._paused = True
            return
        self._next()

    def eof_received(self) -> bool:
        return False  # the transport closes itself; an answer in flight is dropped

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._owner.connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()

    # -- requests ---------------------------------------------------------------------------

    def _next(self) -> None:
        """Answer the next complete request in the buffer, or hand the connection over."""
        if self._transport is None or not self._buffer:
            return
        request = read_request(self._buffer, self._owner.max_body)
        if request is None:
            return
        if isinstance(request, HandOver):
            self._hand_over()
            return
        del self._buffer[: request.length]
        self._busy = True
        self._task = asyncio.get_running_loop().create_task(self._answer(request))

    async def _answer(self, request: FastRequest) -> None:
        answer = await operations.answer(
            self._owner.backend,
            request.route,
            request.location,
            request.table,
            request.payment_id,
            request.headers,
            request.body,
        )
        transport = self._transport
        if transport is None or transport.is_closing():  # the caller left: the answer drops
            return
        transport.write(self._encode(answer, request.close))
        self._busy = False
        self._touch()
        if request.close or self._closing:
            transport.close()
            return
        if self._paused:
            self._paused = False
            transport.resume_reading()
        self._next()

    @staticmethod
    def _encode(answer: Answer, close: bool) -> bytes:
        answer, fields = sendable(answer)
        parts = [f"HTTP/1.1 {answer.status} {_PHRASES.get(answer.status, '')}\r\n".encode()]
        parts += [name + b": " + value + b"\r\n" for name, value in fields]
        if close:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        parts.append(answer.body)
        return b"".join(parts)

    def _hand_over(self) -> None:
        """aiohttp's protocol takes this connection and every byte not yet answered."""
        transport = self._transport
        assert transport is not None
        self._owner.connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._paused:
            self._paused = False
            transport.resume_reading()
        handler = self._owner.aiohttp_server()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        data, self._buffer = bytes(self._buffer), bytearray()
        self._transport = None
        handler.data_received(data)

    # -- idle connections -------------------------------------------------------------------

    def _touch(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()
        if self._idle_timer is None:
            self._arm(self._owner.keepalive_s)

    def _arm(self, delay: float) -> None:
        self._idle_timer = asyncio.get_running_loop().call_later(delay, self._idle_check)

    def _idle_check(self) -> None:
        """Close a connection silent for the keep-alive time with nothing in flight; one
        timer per connection, moved on lazily (not per request)."""
        self._idle_timer = None
        if self._transport is None:
            return
        keepalive = self._owner.keepalive_s
        quiet = asyncio.get_running_loop().time() - self._last_activity
        if not self._busy and quiet >= keepalive:
            self._transport.close()
            return
        self._arm(max(keepalive - quiet, keepalive / 10))

    def close_when_idle(self) -> None:
        self._closing = True
        if not self._busy and self._transport is not None:
            self._transport.close()
