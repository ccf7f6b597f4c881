"""What each tunnel frame says: one frozen dataclass per frame type, checking its own fields.

A frame that can be built can be sent: every field is range-checked here (``ValueError``), so
the encoder never meets a value it cannot write and the decoder (``frames.py``) turns a bad
field on the wire into :class:`~tunnel.errors.MalformedFrameError`. The same classes are
the events the protocol hands to the application. Integers only: no floats anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

#: Bounds on the WELCOME's ``max_frame_bytes``; the floor guarantees a 16 KiB head always fits.
MIN_MAX_FRAME_BYTES = 16_384
MAX_MAX_FRAME_BYTES = 16_777_215
#: Largest flow-control window, as in HTTP/2 (RFC 9113 §6.9.1).
MAX_WINDOW_BYTES = 2**31 - 1
PING_PAYLOAD_BYTES = 8


class CancelCode(IntEnum):
    """Why a stream was cancelled; the 2-byte code of a CANCEL frame. Unknown codes arrive as
    plain ``int``."""

    CANCELLED = 0  # the requester went away (the platform hung up)
    TIMEOUT = 1  # the relay's deadline for the request passed
    REFUSED = 2  # not processed at all: safe to retry elsewhere
    INTERNAL_ERROR = 3
    TOO_LARGE = 4  # the body exceeds what the receiver will take


Headers = tuple[tuple[bytes, bytes], ...]


def _is_int(value: object) -> bool:
    # IntEnum members (HTTPStatus, CloseCode) are ints; bools are not, here.
    return isinstance(value, int) and not isinstance(value, bool)


def check_uint(name: str, value: int, bits: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an int (not a bool) that fits ``bits`` bits."""
    if not _is_int(value) or not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be an int in [0, 2**{bits}), not {value!r}")


def _text(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a str, not {type(value).__name__}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{name} holds a lone surrogate: not encodable as UTF-8") from None
    if size > 0xFFFF:
        raise ValueError(f"{name} is {size} UTF-8 bytes; at most 65535 fit")


def _stream(stream_id: int) -> None:
    # Every stream frame, built or decoded: a plain int is told without calling _is_int.
    if (type(stream_id) is not int and not _is_int(stream_id)) or not 0 < stream_id < 1 << 32:
        raise ValueError(f"stream id must be an int in [1, 2**32), not {stream_id!r}")


_BYTES = (bytes, bytearray)


class CheckedHeaders(tuple[tuple[bytes, bytes], ...]):
    """:data:`Headers` known to fit a frame: what :func:`make_headers` returns. A plain tuple
    otherwise (equal to, and printed as, one with the same pairs)."""

    __slots__ = ()


def make_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """Headers as the frames hold them: a tuple of ``(name, value)`` byte pairs, in order.

    Bytes, not str: HTTP header values are not always valid UTF-8, and the tunnel must carry
    them unchanged. Repeated names stay repeated.

    Headers made here (or by the decoder, whose wire format bounds them the same way) are a
    :class:`CheckedHeaders`, returned as they are: a frame built from them, or an application
    passing them on, does not check them again. Immutable, they cannot have changed since.

    Raises:
        ValueError: a name or value is not bytes, or a count or length does not fit in a u16.
    """
    if type(headers) is CheckedHeaders:
        return headers
    result: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if type(name) is not bytes or type(value) is not bytes:  # the common case is cheap
            if not isinstance(name, _BYTES) or not isinstance(value, _BYTES):
                raise ValueError("header names and values must be bytes")
            name, value = bytes(name), bytes(value)
        if len(name) > 0xFFFF or len(value) > 0xFFFF:
            raise ValueError("a header name or value is longer than 65535 bytes")
        result.append((name, value))
    if len(result) > 0xFFFF:
        raise ValueError(f"{len(result)} headers; at most 65535 fit")
    return CheckedHeaders(result)


@dataclass(frozen=True, slots=True)
class Hello:
    """Client → relay, first frame: who is calling and which versions it speaks."""

    venue_id: str
    token: str = field(repr=False)  # a credential: never in logs
    session_epoch: int
    versions: tuple[int, ...]
    bridge_version: str

    def __post_init__(self) -> None:
        _text("venue_id", self.venue_id)
        _text("token", self.token)
        _text("bridge_version", self.bridge_version)
        check_uint("session_epoch", self.session_epoch, 64)
        if not 0 < len(self.versions) < 256:
            raise ValueError("HELLO offers between 1 and 255 versions")
        for version in self.versions:
            check_uint("version", version, 16)


@dataclass(frozen=True, slots=True)
class Limits:
    """What the relay's WELCOME imposes on both directions of the connection."""

    max_frame_bytes: int = 65_536  # payload bytes per frame, header excluded
    initial_stream_window: int = 262_144  # body bytes in flight per stream
    connection_window: int = 1_048_576  # body bytes in flight over all streams
    max_concurrent_streams: int = 100  # open or half-closed streams at once
    heartbeat_interval_ms: int = 20_000  # 0: no heartbeat (websockets' default is 20 s)

    def __post_init__(self) -> None:
        if not _is_int(self.max_frame_bytes) or not (
            MIN_MAX_FRAME_BYTES <= self.max_frame_bytes <= MAX_MAX_FRAME_BYTES
        ):
            raise ValueError(
                f"max_frame_bytes must be in [{MIN_MAX_FRAME_BYTES}, {MAX_MAX_FRAME_BYTES}]"
            )
        for name in ("initial_stream_window", "connection_window", "max_concurrent_streams"):
            value = getattr(self, name)
            if not _is_int(value) or not 0 < value <= MAX_WINDOW_BYTES:
                raise ValueError(f"{name} must be an int in [1, 2**31 - 1], not {value!r}")
        check_uint("heartbeat_interval_ms", self.heartbeat_interval_ms, 32)


@dataclass(frozen=True, slots=True)
class Welcome:
    """Relay → client: the handshake succeeded; ``version`` and ``limits`` now apply."""

    version: int
    limits: Limits

    def __post_init__(self) -> None:
        check_uint("version", self.version, 16)


@dataclass(frozen=True, slots=True)
class Close:
    """Either side: the connection ends; ``code`` is a :class:`CloseCode` or an unknown int."""

    code: int
    reason: str = ""

    def __post_init__(self) -> None:
        check_uint("close code", self.code, 16)
        _text("reason", self.reason)


@dataclass(frozen=True, slots=True)
class Ping:
    """Either side: liveness probe; the receiver answers PONG with the same 8 bytes."""

    payload: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.payload, bytes) or len(self.payload) != PING_PAYLOAD_BYTES:
            raise ValueError("a PING payload is exactly 8 bytes")


@dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.payload, bytes) or len(self.payload) != PING_PAYLOAD_BYTES:
            raise ValueError("a PONG payload is exactly 8 bytes")


@dataclass(frozen=True, slots=True)
class Health:
    """Client → relay: the venue's state, for the relay's location-health endpoint.

    ``oldest_queued_age_ms`` is 0 when nothing is queued; ``clock_ms`` is the sender's wall
    clock in Unix epoch milliseconds, so the relay can estimate the venue's clock skew.
    """

    pos_online: bool
    queue_depth: int
    oldest_queued_age_ms: int
    clock_ms: int

    def __post_init__(self) -> None:
        if type(self.pos_online) is not bool:
            raise ValueError("pos_online must be a bool")
        check_uint("queue_depth", self.queue_depth, 32)
        check_uint("oldest_queued_age_ms", self.oldest_queued_age_ms, 64)
        check_uint("clock_ms", self.clock_ms, 64)


@dataclass(frozen=True, slots=True)
class WindowUpdate:
    """Either side: the receiver took ``increment`` body bytes off its buffers; stream 0 is the
    connection window."""

    stream_id: int
    increment: int

    def __post_init__(self) -> None:
        check_uint("stream id", self.stream_id, 32)
        if not _is_int(self.increment) or not 0 < self.increment <= MAX_WINDOW_BYTES:
            raise ValueError(f"increment must be in [1, 2**31 - 1], not {self.increment!r}")


@dataclass(frozen=True, slots=True)
class RequestHead:
    """Relay → client: opens a stream with an HTTP request's method, path (with query) and
    headers. The path must start with ``/`` so the bridge never forwards to another host."""

    stream_id: int
    method: str
    path: str
    headers: Headers = ()

    def __post_init__(self) -> None:
        _stream(self.stream_id)
        _text("method", self.method)
        _text("path", self.path)
        if not self.method or not self.method.isascii() or not self.method.isprintable():
            raise ValueError(f"bad method {self.method!r}")
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', not {self.path[:40]!r}")
        object.__setattr__(self, "headers", make_headers(self.headers))


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """Client → relay: the HTTP response's status and headers for a stream."""

    stream_id: int
    status: int
    headers: Headers = ()

    def __post_init__(self) -> None:
        _stream(self.stream_id)
        if not _is_int(self.status) or not 100 <= self.status <= 599:
            raise ValueError(f"status must be in [100, 599], not {self.status!r}")
        object.__setattr__(self, "headers", make_headers(self.headers))


@dataclass(frozen=True, slots=True)
class BodyChunk:
    """Either side: body bytes of a stream; counted against both flow-control windows."""

    stream_id: int
    data: bytes

    def __post_init__(self) -> None:
        _stream(self.stream_id)
        if not isinstance(self.data, bytes):
            raise ValueError(f"body data must be bytes, not {type(self.data).__name__}")


@dataclass(frozen=True, slots=True)
class EndOfBody:
    """Either side: the sender's body on this stream is complete (an empty body is one frame)."""

    stream_id: int

    def __post_init__(self) -> None:
        _stream(self.stream_id)


@dataclass(frozen=True, slots=True)
class Cancel:
    """Either side: abandon the stream; ``code`` is a :class:`CancelCode` or an unknown int."""

    stream_id: int
    code: int = CancelCode.CANCELLED

    def __post_init__(self) -> None:
        _stream(self.stream_id)
        check_uint("cancel code", self.code, 16)


#: What the protocol hands the application: every frame type but WINDOW_UPDATE, which the
#: protocol consumes itself.
Event = (
    Hello
    | Welcome
    | Close
    | Ping
    | Pong
    | Health
    | RequestHead
    | ResponseHead
    | BodyChunk
    | EndOfBody
    | Cancel
)
