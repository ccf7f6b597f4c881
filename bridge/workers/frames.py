"""The owner↔worker channel's frames, sans-I/O: bytes in, calls and answers out.

Why a channel of our own and not HTTP between the processes: the point of the workers is to
take aiohttp's request handling off the owner's core (a third of its CPU per payment), so
what reaches the owner must cost it far less than an HTTP request. One frame is a 9-byte
header (payload length, call id, kind) and a payload; many calls are in flight at once on
one connection and answers come back in any order, matched by call id (the tunnel's frames
are the model, without its flow control: a worker holds at most its own connections' calls).

Payloads: a call's arguments are an orjson array (both ends are this package); an answer is
its status, its extra headers as an orjson object (empty when none) and its body, the bytes
sent to the platform as they are.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

import orjson

from bridge.answers import Answer
from bridge.core.money import Money
from bridge.core.rules import PaymentClaim
from bridge.platforms.loke.contract import PaymentBody

_HEADER = struct.Struct(">IIB")
_ANSWER = struct.Struct(">HI")

#: Calls a worker makes (one per platform-facing operation), and the owner's answer.
HELLO = 0  # worker → owner once its listener serves: the owner may call itself ready
TABLES = 1
BILL = 2
PAYMENT = 3
PAYMENT_STATUS = 4
ANSWER = 0x80
CALLS = frozenset({HELLO, TABLES, BILL, PAYMENT, PAYMENT_STATUS})

#: The largest payload either end accepts (a bill or a body is a few KiB; the body limit is
#: at most 16 MiB, ``server.max_body_bytes``).
MAX_PAYLOAD = 32 * 1024 * 1024


class ChannelProtocolError(ValueError):
    """The peer sent what this end cannot read: the channel is closed."""


class Frame(NamedTuple):
    kind: int
    call_id: int
    payload: bytes


def encode_call(kind: int, call_id: int, args: list[Any]) -> bytes:
    payload = orjson.dumps(args)
    return _HEADER.pack(len(payload), call_id, kind) + payload


def payment_args(location: str, table: int, body: PaymentBody) -> list[Any]:
    """A ``PAYMENT`` call's arguments, in the one order both ends read them."""
    claim = body.claim
    return [
        location,
        table,
        body.payment_id,
        claim.bill_ref,
        claim.bill_version,
        claim.amount.currency,
        claim.amount.minor,
        claim.tip.minor,
        body.label,
        body.fingerprint,
    ]


def payment_from_args(args: list[Any]) -> tuple[str, int, PaymentBody]:
    """The location, table and payment of a ``PAYMENT`` call (:func:`payment_args`)."""
    location, table, payment_id, bill_ref, version, currency, amount, tip, label, fp = args
    claim = PaymentClaim(bill_ref, version, Money(amount, currency), Money(tip, currency))
    return location, table, PaymentBody(payment_id, claim, label, fp)


def decode_args(payload: bytes) -> list[Any]:
    try:
        args = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ChannelProtocolError(f"call arguments are not JSON: {exc}") from exc
    if not isinstance(args, list):
        raise ChannelProtocolError("call arguments must be an array")
    return args


def encode_answer(call_id: int, answer: Answer) -> bytes:
    headers = orjson.dumps(answer.headers) if answer.headers else b""
    size = _ANSWER.size + len(headers) + len(answer.body)
    return b"".join(
        (
            _HEADER.pack(size, call_id, ANSWER),
            _ANSWER.pack(answer.status, len(headers)),
            headers,
            answer.body,
        )
    )


def decode_answer(payload: bytes) -> Answer:
    if len(payload) < _ANSWER.size:
        raise ChannelProtocolError("answer shorter than its header")
    status, headers_len = _ANSWER.unpack_from(payload)
    end = _ANSWER.size + headers_len
    if end > len(payload):
        raise ChannelProtocolError("answer headers run past the frame")
    headers = None
    if headers_len:
        try:
            headers = orjson.loads(payload[_ANSWER.size : end])
        except orjson.JSONDecodeError as exc:
            raise ChannelProtocolError(f"answer headers are not JSON: {exc}") from exc
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ChannelProtocolError("answer headers must map strings to strings")
    return Answer(status, payload[end:], headers)


class FrameReader:
    """Cuts a byte stream into frames, however it was split."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buffer = bytearray()
        self._max_payload = max_payload

    def feed(self, data: bytes) -> list[Frame]:
        """Every frame ``data`` completes, in order.

        Raises:
            ChannelProtocolError: a frame is over the size limit or of an unknown kind.
        """
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        start = 0
        header = _HEADER.size
        while len(buffer) - start >= header:
            size, call_id, kind = _HEADER.unpack_from(buffer, start)
            if size > self._max_payload:
                raise ChannelProtocolError(f"frame of {size} bytes is over the limit")
            if kind != ANSWER and kind not in CALLS:
                raise ChannelProtocolError(f"unknown frame kind {kind}")
            end = start + header + size
            if end > len(buffer):
                break
            frames.append(Frame(kind, call_id, bytes(buffer[start + header : end])))
            start = end
        if start:
            del buffer[:start]
        return frames

    @property
    def buffered(self) -> int:
        return len(self._buffer)
