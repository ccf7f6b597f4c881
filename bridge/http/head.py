"""Requests the fast paths answer themselves, told apart from every other request, sans I/O.

Why: aiohttp's request and response machinery (protocol, router, request and response
objects, writer) was most of an HTTP worker's CPU per payment, of the bridge's per tunnelled
request and of the relay's per relayed one (py-spy, ``docs/scaling.md``). Three fast paths go
around it: a worker's listener (``bridge/workers/fastpath.py``: LOKE's four URLs, read here by
:func:`read_request`), the relay's public listener (``bridge/relay/fastpath.py``: ``/v/…``,
with :func:`read_head` and :func:`body_of`) and the tunnel (``bridge/uplink/fastpath.py``,
whose requests arrive framed, and which uses :func:`loke_route` and :func:`plain_headers`).
All accept only a narrow, unambiguous form and leave everything else to aiohttp.

On a listener that is a **hand-over**: the connection goes to aiohttp whole, from the first
byte of that request on, and aiohttp answers it (and whatever follows on the connection)
exactly as without this module, its errors included. So this parser never has to be lenient,
never rejects anything itself, and cannot disagree with aiohttp about where a request ends:
it only ever frames requests by one plain ``Content-Length``; chunked bodies, ``Expect``,
``Upgrade``, repeated headers, folded lines, control characters, bare LFs, targets outside
the caller's pattern, HTTP/1.0, other methods and other URLs are all aiohttp's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

#: A head longer than this is handed over (aiohttp answers oversized lines and fields).
MAX_HEAD_BYTES = 8 * 1024

#: LOKE's request line: unreserved characters only in the path, no query.
LOKE_REQUEST_LINE = re.compile(rb"(GET|POST) (/[A-Za-z0-9._~/-]*) HTTP/1\.1")
#: A field's name (a token) and its value (visible ASCII, spaces and tabs): one character
#: class each, so matching is linear in the line.
TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VALUE = re.compile(rb"[\x20-\x7e\t]*")
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
#: Headers whose presence alone hands the request over: framing and protocol changes.
_HANDED_OVER = frozenset({b"transfer-encoding", b"expect", b"upgrade", b"te", b"trailer"})


class Route(Enum):
    TABLES = "tables"
    BILL = "bill"
    PAYMENT = "payment"
    PAYMENT_STATUS = "payment_status"


@dataclass(frozen=True, slots=True)
class Head:
    """A plain request head: method, target, fields as sent (in order, names as spelled),
    the same as a dict (names lower-cased, each at most once), the body's length, where the
    body starts in the buffer, and whether to close after the answer."""

    method: bytes
    target: str
    fields: list[tuple[bytes, bytes]]
    headers: dict[str, str]
    body_length: int
    body_start: int
    close: bool


@dataclass(frozen=True, slots=True)
class FastRequest:
    """A LOKE request a worker answers itself: which route, its path parameters, its headers
    (names lower-cased, each at most once), its body, and whether to close afterwards."""

    route: Route
    location: str
    table: str | None
    payment_id: str | None
    headers: dict[str, str]
    body: bytes
    close: bool
    length: int  # bytes of the buffer it used: head and body


class HandOver:
    """Anything else: aiohttp takes the connection from this request's first byte."""


HAND_OVER = HandOver()


def read_head(
    buffer: bytes | bytearray, max_body: int, request_line: re.Pattern[bytes]
) -> Head | HandOver | None:
    """The plain head at the start of ``buffer`` whose request line matches ``request_line``
    (groups: method, target), :data:`HAND_OVER`, or ``None`` while it is incomplete. A body
    over ``max_body`` (or any on a GET) is handed over: aiohttp answers 413 or streams it."""
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES)
    head = buffer[:end] if end >= 0 else buffer[:MAX_HEAD_BYTES]
    if head.count(b"\n") != head.count(b"\r\n"):
        return HAND_OVER  # a line ending in a bare LF: this head would never end here
    if end < 0:
        return HAND_OVER if len(buffer) >= MAX_HEAD_BYTES else None
    lines = bytes(head).split(b"\r\n")
    line = request_line.fullmatch(lines[0])
    if line is None:
        return HAND_OVER
    method, target = line.group(1), line.group(2).decode("ascii")
    fields = []
    for raw in lines[1:]:
        name, colon, value = raw.partition(b":")
        if not colon:
            return HAND_OVER
        fields.append((name, value))
    headers = plain_headers(fields)
    if headers is None:
        return HAND_OVER
    length = _content_length(headers.get("content-length"), method, max_body)
    close = _closes(headers.get("connection"))
    if length is None or close is None:
        return HAND_OVER
    return Head(method, target, fields, headers, length, end + 4, close)


def body_of(buffer: bytes | bytearray, head: Head) -> bytes | None:
    """``head``'s body, or ``None`` while the buffer does not hold all of it yet."""
    end = head.body_start + head.body_length
    return bytes(buffer[head.body_start : end]) if len(buffer) >= end else None


def read_request(buffer: bytes | bytearray, max_body: int) -> FastRequest | HandOver | None:
    """The LOKE request at the start of ``buffer``: a :class:`FastRequest`,
    :data:`HAND_OVER`, or ``None`` while its head or body is still incomplete."""
    head = read_head(buffer, max_body, LOKE_REQUEST_LINE)
    if not isinstance(head, Head):
        return head
    route = loke_route(head.method, head.target)
    if route is None:
        return HAND_OVER
    if head.method == b"POST" and head.headers.get("content-type") != "application/json":
        return HAND_OVER  # parameters, other types: aiohttp's parser and its 415
    body = body_of(buffer, head)
    if body is None:
        return None
    kind, location, table, payment_id = route
    return FastRequest(
        kind,
        location,
        table,
        payment_id,
        head.headers,
        body,
        head.close,
        head.body_start + head.body_length,
    )


def plain_headers(fields: list[tuple[bytes, bytes]]) -> dict[str, str] | None:
    """Header fields as a dict (names lower-cased, values without surrounding whitespace),
    or ``None`` if any is not plain: a name not a token, a value with a control (other than
    tab) or a non-ASCII byte, a name given twice, or a header that changes the framing or the
    protocol. Folded lines never reach here: their name is not a token."""
    headers: dict[str, str] = {}
    for name, value in fields:
        if not TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
            return None  # controls, non-ASCII, not a token: aiohttp's to judge
        lower = name.lower()
        if lower in _HANDED_OVER:
            return None
        key = lower.decode("ascii")
        if key in headers:
            return None  # which one counts is aiohttp's to say
        headers[key] = value.strip(b" \t").decode("ascii")
    return headers


def loke_route(method: bytes, target: str) -> tuple[Route, str, str | None, str | None] | None:
    """LOKE's four URLs (``bridge/platforms/loke/routes.py``): the route, location, table and
    payment id; each segment unreserved characters only (nothing to decode)."""
    parts = target.split("/")
    if len(parts) < 6 or parts[:4] != ["", "loke", "v1", "locations"]:
        return None
    if not all(_SEGMENT.fullmatch(part) for part in parts[4:]):
        return None
    location = parts[4]
    if method == b"GET" and len(parts) == 6 and parts[5] == "tables":
        return Route.TABLES, location, None, None
    if len(parts) == 8 and parts[5] == "tables":
        if method == b"GET" and parts[7] == "bill":
            return Route.BILL, location, parts[6], None
        if method == b"POST" and parts[7] == "payments":
            return Route.PAYMENT, location, parts[6], None
    if method == b"GET" and len(parts) == 7 and parts[5] == "payments":
        return Route.PAYMENT_STATUS, location, None, parts[6]
    return None


def _content_length(value: str | None, method: bytes, max_body: int) -> int | None:
    """The body's length; ``None`` hands over (a GET with a body, a length not plain digits,
    one over the limit: aiohttp answers 413)."""
    if value is None:
        return 0
    if not value.isdigit() or not value.isascii() or len(value) > 9:
        return None
    length = int(value)
    if length > max_body or (method == b"GET" and length):
        return None
    return length


def _closes(value: str | None) -> bool | None:
    """Whether ``Connection`` asks to close after this answer; ``None`` hands over."""
    if value is None:
        return False
    tokens = {token.strip().lower() for token in value.split(",")}
    if tokens <= {"keep-alive"}:
        return False
    if tokens <= {"close", "keep-alive"}:
        return True
    return None
