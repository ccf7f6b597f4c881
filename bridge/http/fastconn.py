"""A listener's connections for a fast path: requests it recognises are served here, and the
connection is handed to aiohttp at the first request it does not.

Why one module: the HTTP workers (LOKE's URLs, ``bridge/workers/fastpath.py``) and the relay
(its public URLs, ``bridge/relay/fastpath.py``) answer their common requests without
aiohttp's web layer, which was about half of their CPU per request (``docs/scaling.md``).
What differs between them is how a request is read (``read``, sans I/O, from ``head.py``)
and how it is answered (``serve``); the connection's life is the same and lives here.

Each new connection starts with :class:`FastConnection`. A request ``read`` recognises is
taken out of the buffer and given to ``serve``, which writes the answer with
:meth:`FastConnection.write` (and :meth:`~FastConnection.drain` for a long one) and then
calls :meth:`~FastConnection.finish`: at once, from a callback, or after a coroutine run by
:meth:`~FastConnection.spawn`. Nothing after a request that closes the connection is
served. At the first
request ``read`` hands over, the connection goes to aiohttp's own protocol (``web.Server``)
together with every byte not yet answered, and stays aiohttp's: from then on it is served as
if this module did not exist (odd requests, aiohttp's own 4xx, websocket upgrades).

One request at a time per connection: pipelined requests wait in the buffer and are answered
in order. A request whose caller hangs up is still served to its end (a payment is taken);
only its answer is dropped, as with aiohttp. A connection with no request in flight is closed
after :data:`KEEPALIVE_S` of silence (aiohttp's default keep-alive), and at shutdown. A
request whose head or body never completes counts as silence: it holds nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Generic, Protocol, TypeVar, cast

from aiohttp import web

from bridge.answers import Answer
from bridge.http.head import HandOver
from bridge.http.responses import sendable

logger = logging.getLogger(__name__)

#: Seconds a connection with nothing in flight may stay silent (aiohttp's keep-alive default).
KEEPALIVE_S = 75.0
#: Buffered bytes past which reading pauses while a request is in flight (pipelining).
MAX_BUFFERED = 256 * 1024

PHRASES = {status.value: status.phrase for status in HTTPStatus}


class FastRequest(Protocol):
    """What a fast path's ``read`` returns: a request that used ``length`` bytes of the
    buffer, and whether the connection closes after its answer."""

    @property
    def length(self) -> int: ...

    @property
    def close(self) -> bool: ...


R = TypeVar("R", bound=FastRequest)


def encode_head(status: int, fields: list[tuple[bytes, bytes]], close: bool) -> bytes:
    """A response head: status line, ``fields`` as given, ``Connection: close`` if asked."""
    parts = [f"HTTP/1.1 {status} {PHRASES.get(status, '')}\r\n".encode()]
    parts += [name + b": " + value + b"\r\n" for name, value in fields]
    if close:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def encode_answer(answer: Answer, close: bool) -> bytes:
    """``answer`` as a whole HTTP/1.1 response, with the head fields aiohttp would send."""
    answer, fields = sendable(answer)
    return encode_head(answer.status, fields, close) + answer.body


class FastListener(Generic[R]):
    """A listener's shared state: how requests are read and served, aiohttp's server for
    hand-overs, and the open connections (for shutdown).

    Args:
        read: the request at the start of a buffer, ``HAND_OVER``, or ``None`` (incomplete).
        serve: answers one request on its connection and calls
            :meth:`FastConnection.finish` once it is answered: at once, from a callback, or
            through :meth:`FastConnection.spawn` (a coroutine in a task). It answers its own
            errors; an exception it lets out is logged and closes the connection.
    """

    def __init__(
        self,
        aiohttp_server: web.Server,
        read: Callable[[bytearray], R | HandOver | None],
        serve: Callable[[FastConnection[R], R], None],
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.aiohttp_server = aiohttp_server
        self.read = read
        self.serve = serve
        self.keepalive_s = keepalive_s
        self.connections: set[FastConnection[R]] = set()

    def protocol(self) -> FastConnection[R]:
        return FastConnection(self)

    async def shutdown(self, timeout: float) -> None:
        """Close idle connections now and the others once their answer is written."""
        for connection in list(self.connections):
            connection.close_when_idle()
        deadline = asyncio.get_running_loop().time() + timeout
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)


class FastConnection(asyncio.Protocol, Generic[R]):
    def __init__(self, owner: FastListener[R]) -> None:
        self._owner = owner
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._busy = False  # a request is being answered
        self._closing = False  # close once idle
        self._paused = False
        self._last_activity = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None  # the answer in flight (a reference kept)
        self._reading = False  # inside _next: a finish() there lets its loop go on
        self._drain: asyncio.Future[None] | None = None  # set while writing is paused
        #: The caller's address (as aiohttp's ``request.remote``), and ``https`` over TLS.
        self.remote: str | None = None
        self.scheme = "http"

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if isinstance(peer, tuple | list) and peer else None
        self.scheme = "https" if transport.get_extra_info("sslcontext") is not None else "http"
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
        self._wake_writer()

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    # -- for serve ----------------------------------------------------------------------------

    @property
    def gone(self) -> bool:
        """The caller hung up (or the connection is closing): an answer would be dropped."""
        return self._transport is None or self._transport.is_closing()

    def write(self, data: bytes) -> None:
        """Send ``data``, or drop it if the connection is gone."""
        if not self.gone:
            assert self._transport is not None
            self._transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        while self._drain is not None and not self.gone:
            await asyncio.shield(self._drain)

    def abort(self) -> None:
        """Close the connection now: an answer broke off after its head was sent."""
        if self._transport is not None:
            self._transport.close()

    # -- requests ---------------------------------------------------------------------------

    def _next(self) -> None:
        """Serve the complete requests in the buffer, one at a time, or hand the connection
        over. A loop, not a recursion through :meth:`finish`: a buffer of pipelined requests
        answered at once must not nest a call per request."""
        if self._reading:
            return
        self._reading = True
        try:
            while not self._busy and not self.gone and self._buffer:
                request = self._owner.read(self._buffer)
                if request is None:
                    return
                if isinstance(request, HandOver):
                    self._hand_over()
                    return
                del self._buffer[: request.length]
                self._busy = True
                try:
                    self._owner.serve(self, request)
                except Exception:
                    logger.exception("a fast-path request failed; closing its connection")
                    self.abort()
        finally:
            self._reading = False

    def spawn(self, answer: Awaitable[None], request: R) -> None:
        """Answer ``request`` with a coroutine, in a task; :meth:`finish` follows it."""
        self._task = asyncio.get_running_loop().create_task(self._run(answer, request))

    async def _run(self, answer: Awaitable[None], request: R) -> None:
        try:
            await answer
        except Exception:
            logger.exception("a fast-path request failed; closing its connection")
            self.abort()
        self.finish(request)

    def finish(self, request: R) -> None:
        """``request`` is answered: close if it asked to (or at shutdown), else serve the
        next one. Called exactly once per request ``serve`` was given."""
        transport = self._transport
        if transport is None or transport.is_closing():  # the caller left: the answer drops
            return
        self._busy = False
        self._touch()
        if request.close or self._closing:
            transport.close()
            return
        if self._paused:
            self._paused = False
            transport.resume_reading()
        self._next()

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
        if self._drain is not None:  # paused writing is the transport's state: tell aiohttp
            self._drain = None
            handler.pause_writing()
        handler.data_received(data)

    def _wake_writer(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

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
