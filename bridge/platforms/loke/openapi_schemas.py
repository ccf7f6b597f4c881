"""The JSON schemas of the LOKE pay-at-table contract, for the OpenAPI document.

``openapi.py`` assembles the paths; the shapes come from here: bills from LOKE's own schema,
every other body from the pydantic model that validates or serializes it
(``bodies.py``, ``bridge/web/admin_bodies.py``), so the document cannot say one thing and
the routes do another.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib.resources import files
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from bridge.platforms.loke.bodies import (
    Error,
    PaymentApplied,
    PaymentQueued,
    PaymentRequest,
    PaymentStatus,
    Tables,
)
from bridge.web.admin_bodies import (
    PaymentsQuery,
    RetryRequest,
    SimulatorItemRequest,
    SimulatorModeRequest,
    SimulatorTableRequest,
    TillPaymentRequest,
)

REF_TEMPLATE = "#/components/schemas/{model}"


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
    return {"$ref": REF_TEMPLATE.format(model=name)}


def json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_content(description: str) -> dict[str, Any]:
    return json_content(ref("Error"), description)


class _ContractSchema(GenerateJsonSchema):
    """pydantic's JSON Schema without a title on every field (``"title": "Paymentid"``)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


#: Every body model, and the side of the wire it is on: a request is described as it is
#: validated, a reply as it is serialized.
_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (PaymentRequest, "validation"),
    (PaymentsQuery, "validation"),
    (RetryRequest, "validation"),
    (SimulatorModeRequest, "validation"),
    (SimulatorTableRequest, "validation"),
    (SimulatorItemRequest, "validation"),
    (TillPaymentRequest, "validation"),
    (PaymentApplied, "serialization"),
    (PaymentQueued, "serialization"),
    (PaymentStatus, "serialization"),
    (Tables, "serialization"),
    (Error, "serialization"),
]


@cache
def _model_schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        _MODELS, ref_template=REF_TEMPLATE, schema_generator=_ContractSchema
    )
    schemas: dict[str, Any] = top["$defs"]
    return schemas


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI query parameters, one per field of ``model``, with the field's schema."""
    schema = _model_schemas()[model.__name__]
    required = set(schema.get("required", []))
    parameters = []
    for name, field in schema["properties"].items():
        field = dict(field)
        description = field.pop("description", None)
        parameter = {"name": name, "in": "query", "required": name in required, "schema": field}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


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
    schemas = {"Bill": bill_with_version, **copy.deepcopy(_model_schemas())}
    del schemas[PaymentsQuery.__name__]  # its fields are query parameters, not a body
    return schemas
