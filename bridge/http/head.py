"""LOKE's four URLs told apart from every other request, for the fast paths, sans I/O.

Why: aiohttp's request and response machinery (protocol, router, request and response
objects, writer) was most of an HTTP worker's CPU per payment, and of the bridge's per
tunnelled request (py-spy, ``docs/scaling.md``). Two fast paths answer LOKE's URLs without
it: a worker's listener (``bridge/workers/fastpath.py``, which reads raw HTTP/1.1 here with
:func:`read_request`) and the tunnel (``bridge/uplink/fastpath.py``, whose requests arrive
framed, and which uses :func:`loke_route` and :func:`plain_headers`). Both accept only a
narrow, unambiguous form and leave everything else to aiohttp.

On a worker's listener that is a **hand-over**: the connection goes to aiohttp whole, from
the first byte of that request on, and aiohttp answers it (and whatever follows on the
connection) exactly as without this module, its errors included. So this parser never has
to be lenient, never rejects anything itself, and cannot disagree with aiohttp about where a
request ends: it only ever frames requests by one plain ``Content-Length``; chunked bodies,
``Expect``, ``Upgrade``, repeated headers, folded lines, control characters, bare LFs,
percent-encoded or query-carrying targets, HTTP/1.0, other methods and other URLs are all
aiohttp's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

#: A head longer than this is handed over (aiohttp answers oversized lines and fields).
MAX_HEAD_BYTES = 8 * 1024

_REQUEST_LINE = re.compile(rb"(GET|POST) (/[A-Za-z0-9._~/-]*) HTTP/1\.1")
#: A field's name (a token) and its value (visible ASCII, spaces and tabs): one character
#: class each, so matching is linear in the line.
_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
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
class FastRequest:
    """A request this worker answers itself: which route, its path parameters, its headers
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


def read_request(buffer: bytes | bytearray, max_body: int) -> FastRequest | HandOver | None:
    """The request at the start of ``buffer``: a :class:`FastRequest`, :data:`HAND_OVER`, or
    ``None`` while its head or body is still incomplete."""
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES)
    head = buffer[:end] if end >= 0 else buffer[:MAX_HEAD_BYTES]
    if head.count(b"\n") != head.count(b"\r\n"):
        return HAND_OVER  # a line ending in a bare LF: this head would never end here
    if end < 0:
        return HAND_OVER if len(buffer) >= MAX_HEAD_BYTES else None
    lines = bytes(head).split(b"\r\n")
    line = _REQUEST_LINE.fullmatch(lines[0])
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
    route = loke_route(method, target)
    if headers is None or route is None:
        return HAND_OVER
    length = _content_length(headers.get("content-length"), method, max_body)
    if length is None:
        return HAND_OVER
    if method == b"POST" and headers.get("content-type") != "application/json":
        return HAND_OVER  # parameters, other types: aiohttp's parser and its 415
    close = _closes(headers.get("connection"))
    if close is None:
        return HAND_OVER
    start = end + 4
    if len(buffer) < start + length:
        return None
    kind, location, table, payment_id = route
    return FastRequest(
        kind,
        location,
        table,
        payment_id,
        headers,
        bytes(buffer[start : start + length]),
        close,
        start + length,
    )


def plain_headers(fields: list[tuple[bytes, bytes]]) -> dict[str, str] | None:
    """Header fields as a dict (names lower-cased, values without surrounding whitespace),
    or ``None`` if any is not plain: a name not a token, a value with a control (other than
    tab) or a non-ASCII byte, a name given twice, or a header that changes the framing or the
    protocol. Folded lines never reach here: their name is not a token."""
    headers: dict[str, str] = {}
    for name, value in fields:
        if not _NAME.fullmatch(name) or not _VALUE.fullmatch(value):
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
