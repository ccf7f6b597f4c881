"""The bridge's HTTP contract as an OpenAPI 3.1 document.

Served at ``/openapi.json`` and kept in ``docs/loke-pay-at-table.openapi.json`` (``pos-bridge
openapi`` writes it; a test fails when the two differ). The tests also hold the routes to it:
every route is documented, and what they return validates against these schemas.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import bridge
from bridge.contracts.fields import table_segment_schema
from bridge.platforms.loke.openapi_schemas import (
    component_schemas,
    error_content,
    json_content,
    lokes_bill_schema,
    query_parameters,
    ref,
)
from bridge.web.admin_bodies import PaymentsQuery

__all__ = ["lokes_bill_schema", "openapi_document"]

_LOCATION = {
    "name": "location",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The LOKE location id, as linked in the bridge's config.",
}
_TABLE = {
    "name": "table",
    "in": "path",
    "required": True,
    "schema": table_segment_schema(),
    "description": "Numeric table number (1–999999).",
}
_PLATFORM_AUTH: list[dict[str, list[str]]] = [{"lokeBearer": []}, {"lokeSignature": []}]
_ADMIN_AUTH: list[dict[str, list[str]]] = [{"adminBearer": []}]
_COMMON = {
    "400": error_content("Malformed request; details.field names the field."),
    "401": error_content("Missing or wrong credentials."),
}
_SIMULATOR = {
    "404": error_content("unknown_simulator: no driver of that name offering simulator controls."),
    "409": error_content("simulator_refused: no such table, or no open bill."),
}


def _path_param(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
    }


def _body(model: str, *, required: bool = True) -> dict[str, Any]:
    """A JSON request body of the named component; not ``required``: an empty body is
    ``{}``."""
    return {"required": required, "content": {"application/json": {"schema": ref(model)}}}


def _simulator_table_op(
    operation_id: str, summary: str, answer: str, body: dict[str, Any]
) -> dict[str, Any]:
    """A technician's simulator operation on one table, answered with the bill."""
    driver = _path_param("driver")
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "security": _ADMIN_AUTH,
            "parameters": [driver, _TABLE],
            "requestBody": body,
            "responses": {
                "200": json_content(ref("Bill"), answer),
                **_COMMON,
                **_SIMULATOR,
            },
        }
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The whole document; cached, it never changes while the bridge runs."""
    loke = "/loke/v1/locations/{location}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "POS Bridge: LOKE pay-at-table URLs",
            "version": bridge.__version__,
            "description": "The URLs a venue's POS Bridge serves to LOKE (through the relay), "
            "and the technician's API. See docs/loke-pay-at-table.md.",
        },
        "paths": {
            f"{loke}/tables": {
                "get": {
                    "operationId": "listTables",
                    "summary": "Publish the location's tables.",
                    "parameters": [_LOCATION],
                    "security": _PLATFORM_AUTH,
                    "responses": {
                        "200": json_content(ref("Tables"), "The tables."),
                        **_COMMON,
                        "503": error_content("POS unreachable (pos_offline)."),
                    },
                }
            },
            f"{loke}/tables/{{table}}/bill": {
                "get": {
                    "operationId": "fetchTableBill",
                    "summary": "Fetch table bill by table number.",
                    "parameters": [_LOCATION, _TABLE],
                    "security": _PLATFORM_AUTH,
                    "responses": {
                        "200": json_content(ref("Bill"), "The table's single open bill."),
                        **_COMMON,
                        "404": error_content("unknown_table or no_open_bill."),
                        "503": error_content("POS unreachable (pos_offline); see Retry-After."),
                    },
                }
            },
            f"{loke}/tables/{{table}}/payments": {
                "post": {
                    "operationId": "addPayment",
                    "summary": "Add payment to table bill.",
                    "parameters": [_LOCATION, _TABLE],
                    "security": _PLATFORM_AUTH,
                    "requestBody": _body("PaymentRequest"),
                    "responses": {
                        "201": json_content(ref("PaymentApplied"), "Applied to the POS."),
                        "202": json_content(
                            ref("PaymentQueued"), "Durable at the venue; POS later."
                        ),
                        **_COMMON,
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
                    "parameters": [
                        _LOCATION,
                        _path_param("paymentId"),
                    ],
                    "security": _PLATFORM_AUTH,
                    "responses": {
                        "200": json_content(ref("PaymentStatus"), "The payment."),
                        **_COMMON,
                        "404": error_content("unknown_payment."),
                    },
                }
            },
            "/api/status": {
                "get": {
                    "operationId": "status",
                    "summary": "Bridge health for technicians.",
                    "security": _ADMIN_AUTH,
                    "responses": {"200": json_content({"type": "object"}, "Status."), **_COMMON},
                }
            },
            "/api/payments": {
                "get": {
                    "operationId": "listPayments",
                    "summary": "Payments in one state.",
                    "security": _ADMIN_AUTH,
                    "parameters": query_parameters(PaymentsQuery),
                    "responses": {"200": json_content({"type": "object"}, "Payments."), **_COMMON},
                }
            },
            "/api/payments/{platform}/{paymentId}": {
                "get": {
                    "operationId": "paymentAudit",
                    "summary": "A payment and its audit trail.",
                    "security": _ADMIN_AUTH,
                    "parameters": [
                        _path_param("platform"),
                        _path_param("paymentId"),
                    ],
                    "responses": {
                        "200": json_content({"type": "object"}, "Payment and audit."),
                        **_COMMON,
                        "404": error_content("unknown_payment."),
                    },
                }
            },
            "/api/payments/{platform}/{paymentId}/retry": {
                "post": {
                    "operationId": "paymentRetry",
                    "summary": "Send a payment that needs attention back to the outbox.",
                    "security": _ADMIN_AUTH,
                    "parameters": [_path_param(n) for n in ("platform", "paymentId")],
                    "requestBody": _body("RetryRequest", required=False),
                    "responses": {
                        "200": json_content(ref("PaymentStatus"), "Queued again."),
                        **_COMMON,
                        "404": error_content("unknown_payment."),
                        "409": error_content("not_needs_attention."),
                    },
                }
            },
            "/api/drivers/{driver}/simulator": {
                "post": {
                    "operationId": "simulatorMode",
                    "summary": "Simulated POS: the modes its driver offers, latency.",
                    "security": _ADMIN_AUTH,
                    "parameters": [_path_param("driver")],
                    "requestBody": _body("SimulatorModeRequest"),
                    "responses": {
                        "200": json_content({"type": "object"}, "Mode set."),
                        **_COMMON,
                        "404": _SIMULATOR["404"],
                    },
                }
            },
            "/api/drivers/{driver}/simulator/tables/{table}/bill": _simulator_table_op(
                "simulatorSeat",
                "Open a new bill on a table.",
                "The open bill.",
                _body("SimulatorTableRequest", required=False),
            ),
            "/api/drivers/{driver}/simulator/tables/{table}/items": _simulator_table_op(
                "simulatorAddItem",
                "Add a line to an open bill.",
                "The changed bill.",
                _body("SimulatorItemRequest"),
            ),
            "/api/drivers/{driver}/simulator/tables/{table}/till-payments": _simulator_table_op(
                "simulatorPayAtTill",
                "Staff take cash at the POS itself.",
                "The bill after it.",
                _body("TillPaymentRequest"),
            ),
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {"200": {"description": "OpenAPI 3.1."}},
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness.",
                    "responses": {"200": {"description": "Alive."}},
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
                "adminBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The technician's bridge.admin_token.",
                },
            },
        },
    }
