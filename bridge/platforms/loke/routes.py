"""LOKE's pay-at-table URLs, per linked location (``docs/loke-pay-at-table.md``).

Each handler takes the request's parts to one of ``operations.py`` (which checks the caller,
parses, and asks the location's backend, ``backend.py``) and sends its answer; nothing else.
"""

from __future__ import annotations

from aiohttp import web

from bridge.platforms.loke import operations
from bridge.platforms.loke.backend import LOKE_BACKEND
from common.responses import answer_response

PREFIX = "/loke/v1/locations/{location}"
routes = web.RouteTableDef()


@routes.get(PREFIX + "/tables")
async def list_tables(request: web.Request) -> web.Response:
    backend, key = request.app[LOKE_BACKEND], request.match_info["location"]
    return answer_response(
        await operations.tables(backend, key, request.headers, await request.read())
    )


@routes.get(PREFIX + "/tables/{table}/bill")
async def fetch_table_bill(request: web.Request) -> web.Response:
    backend, key = request.app[LOKE_BACKEND], request.match_info["location"]
    table, body = request.match_info["table"], await request.read()
    return answer_response(await operations.bill(backend, key, table, request.headers, body))


@routes.post(PREFIX + "/tables/{table}/payments")
async def add_payment(request: web.Request) -> web.Response:
    backend, key = request.app[LOKE_BACKEND], request.match_info["location"]
    table, body = request.match_info["table"], await request.read()
    # The header as platforms send it skips aiohttp's Content-Type parser; anything else
    # (parameters, other case) is parsed and judged as before.
    json_body = (
        request.headers.get("Content-Type") == "application/json"
        or request.content_type == "application/json"
    )
    unsupported = None if json_body else request.content_type
    return answer_response(
        await operations.payment(backend, key, table, request.headers, body, unsupported)
    )


@routes.get(PREFIX + "/payments/{payment_id:[^/]+}")  # an id may hold { or }
async def payment_status(request: web.Request) -> web.Response:
    backend, key = request.app[LOKE_BACKEND], request.match_info["location"]
    payment_id, body = request.match_info["payment_id"], await request.read()
    return answer_response(
        await operations.payment_status(backend, key, payment_id, request.headers, body)
    )
