"""The OpenAPI PaymentRequest schema and the payment route agree on every request body.

What the schema accepts, the route accepts; what it rejects, the route refuses with 400.
Hypothesis draws bodies the schema accepts, and mutations of a valid body, and each goes to the
real bridge; the schema's verdict and the route's must agree (and the answer must be what the
document says the operation answers). ``FUZZ`` is deterministic (``derandomize=True``,
``database=None``); one bridge serves all the examples of a test.

Where JSON Schema cannot say what the route does, the tests say so instead of pretending:
``100.0`` is an integer to JSON Schema (the JSON data model has one number type) but the route
refuses a float amount. Which characters a string may hold (no control characters) the schema
says with a pattern; a test below checks that the schema and the route agree on it.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.contracts.fields import MAX_MINOR
from bridge.core.money import CURRENCIES
from tests.conftest import LOKE_AUTH, fetch_bill, loke_url, payment_body
from tests.platforms.openapi_contract import (
    PAY_PATH,
    Contract,
    answer,
    contract_of,
    served,
)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- the PaymentRequest schema and the route ---------------------------------------------------

printable = st.characters(categories=("L", "M", "N", "P", "S"), include_characters=" ")
ascii_printable = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
valid_requests = st.fixed_dictionaries(
    {
        "paymentId": st.text(ascii_printable, min_size=1, max_size=128),
        "billRef": st.text(printable, min_size=1, max_size=128),
        "billVersion": st.text(ascii_printable, min_size=1, max_size=64),
        "currency": st.sampled_from(sorted(CURRENCIES)),
        "amount": st.integers(1, MAX_MINOR),
    },
    optional={
        "tip": st.integers(0, MAX_MINOR),
        "name": st.text(printable, min_size=1, max_size=100),
        "customer": st.fixed_dictionaries(
            {},
            optional={
                k: st.text(printable, min_size=1, max_size=256)
                for k in ("id", "firstName", "lastName", "email", "phoneNumber")
            },
        ),
    },
)


@FUZZ
@given(request=valid_requests, real_bill=st.booleans())
async def test_what_the_schema_accepts_the_route_accepts(client, request, real_bill):
    contract = await contract_of(client)
    if real_bill:  # often the bill as fetched, so some of these are applied
        response, bill = await answer(client, "GET", loke_url(3), headers=LOKE_AUTH)
        if response.status == 200:
            request = {**request, "billRef": bill["id"], "billVersion": bill["version"]}
            request["currency"] = bill["currency"]
    request["paymentId"] = f"{request['paymentId'][:90]}-{uuid.uuid4().hex[:12]}"
    contract.component("PaymentRequest").validate(request)
    response, body = await answer(
        client, "POST", loke_url(3, "payments"), json=request, headers=LOKE_AUTH
    )
    assert response.status != 400, f"the schema accepts {request} but the route said {body}"
    contract.check("POST", PAY_PATH, response, body)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(printable, max_size=12),
)
json_values = st.one_of(
    json_scalars,
    st.lists(json_scalars, max_size=3),
    st.dictionaries(st.text(printable, max_size=8), json_scalars, max_size=3),
)
FIELDS = ["paymentId", "billRef", "billVersion", "currency", "amount", "tip", "name", "customer"]
CUSTOMER = ["id", "firstName", "lastName", "email", "phoneNumber"]
set_field = st.tuples(st.just("set"), st.sampled_from(FIELDS), json_values)
mutations = st.one_of(
    set_field,
    set_field,
    st.tuples(st.just("set"), st.sampled_from(["amount", "tip"]), st.integers()),
    st.tuples(st.just("drop"), st.sampled_from(FIELDS), st.none()),
    st.tuples(st.just("add"), st.text(printable, max_size=10), json_values),
    st.tuples(
        st.just("customer"), st.sampled_from(CUSTOMER) | st.text(printable, max_size=8), json_values
    ),
)


def _integral_float(value: Any) -> bool:
    """100.0: an integer to JSON Schema, a float to the route (which refuses it)."""
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_integral_float(v) for v in value.values())
    return False


@settings(FUZZ, max_examples=200)
@given(changes=st.lists(mutations, min_size=1, max_size=2))
async def test_the_schema_and_the_route_agree_on_every_body(client, changes):
    """Accepted by the schema ⇔ not a 400 from the route."""
    contract = await contract_of(client)
    bill = await fetch_bill(client, 3)
    body: dict[str, Any] = payment_body(bill, f"agree-{uuid.uuid4().hex}", bill["balance"] + 1)
    body["billVersion"] = "not-the-version"  # the payment is well-formed but never applied
    for kind, key, value in changes:
        if kind == "set":
            body[key] = value
        elif kind == "drop":
            body.pop(key, None)
        elif kind == "add":
            body[key] = value
        else:
            customer = body.get("customer")
            body["customer"] = {**(customer if isinstance(customer, dict) else {}), key: value}
    if _integral_float(body):
        return
    accepted = contract.component("PaymentRequest").is_valid(body)
    response, answered = await answer(
        client, "POST", loke_url(3, "payments"), json=body, headers=LOKE_AUTH
    )
    if accepted:
        assert response.status != 400, f"schema accepts {body}; route: {answered}"
    else:
        assert response.status == 400, f"schema rejects {body}; route: {response.status} {answered}"
    contract.check("POST", PAY_PATH, response, answered)


REJECTED = {
    "extra property": {"tipCents": 1},
    "fractional amount": {"amount": 99.5},
    "zero amount": {"amount": 0},
    "amount too large": {"amount": MAX_MINOR + 1},
    "amount as text": {"amount": "100"},
    "boolean amount": {"amount": True},
    "negative tip": {"tip": -1},
    "lower-case currency": {"currency": "aud"},
    "paymentId with a space": {"paymentId": "pay 1"},
    "paymentId too long": {"paymentId": "p" * 129},
    "empty billRef": {"billRef": ""},
    "billVersion too long": {"billVersion": "v" * 65},
    "empty name": {"name": ""},
    "name too long": {"name": "n" * 101},
    "customer not an object": {"customer": ["Jo"]},
    "customer extra property": {"customer": {"age": "3"}},
    "customer id not a string": {"customer": {"id": 7}},
    "missing amount": {"amount": None},
}


@pytest.mark.parametrize("change", REJECTED.values(), ids=list(REJECTED))
async def test_what_the_schema_rejects_the_route_refuses_with_400(client, change):
    contract = Contract(await served(client))
    bill = await fetch_bill(client, 3)
    body = {**payment_body(bill, "rejected", 100), **change}
    body = {k: v for k, v in body.items() if v is not None}
    assert not contract.component("PaymentRequest").is_valid(body), "the schema accepts it"
    response, answered = await answer(
        client, "POST", loke_url(3, "payments"), json=body, headers=LOKE_AUTH
    )
    assert response.status == 400, answered
    contract.check("POST", PAY_PATH, response, answered)


async def test_a_float_amount_is_refused_though_json_schema_calls_it_an_integer(client):
    bill = await fetch_bill(client, 3)
    response, body = await answer(
        client,
        "POST",
        loke_url(3, "payments"),
        json=payment_body(bill, "f", 100.0),
        headers=LOKE_AUTH,
    )
    assert response.status == 400 and body["details"]["field"] == "amount"


@pytest.mark.parametrize(
    "text",
    [
        "Jo\nSmith",
        "Tab\there",
        "Bell\x07",
        "Line\u2028Sep",
        "Para\u2029Sep",
        "Zero\u200bWidth",
        "No\u00a0Break",
        "Zoë",
    ],
)
async def test_the_schema_and_the_route_agree_on_which_characters_a_string_may_hold(client, text):
    contract = Contract(await served(client))
    bill = await fetch_bill(client, 3)
    body = payment_body(bill, f"chars-{uuid.uuid4().hex}", 100, name=text)
    schema_accepts = contract.component("PaymentRequest").is_valid(body)
    response, answered = await answer(
        client, "POST", loke_url(3, "payments"), json=body, headers=LOKE_AUTH
    )
    assert (response.status != 400) is schema_accepts, answered
    breaking = any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in text)
    assert schema_accepts is not breaking


@pytest.mark.parametrize(
    "change",
    [{"tip": None}, {"name": None}, {"customer": None}, {"customer": {"email": None}}],
    ids=["tip", "name", "customer", "customer.email"],
)
async def test_null_is_absent_for_optional_fields_in_the_schema_and_the_route(client, change):
    contract = Contract(await served(client))
    bill = await fetch_bill(client, 3)
    body = {**payment_body(bill, f"null-{uuid.uuid4().hex}", 100), **change}
    assert contract.component("PaymentRequest").is_valid(body)
    response, answered = await answer(
        client, "POST", loke_url(3, "payments"), json=body, headers=LOKE_AUTH
    )
    assert response.status == 201, answered
