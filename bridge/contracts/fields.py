"""The field types of the bridge's HTTP contracts, each defined once as a pydantic type.

A body model (``bridge/platforms/loke/bodies.py``, ``bridge/web/admin_bodies.py``) is built
from these, and the same model both validates a request (``bridge/contracts/validation.py``) and
writes its JSON Schema into the OpenAPI document, so what the document promises and what a
route accepts cannot drift apart. Pure.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from common.errors import BadRequestError

MAX_MINOR = 10**9  # 10 million in major units: above any single table payment

#: Any character but a control character (Unicode Cc: U+0000–U+001F, U+007F–U+009F) or a
#: line or paragraph separator (Zl U+2028, Zp U+2029), which would break a POS receipt or a
#: log line. Format characters (Cf: the zero width joiner in an emoji, a soft hyphen) are
#: fine. Written with ``\\uXXXX`` escapes, which pydantic's regex engine and JSON Schema's
#: (ECMA-262) read alike.
NO_BREAKS = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
#: Printable ASCII, no spaces: ids that are echoed in URLs and headers.
PRINTABLE_ASCII = r"^[!-~]*$"

#: How an error message words each pattern (``bridge/contracts/validation.py``).
PATTERN_WORDS = {
    NO_BREAKS: "without control characters or line breaks",
    PRINTABLE_ASCII: "(printable ASCII, no spaces)",
}


def text(max_length: int) -> Any:
    """``Annotated[str, text(n)]``: 1 to ``n`` characters, no control characters."""
    return Field(min_length=1, max_length=max_length, pattern=NO_BREAKS)


def token(max_length: int) -> Any:
    """``Annotated[str, token(n)]``: 1 to ``n`` printable ASCII characters (an id, a
    version)."""
    return Field(min_length=1, max_length=max_length, pattern=PRINTABLE_ASCII)


#: An amount in minor units: an integer (never a float, never a bool), 1 to :data:`MAX_MINOR`.
MinorUnits = Annotated[int, Field(ge=1, le=MAX_MINOR)]
#: A tip, a latency: as :data:`MinorUnits`, but 0 is allowed.
NonNegative = Annotated[int, Field(ge=0, le=MAX_MINOR)]


class Body(BaseModel):
    """A JSON request body read strictly: no coercion (``"100"`` or ``100.0`` is not an
    amount, ``1`` is not ``true``), and a field we do not know is refused, not dropped.
    Fields are named in camelCase on the wire (``payment_id`` is ``paymentId``)."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        alias_generator=AliasGenerator(alias=to_camel),
        regex_engine="rust-regex",
    )


class Reply(BaseModel):
    """A JSON response body: the schema the OpenAPI document gives, and the serializer."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=AliasGenerator(alias=to_camel),
        validate_by_name=True,
        serialize_by_alias=True,
    )

    def json_body(self) -> dict[str, Any]:
        """The body as sent: camelCase names; optional fields never set are left out."""
        return self.model_dump(mode="json", exclude_unset=True)


def _table_pattern() -> str:
    """1 to 6 digits, not all zero: one alternative per count of leading zeros (JSON Schema
    has no lookahead that every validator supports)."""
    options = [
        "0" * zeros + "[1-9]" + (f"[0-9]{{0,{5 - zeros}}}" if zeros < 5 else "")
        for zeros in range(6)
    ]
    return "^(?:" + "|".join(options) + ")$"


#: A ``{table}`` path segment: LOKE's tables are numbered 1 to 999999, digits only (leading
#: zeros allowed within six digits: ``000003`` is table 3).
TableSegment = Annotated[str, Field(pattern=_table_pattern())]
_TABLE = TypeAdapter(TableSegment)


def parse_table_number(segment: str) -> int:
    """The table a ``{table}`` path segment names.

    Raises:
        BadRequestError: ``invalid_table``, the segment is not a table number.
    """
    try:
        return int(_TABLE.validate_python(segment))
    except ValidationError as exc:
        raise BadRequestError(
            "invalid_table", "the table must be a number from 1 to 999999", {"table": segment[:32]}
        ) from exc


def table_segment_schema() -> dict[str, Any]:
    """The JSON Schema of a ``{table}`` path parameter, from the type that validates it."""
    return _TABLE.json_schema()
