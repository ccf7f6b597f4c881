"""An operation's rendered answer, the same whichever process renders and sends it.

Why rendered bytes and not objects: what an operation returns is exactly what the platform
gets, whichever route or middleware sends it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from common.errors import INTERNAL_ERROR, ApiError


class Answer(NamedTuple):
    """What the platform receives: status, the JSON body's bytes, extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] | None = None


def json_answer(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, orjson.dumps(data), headers)


#: The answer to anything unexpected (logged where it happened), as the error middleware's.
INTERNAL_ANSWER = Answer(500, orjson.dumps(INTERNAL_ERROR))


def error_answer(error: ApiError) -> Answer:
    """The bytes ``common/middleware.py`` sends for ``error``."""
    return Answer(error.status, orjson.dumps(error.body()), error.headers or None)
