"""The JSON schemas of the LOKE pay-at-table contract, for the OpenAPI document.

``openapi.py`` assembles the paths; the shapes of bills, payments and errors live here.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

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


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_content(description: str) -> dict[str, Any]:
    return json_content(ref("Error"), description)


#: What Fields.string accepts: any character but a control character (Unicode Cc) or a
#: line or paragraph separator (Zl U+2028, Zp U+2029).
_NO_CONTROL = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$"

_MINOR = {"type": "integer", "minimum": 1, "maximum": MAX_MINOR}
_CURRENCY = {"type": "string", "enum": sorted(CURRENCIES)}

_PAYMENT_FIELDS = {
    "paymentId": {"type": "string"},
    "billRef": {"type": "string"},
    "currency": _CURRENCY,
    "amount": {"type": "integer"},
    "tip": {"type": "integer"},
}


def component_schemas() -> dict[str, Any]:
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
