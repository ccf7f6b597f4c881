"""LOKE's pay-at-table URLs: their part of the bridge's OpenAPI 3.1 document.

The composition root (``bridge/app.py``) merges this part with the technician's API's
(``bridge/web/openapi.py``) into the one document served at ``/openapi.json`` and kept in
``docs/loke-pay-at-table.openapi.json`` (``pos-bridge openapi`` writes it; a test fails when
the two differ). The tests also hold the routes to it: every route is documented, and what
they return validates against these schemas.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from bridge.contracts.openapi import (
    COMMON_ERRORS,
    TABLE_PARAMETER,
    error_content,
    json_content,
    path_param,
    ref,
    request_body,
)
from bridge.platforms.loke.openapi_schemas import component_schemas, lokes_bill_schema

__all__ = ["lokes_bill_schema", "openapi_part"]

_LOCATION = {
    "name": "location",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The LOKE location id, as linked in the bridge's config.",
}
_AUTH: list[dict[str, list[str]]] = [{"lokeBearer": []}, {"lokeSignature": []}]


@cache
def openapi_part() -> dict[str, Any]:
    """LOKE's paths, schemas and credentials; cached, they never change while the bridge
    runs."""
    loke = "/loke/v1/locations/{location}"
    return {
        "paths": {
            f"{loke}/tables": {
                "get": {
                    "operationId": "listTables",
                    "summary": "Publish the location's tables.",
                    "parameters": [_LOCATION],
                    "security": _AUTH,
                    "responses": {
                        "200": json_content(ref("Tables"), "The tables."),
                        **COMMON_ERRORS,
                        "503": error_content("POS unreachable (pos_offline)."),
                    },
                }
            },
            f"{loke}/tables/{{table}}/bill": {
                "get": {
                    "operationId": "fetchTableBill",
                    "summary": "Fetch table bill by table number.",
                    "parameters": [_LOCATION, TABLE_PARAMETER],
                    "security": _AUTH,
                    "responses": {
                        "200": json_content(ref("Bill"), "The table's single open bill."),
                        **COMMON_ERRORS,
                        "404": error_content("unknown_table or no_open_bill."),
                        "503": error_content("POS unreachable (pos_offline); see Retry-After."),
                    },
                }
            },
            f"{loke}/tables/{{table}}/payments": {
                "post": {
                    "operationId": "addPayment",
                    "summary": "Add payment to table bill.",
                    "parameters": [_LOCATION, TABLE_PARAMETER],
                    "security": _AUTH,
                    "requestBody": request_body("PaymentRequest"),
                    "responses": {
                        "201": json_content(ref("PaymentApplied"), "Applied to the POS."),
                        "202": json_content(
                            ref("PaymentQueued"), "Durable at the venue; POS later."
                        ),
                        **COMMON_ERRORS,
                        "404": error_content("unknown_table."),
                        "409": error_content(
                            "bill_closed, bill_changed, in_progress, offline_limit."
                        ),
                        "413": error_content("Body too large."),
                        "415": error_content("Not application/json."),
                        "422": error_content(
                            "amount_exceeds_balance, currency_mismatch, "
                            "tips_not_allowed, idempotency_key_reused."
                        ),
                        "503": error_content(
                            "POS unreachable and no copy of the bill to check against."
                        ),
                    },
                }
            },
            f"{loke}/payments/{{paymentId}}": {
                "get": {
                    "operationId": "getPayment",
                    "summary": "Where a payment is now.",
                    "parameters": [_LOCATION, path_param("paymentId")],
                    "security": _AUTH,
                    "responses": {
                        "200": json_content(ref("PaymentStatus"), "The payment."),
                        **COMMON_ERRORS,
                        "404": error_content("unknown_payment."),
                    },
                }
            },
        },
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {
                "lokeBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Per-location secret (auth.scheme = bearer).",
                },
                "lokeSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Event-Signature",
                    "description": "sha256=<hex HMAC-SHA256 of the raw body> "
                    "(auth.scheme = hmac-sha256).",
                },
            },
        },
    }
