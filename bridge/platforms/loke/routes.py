"""LOKE's pay-at-table URLs, per linked location (``docs/loke-pay-at-table.md``).

Each handler checks the caller, parses, asks the location's backend for one operation
(``backend.py``: this process's services, or the owner process behind an HTTP worker), and
sends its answer; nothing else.
"""

from __future__ import annotations

from aiohttp import web

from bridge.errors import UnsupportedMediaTypeError
from bridge.http.auth import check_platform_auth
from bridge.http.fields import parse_table_number
from bridge.http.json_body import decode_json
from bridge.http.responses import answer_response
from bridge.platforms.loke.backend import LOKE_BACKEND, LokeBackend
from bridge.platforms.loke.contract import parse_payment

PREFIX = "/loke/v1/locations/{location}"
routes = web.RouteTableDef()


async def _authorised(request: web.Request) -> tuple[LokeBackend, str, str, bytes]:
    """The backend, the linked location's key and LOKE id, and the raw body, once the caller
    is proven."""
    backend = request.app[LOKE_BACKEND]
    key = request.match_info["location"]
    location = backend.locations.get(key)
    body = await request.read()
    check_platform_auth(request, location.auth if location else None, body)
    assert location is not None  # refused above otherwise
    return backend, key, location.loke_location_id, body


@routes.get(PREFIX + "/tables")
async def list_tables(request: web.Request) -> web.Response:
    backend, location, _, _ = await _authorised(request)
    return answer_response(await backend.tables(location))


@routes.get(PREFIX + "/tables/{table}/bill")
async def fetch_table_bill(request: web.Request) -> web.Response:
    backend, location, _, _ = await _authorised(request)
    table = parse_table_number(request.match_info["table"])
    return answer_response(await backend.open_bill(location, table))


@routes.post(PREFIX + "/tables/{table}/payments")
async def add_payment(request: web.Request) -> web.Response:
    backend, location, location_id, raw = await _authorised(request)
    table = parse_table_number(request.match_info["table"])
    # The header as platforms send it skips aiohttp's Content-Type parser; anything else
    # (parameters, other case) is parsed and judged as before.
    if (
        request.headers.get("Content-Type") != "application/json"
        and request.content_type != "application/json"
    ):
        raise UnsupportedMediaTypeError(
            "unsupported_media_type",
            "send the payment as application/json",
            {"contentType": request.content_type},
        )
    body = parse_payment(decode_json(raw), location_id, table)
    return answer_response(await backend.take_payment(location, table, body))


@routes.get(PREFIX + "/payments/{payment_id:[^/]+}")  # an id may hold { or }
async def payment_status(request: web.Request) -> web.Response:
    backend, location, _, _ = await _authorised(request)
    return answer_response(await backend.payment_status(location, request.match_info["payment_id"]))
