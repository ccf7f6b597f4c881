"""JSON responses encoded by orjson.

Why not ``web.json_response``: it encodes with the standard library's ``json``, which was
about a tenth of a payment's CPU on the event loop with the other JSON on the hot path
(bench/); orjson encodes the same small bodies several times faster, to UTF-8 bytes at once.
The JSON is the same data; only non-ASCII characters are sent as UTF-8 rather than
``\\uXXXX`` escapes, which every JSON parser reads alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from common.answers import Answer


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
    """An :class:`Answer` rendered elsewhere (a service) as a response."""
    return web.Response(
        body=answer.body,
        status=answer.status,
        headers=answer.headers,
        content_type="application/json",
        charset="utf-8",
    )
