"""The tunnel's binary frame codec: frames to bytes, and bytes (in any split) back to frames.

Every frame is a 10-byte header followed by its payload (docs/tunnel-protocol.md has the byte
diagrams and hex examples)::

     0        1        2                 6                 10
    +--------+--------+-----------------+-----------------+-------------------------
    | type   | flags  | stream id       | payload length  | payload (length bytes) …
    | u8     | u8     | u32 big-endian  | u32 big-endian  |
    +--------+--------+-----------------+-----------------+-------------------------

Integers are unsigned big-endian. Inside a payload, strings, byte strings and header lists
are u16-counted (:mod:`tunnel.fields` packs and reads them); this module lays out each
frame type's payload from those fields. No floats, no base64.

:class:`FrameDecoder` checks the declared length against its limit as soon as the header is
complete, before it waits for (or keeps) any payload byte: that is the DoS guard.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from tunnel.errors import (
    CloseCode,
    FrameTooLargeError,
    MalformedFrameError,
    UnknownFrameTypeError,
)
from tunnel.fields import FieldReader, pack_headers, pack_text, pack_u16
from tunnel.messages import (
    BodyChunk,
    Cancel,
    CancelCode,
    Close,
    EndOfBody,
    Health,
    Hello,
    Limits,
    Ping,
    Pong,
    RequestHead,
    ResponseHead,
    Welcome,
    WindowUpdate,
    check_uint,
)

HEADER = struct.Struct(">BBII")
HEADER_BYTES = HEADER.size  # 10
#: Largest payload either side accepts before the WELCOME has set the real limit.
HANDSHAKE_MAX_FRAME_BYTES = 16_384
_WELCOME = struct.Struct(">HIIIII")
_HEALTH = struct.Struct(">BIQQ")


class FrameType(IntEnum):
    """The type byte. 0x01–0x0F are connection frames (stream id 0), 0x10–0x1F stream frames;
    WINDOW_UPDATE is both (stream id 0 is the connection window)."""

    HELLO = 0x01
    WELCOME = 0x02
    CLOSE = 0x03
    PING = 0x04
    PONG = 0x05
    HEALTH = 0x06
    WINDOW_UPDATE = 0x07
    REQUEST_HEAD = 0x10
    RESPONSE_HEAD = 0x11
    BODY_CHUNK = 0x12
    END_OF_BODY = 0x13
    CANCEL = 0x14


_KNOWN_TYPES = frozenset(int(t) for t in FrameType)
#: The type byte's member, by dict lookup: ``FrameType(byte)`` runs enum's Python-level
#: ``__call__`` and ``__new__`` on every frame decoded.
_FRAME_TYPE_OF: dict[int, FrameType] = {int(t): t for t in FrameType}


class FrameFlag(IntFlag):
    """The flags byte. Senders set undefined bits to zero; receivers ignore them."""

    #: A receiver that does not know this frame's type drops it instead of failing the
    #: connection, so a later version can add advisory frames without a version bump.
    MAY_IGNORE = 0x80


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """A frame of a type this version does not know, flagged MAY_IGNORE: the protocol drops
    it. Encodable so that tests (and later versions) can produce one."""

    frame_type: int
    flags: int
    stream_id: int
    payload: bytes

    def __post_init__(self) -> None:
        check_uint("frame type", self.frame_type, 8)
        check_uint("flags", self.flags, 8)
        check_uint("stream id", self.stream_id, 32)
        if self.frame_type in _KNOWN_TYPES:
            raise ValueError(f"frame type 0x{self.frame_type:02x} is a known type")


Frame = (
    Hello
    | Welcome
    | Close
    | Ping
    | Pong
    | Health
    | WindowUpdate
    | RequestHead
    | ResponseHead
    | BodyChunk
    | EndOfBody
    | Cancel
    | UnknownFrame
)


#: The type byte of each known frame class.
FRAME_TYPES: dict[type[Frame], FrameType] = {
    Hello: FrameType.HELLO,
    Welcome: FrameType.WELCOME,
    Close: FrameType.CLOSE,
    Ping: FrameType.PING,
    Pong: FrameType.PONG,
    Health: FrameType.HEALTH,
    WindowUpdate: FrameType.WINDOW_UPDATE,
    RequestHead: FrameType.REQUEST_HEAD,
    ResponseHead: FrameType.RESPONSE_HEAD,
    BodyChunk: FrameType.BODY_CHUNK,
    EndOfBody: FrameType.END_OF_BODY,
    Cancel: FrameType.CANCEL,
}


def _payload(frame: Frame) -> tuple[int, int, int, bytes]:
    """``(type, flags, stream id, payload)`` of a frame whose fields are already checked."""
    # The frames of every exchange first: each case costs an isinstance test.
    match frame:
        case BodyChunk():
            return FrameType.BODY_CHUNK, 0, frame.stream_id, frame.data
        case EndOfBody():
            return FrameType.END_OF_BODY, 0, frame.stream_id, b""
        case ResponseHead():
            body = pack_u16(frame.status) + pack_headers(frame.headers)
            return FrameType.RESPONSE_HEAD, 0, frame.stream_id, body
        case RequestHead():
            body = pack_text(frame.method) + pack_text(frame.path) + pack_headers(frame.headers)
            return FrameType.REQUEST_HEAD, 0, frame.stream_id, body
        case WindowUpdate():
            return FrameType.WINDOW_UPDATE, 0, frame.stream_id, frame.increment.to_bytes(4, "big")
        case Cancel():
            return FrameType.CANCEL, 0, frame.stream_id, pack_u16(frame.code)
        case Ping():
            return FrameType.PING, 0, 0, frame.payload
        case Pong():
            return FrameType.PONG, 0, 0, frame.payload
        case Health():
            body = _HEALTH.pack(
                frame.pos_online, frame.queue_depth, frame.oldest_queued_age_ms, frame.clock_ms
            )
            return FrameType.HEALTH, 0, 0, body
        case Hello():
            versions = b"".join(pack_u16(v) for v in frame.versions)
            body = pack_text(frame.venue_id) + pack_text(frame.token)
            body += frame.session_epoch.to_bytes(8, "big") + len(frame.versions).to_bytes(1, "big")
            body += versions + pack_text(frame.bridge_version)
            return FrameType.HELLO, 0, 0, body
        case Welcome(version=version, limits=lim):
            body = _WELCOME.pack(
                version,
                lim.max_frame_bytes,
                lim.initial_stream_window,
                lim.connection_window,
                lim.max_concurrent_streams,
                lim.heartbeat_interval_ms,
            )
            return FrameType.WELCOME, 0, 0, body
        case Close():
            return FrameType.CLOSE, 0, 0, pack_u16(frame.code) + pack_text(frame.reason)
        case UnknownFrame():
            return frame.frame_type, frame.flags, frame.stream_id, frame.payload


def encode_frame(frame: Frame) -> bytes:
    """The frame's bytes, header and payload, ready to write.

    The caller (the protocol) keeps payloads within the negotiated ``max_frame_bytes``; this
    function does not know the limit.
    """
    kind, flags, stream_id, payload = _payload(frame)
    return HEADER.pack(kind, flags, stream_id, len(payload)) + payload


def _code(codes: type[IntEnum], value: int) -> int:
    """A known code as its enum member (readable in logs); an unknown one stays an int."""
    try:
        return codes(value)
    except ValueError:
        return value


def _hello(r: FieldReader, _: int) -> Hello:
    venue_id, token, epoch = r.text("venue_id"), r.text("token"), r.uint(8, "session epoch")
    versions = tuple(r.uint(2, "version") for _ in range(r.uint(1, "version count")))
    return Hello(venue_id, token, epoch, versions, r.text("bridge_version"))


def _welcome(r: FieldReader, _: int) -> Welcome:
    version, *limits = _WELCOME.unpack(r.take(_WELCOME.size, "limits"))
    return Welcome(version, Limits(*limits))


def _health(r: FieldReader, _: int) -> Health:
    online, depth, age_ms, clock_ms = _HEALTH.unpack(r.take(_HEALTH.size, "health"))
    if online > 1:
        raise MalformedFrameError(FrameType.HEALTH, f"pos_online is {online}, not 0 or 1")
    return Health(bool(online), depth, age_ms, clock_ms)


_DECODERS: dict[FrameType, Callable[[FieldReader, int], Frame]] = {
    FrameType.HELLO: _hello,
    FrameType.WELCOME: _welcome,
    FrameType.CLOSE: lambda r, _: Close(_code(CloseCode, r.uint(2, "code")), r.text("reason")),
    FrameType.PING: lambda r, _: Ping(r.rest()),
    FrameType.PONG: lambda r, _: Pong(r.rest()),
    FrameType.HEALTH: _health,
    FrameType.WINDOW_UPDATE: lambda r, sid: WindowUpdate(sid, r.uint(4, "increment")),
    FrameType.REQUEST_HEAD: lambda r, sid: RequestHead(
        sid, r.text("method"), r.text("path"), r.headers()
    ),
    FrameType.RESPONSE_HEAD: lambda r, sid: ResponseHead(sid, r.uint(2, "status"), r.headers()),
    FrameType.BODY_CHUNK: lambda r, sid: BodyChunk(sid, r.rest()),
    FrameType.END_OF_BODY: lambda r, sid: EndOfBody(sid),
    FrameType.CANCEL: lambda r, sid: Cancel(sid, _code(CancelCode, r.uint(2, "code"))),
}


def decode_frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> Frame:
    """The frame a complete header and payload stand for.

    Raises:
        UnknownFrameTypeError: the type is unknown and MAY_IGNORE is clear.
        MalformedFrameError: the payload does not match the type's layout, a field is out of
            range, or the stream id is 0 where a stream is needed (or not 0 where none is).
    """
    kind = _FRAME_TYPE_OF.get(frame_type)
    if kind is None:
        if flags & FrameFlag.MAY_IGNORE:
            return UnknownFrame(frame_type, flags, stream_id, payload)
        raise UnknownFrameTypeError(frame_type, flags)
    if kind < 0x10 and kind is not FrameType.WINDOW_UPDATE and stream_id != 0:
        raise MalformedFrameError(kind, f"stream id {stream_id} on a connection frame")
    if kind >= 0x10 and stream_id == 0:
        raise MalformedFrameError(kind, "stream id 0 on a stream frame")
    reader = FieldReader(kind, payload)
    try:
        frame = _DECODERS[kind](reader, stream_id)
    except ValueError as exc:  # a field out of range, checked by the dataclass
        raise MalformedFrameError(kind, str(exc)) from exc
    # HELLO alone may carry trailing bytes: it is read before a version is agreed, so it is
    # the one layout that can never change, and later versions extend it at the end.
    if kind is not FrameType.HELLO:
        reader.end()
    return frame


class FrameDecoder:
    """Turns a byte stream, split anywhere, into frames.

    Call :meth:`feed` with whatever the transport delivered, then :meth:`next_frame` until it
    returns ``None`` (a partial frame waits for more bytes). ``max_payload_bytes`` may be
    raised between frames, which is how the WELCOME's limit takes effect mid-buffer.
    """

    def __init__(self, max_payload_bytes: int = HANDSHAKE_MAX_FRAME_BYTES) -> None:
        self.max_payload_bytes = max_payload_bytes
        #: ``bytes`` as fed while nothing was left over (parsed in place), else a bytearray.
        self._buffer: bytes | bytearray = b""
        self._offset = 0  # start of the first unparsed byte; compacted on the next feed

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame: less than one header plus one
        maximum payload once :meth:`next_frame` has returned ``None``."""
        return len(self._buffer) - self._offset

    def feed(self, data: bytes) -> None:
        if self._offset == len(self._buffer):
            # Nothing left over, the usual case (a websocket message holds whole frames):
            # parse the bytes where they are instead of copying them into a buffer first.
            self._buffer, self._offset = bytes(data), 0
            return
        buffer = self._buffer if isinstance(self._buffer, bytearray) else bytearray(self._buffer)
        del buffer[: self._offset]
        buffer += data
        self._buffer, self._offset = buffer, 0

    def next_frame(self) -> Frame | None:
        """The next complete frame, or ``None`` until more bytes arrive.

        Raises:
            FrameTooLargeError: the header declares more than ``max_payload_bytes``; raised as
                soon as the 10 header bytes are in, and the buffer is dropped.
            UnknownFrameTypeError, MalformedFrameError: see :func:`decode_frame`.
        """
        buffer, offset = self._buffer, self._offset
        available = len(buffer) - offset
        if available < HEADER_BYTES:
            return None
        kind, flags, stream_id, length = HEADER.unpack_from(buffer, offset)
        if length > self.max_payload_bytes:
            self._buffer, self._offset = b"", 0
            known = _FRAME_TYPE_OF.get(kind, kind)
            raise FrameTooLargeError(known, length, self.max_payload_bytes)
        if available < HEADER_BYTES + length:
            return None
        start = offset + HEADER_BYTES
        end = start + length
        if type(buffer) is bytes:
            payload = buffer[start:end]
        else:
            with memoryview(buffer) as view:  # released at once: the buffer may grow later
                payload = bytes(view[start:end])
        if end == len(buffer):
            self._buffer, self._offset = b"", 0  # all parsed: hold no message past its frames
        else:
            self._offset = end
        return decode_frame(kind, flags, stream_id, payload)
