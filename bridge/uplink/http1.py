"""HTTP/1.1 bytes between a tunnel stream and the bridge's in-process aiohttp server, sans I/O.

``dispatch.py`` hands each tunnelled request to aiohttp's own ``RequestHandler`` over an
in-memory transport, so the request must be HTTP/1.1 bytes and the answer comes back as
HTTP/1.1 bytes. This module writes the first and reads the second; it has no I/O.

Why it checks what it writes: the head's names and values come from the relay, and a CR or LF
in one would let a request smuggle a second request into the bridge's parser. Anything that
could change the framing (CR, LF, NUL, a space in the target, hop-by-hop headers, a repeated
or non-numeric ``Content-Length``) is refused here (:class:`BadTunnelRequestError`), before
a byte reaches the parser.

Why the response reader can be small: it reads only what aiohttp's ``StreamWriter`` writes to
a HTTP/1.1 keep-alive request: informational heads, then a head, then a body delimited by
``Content-Length``, by chunked encoding, or (``Connection: close``) by the end of the
connection; no body after ``HEAD`` or for 1xx, 204 and 304.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from bridge.http.headers import HOP_BY_HOP, end_to_end

#: A target with whitespace or NUL; a header name that is not a token (controls, space,
#: colon, DEL); a value with CR, LF or NUL. Regexes: one C scan over all names, one over all
#: values, on every request.
_BAD_TARGET = re.compile("[\\s\x00]")
_BAD_NAME = re.compile(rb"[\x00-\x20:\x7f]")
_BAD_VALUE = re.compile(rb"[\r\n\x00]")
#: Request headers never written: hop-by-hop ones, and ``Host`` (the bridge's own is sent).
_NOT_FORWARDED = HOP_BY_HOP | {b"host"}
#: Methods that carry no ``Content-Length: 0`` when bodiless (as aiohttp's client did).
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: Largest response head (status line and headers) accepted from the local server.
MAX_HEAD_BYTES = 256 * 1024


class BadTunnelRequestError(ValueError):
    """The relay's REQUEST_HEAD cannot be written as one unambiguous HTTP/1.1 request."""


class ResponseFramingError(ValueError):
    """The local server's bytes are not a response this reader understands."""


@dataclass(frozen=True, slots=True)
class RequestFraming:
    """How the body that follows the head is framed: raw (``Content-Length``) or chunked."""

    head: bytes
    chunked: bool


def encode_request_head(
    method: str, path: str, headers: Iterable[tuple[bytes, bytes]], host: bytes, has_body: bool
) -> RequestFraming:
    """The request line and headers for a tunnelled request; ``Host`` is the bridge's own.

    ``has_body``: whether a body follows. Without a ``Content-Length`` from the relay (the
    platform streamed its body) it is sent chunked; a bodiless POST gets ``Content-Length: 0``.
    Hop-by-hop headers are dropped, as :func:`~bridge.http.headers.end_to_end` drops them.

    Why names and values are checked joined (one scan for all names, one for all values) rather
    than one by one: a forbidden byte is in the joined bytes exactly when it is in one of them,
    and two C scans per request cost less than two per header.

    Raises:
        BadTunnelRequestError: a CR, LF or NUL anywhere, a space in the target, or an
            ambiguous ``Content-Length``.
    """
    if not path.startswith("/") or _BAD_TARGET.search(path):
        raise BadTunnelRequestError("the request target is not a plain origin-form path")
    if not method.isascii() or not method.isalpha():
        raise BadTunnelRequestError("the method is not a token")
    if not isinstance(headers, tuple | list):
        headers = list(headers)  # read twice when a Connection header names others
    lines = [f"{method} {path} HTTP/1.1\r\nHost: ".encode("ascii"), host, b"\r\n"]
    names: list[bytes] = []
    values: list[bytes] = []
    lengths: list[bytes] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in _NOT_FORWARDED:
            if lowered == b"connection":  # rare: let end_to_end drop what it names too
                return encode_request_head(method, path, end_to_end(headers), host, has_body)
            continue
        if lowered == b"content-length":
            lengths.append(value.strip())
        names.append(name)
        values.append(value)
        lines += (name, b": ", value, b"\r\n")
    if b"" in names or _BAD_NAME.search(b"".join(names)):
        raise BadTunnelRequestError("a header name is not a token")
    if _BAD_VALUE.search(b"".join(values)):
        raise BadTunnelRequestError("a header value holds CR, LF or NUL")
    if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
        raise BadTunnelRequestError("Content-Length is repeated or not a number")
    chunked = has_body and not lengths
    if chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    elif not lengths and method not in _BODILESS:
        lines.append(b"Content-Length: 0\r\n")
    lines.append(b"\r\n")
    return RequestFraming(b"".join(lines), chunked)


def chunk(data: bytes) -> bytes:
    """One piece of a chunked request body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


class Head(NamedTuple):
    """A response's final status and headers. A named tuple, not a frozen dataclass: built
    once per response, and a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``."""

    status: int
    headers: list[tuple[bytes, bytes]]


class ResponseReader:
    """Incremental HTTP/1.1 response reader: :meth:`feed` bytes, get heads and body pieces.

    ``feed`` returns a list whose items are a :class:`Head` (the final one; informational
    heads are skipped) or ``bytes`` (body). :attr:`done` turns true once the body is complete.
    """

    def __init__(self, head_request: bool) -> None:
        self._head_request = head_request
        self._buffer = b""
        self._state = "head"
        self._remaining = 0  # body bytes left: Content-Length, or the current chunk
        self.done = False
        self.head: Head | None = None
        #: False when the final head says ``Connection: close``.
        self.keep_alive = True

    def feed(self, data: bytes) -> list[Head | bytes]:
        """Take the next bytes from the local server.

        Raises:
            ResponseFramingError: bytes past the end, or not HTTP/1.1 as aiohttp writes it.
        """
        out: list[Head | bytes] = []
        if self.done:
            if data:
                raise ResponseFramingError("bytes after the end of the response")
            return out
        if self._state == "length":  # the common case: no copying through the buffer
            return self._length_body(data, out)
        if self._state == "close":
            if data:
                out.append(data)
            return out
        self._buffer += data
        while not self.done:
            if self._state == "head" and not self._read_head(out):
                break
            if self._state == "length":
                data, self._buffer = self._buffer, b""
                return self._length_body(data, out)
            if self._state == "close":
                if self._buffer:
                    out.append(self._buffer)
                self._buffer = b""
                break
            if self._state in ("chunked", "trailers") and not self._read_chunked(out):
                break
        return out

    def eof(self) -> bool:
        """The connection ended; whether the response was complete (it ends a read-to-close
        body)."""
        if self._state == "close":
            self.done = True
        return self.done

    def _read_head(self, out: list[Head | bytes]) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ResponseFramingError("the response head is too large")
            return False
        raw, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        status_line, *lines = raw.split(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ResponseFramingError(f"not a status line: {status_line[:80]!r}")
        status = int(parts[1])
        headers: list[tuple[bytes, bytes]] = []
        for line in lines:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ResponseFramingError("a header line without a colon")
            headers.append((name, value.strip()))
        if 100 <= status < 200:
            return True  # informational (100 Continue): the real head follows
        self.head = Head(status, headers)
        out.append(self.head)
        framing = {k.lower(): v for k, v in headers}
        self.keep_alive = b"close" not in framing.get(b"connection", b"").lower()
        if self._head_request or status in (204, 304):
            self.done = True
        elif b"chunked" in framing.get(b"transfer-encoding", b"").lower():
            self._state = "chunked"
            self._remaining = -1
        elif b"content-length" in framing:
            value = framing[b"content-length"]
            if not value.isdigit():
                raise ResponseFramingError("Content-Length is not a number")
            self._remaining = int(value)
            self._state = "length"
            self.done = self._remaining == 0
        else:
            self._state = "close"
        return True

    def _length_body(self, data: bytes, out: list[Head | bytes]) -> list[Head | bytes]:
        if len(data) > self._remaining:
            raise ResponseFramingError("bytes after the end of the response")
        if data:
            out.append(data)
            self._remaining -= len(data)
        self.done = self._remaining == 0
        return out

    def _read_chunked(self, out: list[Head | bytes]) -> bool:
        """One step of a chunked body; ``False`` when it needs more bytes."""
        if self._remaining < 0:  # at a size line
            end = self._buffer.find(b"\r\n")
            if end < 0:
                if len(self._buffer) > 1024:
                    raise ResponseFramingError("a chunk size line is too long")
                return False
            size = self._buffer[:end].split(b";", 1)[0].strip()
            try:
                self._remaining = int(size, 16)
            except ValueError:
                raise ResponseFramingError("a chunk size is not hexadecimal") from None
            self._buffer = self._buffer[end + 2 :]
            if self._remaining == 0:
                self._state = "trailers"
        if self._state == "trailers":
            end = self._buffer.find(b"\r\n\r\n") if not self._buffer.startswith(b"\r\n") else 0
            if end < 0:
                return False
            self._buffer = self._buffer[end + (2 if end == 0 else 4) :]
            if self._buffer:
                raise ResponseFramingError("bytes after the end of the response")
            self.done = True
            return True
        if len(self._buffer) < self._remaining + 2:
            take = min(self._remaining, len(self._buffer))
            if take:
                out.append(self._buffer[:take])
                self._buffer = self._buffer[take:]
                self._remaining -= take
            return False
        if self._remaining:
            out.append(self._buffer[: self._remaining])
        if self._buffer[self._remaining : self._remaining + 2] != b"\r\n":
            raise ResponseFramingError("a chunk does not end with CRLF")
        self._buffer = self._buffer[self._remaining + 2 :]
        self._remaining = -1
        return True
