"""The bridge's HTTP contract as an OpenAPI 3.1 document.

Served at ``/openapi.json`` and kept in ``docs/loke-pay-at-table.openapi.json`` (``pos-bridge
openapi`` writes it; a test fails when the two differ). The tests also hold the routes to it:
every route is documented, and what they return validates against these schemas.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

import bridge
from bridge.core.money import CURRENCIES
from bridge.http.fields import MAX_MINOR


def lokes_bill_schema() -> dict[str, Any]:
    """LOKE's own ``TableBills.Bill`` schema, as copied into the package."""
    text = files("bridge.platforms.loke").joinpath("schemas/bill.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _openapi_safe(bill: dict[str, Any]) -> dict[str, Any]:
    """LOKE's schema gives ``items[].quantity`` a default of 0 below its own minimum of 1;
    OpenAPI validators reject that, so the embedded copy drops the default (the file in
    ``schemas/`` stays verbatim)."""
    quantity = bill["properties"]["items"]["items"]["properties"]["quantity"]
    if quantity.get("default", 1) < quantity.get("minimum", 0):
        quantity.pop("default")
    return bill


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


#: What Fields.string accepts: any character but a control character (Unicode Cc).
_NO_CONTROL = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"

_MINOR = {"type": "integer", "minimum": 1, "maximum": MAX_MINOR}
_CURRENCY = {"type": "string", "enum": sorted(CURRENCIES)}

_PAYMENT_FIELDS = {
    "paymentId": {"type": "string"},
    "billRef": {"type": "string"},
    "currency": _CURRENCY,
    "amount": {"type": "integer"},
    "tip": {"type": "integer"},
}


def _schemas() -> dict[str, Any]:
    bill = _openapi_safe(lokes_bill_schema())
    bill_with_version = {
        "allOf": [bill],
        "properties": {
            "version": {
                "type": "string",
                "description": "Opaque token that changes whenever the bill changes. Quote it "
                "as billVersion when paying.",
            }
        },
        "required": ["version", "table", "tipsAllowed"],
    }
    return {
        "Bill": bill_with_version,
        "Error": {
            "type": "object",
            "required": ["error", "message", "details"],
            "properties": {
                "error": {"type": "string", "description": "Stable machine-readable code."},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
            "additionalProperties": False,
        },
        "PaymentRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["paymentId", "billRef", "billVersion", "currency", "amount"],
            "properties": {
                "paymentId": {
                    "type": "string",
                    "pattern": "^[!-~]{1,128}$",
                    "description": "LOKE's payment id: the idempotency key.",
                },
                "billRef": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 128,
                    "pattern": _NO_CONTROL,
                    "description": "The bill's id, as fetched.",
                },
                "billVersion": {
                    "type": "string",
                    "pattern": "^[!-~]{1,64}$",
                    "description": "The bill's version, as fetched.",
                },
                "currency": _CURRENCY,
                "amount": {**_MINOR, "description": "Minor units paid toward the balance."},
                "tip": {
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "maximum": MAX_MINOR,
                    "default": 0,
                },
                "name": {
                    "type": ["string", "null"],
                    "minLength": 1,
                    "maxLength": 100,
                    "pattern": _NO_CONTROL,
                    "description": "Label shown on the POS.",
                },
                "customer": {
                    "type": ["object", "null"],
                    "additionalProperties": False,
                    "properties": {
                        k: {
                            "type": ["string", "null"],
                            "minLength": 1,
                            "maxLength": 256,
                            "pattern": _NO_CONTROL,
                        }
                        for k in ("id", "firstName", "lastName", "email", "phoneNumber")
                    },
                },
            },
        },
        "PaymentApplied": {
            "type": "object",
            "required": ["status", *_PAYMENT_FIELDS, "posReference"],
            "properties": {
                "status": {"const": "applied"},
                **_PAYMENT_FIELDS,
                "posReference": {"type": "string"},
                "balance": {"type": "integer", "minimum": 0},
                "billClosed": {"type": "boolean"},
                "billVersion": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "PaymentQueued": {
            "type": "object",
            "required": ["status", *_PAYMENT_FIELDS, "message"],
            "properties": {
                "status": {"const": "queued"},
                **_PAYMENT_FIELDS,
                "message": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "PaymentStatus": {
            "type": "object",
            "required": [*_PAYMENT_FIELDS, "state", "table", "created", "updated"],
            "properties": {
                **_PAYMENT_FIELDS,
                "state": {"enum": ["queued", "applying", "applied", "rejected", "needs_attention"]},
                "posReference": {"type": ["string", "null"]},
                "table": {"type": "integer"},
                "created": {"type": "string", "format": "date-time"},
                "updated": {"type": "string", "format": "date-time"},
            },
            "additionalProperties": False,
        },
        "Tables": {
            "type": "object",
            "required": ["locationId", "tables"],
            "properties": {
                "locationId": {"type": "string"},
                "tables": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["number", "name"],
                        "properties": {
                            "number": {"type": "integer", "minimum": 1},
                            "name": {"type": "string"},
                        },
                    },
                },
            },
        },
    }


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
    "schema": {"type": "string", "pattern": "^[0-9]{1,6}$"},
    "description": "Numeric table number (1–999999).",
}
_PLATFORM_AUTH = [{"lokeBearer": []}, {"lokeSignature": []}]
_ADMIN_AUTH = [{"adminBearer": []}]
_COMMON = {
    "400": _error("Malformed request; details.field names the field."),
    "401": _error("Missing or wrong credentials."),
}
_SIMULATOR = {
    "404": _error("unknown_simulator: no simulator driver of that name."),
    "409": _error("simulator_refused: no such table, or no open bill."),
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
                        "200": _json(_ref("Tables"), "The tables."),
                        **_COMMON,
                        "503": _error("POS unreachable (pos_offline)."),
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
                        "200": _json(_ref("Bill"), "The table's single open bill."),
                        **_COMMON,
                        "404": _error("unknown_table or no_open_bill."),
                        "503": _error("POS unreachable (pos_offline); see Retry-After."),
                    },
                }
            },
            f"{loke}/tables/{{table}}/payments": {
                "post": {
                    "operationId": "addPayment",
                    "summary": "Add payment to table bill.",
                    "parameters": [_LOCATION, _TABLE],
                    "security": _PLATFORM_AUTH,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("PaymentRequest")}},
                    },
                    "responses": {
                        "201": _json(_ref("PaymentApplied"), "Applied to the POS."),
                        "202": _json(_ref("PaymentQueued"), "Durable at the venue; POS later."),
                        **_COMMON,
                        "404": _error("unknown_table."),
                        "409": _error("bill_closed, bill_changed, in_progress, offline_limit."),
                        "413": _error("Body too large."),
                        "415": _error("Not application/json."),
                        "422": _error(
                            "amount_exceeds_balance, currency_mismatch, "
                            "tips_not_allowed, idempotency_key_reused."
                        ),
                        "503": _error("POS unreachable and no copy of the bill to check against."),
                    },
                }
            },
            f"{loke}/payments/{{paymentId}}": {
                "get": {
                    "operationId": "getPayment",
                    "summary": "Where a payment is now.",
                    "parameters": [
                        _LOCATION,
                        {
                            "name": "paymentId",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "security": _PLATFORM_AUTH,
                    "responses": {
                        "200": _json(_ref("PaymentStatus"), "The payment."),
                        **_COMMON,
                        "404": _error("unknown_payment."),
                    },
                }
            },
            "/api/status": {
                "get": {
                    "operationId": "status",
                    "summary": "Bridge health for technicians.",
                    "security": _ADMIN_AUTH,
                    "responses": {"200": _json({"type": "object"}, "Status."), **_COMMON},
                }
            },
            "/api/payments": {
                "get": {
                    "operationId": "listPayments",
                    "summary": "Payments in one state.",
                    "security": _ADMIN_AUTH,
                    "parameters": [{"name": "state", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": _json({"type": "object"}, "Payments."), **_COMMON},
                }
            },
            "/api/payments/{platform}/{paymentId}": {
                "get": {
                    "operationId": "paymentAudit",
                    "summary": "A payment and its audit trail.",
                    "security": _ADMIN_AUTH,
                    "parameters": [
                        {
                            "name": "platform",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "paymentId",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _json({"type": "object"}, "Payment and audit."),
                        **_COMMON,
                        "404": _error("unknown_payment."),
                    },
                }
            },
            "/api/drivers/{driver}/simulator": {
                "post": {
                    "operationId": "simulatorMode",
                    "summary": "Simulated POS: online/offline/failing, latency.",
                    "security": _ADMIN_AUTH,
                    "parameters": [
                        {
                            "name": "driver",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["mode"],
                                    "properties": {
                                        "mode": {"enum": ["online", "offline", "failing", "lossy"]},
                                        "latencyMs": {"type": "integer", "minimum": 0},
                                    },
                                }
                            }
                        }
                    },
                    "responses": {
                        "200": _json({"type": "object"}, "Mode set."),
                        **_COMMON,
                        "404": _SIMULATOR["404"],
                    },
                }
            },
            "/api/drivers/{driver}/simulator/tables/{table}/bill": {
                "post": {
                    "operationId": "simulatorSeat",
                    "summary": "Open a new bill on a table.",
                    "security": _ADMIN_AUTH,
                    "parameters": [
                        {
                            "name": "driver",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        _TABLE,
                    ],
                    "responses": {
                        "200": _json(_ref("Bill"), "The open bill."),
                        **_COMMON,
                        **_SIMULATOR,
                    },
                }
            },
            "/api/drivers/{driver}/simulator/tables/{table}/items": {
                "post": {
                    "operationId": "simulatorAddItem",
                    "summary": "Add a line to an open bill.",
                    "security": _ADMIN_AUTH,
                    "parameters": [
                        {
                            "name": "driver",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        _TABLE,
                    ],
                    "responses": {
                        "200": _json(_ref("Bill"), "The changed bill."),
                        **_COMMON,
                        **_SIMULATOR,
                    },
                }
            },
            "/api/drivers/{driver}/simulator/tables/{table}/till-payments": {
                "post": {
                    "operationId": "simulatorPayAtTill",
                    "summary": "Staff take cash at the POS itself.",
                    "security": _ADMIN_AUTH,
                    "parameters": [
                        {
                            "name": "driver",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        _TABLE,
                    ],
                    "responses": {
                        "200": _json(_ref("Bill"), "The bill after it."),
                        **_COMMON,
                        **_SIMULATOR,
                    },
                }
            },
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
            "schemas": _schemas(),
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
