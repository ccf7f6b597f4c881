"""The asyncio shell around :class:`~tunnel.protocol.TunnelProtocol`, for both ends.

``tunnel/`` is sans-I/O; this module moves its bytes over an aiohttp websocket (the relay's
``WebSocketResponse`` or the bridge's ``ClientWebSocketResponse``), as websockets' own
``asyncio/connection.py`` does for its ``Protocol``:

- one **writer task** drains ``data_to_send()`` and coalesces frames into binary messages no
  larger than ``max_message_bytes``; everything else only :meth:`TunnelConnection.kick`\\ s it,
  so the reader never blocks on a write (no read/write deadlock between the two ends);
- one **reader** feeds each message to the protocol and hands events to streams;
- one **heartbeat**: a PING every ``heartbeat_interval_ms`` of the WELCOME, and the PONG must
  come back before the next one is due, else ``CLOSE(TIMEOUT)``. A half-open peer is thus
  noticed within two intervals (docs/tunnel-protocol.md §9).

Body bytes are reported ``consumed`` only once the application has read them from its
:class:`TunnelStream`, so flow control bounds what sits in memory per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp

from tunnel.asyncio.stream import StreamCancelledError, TunnelGoneError, TunnelStream
from tunnel.errors import CloseCode, TunnelError, TunnelProtocolError
from tunnel.messages import (
    BodyChunk,
    Cancel,
    Close,
    EndOfBody,
    Event,
    Health,
    Ping,
    Pong,
    RequestHead,
    ResponseHead,
)
from tunnel.protocol import SEND_EOF, ConnectionState, TunnelProtocol
from tunnel.stream_state import StreamState

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
#: How long a CLOSE may take to be answered before the websocket is dropped anyway.
CLOSE_TIMEOUT_S = 2.0
_LIVE = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL, StreamState.HALF_CLOSED_REMOTE)


class TunnelConnection:
    """Drives one :class:`TunnelProtocol` over one aiohttp websocket.

    Call :meth:`start` at once, do the handshake with :meth:`receive_events` and
    :meth:`kick`, then :meth:`run` until the connection ends.

    Args:
        on_request: client side: called for each REQUEST_HEAD with its new stream.
        on_health: relay side: called with each HEALTH report.
        on_cancel: called with the id of each stream the peer cancels.
    """

    def __init__(
        self,
        ws: Any,
        protocol: TunnelProtocol,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        on_request: Callable[[RequestHead, TunnelStream], None] | None = None,
        on_health: Callable[[Health], None] | None = None,
        on_cancel: Callable[[int], None] | None = None,
    ) -> None:
        self.ws = ws
        self.protocol = protocol
        self.max_message_bytes = max_message_bytes
        self.on_request = on_request
        self.on_health = on_health
        self.on_cancel = on_cancel
        self.streams: dict[int, TunnelStream] = {}
        self.last_seen = time.monotonic()  # any message from the peer
        self.last_pong: float | None = None
        self.close_code = 1000  # the websocket close code once the tunnel is done
        self._wake = asyncio.Event()
        #: Set, then dropped, when a message has been read or the connection fails, to wake
        #: what waits for a window; made only while something waits, not once per message.
        self._progress: asyncio.Event | None = None
        self._closed = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._awaiting_pong: bytes | None = None
        self._ping_ids = itertools.count(1)
        self._running = False

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """Usable for new streams: not closed, and no CLOSE sent or received."""
        return not self._closed.is_set() and self.protocol.state in (
            ConnectionState.HANDSHAKE,
            ConnectionState.OPEN,
        )

    @property
    def _reading(self) -> bool:
        # While CLOSING the peer's answering CLOSE is still to be read.
        return not self._closed.is_set() and self.protocol.state is not ConnectionState.CLOSED

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="tunnel-writer")

    def kick(self) -> None:
        """Bytes may have been queued on the protocol: let the writer send them, if there are
        any. Most calls queue nothing (an event dispatched, body bytes consumed below the
        WINDOW_UPDATE threshold); waking the writer for those cost two idle task switches per
        relayed request."""
        if self.protocol.has_data_to_send:
            self._wake.set()

    async def receive_events(self) -> list[Event]:
        """Read one websocket message and return the protocol's events (handshake use).

        Raises:
            TunnelGoneError: the websocket ended.
            TunnelProtocolError: the peer broke the protocol (its CLOSE is queued).
        """
        while True:
            msg = await self.ws.receive()
            if msg.type is aiohttp.WSMsgType.BINARY:
                self.last_seen = time.monotonic()
                try:
                    self.protocol.receive_data(msg.data)
                finally:
                    self.kick()
                return self.protocol.events_received()
            if msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.protocol.send_close(CloseCode.PROTOCOL_ERROR, "text messages are not used")
                self.kick()
                raise TunnelGoneError("the peer sent a text message")
            self.protocol.receive_eof()
            raise TunnelGoneError(f"websocket ended ({msg.type.name})")

    async def run(self) -> None:
        """Read and dispatch until the connection ends; heartbeat meanwhile. Always returns
        with every stream failed and the websocket closed (or being dropped)."""
        interval_ms = self.protocol.limits.heartbeat_interval_ms if self.protocol.limits else 0
        beat = (
            asyncio.create_task(self._heartbeat(interval_ms / 1000), name="tunnel-heartbeat")
            if interval_ms
            else None
        )
        self._running = True
        try:
            while self._reading:
                try:
                    events = await self.receive_events()
                except TunnelProtocolError as exc:
                    logger.warning("tunnel peer broke the protocol: %s", exc)
                    break
                except TunnelGoneError:
                    break
                for event in events:
                    self.dispatch(event)
                self._signal_progress()
        finally:
            if beat is not None:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError, TunnelError):
                    await beat
            await self._finish()

    async def close(
        self, code: int, reason: str = "", ws_code: int = 1000, timeout_s: float = CLOSE_TIMEOUT_S
    ) -> None:
        """Send CLOSE, give the peer :data:`CLOSE_TIMEOUT_S` to answer (reading its frames
        if :meth:`run` is not already), then drop the websocket. Safe to call twice."""
        if self._closed.is_set():  # run() has ended: nobody would read the answer
            await self._finish()
            return
        self.close_code = ws_code
        self.protocol.send_close(code, reason)
        self.kick()
        with contextlib.suppress(TimeoutError):
            if self._running:
                await asyncio.wait_for(self._closed.wait(), timeout_s)
            else:
                await asyncio.wait_for(self.run(), timeout_s)
        await self._finish()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # -- streams ------------------------------------------------------------------------------

    def open_stream(
        self,
        method: str,
        path: str,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes | None = None,
    ) -> TunnelStream:
        """Relay: send a REQUEST_HEAD (with ``body``, the whole request: head, body, end);
        the answer arrives on the returned stream."""
        if not self.alive:
            raise TunnelGoneError("the tunnel is closed")
        stream_id = self.protocol.send_request_head(method, path, headers, body)
        stream = self.streams[stream_id] = TunnelStream(self, stream_id)
        self.kick()
        return stream

    async def send_body(self, stream_id: int, data: bytes) -> None:
        """Queue body bytes and wait while more than a frame of them waits for a window,
        so a fast source cannot fill memory past the flow-control windows."""
        if not self.alive:
            raise TunnelGoneError("the tunnel is closed")
        self.protocol.send_body(stream_id, data)
        self.kick()
        await self.wait_queued(
            stream_id, self.protocol.limits.max_frame_bytes if self.protocol.limits else 0
        )
        if not self.alive:
            raise TunnelGoneError("the tunnel closed while sending a body")

    async def wait_queued(self, stream_id: int, limit: int) -> None:
        """Wait until at most ``limit`` of this side's body bytes on the stream wait for a
        window, or the connection is no longer alive."""
        while self.alive and self.protocol.queued(stream_id) > limit:
            await self._progress_event().wait()

    async def drain(self, stream_id: int) -> None:
        """Wait until this side's queued body bytes and END_OF_BODY are all framed, so that
        a :meth:`release` that follows drops none of them."""
        while self.alive and (
            self.protocol.queued(stream_id)
            or self.protocol.stream_state(stream_id)
            in (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE)
        ):
            await self._progress_event().wait()

    def consumed(self, stream_id: int, size: int) -> None:
        """The application has read ``size`` body bytes of the stream: their credit goes back
        to the peer now."""
        self.protocol.consumed(stream_id, size)
        self.kick()

    def end_body(self, stream_id: int) -> None:
        if self.alive:
            self.protocol.send_end(stream_id)
            self.kick()

    def answered(self, stream_id: int) -> None:
        """Client: the whole answer, END_OF_BODY included, is with the protocol (which frames
        what waits for a window on its own): forget the stream here, without the CANCEL that
        :meth:`release` would send while bytes are still queued."""
        self.streams.pop(stream_id, None)

    def release(self, stream_id: int, code: int) -> None:
        """The application is done with a stream: cancel it if it is still live, forget it."""
        self.streams.pop(stream_id, None)
        if self.alive and self.protocol.stream_state(stream_id) in _LIVE:
            self.protocol.send_cancel(stream_id, code)
            self.kick()

    # -- internals ----------------------------------------------------------------------------

    def dispatch(self, event: Event) -> None:
        match event:
            case BodyChunk(stream_id=sid, data=data):
                if (stream := self.streams.get(sid)) is not None:
                    stream.feed(data)
                else:  # nobody reads it any more: give the credit back
                    self.protocol.consumed(sid, len(data))
            case EndOfBody(stream_id=sid):
                if (stream := self.streams.get(sid)) is not None:
                    stream.end()
            case ResponseHead(stream_id=sid):
                stream = self.streams.get(sid)
                if stream is not None and not stream.head.done():
                    stream.head.set_result(event)
            case Cancel(stream_id=sid, code=code):
                if (stream := self.streams.get(sid)) is not None:
                    stream.fail(StreamCancelledError(sid, code))
                if self.on_cancel is not None:
                    self.on_cancel(sid)
            case RequestHead(stream_id=sid):
                stream = self.streams[sid] = TunnelStream(self, sid)
                if self.on_request is not None:
                    self.on_request(event, stream)
            case Pong(payload=payload):
                if payload == self._awaiting_pong:
                    self._awaiting_pong = None
                    self.last_pong = time.monotonic()
            case Health():
                if self.on_health is not None:
                    self.on_health(event)
            case Ping() | Close():
                pass  # the protocol answers PINGs and CLOSEs itself
        self.kick()

    def _progress_event(self) -> asyncio.Event:
        if self._progress is None:
            self._progress = asyncio.Event()
        return self._progress

    def _signal_progress(self) -> None:
        progress, self._progress = self._progress, None
        if progress is not None:
            progress.set()

    async def _heartbeat(self, interval_s: float) -> None:
        while self.alive and self.protocol.state is ConnectionState.OPEN:
            payload = next(self._ping_ids).to_bytes(8, "big")
            self._awaiting_pong = payload
            self.protocol.send_ping(payload)
            self.kick()
            await asyncio.sleep(interval_s)
            if self.protocol.state is not ConnectionState.OPEN:
                return  # closing anyway: the close timeout takes over
            if self._awaiting_pong == payload:
                logger.warning("tunnel peer missed a PONG within %.1f s: closing", interval_s)
                self.protocol.send_close(CloseCode.TIMEOUT, "no PONG within the interval")
                self.kick()
                await self._finish(flush_timeout_s=min(interval_s, CLOSE_TIMEOUT_S))
                return

    async def _write_loop(self) -> None:
        try:
            await self._write_messages()
        except (ConnectionError, aiohttp.ClientError) as exc:
            logger.info("tunnel websocket write failed: %r", exc)
            self._closed.set()  # the transport is gone; run() sees it on its next read
            self._signal_progress()

    async def _write_messages(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch: list[bytes] = []
            size = 0
            for item in self.protocol.data_to_send():
                if item == SEND_EOF:
                    if batch:
                        await self.ws.send_bytes(b"".join(batch))
                    self._closed.set()
                    await self._close_ws()
                    return
                if batch and size + len(item) > self.max_message_bytes:
                    await self.ws.send_bytes(b"".join(batch))
                    batch, size = [], 0
                batch.append(item)
                size += len(item)
            if batch:
                await self.ws.send_bytes(b"".join(batch))
            if self._closed.is_set():
                return  # _finish() asked for a last flush

    async def _close_ws(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code=self.close_code), timeout=CLOSE_TIMEOUT_S)

    async def _finish(self, flush_timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Fail every stream, let the writer flush briefly, stop it, close the websocket."""
        self._closed.set()
        self._signal_progress()
        gone = TunnelGoneError("the tunnel connection ended")
        for stream in self.streams.values():
            stream.fail(gone)
        writer = self._writer
        if writer is not None and not writer.done():
            self._wake.set()  # even with nothing queued: the writer must see _closed and end
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(writer), flush_timeout_s)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        if not self.ws.closed:
            await self._close_ws()


#: How much of a body ``pump``'s callers read at a time: a few frames' worth, so memory per
#: stream stays small while syscalls stay few.
READ_BYTES = 64 * 1024


async def pump(read: Callable[[], Awaitable[bytes]], conn: TunnelConnection, sid: int) -> int:
    """Copy a body from ``read`` (``b""`` at its end) into stream ``sid``, end it, and wait
    until all of it is framed. Returns the byte count."""
    total = 0
    while data := await read():
        total += len(data)
        await conn.send_body(sid, data)
    conn.end_body(sid)
    await conn.drain(sid)
    return total
