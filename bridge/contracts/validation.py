"""A request body or query checked against its pydantic model, refusals as our typed 400s.

pydantic finds every problem; a caller gets the first one, named by its field path, with the
codes the bridge has always used:

- ``invalid_body``: the body is not a JSON object;
- ``missing_field``: a required field is absent or ``null`` (``details.field``);
- ``invalid_field``: a field of the wrong type or out of range (``details.field``, and
  ``details.expected`` worded from the field's JSON Schema: the document's own words);
- ``unknown_field``: a field the model does not have (``details.unknown`` lists them all).

"First" is pydantic's order, which is the model's field order with unknown fields last: a
body with a missing ``paymentId`` and an unknown ``x`` is told about ``paymentId``. Pure.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from bridge.contracts.fields import PATTERN_WORDS
from common.errors import BadRequestError

M = TypeVar("M", bound=BaseModel)

_NOT_AN_OBJECT = frozenset({"model_type", "model_attributes_type", "dict_type"})


def validate(model: type[M], data: Any) -> M:
    """``data`` (decoded JSON, or a query as a dict) as ``model``.

    Raises:
        BadRequestError: the first thing wrong with it, as described above.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise refusal(model, exc) from None


def refusal(model: type[BaseModel], exc: ValidationError) -> BadRequestError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = first["loc"]
    name = _dotted(loc)
    if first["type"] == "extra_forbidden":
        parent = loc[:-1]
        unknown = sorted(
            _dotted(e["loc"])
            for e in errors
            if e["type"] == "extra_forbidden" and e["loc"][:-1] == parent
        )
        return BadRequestError(
            "unknown_field",
            f"{unknown[0]} is not a field of this request",
            {"field": unknown[0], "unknown": unknown},
        )
    if not loc and first["type"] in _NOT_AN_OBJECT:
        return BadRequestError("invalid_body", "the body must be a JSON object", {"field": None})
    if first["type"] == "missing" or first["input"] is None:
        return BadRequestError("missing_field", f"{name} is required", {"field": name})
    if first["type"] in _NOT_AN_OBJECT:
        return BadRequestError("invalid_field", f"{name} must be a JSON object", {"field": name})
    expected = _expected(_field_schema(model, loc)) or _lower_first(first)
    return BadRequestError(
        "invalid_field", f"{name} must be {expected}", {"field": name, "expected": expected}
    )


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _lower_first(error: ErrorDetails) -> str:
    """pydantic's own words, when the schema has none (``Input should be …``)."""
    message = error["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


@cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _field_schema(model: type[BaseModel], loc: tuple[int | str, ...]) -> dict[str, Any]:
    """The JSON Schema of the field at ``loc``, following ``$ref``s and nullable unions."""
    root = _schema(model)
    schema: dict[str, Any] = root
    for part in loc:
        schema = _resolve(root, schema)
        properties = schema.get("properties", {})
        if not isinstance(part, str) or part not in properties:
            return {}
        schema = properties[part]
    return _resolve(root, schema)


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        schema = {**schema, **options[0]}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        schema = root["$defs"][ref.removeprefix("#/$defs/")]
    return schema


def _expected(schema: dict[str, Any]) -> str | None:
    """What a field must be, in words, from its JSON Schema."""
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "integer" and "minimum" in schema and "maximum" in schema:
        return f"an integer from {schema['minimum']} to {schema['maximum']}"
    if kind == "string" and "maxLength" in schema:
        words = f"a string of {schema.get('minLength', 0)} to {schema['maxLength']} characters"
        pattern = PATTERN_WORDS.get(schema.get("pattern", ""))
        return f"{words} {pattern}" if pattern else words
    return None
