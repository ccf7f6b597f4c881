"""The JSON schemas of LOKE's pay-at-table URLs, for their part of the OpenAPI document.

``openapi.py`` assembles the paths; the shapes come from here: bills from LOKE's own schema,
every other body from the pydantic model in ``bodies.py`` that validates or serializes it
(the building blocks are ``bridge/contracts/openapi.py``'s), so the document cannot say one
thing and the routes do another. Pure.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib.resources import files
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from bridge.contracts.openapi import Error, model_schemas
from bridge.platforms.loke.bodies import (
    PaymentApplied,
    PaymentQueued,
    PaymentRequest,
    PaymentStatus,
    Tables,
)


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


#: Every body model of LOKE's URLs, and the side of the wire it is on.
_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (PaymentRequest, "validation"),
    (PaymentApplied, "serialization"),
    (PaymentQueued, "serialization"),
    (PaymentStatus, "serialization"),
    (Tables, "serialization"),
    (Error, "serialization"),
]


@cache
def _model_schemas() -> dict[str, Any]:
    return model_schemas(_MODELS)


def component_schemas() -> dict[str, Any]:
    """LOKE's components: its ``Bill`` (LOKE's schema plus ``version``) and its bodies'."""
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
    return {"Bill": bill_with_version, **copy.deepcopy(_model_schemas())}
