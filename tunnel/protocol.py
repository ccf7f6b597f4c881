"""The tunnel's state machine, sans-I/O, for both ends of one connection.

Shaped like websockets' ``Protocol``: bytes go in through :meth:`TunnelProtocol.receive_data`,
parsed frames come out of :meth:`~TunnelProtocol.events_received`, ``send_*`` methods only
queue bytes, and :meth:`~TunnelProtocol.data_to_send` hands them to the I/O layer. No clock:
heartbeats, deadlines and reconnects belong to the I/O layer.

This module owns the connection: which side may send what and when, CLOSE, and failing on a
protocol error. HELLO and WELCOME, and the version agreed in them, are
:class:`~tunnel.handshake.Handshake`'s, which :class:`TunnelProtocol` inherits; streams
and flow control are :class:`~tunnel.streams.StreamTable`'s.

- **Handshake.** Until WELCOME only HELLO, WELCOME and CLOSE may flow, none above 16 KiB.
- **Sides.** HELLO, HEALTH and RESPONSE_HEAD come only from the client; WELCOME and
  REQUEST_HEAD only from the relay. Anything else flows both ways.
- **Close.** A CLOSE ends every stream at once. Its receiver answers with a CLOSE carrying the
  same code; after sending CLOSE a side ignores everything but the peer's CLOSE.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from tunnel.errors import (
    CloseCode,
    ConnectionClosedError,
    TunnelProtocolError,
    TunnelUsageError,
    UnexpectedFrameError,
)
from tunnel.frames import (
    FRAME_TYPES,
    HANDSHAKE_MAX_FRAME_BYTES,
    HEADER_BYTES,
    Frame,
    FrameDecoder,
    UnknownFrame,
    encode_frame,
)
from tunnel.handshake import PROTOCOL_VERSIONS, Handshake, Side
from tunnel.messages import (
    BodyChunk,
    Cancel,
    CancelCode,
    Close,
    EndOfBody,
    Event,
    Health,
    Hello,
    Ping,
    Pong,
    RequestHead,
    ResponseHead,
    Welcome,
    WindowUpdate,
    make_headers,
)
from tunnel.stream_state import StreamState
from tunnel.streams import StreamTable

__all__ = [
    "PROTOCOL_VERSIONS",
    "SEND_EOF",
    "ConnectionState",
    "Event",
    "Side",
    "StreamState",
    "TunnelProtocol",
]

#: CLOSE reasons are cut to this many UTF-8 bytes, so a CLOSE always fits a handshake frame.
MAX_CLOSE_REASON_BYTES = 1024
#: The last item of :meth:`TunnelProtocol.data_to_send` once the connection is closed: write
#: what came before it, then close the transport (websockets' ``SEND_EOF``).
SEND_EOF = b""


class ConnectionState(Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSING = "closing"  # our CLOSE is sent; the peer's is awaited
    CLOSED = "closed"


#: The frames :class:`StreamTable` handles once the connection is open.
_STREAM_FRAMES = frozenset({WindowUpdate, RequestHead, ResponseHead, BodyChunk, EndOfBody, Cancel})
_SENDER: dict[type[Frame], Side] = {
    Hello: Side.CLIENT,
    Health: Side.CLIENT,
    ResponseHead: Side.CLIENT,
    Welcome: Side.RELAY,
    RequestHead: Side.RELAY,
}


def _truncate(text: str) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= MAX_CLOSE_REASON_BYTES:
        return text
    return raw[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")


class TunnelProtocol(Handshake):
    """One end of one tunnel connection.

    After each call that feeds or queues data, the I/O layer calls :meth:`events_received`
    and acts on the events, then writes every item of :meth:`data_to_send`, closing the
    transport at :data:`SEND_EOF`.

    Args:
        side: the end this object plays.
        versions: the protocol versions to offer (client) or accept (relay).
    """

    def __init__(self, side: Side, *, versions: Iterable[int] = PROTOCOL_VERSIONS) -> None:
        super().__init__(side, versions)  # side, versions, hello, version, limits
        self.state = ConnectionState.HANDSHAKE
        self.close_sent: Close | None = None
        self.close_received: Close | None = None
        #: The peer's protocol violation that closed the connection, if any.
        self.failure: TunnelProtocolError | None = None
        self._decoder = FrameDecoder(HANDSHAKE_MAX_FRAME_BYTES)
        self._events: list[Event] = []
        self._output: list[bytes] = []
        self._streams: StreamTable | None = None  # from WELCOME on

    # -- bytes in, events out, bytes out --------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the transport, split anywhere.

        Raises:
            TunnelProtocolError: the peer broke the protocol. A CLOSE with the error's
                ``close_code`` is queued and the connection is closed; events parsed before
                the bad frame are still in :meth:`events_received`.
            ConnectionClosedError: the connection is already closed.
        """
        if self.state is ConnectionState.CLOSED:
            raise self._closed_error()
        self._decoder.feed(data)
        try:
            # A CLOSE ends the loop: bytes after it are never read.
            while (frame := self._decoder.next_frame()) is not None:
                self._receive(frame)
                if isinstance(frame, Close):
                    break
        except TunnelProtocolError as exc:
            self.failure = exc
            if self.close_sent is None:
                self._write(Close(exc.close_code, _truncate(str(exc))))
            self._set_closed()
            raise

    def receive_eof(self) -> None:
        """The transport ended. Without a CLOSE first, every stream ends unanswered."""
        if self.state is not ConnectionState.CLOSED:
            self._set_closed(send_eof=False)

    def events_received(self) -> list[Event]:
        """Frames received since the last call, in order (WINDOW_UPDATEs are handled here)."""
        events = self._events.copy()
        self._events.clear()  # in place: the stream table holds this list's ``append``
        return events

    def data_to_send(self) -> list[bytes]:
        """Bytes to write since the last call, one item per frame (join them to coalesce),
        ending with :data:`SEND_EOF` once the connection is closed."""
        output, self._output = self._output, []
        return output

    @property
    def has_data_to_send(self) -> bool:
        """Whether :meth:`data_to_send` has anything: the I/O layer wakes its writer only then
        (most feeds and reads queue nothing, and a writer woken for nothing is a task switch
        per call)."""
        return bool(self._output)

    # -- connection (send_hello and accept are Handshake's) ------------------------------------

    def send_ping(self, payload: bytes) -> None:
        """Queue a PING (8 bytes); the peer's PONG event echoes them."""
        self._table("send PING")
        self._write(Ping(payload))

    def send_health(
        self, *, pos_online: bool, queue_depth: int, oldest_queued_age_ms: int, clock_ms: int
    ) -> None:
        """Client: report the venue's state; ``clock_ms`` is the caller's epoch-ms clock."""
        self._table("send HEALTH", Side.CLIENT)
        self._write(Health(pos_online, queue_depth, oldest_queued_age_ms, clock_ms))

    def send_close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """End the connection and every stream on it now (drain first if needed). The peer's
        CLOSE then closes it (:data:`SEND_EOF`); give up after the I/O layer's close timeout.
        A second call does nothing."""
        if self.close_sent is not None or self.state is ConnectionState.CLOSED:
            return
        self._write(Close(code, _truncate(reason)))
        self.state = ConnectionState.CLOSING
        if self._streams is not None:
            self._streams.drop_all()

    # -- streams ----------------------------------------------------------------------------

    def send_request_head(
        self,
        method: str,
        path: str,
        headers: Iterable[tuple[bytes, bytes]] = (),
        body: bytes | None = None,
    ) -> int:
        """Relay: open a stream for one HTTP request and return its id; continue with
        :meth:`send_body` and :meth:`send_end`, or give the whole ``body`` here (``b""``: none)
        to have the request framed as those calls would, in one call.

        Raises:
            TunnelUsageError: ``max_concurrent_streams`` are open (queue the request until a
                stream ends), or stream ids are exhausted (open a new connection).
            ValueError: a field is out of range (e.g. the path does not start with ``/``).
        """
        table = self._table("open a stream", Side.RELAY)
        return table.open(
            method, path, make_headers(headers), None if body is None else bytes(body)
        )

    def send_response_head(
        self, stream_id: int, status: int, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        """Client: answer the request on ``stream_id``; dropped if it was cancelled."""
        table = self._table("send a response head", Side.CLIENT)
        table.send_response_head(stream_id, status, make_headers(headers))

    def send_response(
        self,
        stream_id: int,
        status: int,
        headers: Iterable[tuple[bytes, bytes]] = (),
        body: bytes = b"",
    ) -> None:
        """Client: a complete answer in one call, as :meth:`send_response_head`,
        :meth:`send_body` and :meth:`send_end` would send it (the same frames, in the same
        order). A small body that fits one frame and both send windows is framed at once,
        without a trip through the stream's queue; a larger one waits for windows as
        :meth:`send_body` says. Dropped if the stream was cancelled."""
        table = self._table("send a response head", Side.CLIENT)
        table.send_response(stream_id, status, make_headers(headers), bytes(body))

    def send_body(self, stream_id: int, data: bytes) -> None:
        """Queue body bytes. They leave in BODY_CHUNKs within the frame limit and the stream's
        and connection's windows; the rest waits for WINDOW_UPDATEs. Stop reading the source
        while :meth:`queued` is high. Dropped if the stream was cancelled."""
        self._table("send body").send_body(stream_id, bytes(data))

    def send_end(self, stream_id: int) -> None:
        """This side's body is complete; END_OF_BODY follows the queued body bytes."""
        self._table("end a body").send_end(stream_id)

    def send_cancel(self, stream_id: int, code: int = CancelCode.CANCELLED) -> None:
        """Abandon a stream both ways: queued bytes are dropped, unconsumed bytes' credit is
        returned, late frames are ignored until the peer's answering CANCEL."""
        self._table("cancel a stream").cancel(stream_id, code)

    def consumed(self, stream_id: int, n: int) -> None:
        """The application is done with ``n`` body bytes of ``stream_id`` from BODY_CHUNK
        events: the peer may send that many more. Credit goes back in WINDOW_UPDATEs of at
        least half a window. A cancelled stream's bytes need no report."""
        if type(n) is not int or n < 0:
            raise TunnelUsageError("consume", f"bad byte count {n!r}")
        if self.state is ConnectionState.OPEN and self._streams is not None:
            self._streams.consumed(stream_id, n)

    # -- introspection ----------------------------------------------------------------------

    def stream_state(self, stream_id: int) -> StreamState | None:
        """A stream's state: ``CLOSED`` once it has ended and been forgotten, ``None`` if it
        was never opened."""
        return self._streams.state(stream_id) if self._streams else None

    @property
    def open_streams(self) -> int:
        """Streams counting against ``max_concurrent_streams``: open or half-closed."""
        return self._streams.open_count if self._streams else 0

    def send_window(self, stream_id: int = 0) -> int:
        """Body bytes we may send now on a stream, or on the connection for 0."""
        return self._measure(stream_id, "send_window")

    def receive_window(self, stream_id: int = 0) -> int:
        """Body bytes the peer may still send before it must wait for our WINDOW_UPDATE."""
        return self._measure(stream_id, "receive_window")

    def queued(self, stream_id: int = 0) -> int:
        """Body bytes taken by :meth:`send_body` and still waiting for a window."""
        return self._measure(stream_id, "queued")

    def unconsumed(self, stream_id: int = 0) -> int:
        """Body bytes delivered in events but not yet reported :meth:`consumed`."""
        return self._measure(stream_id, "unconsumed")

    def _measure(self, stream_id: int, name: str) -> int:
        # StreamTable and each stream name these counters alike; an unknown stream has none.
        if self._streams is None:
            return 0
        if stream_id == 0:
            return int(getattr(self._streams, name))
        stream = self._streams.get(stream_id)
        return int(getattr(stream, name)) if stream is not None else 0

    # -- internals ------------------------------------------------------------------------

    def _receive(self, frame: Frame) -> None:
        cls = type(frame)
        if cls in _STREAM_FRAMES and self.state is ConnectionState.OPEN:
            # The common case first: a stream frame on an open connection (not CLOSING).
            # The same checks as below, in the order that reaches it with fewest tests.
            if _SENDER.get(cls) is self.side:
                kind = FRAME_TYPES[cls]
                raise UnexpectedFrameError(kind, self.side.value, "the other side sends it")
            assert self._streams is not None  # OPEN: the WELCOME made the table
            self._streams.receive(frame)  # type: ignore[arg-type]  # by _STREAM_FRAMES
            return
        if isinstance(frame, UnknownFrame):
            return  # flagged MAY_IGNORE by its sender
        if isinstance(frame, Close):
            self.close_received = frame
            self._events.append(frame)
            if self.close_sent is None:
                self._write(Close(frame.code))
            self._set_closed()
            return
        if self.state is ConnectionState.CLOSING:
            return  # we said goodbye; only the peer's CLOSE matters now
        kind = FRAME_TYPES[type(frame)]
        if _SENDER.get(type(frame)) is self.side:
            raise UnexpectedFrameError(kind, self.side.value, "the other side sends it")
        if isinstance(frame, Hello):
            self._receive_hello(frame)
        elif isinstance(frame, Welcome):
            self._receive_welcome(frame)
        elif self._streams is None:
            raise UnexpectedFrameError(kind, self.side.value, "the handshake is not complete")
        elif isinstance(frame, Ping):
            self._events.append(frame)
            self._write(Pong(frame.payload))
        elif isinstance(frame, Pong | Health):
            self._events.append(frame)
        else:
            self._streams.receive(frame)

    def _open(self, welcome: Welcome) -> None:
        self.version = welcome.version
        self.limits = welcome.limits
        self._decoder.max_payload_bytes = welcome.limits.max_frame_bytes
        self._streams = StreamTable(
            limits=welcome.limits,
            write=self._write,
            emit=self._events.append,
        )
        self.state = ConnectionState.OPEN

    def _write(self, frame: Frame) -> None:
        data = encode_frame(frame)
        limit = self.limits.max_frame_bytes if self.limits else HANDSHAKE_MAX_FRAME_BYTES
        if len(data) - HEADER_BYTES > limit:
            kind = FRAME_TYPES[type(frame)]
            raise TunnelUsageError(
                f"send {kind.name}", f"{len(data) - HEADER_BYTES} bytes exceed {limit}"
            )
        if isinstance(frame, Close):
            self.close_sent = frame
        self._output.append(data)

    def _table(self, action: str, side: Side | None = None) -> StreamTable:
        if side is not None and side is not self.side:
            raise TunnelUsageError(action, f"only the {side.value} may")
        self._check_not_closed()
        if self._streams is None:
            raise TunnelUsageError(action, "the handshake is not complete")
        return self._streams

    def _check_not_closed(self) -> None:
        if self.close_sent is not None or self.state is ConnectionState.CLOSED:
            raise self._closed_error()

    def _closed_error(self) -> ConnectionClosedError:
        close = self.close_received or self.close_sent
        return ConnectionClosedError(close.code if close else None, close.reason if close else "")

    def _set_closed(self, send_eof: bool = True) -> None:
        self.state = ConnectionState.CLOSED
        if self._streams is not None:
            self._streams.drop_all()
        if send_eof:
            self._output.append(SEND_EOF)
