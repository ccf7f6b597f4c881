"""PBT1, the reference TCP framing: the message catalogue over a byte stream, both ends.

Pure (no sockets, no clock). Every message is one frame (``docs/drivers/tcp.md``)::

    offset size field
    0      2    magic        0x50 0x42 ("PB")
    2      1    version      0x01
    3      1    type         0x01 request (bridge → POS), 0x02 reply (POS → bridge)
    4      4    request id   unsigned, big-endian; equals the payload's "id"
    8      4    length       payload bytes, unsigned, big-endian, at most MAX_PAYLOAD_BYTES
    12     4    crc          CRC-32 (IEEE, as zlib) of bytes 0–11 then the payload
    16     …    payload      UTF-8 JSON, drivers/wire/messages.py

Decisions, each written down in the spec page:

- **Two copies of the id.** The header's id lets a reader route or refuse a frame without
  parsing JSON (the POS answers an unparseable payload with ``bad_request`` under the header's
  id); the payload's id keeps the catalogue the same on every wire. They must agree: a reply
  where they differ is not trusted for either request.
- **A CRC-32 although TCP has a checksum.** TCP's 16-bit sum misses some corruptions that
  real NICs, middleboxes and serial-to-Ethernet converters make, and a flipped bit in an
  amount would be a wrong payment, not an error. Four bytes per frame and a table lookup per
  byte buy a check that every single-bit and burst-up-to-32 error is caught.
- **A bad frame ends the stream.** Bad magic, version, type, CRC or an oversized length mean
  the reader has lost the frame boundaries (or the peer is not speaking PBT1): the codec
  raises :class:`FrameError`, and the link closes and reconnects. Requests in flight get
  ``PosTimeoutError`` and the outbox reconciles with ``find_payment``.
- **Pipelining.** Any number of requests may be in flight on one connection; replies come in
  any order, matched by id. The codec keeps no per-request state: ids and timeouts belong to
  the exchange (``drivers/wire/stream.py``), so no timer lives here.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from drivers.wire import messages
from drivers.wire.messages import (
    MAX_ID,
    ErrorInfo,
    PosProtocolError,
    Reply,
    Request,
    Undelivered,
    WireFormatError,
)

CODEC_NAME = "pbt1"
MAGIC = b"PB"  # 0x50 0x42: a reader that lands mid-stream sees garbage at once
VERSION = 1  # a POS that speaks another version closes the connection
HEADER = struct.Struct(">2sBBIII")  # magic, version, type, id, length, crc
HEADER_BYTES = HEADER.size  # 16
MAX_PAYLOAD_BYTES = messages.MAX_PAYLOAD  # 1 MiB: a bill is a few kB; more is a broken peer
MAX_FRAME_BYTES = HEADER_BYTES + MAX_PAYLOAD_BYTES


class FrameType(enum.IntEnum):
    REQUEST = 0x01  # bridge → POS
    REPLY = 0x02  # POS → bridge


_FRAME_TYPES = frozenset(FrameType)


class FrameError(PosProtocolError):
    """The byte stream is not PBT1 (bad magic, version, type, CRC, or too long a frame).

    The stream is unusable after it: frame boundaries are lost. Close the connection; the
    exchange then fails the requests in flight with ``PosTimeoutError`` and reconnects.
    """

    def __init__(self, reason: str, header: bytes = b"") -> None:
        detail = f" (header {header.hex(' ')})" if header else ""
        super().__init__(f"PBT1 frame error: {reason}{detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Frame:
    type: FrameType
    request_id: int
    payload: bytes

    def to_bytes(self) -> bytes:
        """The frame on the wire. ``ValueError`` for an id or payload the format cannot carry."""
        if not 0 <= self.request_id <= MAX_ID:
            raise ValueError(f"request id {self.request_id} is not a u32")
        if len(self.payload) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload of {len(self.payload)} bytes is over {MAX_PAYLOAD_BYTES}")
        head = HEADER.pack(MAGIC, VERSION, self.type, self.request_id, len(self.payload), 0)
        crc = frame_crc(head[:12], self.payload)
        return head[:12] + crc.to_bytes(4, "big") + self.payload

    @classmethod
    def from_bytes(cls, data: bytes) -> Frame:
        """Exactly one whole frame; :class:`FrameError` otherwise."""
        reader = FrameReader()
        frames = reader.feed(data)
        if len(frames) != 1 or reader.buffered:
            raise FrameError(f"expected one whole frame, got {len(frames)} and {reader.buffered} B")
        return frames[0]


def frame_crc(header12: bytes, payload: bytes) -> int:
    """CRC-32 (poly 0x04C11DB7 reflected, init and xor-out 0xFFFFFFFF) of header then payload."""
    return zlib.crc32(payload, zlib.crc32(header12)) & 0xFFFFFFFF


class FrameReader:
    """Cuts a byte stream into frames, however it is split into reads."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def reset(self) -> None:
        self._buffer.clear()

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data``. Raises :class:`FrameError` (stream unusable)."""
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= HEADER_BYTES:
            head = bytes(self._buffer[:HEADER_BYTES])
            magic, version, kind, request_id, length, crc = HEADER.unpack(head)
            if magic != MAGIC:
                raise FrameError("bad magic", head)
            if version != VERSION:
                raise FrameError(f"unsupported version {version}", head)
            if kind not in _FRAME_TYPES:
                raise FrameError(f"unknown frame type {kind:#04x}", head)
            if length > MAX_PAYLOAD_BYTES:
                raise FrameError(f"length {length} is over {MAX_PAYLOAD_BYTES}", head)
            if len(self._buffer) < HEADER_BYTES + length:
                break
            payload = bytes(self._buffer[HEADER_BYTES : HEADER_BYTES + length])
            if frame_crc(head[:12], payload) != crc:
                raise FrameError("CRC mismatch", head)
            del self._buffer[: HEADER_BYTES + length]
            frames.append(Frame(FrameType(kind), request_id, payload))
        # The magic is checked as soon as two bytes are in, not only once a header is whole,
        # so a peer speaking something else is refused at its first bytes.
        if len(self._buffer) >= 2 and self._buffer[:2] != MAGIC:
            raise FrameError("bad magic", bytes(self._buffer[:HEADER_BYTES]))
        return frames


def request_frame(request: Request) -> Frame:
    return Frame(FrameType.REQUEST, request.id, messages.encode_request(request))


def reply_frame(reply: Reply) -> Frame:
    return Frame(FrameType.REPLY, reply.id, messages.encode_reply(reply))


class _Side:
    """What both ends share: a frame reader and an outgoing buffer."""

    _incoming: FrameType

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self._reader = FrameReader()
        self._out = bytearray()

    def connection_made(self, now: float) -> None:
        self._reader.reset()
        self._out.clear()

    def data_to_send(self) -> bytes:
        data, self._out = bytes(self._out), bytearray()
        return data

    def next_deadline(self) -> float | None:
        return None  # PBT1 has no timers: TCP retransmits, the exchange times out

    def handle_timeouts(self, now: float) -> None:
        return None

    def _frames(self, data: bytes) -> list[Frame]:
        frames = self._reader.feed(data)
        for frame in frames:
            if frame.type is not self._incoming:
                raise FrameError(f"a {frame.type.name.lower()} frame sent the wrong way")
        return frames


class TcpClientCodec(_Side):
    """The bridge's end: requests out, replies in (``ClientCodec``)."""

    _incoming = FrameType.REPLY

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self._events: list[Reply | Undelivered] = []

    def connection_made(self, now: float) -> None:
        super().connection_made(now)
        self._events.clear()

    def send_request(self, request: Request, now: float) -> None:
        self._out += request_frame(request).to_bytes()

    def receive_data(self, data: bytes, now: float) -> None:
        for frame in self._frames(data):
            try:
                reply = messages.decode_reply(frame.payload)
            except WireFormatError as exc:
                # The frame is whole and its CRC good, so the stream is still in step; only
                # this reply is unreadable. The POS may have acted on the request.
                self._events.append(Undelivered(frame.request_id, f"unreadable reply: {exc}"))
                continue
            if reply.id != frame.request_id:
                reason = f"reply ids disagree: header {frame.request_id}, payload {reply.id}"
                self._events.append(Undelivered(frame.request_id, reason))
                continue
            self._events.append(reply)

    def events_received(self) -> list[Reply | Undelivered]:
        events, self._events = self._events, []
        return events


class TcpPosCodec(_Side):
    """The POS's end: requests in, replies out (``PosCodec``).

    A request frame whose payload is not a valid request, or whose ids disagree, is answered
    at once with ``bad_request`` under the header's id, so the bridge is not left waiting.
    """

    _incoming = FrameType.REQUEST

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self._requests: list[Request] = []

    def connection_made(self, now: float) -> None:
        super().connection_made(now)
        self._requests.clear()

    def receive_data(self, data: bytes, now: float) -> None:
        for frame in self._frames(data):
            try:
                request = messages.decode_request(frame.payload)
                if request.id != frame.request_id:
                    raise WireFormatError(
                        f"id {request.id} disagrees with the header's {frame.request_id}"
                    )
            except WireFormatError as exc:
                error = ErrorInfo("bad_request", str(exc))
                self.send_reply(Reply(frame.request_id, error=error), now)
                continue
            self._requests.append(request)

    def requests_received(self) -> list[Request]:
        requests, self._requests = self._requests, []
        return requests

    def send_reply(self, reply: Reply, now: float) -> None:
        self._out += reply_frame(reply).to_bytes()
