"""The bodies of LOKE's pay-at-table URLs, each defined once (``docs/loke-pay-at-table.md``).

A request model validates what LOKE sends (``bridge/contracts/validation.py``); a reply model
serializes what the bridge answers; both write their JSON Schema into the OpenAPI document
(``openapi_schemas.py``). Refusals are every route's ``Error`` (``bridge/contracts/openapi.py``).
Bills are LOKE's own ``TableBills.Bill`` schema, kept verbatim in ``schemas/bill.schema.json``
and rendered by ``contract.py``. Pure.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from bridge.contracts.fields import Body, MinorUnits, NonNegative, Reply, text, token
from bridge.core.money import CURRENCIES
from bridge.core.payment import PaymentState

#: ISO 4217 codes LOKE's bill schema allows (``bridge.core.money.CURRENCIES``).
Currency = Literal["AUD", "GBP", "NZD", "SGD"]
assert frozenset(get_args(Currency)) == CURRENCIES, "Currency must list bridge.core.money's"

#: ``format: date-time`` in the schema: RFC 3339 in UTC, to the second
#: (``bridge/contracts/times.py``).
_DATE_TIME: Any = {"format": "date-time"}


class Customer(Body):
    """Who paid, as LOKE knows them; the first and last name label the payment on the POS."""

    id: Annotated[str, text(256)] | None = None
    first_name: Annotated[str, text(256)] | None = None
    last_name: Annotated[str, text(256)] | None = None
    email: Annotated[str, text(256)] | None = None
    phone_number: Annotated[str, text(256)] | None = None


class PaymentRequest(Body):
    """ "Add payment to table bill": ``POST …/tables/{table}/payments``. ``null`` is absent
    for the optional fields."""

    payment_id: Annotated[str, token(128)] = Field(
        description="LOKE's payment id: the idempotency key."
    )
    bill_ref: Annotated[str, text(128)] = Field(description="The bill's id, as fetched.")
    bill_version: Annotated[str, token(64)] = Field(description="The bill's version, as fetched.")
    currency: Currency
    amount: MinorUnits = Field(description="Minor units paid toward the balance.")
    tip: NonNegative | None = Field(None, description="Minor units of tip; absent is 0.")
    name: Annotated[str, text(100)] | None = Field(None, description="Label shown on the POS.")
    customer: Customer | None = None


class PaymentApplied(Reply):
    """201: the payment is on the POS."""

    status: Literal["applied"]
    payment_id: str
    bill_ref: str
    currency: Currency
    amount: int
    tip: int
    pos_reference: str | None
    balance: int | None = Field(None, ge=0, description="The bill's balance after it.")
    bill_closed: bool | None = None
    bill_version: str | None = None


class PaymentQueued(Reply):
    """202: durable at the venue; the POS gets it when it is reachable."""

    status: Literal["queued"]
    payment_id: str
    bill_ref: str
    currency: Currency
    amount: int
    tip: int
    message: str


class PaymentStatus(Reply):
    """Where a payment is now (``GET …/payments/{paymentId}``, and the technician's API)."""

    payment_id: str
    bill_ref: str
    currency: Currency
    amount: int
    tip: int
    state: PaymentState
    pos_reference: str | None
    table: int
    created: str = Field(json_schema_extra=_DATE_TIME)
    updated: str = Field(json_schema_extra=_DATE_TIME)


class Table(Reply):
    number: int = Field(ge=1)
    name: str


class Tables(Reply):
    """The location's tables (``GET …/tables``)."""

    location_id: str
    tables: list[Table]
