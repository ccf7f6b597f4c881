"""Each REQUEST_HEAD from the relay is served in process by the bridge's own aiohttp server,
or, for one of LOKE's four URLs in a plain form, by LOKE's operations directly
(``fastpath.py``).

Why in process: a loopback HTTP request per tunnelled request (what this module used to do)
cost a second HTTP client, a second TCP connection's syscalls and event-loop wake-ups: more
than half of the bridge's CPU per relayed bill fetch (bench/relay.py: 0.64 ms per request via
the relay against 0.28 ms direct).

Why through aiohttp's ``RequestHandler`` on an in-memory transport, not by building a request
object: the request meets exactly what a direct call meets (aiohttp's parser and its limits,
``client_max_size``, every middleware, error pages, ``Expect``, streaming both ways with
aiohttp's own flow control), using aiohttp's public ``Server`` (``AppRunner.server``, the
protocol factory its listeners use) and asyncio's Transport/Protocol interface only. The
handler even counts among the server's connections, so a graceful shutdown waits for it.

Flow control: the server's reading pauses (``pause_reading``) stop this side reading the
tunnel stream, which holds back the relay's window; the tunnel's queued bytes past a frame
make :class:`_Pipe` pause the server's writing (``pause_writing``) until they are framed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import Any, cast

from aiohttp import web

from bridge.answers import Answer
from bridge.http.head import Route
from bridge.http.responses import sendable
from bridge.platforms.loke import operations
from bridge.platforms.loke.backend import LOKE_BACKEND, LokeBackend
from bridge.runtime import RUNTIME
from bridge.tunnel.messages import CancelCode, RequestHead
from bridge.tunnel_io import StreamCancelledError, TunnelConnection, TunnelGoneError, TunnelStream
from bridge.uplink.fastpath import LokeCall, recognise
from bridge.uplink.http1 import (
    LAST_CHUNK,
    BadTunnelRequestError,
    Head,
    ResponseFramingError,
    ResponseReader,
    chunk,
    encode_request_head,
)

logger = logging.getLogger(__name__)

_UNREACHABLE = (
    b'{"error":"bridge_unreachable","message":"the bridge did not answer its tunnel","details":{}}'
)
_BAD_REQUEST = (
    b'{"error":"bad_request","message":"the tunnelled request cannot be framed as HTTP/1.1",'
    b'"details":{}}'
)
_JSON = [(b"Content-Type", b"application/json")]
#: Idle in-memory connections kept for reuse, at most (more only while requests overlap). Above
#: the relay's ``max_concurrent_streams`` (100 by default): under load every stream is busy at
#: once, and with a smaller pool a finished request's connection was closed only for the next
#: request to build a new one (56 % of requests at 1,000/s offered on a busy machine; 32 kept).
MAX_IDLE_CONNECTIONS = 128


class LocalServer:
    """Where tunnelled requests are served: the bridge's aiohttp server (``runner.server``),
    and the ``Host`` and addresses its requests see (those of its own listener)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int) -> None:
        self.runner = runner
        app = runner.app if isinstance(runner, web.AppRunner) else None
        runtime = app.get(RUNTIME) if app is not None else None
        #: LOKE's operations for :mod:`bridge.uplink.fastpath`, and the body limit; ``None``
        #: for an application without them (then aiohttp serves everything).
        self.loke: LokeBackend | None = app.get(LOKE_BACKEND) if app is not None else None
        self.max_body = runtime.config.server.max_body_bytes if runtime is not None else 0
        #: LOKE operations running on their own (see :func:`_answer_loke`), referenced here.
        self.operations: set[asyncio.Task[Answer]] = set()
        self.host = (f"[{host}]:{port}" if ":" in host else f"{host}:{port}").encode("ascii")
        self.sockname: tuple[str, int] = (host, port)
        #: In-memory keep-alive connections between requests, reused for bodiless ones (a
        #: bill fetch): a new RequestHandler, parser and task per request cost about as much
        #: as the tunnel's own work on one.
        self._idle: list[_Pipe] = []

    def _take_idle(self) -> _Pipe | None:
        while self._idle:
            pipe = self._idle.pop()
            if pipe.protocol is not None and not pipe.is_closing():
                return pipe
        return None

    def _put_idle(self, pipe: _Pipe) -> None:
        if len(self._idle) < MAX_IDLE_CONNECTIONS:
            self._idle.append(pipe)
        else:
            pipe.close()

    @property
    def server(self) -> web.Server | None:
        """The protocol factory, ``None`` once the runner has been cleaned up."""
        return self.runner.server


class _Pipe(asyncio.Transport):
    """The in-memory transport between one tunnel stream and one aiohttp ``RequestHandler``:
    what the handler writes is read as a HTTP/1.1 response and framed into the stream."""

    def __init__(
        self, conn: TunnelConnection, sid: int, local: LocalServer, head_request: bool
    ) -> None:
        super().__init__()
        self.local = local
        self.protocol: asyncio.Protocol | None = None
        self.readable = asyncio.Event()
        self.readable.set()
        self._closing = False
        self.bind(conn, sid, head_request)

    def bind(self, conn: TunnelConnection, sid: int, head_request: bool) -> None:
        """Serve the next request, on ``sid``: a reused connection starts afresh here."""
        self.conn, self.sid = conn, sid
        self.reader = ResponseReader(head_request)
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writing_paused = False
        self._limit = conn.protocol.limits.max_frame_bytes if conn.protocol.limits else 0

    def reusable(self) -> bool:
        """The answer is complete, the handler keeps the connection (no ``Connection:
        close``) and nothing is paused: the next request may come on it."""
        reader = self.reader
        return (
            self.protocol is not None
            and not self._closing
            and not self._writing_paused
            and reader.done
            and reader.head is not None
            and reader.keep_alive
        )

    # -- what aiohttp calls ---------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return (self.local.sockname[0], 0)
        if name == "sockname":
            return self.local.sockname
        return default

    def is_closing(self) -> bool:
        return self._closing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self.finished.done():
            return
        try:
            items = self.reader.feed(bytes(data))
        except ResponseFramingError as exc:
            self._finish(exc)
            return
        protocol = self.conn.protocol
        if self.reader.done and len(items) <= 2 and items and isinstance(items[0], Head):
            # The whole answer in one write (a bill): one protocol call frames it all. Not
            # for several body pieces (chunked): each went in its own BODY_CHUNK, and still does.
            head, body = items[0], cast(bytes, items[1]) if len(items) == 2 else b""
            protocol.send_response(self.sid, head.status, head.headers, body)
            self._finish(None)
        else:
            for item in items:
                if isinstance(item, Head):
                    protocol.send_response_head(self.sid, item.status, item.headers)
                else:
                    protocol.send_body(self.sid, item)
            if self.reader.done:
                protocol.send_end(self.sid)
                self._finish(None)
        self.conn.kick()
        if not self._writing_paused and protocol.queued(self.sid) > self._limit:
            self._writing_paused = True
            assert self.protocol is not None
            self.protocol.pause_writing()
            asyncio.get_running_loop().create_task(self._resume_writing())

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def pause_reading(self) -> None:
        self.readable.clear()

    def resume_reading(self) -> None:
        self.readable.set()

    def is_reading(self) -> bool:
        return self.readable.is_set()

    def close(self) -> None:
        """The server is done with the connection (after its answer, or cutting it short)."""
        if self._closing:
            return
        self._closing = True
        self.readable.set()
        if not self.finished.done():
            self._finish(None if self.reader.eof() else ConnectionResetError("closed mid-response"))
            if self.reader.done and self.reader.head is not None:
                self.conn.protocol.send_end(self.sid)
                self.conn.kick()
        protocol = self.protocol
        if protocol is not None:
            self.protocol = None
            asyncio.get_running_loop().call_soon(protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.conn.protocol.queued(self.sid)

    # -- ours -----------------------------------------------------------------------------

    def _finish(self, error: BaseException | None) -> None:
        if not self.finished.done():
            if error is None:
                self.finished.set_result(None)
            else:
                self.finished.set_exception(error)

    async def _resume_writing(self) -> None:
        with contextlib.suppress(TunnelGoneError):
            await self.conn.wait_queued(self.sid, self._limit)
        self._writing_paused = False
        if self.protocol is not None:
            self.protocol.resume_writing()

    def disconnect(self, exc: Exception | None) -> None:
        """This side gave up (the relay cancelled, the tunnel went): as a client hanging up."""
        self._closing = True
        self.readable.set()
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            protocol.connection_lost(exc)


async def dispatch(local: LocalServer, head: RequestHead, stream: TunnelStream) -> None:
    """Answer one tunnel stream from the bridge's in-process server."""
    conn, sid = stream.conn, head.stream_id
    pipe: _Pipe | None = None
    feeder: asyncio.Task[None] | None = None
    try:
        first = await stream.read()
        server = local.server
        if server is None:
            _answer(conn, sid, 502, _UNREACHABLE)
            return
        call = recognise(head) if local.loke is not None else None
        if call is not None:
            first, ended = await _body(stream, first, local.max_body)
            if ended and _length_agrees(call, first):
                await _answer_loke(local, call, first, conn, sid)
                return
        try:
            framing = encode_request_head(
                head.method, head.path, head.headers, local.host, bool(first)
            )
        except BadTunnelRequestError as exc:
            logger.warning("tunnel request refused: %s", exc)
            _answer(conn, sid, 400, _BAD_REQUEST)
            return
        pipe = local._take_idle() if not first else None
        if pipe is not None:
            pipe.bind(conn, sid, head.method == "HEAD")
            handler = pipe.protocol
            assert handler is not None
        else:
            pipe = _Pipe(conn, sid, local, head.method == "HEAD")
            handler = pipe.protocol = server()
            handler.connection_made(pipe)
        if not first:
            handler.data_received(framing.head)
        else:
            handler.data_received(framing.head + (chunk(first) if framing.chunked else first))
            feeder = asyncio.create_task(_feed(stream, pipe, framing.chunked))
        try:
            await pipe.finished
        except (ResponseFramingError, ConnectionResetError) as exc:
            logger.warning("tunnel request %s %s failed locally: %r", head.method, head.path, exc)
            if pipe.reader.head is None and conn.alive:
                _answer(conn, sid, 502, _UNREACHABLE)
            return
        await conn.drain(sid)
        if not first and pipe.reusable():
            local._put_idle(pipe)
            pipe = None  # kept: not disconnected below
        elif pipe.protocol is not None and not pipe.is_closing():
            pipe.close()  # keep-alive has nothing more to do: end the handler's loop
    except (StreamCancelledError, TunnelGoneError, asyncio.CancelledError):
        raise
    finally:
        if feeder is not None and not feeder.done():
            feeder.cancel()
        if pipe is not None and pipe.protocol is not None:
            pipe.disconnect(ConnectionResetError("the relay cancelled the request"))
        conn.release(sid, CancelCode.INTERNAL_ERROR)


async def _body(stream: TunnelStream, first: bytes, limit: int) -> tuple[bytes, bool]:
    """The request body read so far, and whether it ended within ``limit`` bytes (if not,
    aiohttp gets what was read and the rest, and answers 413 itself)."""
    if not first:
        return b"", True
    pieces, size = [first], len(first)
    while size <= limit:
        data = await stream.read()
        if not data:
            return b"".join(pieces), True
        pieces.append(data)
        size += len(data)
    return b"".join(pieces), False


def _length_agrees(call: LokeCall, body: bytes) -> bool:
    """A bill, tables or status request has no body; a ``Content-Length``, when given, is the
    body's. Otherwise aiohttp judges the request, as it would direct."""
    length = call.headers.get("content-length")
    if call.route is not Route.PAYMENT and body:
        return False
    return length is None or length == str(len(body))


async def _answer_loke(
    local: LocalServer, call: LokeCall, body: bytes, conn: TunnelConnection, sid: int
) -> None:
    """Run the operation in a task of its own and wait for it shielded: the stream's task is
    cancelled when the tunnel drops or the relay gives up, and a payment must then still be
    taken to its end (recorded, applied or queued, its answer kept for the platform's retry),
    as aiohttp lets a handler finish whose caller left. Only the answer is dropped."""
    answer, fields = sendable(await asyncio.shield(_start_operation(local, call, body)))
    if conn.alive:
        conn.protocol.send_response(sid, answer.status, fields, answer.body)
        conn.kick()
        await conn.drain(sid)


def answer_at_once(local: LocalServer, head: RequestHead, stream: TunnelStream) -> bool:
    """A bodiless request for one of LOKE's URLs (a bill, the tables, a payment's status)
    that came whole: its operation runs in a task of its own and its answer leaves from that
    task's completion, with no task for the stream. ``False``: nothing was done; use
    :func:`dispatch`.

    As in :func:`_answer_loke`, nothing the relay does (a CANCEL, the tunnel dropping) stops
    the operation; only its answer is dropped (``send_response`` on a cancelled stream)."""
    if local.loke is None or local.server is None or not stream.bodiless:
        return False
    call = recognise(head)
    if call is None or not _length_agrees(call, b""):
        return False
    work = _start_operation(local, call, b"")
    work.add_done_callback(partial(_send_answer, stream.conn, head.stream_id))
    return True


def _start_operation(local: LocalServer, call: LokeCall, body: bytes) -> asyncio.Task[Answer]:
    """The LOKE operation in a task of its own, referenced by ``local`` until it ends."""
    assert local.loke is not None
    work = asyncio.ensure_future(
        operations.answer(
            local.loke, call.route, call.location, call.table, call.payment_id, call.headers, body
        )
    )
    local.operations.add(work)
    work.add_done_callback(local.operations.discard)
    return work


def _send_answer(conn: TunnelConnection, sid: int, work: asyncio.Future[Answer]) -> None:
    if work.cancelled():  # the bridge is stopping
        conn.release(sid, CancelCode.INTERNAL_ERROR)
        return
    answer, fields = sendable(work.result())
    if conn.alive:  # dropped by the protocol if the relay cancelled the stream
        conn.protocol.send_response(sid, answer.status, fields, answer.body)
        conn.kick()
    conn.answered(sid)


async def _feed(stream: TunnelStream, pipe: _Pipe, chunked: bool) -> None:
    """The rest of the request body, into the handler while its reading is not paused."""
    with contextlib.suppress(StreamCancelledError, TunnelGoneError):
        while True:
            await pipe.readable.wait()
            data = await stream.read()
            handler = pipe.protocol
            if handler is None:
                return
            if not data:
                if chunked:
                    handler.data_received(LAST_CHUNK)
                return
            handler.data_received(chunk(data) if chunked else data)


def _answer(conn: TunnelConnection, sid: int, status: int, body: bytes) -> None:
    if conn.alive:
        conn.protocol.send_response(sid, status, _JSON, body)
        conn.kick()
