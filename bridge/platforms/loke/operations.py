"""LOKE's four operations from a request's parts: who is calling, what they sent.

Why apart from ``routes.py``: the checks, their order and the answers live in one place,
apart from aiohttp's request objects. Each checks the caller first (401 for a location
that is not linked, exactly as for a wrong secret), then its path parameters, then asks the
location's backend.
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.contracts.fields import parse_table_number
from bridge.contracts.json_body import decode_json
from bridge.platforms.loke.backend import LokeBackend
from bridge.platforms.loke.contract import parse_payment
from bridge.web.auth import check_platform_auth
from common.answers import Answer
from common.errors import UnsupportedMediaTypeError

#: A request's headers: a case-insensitive mapping (aiohttp's), or names in lower case.
Headers = Mapping[str, str]


def _check_caller(backend: LokeBackend, key: str, headers: Headers, body: bytes) -> str:
    """The linked location's LOKE id, once the caller is proven."""
    location = backend.locations.get(key)
    check_platform_auth(headers, location.auth if location else None, body)
    assert location is not None  # refused above otherwise
    return location.location_id


async def tables(backend: LokeBackend, key: str, headers: Headers, body: bytes) -> Answer:
    _check_caller(backend, key, headers, body)
    return await backend.tables(key)


async def bill(backend: LokeBackend, key: str, table: str, headers: Headers, body: bytes) -> Answer:
    _check_caller(backend, key, headers, body)
    return await backend.open_bill(key, parse_table_number(table))


async def payment(
    backend: LokeBackend,
    key: str,
    table: str,
    headers: Headers,
    body: bytes,
    unsupported_type: str | None = None,
) -> Answer:
    """An "add payment"; ``unsupported_type`` is the body's media type when the server found
    it is not JSON (refused with 415 once the caller and the table are known good)."""
    location_id = _check_caller(backend, key, headers, body)
    number = parse_table_number(table)
    if unsupported_type is not None:
        raise UnsupportedMediaTypeError(
            "unsupported_media_type",
            "send the payment as application/json",
            {"contentType": unsupported_type},
        )
    parsed = parse_payment(decode_json(body), location_id, number)
    return await backend.take_payment(key, number, parsed)


async def payment_status(
    backend: LokeBackend, key: str, payment_id: str, headers: Headers, body: bytes
) -> Answer:
    _check_caller(backend, key, headers, body)
    return await backend.payment_status(key, payment_id)
