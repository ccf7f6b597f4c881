"""The fields inside a tunnel frame's payload: packing them, and reading them back safely.

Integers are unsigned big-endian; a string is a u16 byte count then that much UTF-8; a byte
string (header names and values) is a u16 count then raw bytes; a header list is a u16 count
then that many name and value byte strings, in order (docs/tunnel-protocol.md §2). No floats,
no base64. :mod:`tunnel.frames` lays each frame type's payload out from these.

Packing trusts its input: the message dataclasses have range-checked every field, so a value
always fits its count. Reading does not: a payload comes from the peer, and every way it can
run short or hold bad UTF-8 is a :class:`~tunnel.errors.MalformedFrameError` naming the
frame type and the field, never an ``IndexError`` or ``UnicodeDecodeError``.

Every relayed request packs and reads two heads' headers, so those two loops are tuned by
instruction count: they inline their u16 lengths and bounds checks rather than call the
per-field helpers.
"""

from __future__ import annotations

from tunnel.errors import MalformedFrameError
from tunnel.messages import CheckedHeaders, Headers


def pack_u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def pack_text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return pack_u16(len(raw)) + raw


def pack_headers(headers: Headers) -> bytes:
    # Every head's hot loop: the u16 lengths inline, not through pack_u16 (two calls a header).
    parts = [len(headers).to_bytes(2, "big")]
    for name, value in headers:
        parts += (len(name).to_bytes(2, "big"), name, len(value).to_bytes(2, "big"), value)
    return b"".join(parts)


class FieldReader:
    """Reads fields off one payload; running short is a malformed frame, not an IndexError.

    Args:
        kind: the frame's type byte (a ``FrameType``), named by the errors raised.
        data: the payload.
    """

    __slots__ = ("_data", "_kind", "_pos")

    def __init__(self, kind: int, data: bytes) -> None:
        self._kind = kind
        self._data = data
        self._pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise MalformedFrameError(self._kind, f"payload ends inside {what}")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def text(self, what: str) -> str:
        raw = self.take(self.uint(2, what), what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedFrameError(self._kind, f"{what} is not valid UTF-8") from None

    def headers(self) -> Headers:
        # The hot path of every head: one bounds check per field, no method calls.
        data, pos, size = self._data, self._pos, len(self._data)
        if pos + 2 > size:
            raise MalformedFrameError(self._kind, "payload ends inside header count")
        count = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        out: list[tuple[bytes, bytes]] = []
        for _ in range(count):
            if pos + 2 > size:
                raise MalformedFrameError(self._kind, "payload ends inside header name")
            end = pos + 2 + int.from_bytes(data[pos : pos + 2], "big")
            if end + 2 > size:  # the value's length must follow the name
                what = "header name" if end > size else "header value"
                raise MalformedFrameError(self._kind, f"payload ends inside {what}")
            name = data[pos + 2 : end]
            pos = end + 2 + int.from_bytes(data[end : end + 2], "big")
            if pos > size:
                raise MalformedFrameError(self._kind, "payload ends inside header value")
            out.append((name, data[end + 2 : pos]))
        self._pos = pos
        return CheckedHeaders(out)  # bytes, and u16 counts and lengths, by the wire format

    def rest(self) -> bytes:
        return self.take(len(self._data) - self._pos, "payload")

    def end(self) -> None:
        if self._pos != len(self._data):
            extra = len(self._data) - self._pos
            raise MalformedFrameError(self._kind, f"{extra} unexpected trailing bytes")
