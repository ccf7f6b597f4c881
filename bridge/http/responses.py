"""JSON responses encoded by orjson.

Why not ``web.json_response``: it encodes with the standard library's ``json``, which was
about a tenth of a payment's CPU on the event loop with the other JSON on the hot path
(bench/); orjson encodes the same small bodies several times faster, to UTF-8 bytes at once.
The JSON is the same data; only non-ASCII characters are sent as UTF-8 rather than
``\\uXXXX`` escapes, which every JSON parser reads alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from bridge.answers import INTERNAL_ANSWER, Answer

logger = logging.getLogger(__name__)


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``data`` as an ``application/json; charset=utf-8`` response, like ``web.json_response``.

    Raises:
        TypeError: ``data`` holds something JSON cannot (orjson's ``JSONEncodeError``).
    """
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


def answer_response(answer: Answer) -> web.Response:
    """An :class:`Answer` rendered elsewhere (the owner process, or a service) as a response."""
    return web.Response(
        body=answer.body,
        status=answer.status,
        headers=answer.headers,
        content_type="application/json",
        charset="utf-8",
    )


#: The head fields of an :class:`Answer` sent without aiohttp (the fast paths): those
#: :func:`answer_response` gets from aiohttp, in the same words.
JSON_CONTENT_TYPE = b"application/json; charset=utf-8"
SERVER = SERVER_SOFTWARE.encode("latin-1")
_date: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """Now, as HTTP's ``Date`` writes it; made once per second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True).encode("latin-1"))
    return _date[1]


def answer_fields(answer: Answer) -> list[tuple[bytes, bytes]]:
    """``answer``'s head fields, as :func:`answer_response` sends them through aiohttp.

    Raises:
        ValueError: a header of the answer holds a line break (the bridge's own headers:
            never, but never).
    """
    fields = [
        (b"Content-Type", JSON_CONTENT_TYPE),
        (b"Content-Length", str(len(answer.body)).encode("ascii")),
        (b"Date", http_date()),
        (b"Server", SERVER),
    ]
    for name, value in (answer.headers or {}).items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} holds a line break")
        fields.append((name.encode("latin-1"), value.encode("latin-1")))
    return fields


def sendable(answer: Answer) -> tuple[Answer, list[tuple[bytes, bytes]]]:
    """``answer`` and its head fields, for a fast path; an answer whose headers cannot be
    sent (:func:`answer_fields`) becomes a logged 500 ``internal_error`` instead."""
    try:
        return answer, answer_fields(answer)
    except ValueError:
        logger.exception("an answer with status %d cannot be sent", answer.status)
        return INTERNAL_ANSWER, answer_fields(INTERNAL_ANSWER)
