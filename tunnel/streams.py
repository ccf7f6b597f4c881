"""Streams and flow control for one open tunnel connection.

:class:`StreamTable` knows which streams exist, what state each is in, and how many body bytes
each direction may still send, on each stream and on the connection. It never sees the
handshake or bytes: :class:`~tunnel.protocol.TunnelProtocol` hands it decoded stream
frames and gives it two callbacks, one to queue a frame for the wire and one to deliver an event.

Invariants (docs/tunnel-protocol.md §5–§7):

- Stream ids are opened by one side only (the relay), odd, strictly increasing (they may
  skip); an odd id at or below the highest one opened but absent from the table has ended.
- A sender's BODY_CHUNK never exceeds the frame limit, its stream's window or the connection's.
- A receiver holds at most ``connection_window`` unconsumed body bytes in total and
  ``initial_stream_window`` per stream; more is a :class:`FlowControlError`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from tunnel.errors import FlowControlError, StreamStateError, TunnelUsageError
from tunnel.frames import FRAME_TYPES, Frame, FrameType
from tunnel.messages import (
    MAX_WINDOW_BYTES,
    BodyChunk,
    Cancel,
    EndOfBody,
    Event,
    Headers,
    Limits,
    RequestHead,
    ResponseHead,
    WindowUpdate,
)
from tunnel.stream_state import StreamRecord, StreamState

StreamFrame = WindowUpdate | RequestHead | ResponseHead | BodyChunk | EndOfBody | Cancel


class StreamTable:
    """Every stream of one connection and the connection's two windows.

    Args:
        limits: the WELCOME's limits, for both directions.
        write: queues a frame for the wire; may raise :class:`TunnelUsageError` (too large),
            so it is called before any state changes.
        emit: delivers an event to the application.
    """

    def __init__(
        self,
        *,
        limits: Limits,
        write: Callable[[Frame], None],
        emit: Callable[[Event], None],
    ) -> None:
        self.limits = limits
        self._write = write
        self._emit = emit
        self._streams: dict[int, StreamRecord] = {}
        #: Ids of the open and half-closed streams, kept as states change, so that
        #: ``open_count`` (asked on every new stream) does not scan every stream.
        self._live: set[int] = set()
        self._last_id = 0
        self._ready: deque[int] = deque()  # streams with body bytes or an END waiting to go
        self.send_window = limits.connection_window
        self.receive_window = limits.connection_window
        self.unconsumed = 0
        self._credit = 0

    # -- what the protocol asks about --------------------------------------------------------

    def get(self, stream_id: int) -> StreamRecord | None:
        return self._streams.get(stream_id)

    def was_opened(self, stream_id: int) -> bool:
        return stream_id % 2 == 1 and 0 < stream_id <= self._last_id

    def state(self, stream_id: int) -> StreamState | None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            return stream.state
        return StreamState.CLOSED if self.was_opened(stream_id) else None

    @property
    def open_count(self) -> int:
        return len(self._live)

    @property
    def queued(self) -> int:
        return sum(s.queued for s in self._streams.values())

    # -- sending -----------------------------------------------------------------------------

    def open(self, method: str, path: str, headers: Headers, body: bytes | None = None) -> int:
        """REQUEST_HEAD on a new stream; with ``body``, the whole request (see
        :meth:`_complete`)."""
        if self.open_count >= self.limits.max_concurrent_streams:
            raise TunnelUsageError("open a stream", f"{self.open_count} streams are open")
        stream_id = self._last_id + 2 if self._last_id else 1
        if stream_id >= 1 << 32:
            raise TunnelUsageError("open a stream", "stream ids are exhausted; reconnect")
        self._write(RequestHead(stream_id, method, path, headers))
        self._last_id = stream_id
        stream = self._streams[stream_id] = self._new(head_sent=True, head_received=False)
        self._live.add(stream_id)
        if body is not None:
            self._complete(stream_id, stream, body)
        return stream_id

    def send_response_head(self, stream_id: int, status: int, headers: Headers) -> None:
        stream = self._sendable(stream_id, "send a response head")
        if stream is None:
            return
        if stream.head_sent:
            raise TunnelUsageError("send a response head", f"stream {stream_id} has one")
        self._write(ResponseHead(stream_id, status, headers))
        stream.head_sent = True

    def send_response(self, stream_id: int, status: int, headers: Headers, body: bytes) -> None:
        """RESPONSE_HEAD, the body and END_OF_BODY in one call (see :meth:`_complete`)."""
        self.send_response_head(stream_id, status, headers)
        stream = self._streams.get(stream_id)
        if stream is not None and not stream.cancelled:  # else dropped, as the head was
            self._complete(stream_id, stream, body)

    def _complete(self, stream_id: int, stream: StreamRecord, body: bytes) -> None:
        """After a head just written: the body and END_OF_BODY. The frames and their order
        are exactly those of :meth:`send_body` and :meth:`send_end` in turn, without queueing
        the body. That holds when the body fits one frame and both send windows: a ready
        stream after a flush is one a window holds back, so the flush those calls run would
        frame this stream's bytes alone, at once. Otherwise it takes that path."""
        n = len(body)
        if n > min(self.limits.max_frame_bytes, stream.send_window, self.send_window):
            self.send_body(stream_id, body)
            self.send_end(stream_id)
            return
        if n:
            self._write(BodyChunk(stream_id, body))
            stream.send_window -= n
            self.send_window -= n
        stream.local_ended = True
        self._write(EndOfBody(stream_id))
        stream.end_written = True
        if stream.remote_ended:
            self._live.discard(stream_id)
        self._forget_if_done(stream_id, stream)

    def send_body(self, stream_id: int, data: bytes) -> None:
        stream = self._sendable(stream_id, "send body", need_head=True)
        if stream is None or not data:
            return
        stream.queue.append(memoryview(data))
        stream.queued += len(data)
        self._schedule(stream_id, stream)

    def send_end(self, stream_id: int) -> None:
        stream = self._sendable(stream_id, "end a body", need_head=True)
        if stream is None:
            return
        stream.local_ended = True
        self._schedule(stream_id, stream)

    def cancel(self, stream_id: int, code: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.cancelled:
            if not self.was_opened(stream_id):
                raise TunnelUsageError("cancel a stream", f"stream {stream_id} was never opened")
            return
        self._write(Cancel(stream_id, code))
        self._release(stream)
        stream.cancelled = True
        self._live.discard(stream_id)

    def consumed(self, stream_id: int, n: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.cancelled:
            if not self.was_opened(stream_id):
                raise TunnelUsageError("consume", f"stream {stream_id} was never opened")
            return  # a cancelled stream's bytes were credited back when it was cancelled
        if n > stream.unconsumed:
            raise TunnelUsageError("consume", f"{n} bytes; {stream.unconsumed} are unconsumed")
        stream.unconsumed -= n
        self.unconsumed -= n
        self._credit_connection(n)
        if not stream.remote_ended:  # after their END no more body comes: no stream credit
            stream.credit += n
            if stream.credit >= max(1, self.limits.initial_stream_window // 2):
                self._write(WindowUpdate(stream_id, stream.credit))
                stream.receive_window += stream.credit
                stream.credit = 0
        self._forget_if_done(stream_id, stream)

    def flush(self) -> None:
        """Frame queued body bytes while windows allow, one chunk per stream per round so that
        a large body cannot starve the others; then each drained stream's END_OF_BODY."""
        progress = True
        while progress and self._ready:
            progress = False
            for _ in range(len(self._ready)):
                stream_id = self._ready.popleft()
                stream = self._streams.get(stream_id)
                if stream is None or stream.cancelled:
                    continue
                n = min(
                    self.limits.max_frame_bytes, stream.send_window, self.send_window, stream.queued
                )
                if n > 0:
                    self._write(BodyChunk(stream_id, stream.take(n)))
                    stream.send_window -= n
                    self.send_window -= n
                    progress = True
                if stream.queued:
                    self._ready.append(stream_id)
                    continue
                stream.scheduled = False
                if stream.local_ended and not stream.end_written:
                    self._write(EndOfBody(stream_id))
                    stream.end_written = True
                    if stream.remote_ended:
                        self._live.discard(stream_id)
                    progress = True
                    self._forget_if_done(stream_id, stream)

    def drop_all(self) -> None:
        """The connection is closing: free every queue; nothing more will be sent."""
        for stream in self._streams.values():
            stream.queue.clear()
            stream.queued = 0
        self._ready.clear()

    # -- receiving -----------------------------------------------------------------------------

    def receive(self, frame: StreamFrame) -> None:
        """Apply one stream frame from the peer; raises a :class:`StreamStateError` or
        :class:`FlowControlError` when the frame breaks the rules in the module docstring."""
        match frame:  # the exchange's frames first: each case costs an isinstance test
            case ResponseHead() | BodyChunk() | EndOfBody():
                self._receive_exchange(frame)
            case RequestHead(stream_id=sid):
                if sid % 2 == 0 or sid <= self._last_id:
                    raise StreamStateError(sid, FrameType.REQUEST_HEAD, "ids are odd and grow")
                if self.open_count >= self.limits.max_concurrent_streams:
                    detail = f"more than {self.limits.max_concurrent_streams} open streams"
                    raise StreamStateError(sid, FrameType.REQUEST_HEAD, detail)
                self._last_id = sid
                self._streams[sid] = self._new(head_sent=False, head_received=True)
                self._live.add(sid)
                self._emit(frame)
            case WindowUpdate(stream_id=0, increment=inc):
                if inc > MAX_WINDOW_BYTES - self.send_window:
                    raise FlowControlError(0, inc, self.send_window, overflow=True)
                self.send_window += inc
                self.flush()
            case WindowUpdate(stream_id=sid, increment=inc):
                stream = self._known(sid, FrameType.WINDOW_UPDATE)
                if stream is None or stream.cancelled:
                    return  # credit for a stream that has ended here: harmless, ignored
                if inc > MAX_WINDOW_BYTES - stream.send_window:
                    raise FlowControlError(sid, inc, stream.send_window, overflow=True)
                stream.send_window += inc
                self.flush()
            case Cancel(stream_id=sid):
                self._receive_cancel(frame, self._known(sid, FrameType.CANCEL))

    def _receive_exchange(self, frame: ResponseHead | BodyChunk | EndOfBody) -> None:
        kind = FRAME_TYPES[type(frame)]
        sid = frame.stream_id
        stream = self._known(sid, kind)
        if stream is None:
            raise StreamStateError(sid, kind, "the stream has ended")
        # The connection window counts even on a cancelled stream: the peer spent it.
        if isinstance(frame, BodyChunk) and len(frame.data) > self.receive_window:
            raise FlowControlError(0, len(frame.data), self.receive_window)
        if stream.cancelled:  # sent before our CANCEL reached the peer: drop it
            if isinstance(frame, BodyChunk):
                self.receive_window -= len(frame.data)
                self._credit_connection(len(frame.data))
            return
        if isinstance(frame, ResponseHead):
            if stream.head_received:
                raise StreamStateError(sid, kind, "the stream already has a response head")
            stream.head_received = True
        elif stream.remote_ended or not stream.head_received:
            raise StreamStateError(sid, kind, "no body may come: no head, or ended already")
        elif isinstance(frame, BodyChunk):
            size = len(frame.data)
            if size > stream.receive_window:
                raise FlowControlError(sid, size, stream.receive_window)
            stream.receive_window -= size
            self.receive_window -= size
            stream.unconsumed += size
            self.unconsumed += size
        else:
            stream.remote_ended = True
            stream.credit = 0
            if stream.end_written:
                self._live.discard(sid)
        self._emit(frame)
        self._forget_if_done(sid, stream)

    def _receive_cancel(self, frame: Cancel, stream: StreamRecord | None) -> None:
        sid = frame.stream_id
        self._live.discard(sid)
        if stream is not None and stream.cancelled:
            del self._streams[sid]  # their CANCEL answers ours (or crossed it): both are done
            return
        self._write(Cancel(sid, frame.code))  # answer, so the peer may forget the stream
        if stream is not None:
            self._release(stream)
            del self._streams[sid]
            self._emit(frame)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _new(self, *, head_sent: bool, head_received: bool) -> StreamRecord:
        window = self.limits.initial_stream_window
        return StreamRecord(window, window, head_sent=head_sent, head_received=head_received)

    def _known(self, stream_id: int, kind: FrameType) -> StreamRecord | None:
        """The stream, ``None`` if it has ended here; an id never opened fails the connection."""
        stream = self._streams.get(stream_id)
        if stream is None and not self.was_opened(stream_id):
            raise StreamStateError(stream_id, kind, "no such stream was opened")
        return stream

    def _sendable(
        self, stream_id: int, action: str, need_head: bool = False
    ) -> StreamRecord | None:
        """The stream to write to, or ``None`` if it was cancelled or has ended (the write is
        dropped: a cancel may cross the application's write)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            if self.was_opened(stream_id):
                return None
            raise TunnelUsageError(action, f"stream {stream_id} was never opened")
        if stream.cancelled:
            return None
        if stream.local_ended:
            raise TunnelUsageError(action, f"stream {stream_id}: this side's body has ended")
        if need_head and not stream.head_sent:
            raise TunnelUsageError(action, f"stream {stream_id}: send the response head first")
        return stream

    def _schedule(self, stream_id: int, stream: StreamRecord) -> None:
        if not stream.scheduled:
            stream.scheduled = True
            self._ready.append(stream_id)
        self.flush()

    def _release(self, stream: StreamRecord) -> None:
        """Drop a cancelled stream's queue and return its unconsumed bytes' credit."""
        stream.queue.clear()
        stream.queued = 0
        self.unconsumed -= stream.unconsumed
        self._credit_connection(stream.unconsumed)
        stream.unconsumed = 0

    def _credit_connection(self, n: int) -> None:
        self._credit += n
        if self._credit and self._credit >= max(1, self.limits.connection_window // 2):
            self._write(WindowUpdate(0, self._credit))
            self.receive_window += self._credit
            self._credit = 0

    def _forget_if_done(self, stream_id: int, stream: StreamRecord) -> None:
        # A closed stream stays while the application still holds some of its bytes, so that
        # consumed() can return their connection credit.
        if stream.end_written and stream.remote_ended and not stream.unconsumed:
            del self._streams[stream_id]
