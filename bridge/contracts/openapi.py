"""What every part of the bridge's OpenAPI 3.1 document is built from, and how the parts
become the one document. Pure.

The document has a part per HTTP edge: LOKE's URLs (``bridge/platforms/loke/openapi.py``)
and the technician's API (``bridge/web/openapi.py``); the composition root (``bridge/app.py``)
adds its own routes and merges them with :func:`merge_parts`. A part is ``{"paths": …,
"components": {"schemas": …, "securitySchemes": …}}``, each body's schema written from the
pydantic model that validates or serializes it (:func:`model_schemas`), so the document cannot
say one thing and the routes do another. Components are one namespace: two parts may each
define a component only alike (both have :class:`Error`), and the merged document must
resolve every ``$ref``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from bridge.contracts.fields import Reply, table_segment_schema

REF_TEMPLATE = "#/components/schemas/{model}"


class Error(Reply):
    """Every refusal: ``error`` is the stable machine-readable code."""

    error: str = Field(description="Stable machine-readable code.")
    message: str
    details: dict[str, Any]


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=name)}


def json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_content(description: str) -> dict[str, Any]:
    return json_content(ref("Error"), description)


#: What any operation that reads a request and checks credentials may answer.
COMMON_ERRORS = {
    "400": error_content("Malformed request; details.field names the field."),
    "401": error_content("Missing or wrong credentials."),
}

#: A ``{table}`` path parameter, with the schema of the type that validates it.
TABLE_PARAMETER = {
    "name": "table",
    "in": "path",
    "required": True,
    "schema": table_segment_schema(),
    "description": "Numeric table number (1–999999).",
}


def path_param(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
    }


def request_body(model: str, *, required: bool = True) -> dict[str, Any]:
    """A JSON request body of the named component; not ``required``: an empty body is
    ``{}``."""
    return {"required": required, "content": {"application/json": {"schema": ref(model)}}}


class _ContractSchema(GenerateJsonSchema):
    """pydantic's JSON Schema without a title on every field (``"title": "Paymentid"``)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def model_schemas(models: Sequence[tuple[type[BaseModel], JsonSchemaMode]]) -> dict[str, Any]:
    """The component schemas of ``models`` and of the models and enums they use, by name.

    Each model comes with the side of the wire it is on: a request is described as it is
    validated (``"validation"``), a reply as it is serialized (``"serialization"``).
    """
    _, top = models_json_schema(models, ref_template=REF_TEMPLATE, schema_generator=_ContractSchema)
    schemas: dict[str, Any] = top["$defs"]
    return schemas


def query_parameters(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """OpenAPI query parameters, one per property of a model's ``schema``, with the
    property's schema."""
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


def merge_parts(info: dict[str, Any], parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One OpenAPI 3.1 document of ``parts``: their paths in the parts' order, their
    component schemas by name, their security schemes in the parts' order.

    Raises:
        ValueError: two parts define a path or a component differently, or a ``$ref`` names
            a schema no part defines.
    """
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    schemes: dict[str, Any] = {}
    for part in parts:
        components = part.get("components", {})
        _add(paths, part.get("paths", {}), "path")
        _add(schemas, components.get("schemas", {}), "schema")
        _add(schemes, components.get("securitySchemes", {}), "security scheme")
    document = {
        "openapi": "3.1.0",
        "info": info,
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items())), "securitySchemes": schemes},
    }
    defined = {REF_TEMPLATE.format(model=name) for name in schemas}
    missing = sorted(set(_refs(document)) - defined)
    if missing:
        raise ValueError(f"the OpenAPI document refers to schemas no part defines: {missing}")
    return document


def _add(into: dict[str, Any], new: Mapping[str, Any], what: str) -> None:
    for name, value in new.items():
        if into.setdefault(name, value) != value:
            raise ValueError(f"two parts of the OpenAPI document define the {what} {name!r}")


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)
