"""What the tunnel protocol may raise, and the CLOSE reason code each failure sends.

The tree says who is at fault and what happens next::

    TunnelError
    ├── TunnelProtocolError          the peer broke the protocol: a CLOSE with ``close_code`` is
    │   │                            queued and the connection refuses further data
    │   ├── FrameError               the bytes do not form a valid frame
    │   │   ├── FrameTooLargeError   declared length above the limit (seen in the header, before
    │   │   │                        the payload is buffered)
    │   │   ├── UnknownFrameTypeError  a type this version does not know, without MAY_IGNORE
    │   │   └── MalformedFrameError  the payload does not match its type's layout
    │   ├── UnexpectedFrameError     a valid frame from the wrong side or at the wrong moment
    │   ├── StreamStateError         a frame for a stream that is not open to it
    │   ├── FlowControlError         more body bytes than the window allowed, or a window overflow
    │   └── UnsupportedVersionError  no protocol version in common
    ├── ConnectionClosedError        the connection is closed: nothing more is sent or received
    └── TunnelUsageError             the local application misused the API (a bug on this side);
                                     the connection stays up

Errors carry their facts as fields and build their text in ``__str__``, so an I/O layer can log
the fields and the protocol can put the text in the CLOSE it sends.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class CloseCode(IntEnum):
    """Why a connection ends; the 2-byte code of a CLOSE frame (docs/tunnel-protocol.md §6).

    A receiver must accept codes it does not know (they arrive as plain ``int``).
    """

    NORMAL = 0
    GOING_AWAY = 1  # the sender is shutting down or restarting; reconnect with backoff
    PROTOCOL_ERROR = 2
    FRAME_TOO_LARGE = 3
    MALFORMED_FRAME = 4
    UNKNOWN_FRAME_TYPE = 5
    FLOW_CONTROL_ERROR = 6
    STREAM_STATE_ERROR = 7
    UNSUPPORTED_VERSION = 8  # the relay's refusal in answer to HELLO: no version in common
    UNAUTHORIZED = 9  # the relay's refusal: venue id or token not accepted; do not retry fast
    SUPERSEDED = 10  # a HELLO with a higher session epoch for the same venue took over
    TIMEOUT = 11  # heartbeat or handshake deadline missed (decided by the I/O layer)
    INTERNAL_ERROR = 12
    RATE_LIMITED = 13  # the relay's refusal: too many bad HELLOs from this address; back off


def _type_name(frame_type: int) -> str:
    # FrameType is an IntEnum defined in frames.py, which imports this module; an IntEnum
    # member has a ``name``, an unknown type number does not.
    name = getattr(frame_type, "name", None)
    return name if isinstance(name, str) else f"type 0x{frame_type:02x}"


class TunnelError(Exception):
    """Root of every tunnel error."""


class TunnelProtocolError(TunnelError):
    """The peer broke the protocol. The connection is failed with a CLOSE carrying
    ``close_code`` and ``str(error)``; the I/O layer should flush ``data_to_send()`` and close
    the transport."""

    close_code: ClassVar[CloseCode] = CloseCode.PROTOCOL_ERROR


class FrameError(TunnelProtocolError):
    """The bytes on the wire are not a frame this version can read."""

    close_code = CloseCode.MALFORMED_FRAME


class FrameTooLargeError(FrameError):
    """A header declared a payload longer than the negotiated maximum frame size.

    Raised from the 10 header bytes alone: the payload is never waited for nor buffered, so a
    peer cannot make us hold a 4 GiB frame.
    """

    close_code = CloseCode.FRAME_TOO_LARGE

    def __init__(self, frame_type: int, length: int, limit: int) -> None:
        super().__init__()
        self.frame_type = frame_type
        self.length = length
        self.limit = limit

    def __str__(self) -> str:
        kind = _type_name(self.frame_type)
        return f"{kind} frame of {self.length} bytes exceeds the {self.limit}-byte limit"


class UnknownFrameTypeError(FrameError):
    """A frame type this version does not know, and its MAY_IGNORE flag is clear."""

    close_code = CloseCode.UNKNOWN_FRAME_TYPE

    def __init__(self, frame_type: int, flags: int) -> None:
        super().__init__()
        self.frame_type = frame_type
        self.flags = flags

    def __str__(self) -> str:
        return f"unknown frame type 0x{self.frame_type:02x} (flags 0x{self.flags:02x})"


class MalformedFrameError(FrameError):
    """A known frame whose header or payload breaks its layout: short, trailing bytes, bad
    UTF-8, a value out of range, a stream id where none belongs."""

    def __init__(self, frame_type: int, detail: str) -> None:
        super().__init__()
        self.frame_type = frame_type
        self.detail = detail

    def __str__(self) -> str:
        return f"malformed {_type_name(self.frame_type)} frame: {self.detail}"


class UnexpectedFrameError(TunnelProtocolError):
    """A well-formed frame the receiver may not get: sent by the wrong side (REQUEST_HEAD from
    a client) or at the wrong moment (a second HELLO, a PING before WELCOME)."""

    def __init__(self, frame_type: int, side: str, detail: str) -> None:
        super().__init__()
        self.frame_type = frame_type
        self.side = side
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.side} did not expect {_type_name(self.frame_type)}: {self.detail}"


class StreamStateError(TunnelProtocolError):
    """A stream frame for a stream that cannot take it: never opened, already ended by its
    sender, an id that does not increase, or one stream too many."""

    close_code = CloseCode.STREAM_STATE_ERROR

    def __init__(self, stream_id: int, frame_type: int, detail: str) -> None:
        super().__init__()
        self.stream_id = stream_id
        self.frame_type = frame_type
        self.detail = detail

    def __str__(self) -> str:
        return f"{_type_name(self.frame_type)} on stream {self.stream_id}: {self.detail}"


class FlowControlError(TunnelProtocolError):
    """The peer sent ``size`` body bytes where only ``window`` were allowed, or a
    WINDOW_UPDATE pushed a window past 2**31 - 1 (``size`` is then the increment)."""

    close_code = CloseCode.FLOW_CONTROL_ERROR

    def __init__(self, stream_id: int, size: int, window: int, overflow: bool = False) -> None:
        super().__init__()
        self.stream_id = stream_id
        self.size = size
        self.window = window
        self.overflow = overflow

    def __str__(self) -> str:
        where = "connection" if self.stream_id == 0 else f"stream {self.stream_id}"
        if self.overflow:
            return f"window update of {self.size} overflows the {where} window of {self.window}"
        return f"{self.size} body bytes on {where} exceed its window of {self.window}"


class UnsupportedVersionError(TunnelProtocolError):
    """The client's offer and the relay's versions have nothing in common (or the relay chose
    a version the client never offered)."""

    close_code = CloseCode.UNSUPPORTED_VERSION

    def __init__(self, offered: tuple[int, ...], supported: tuple[int, ...]) -> None:
        super().__init__()
        self.offered = offered
        self.supported = supported

    def __str__(self) -> str:
        offered, supported = list(self.offered), list(self.supported)
        return f"no common protocol version: offered {offered}, supported {supported}"


class ConnectionClosedError(TunnelError):
    """The connection is closed (or closing, for sends). ``code`` is the CLOSE code that ended
    it, or ``None`` when the transport ended without one."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__()
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        if self.code is None:
            return "tunnel connection closed without a CLOSE frame"
        try:
            code = CloseCode(self.code).name
        except ValueError:
            code = str(self.code)
        reason = f": {self.reason}" if self.reason else ""
        return f"tunnel connection closed ({code}){reason}"


class TunnelUsageError(TunnelError, RuntimeError):
    """The application called the protocol wrongly: a bug on this side, not the peer's. Nothing
    was queued and the connection is unchanged."""

    def __init__(self, action: str, detail: str) -> None:
        super().__init__()
        self.action = action
        self.detail = detail

    def __str__(self) -> str:
        return f"cannot {self.action}: {self.detail}"
