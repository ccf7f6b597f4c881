"""LOKE's pay-at-table URLs, per linked location (``docs/loke-pay-at-table.md``).

Each handler parses, checks the caller, calls one service, and renders; nothing else.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge.errors import NotFoundError, UnsupportedMediaTypeError
from bridge.http.auth import check_platform_auth
from bridge.http.fields import parse_table_number
from bridge.http.json_body import decode_json
from bridge.http.responses import json_response
from bridge.platforms.loke import PLATFORM
from bridge.platforms.loke.contract import (
    LokeRenderer,
    bill_json,
    parse_payment,
    payment_status_json,
)
from bridge.runtime import RUNTIME, Runtime
from bridge.services.payments import PaymentRequest

PREFIX = "/loke/v1/locations/{location}"
routes = web.RouteTableDef()
_RENDER = LokeRenderer()


async def _authorised(request: web.Request) -> tuple[Runtime, Any, bytes]:
    """The runtime, the linked location and the raw body, once the caller is proven."""
    runtime = request.app[RUNTIME]
    location = runtime.config.locations.get(request.match_info["location"])
    body = await request.read()
    check_platform_auth(request, location.auth if location else None, body)
    return runtime, location, body


@routes.get(PREFIX + "/tables")
async def list_tables(request: web.Request) -> web.Response:
    runtime, location, _ = await _authorised(request)
    tables = await runtime.payments.tables(location)
    return json_response(
        {
            "locationId": location.loke_location_id,
            "tables": [{"number": t.number, "name": t.name} for t in tables],
        }
    )


@routes.get(PREFIX + "/tables/{table}/bill")
async def fetch_table_bill(request: web.Request) -> web.Response:
    runtime, location, _ = await _authorised(request)
    table = parse_table_number(request.match_info["table"])
    bill = await runtime.payments.open_bill(location, table)
    return json_response(bill_json(bill), headers={"ETag": f'"{bill.version}"'})


@routes.post(PREFIX + "/tables/{table}/payments")
async def add_payment(request: web.Request) -> web.Response:
    runtime, location, raw = await _authorised(request)
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
    body = parse_payment(decode_json(raw), location.loke_location_id, table)
    outcome = await runtime.payments.take_payment(
        PaymentRequest(
            platform=PLATFORM,
            location=location,
            table=table,
            payment_id=body.payment_id,
            claim=body.claim,
            label=body.label,
            fingerprint=body.fingerprint,
        ),
        _RENDER,
    )
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return json_response(outcome.response.body, status=outcome.response.status, headers=headers)


@routes.get(PREFIX + "/payments/{payment_id:[^/]+}")  # an id may hold { or }
async def payment_status(request: web.Request) -> web.Response:
    runtime, location, _ = await _authorised(request)
    payment = await runtime.store.get_payment(PLATFORM, request.match_info["payment_id"])
    if payment is None or payment.location_id != location.loke_location_id:
        raise NotFoundError(
            "unknown_payment",
            "no payment with this id at this location",
            {"paymentId": request.match_info["payment_id"][:128]},
        )
    return json_response(payment_status_json(payment))
