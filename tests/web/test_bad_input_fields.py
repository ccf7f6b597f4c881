"""Bad input in a payment's fields gets a typed 400 naming the field: never a 500, never a trace.

This module: each field of the payment body fuzzed (missing or null, a bad value, unknown
fields, bad amounts and tips, any JSON body), then the exact code each specific bad input gets
(payment fields, raw bodies, tables, admin requests), and the positive control that a valid
payment still applies once. Shared helpers, constants and strategies are in
``tests/web/bad_input.py``.

Real bridge, real socket, nothing of ours mocked; how Hypothesis runs here (on the test's own
event loop, derandomized) is explained in ``tests/web/bad_input.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.contracts.fields import MAX_MINOR
from bridge.core.money import CURRENCIES
from tests.conftest import ADMIN_AUTH, LOKE_AUTH, fetch_bill, loke_url, payment_body
from tests.web.bad_input import (
    CUSTOMER_FIELDS,
    FIELDS,
    FUZZ,
    PAY_HEADERS,
    REQUIRED,
    TABLE,
    assert_not_recorded,
    assert_pos_untouched,
    assert_typed_error,
    json_scalars,
    json_values,
    pos_payments,
    post_payment,
    segment,
    send,
)

# -- strategies ------------------------------------------------------------------------------

non_strings = (
    st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.lists(json_values, max_size=3)
    | st.dictionaries(st.text(max_size=6), json_values, max_size=3)
)
# What Fields.string refuses, as the OpenAPI document states it: control characters (Unicode
# Cc) and line/paragraph separators (Zl, Zp). Format characters (Cf: soft hyphen, ZWJ in
# emoji) are accepted by contract.
unprintable = st.tuples(
    st.text(max_size=5),
    st.characters(categories=("Cc", "Zl", "Zp")),
    st.text(max_size=5),
).map("".join)


def bad_strings(max_len: int, ascii_only: bool = False) -> st.SearchStrategy[Any]:
    """Values a string field of at most ``max_len`` characters must refuse (never null)."""
    options = [
        non_strings,
        st.just(""),
        st.integers(max_len + 1, max_len + 50).map(lambda n: "x" * n),
        unprintable,
    ]
    if ascii_only:
        options.append(
            st.tuples(st.sampled_from([" ", "é", "€", "\u00a0", "日"]), st.text(max_size=5)).map(
                lambda parts: "p" + "".join(parts)
            )
        )
    return st.one_of(options)


bad_amounts = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=MAX_MINOR + 1),
    st.floats(allow_nan=False, allow_infinity=False),  # 5.0 too: a float is never money
    st.booleans(),
    st.text(max_size=12),  # "100" too
    st.lists(json_scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
)
bad_tips = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=MAX_MINOR + 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=12),
    st.lists(json_scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
)
unknown_keys = st.text(max_size=20).filter(lambda k: k not in FIELDS)
good_customer = st.dictionaries(
    st.sampled_from(CUSTOMER_FIELDS), st.text("abcXYZ .@+0123456789", min_size=1, max_size=20)
)
bad_customers = st.one_of(
    non_strings.filter(lambda v: not isinstance(v, dict)),
    st.builds(
        lambda good, key, value: {**good, key: value},
        good_customer,
        st.sampled_from(CUSTOMER_FIELDS),
        bad_strings(256),
    ),
    st.builds(
        lambda good, key, value: {**good, key: value},
        good_customer,
        st.text(max_size=12).filter(lambda k: k not in CUSTOMER_FIELDS),
        json_values,
    ),
)
BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "paymentId": bad_strings(128, ascii_only=True),
    "billRef": bad_strings(128),
    "billVersion": bad_strings(64, ascii_only=True),
    "currency": non_strings
    | st.text(max_size=5).filter(lambda s: s not in CURRENCIES)
    | st.sampled_from(["aud", "USD", " AUD", "AUD ", "A\u0055D\u0000"]),
    "amount": bad_amounts,
    "tip": bad_tips,
    "name": bad_strings(100),
    "customer": bad_customers,
}
one_bad_field = st.sampled_from(FIELDS).flatmap(
    lambda field: st.tuples(st.just(field), BAD_VALUES[field])
)


# -- the payment body ----------------------------------------------------------------------------


@FUZZ
@given(missing=st.sets(st.sampled_from(REQUIRED), min_size=1), as_null=st.booleans())
async def test_missing_required_fields_are_named(client, missing, as_null):
    bill = await fetch_bill(client, TABLE)
    body = payment_body(bill, "fuzz-missing", 100)
    for field in missing:
        if as_null:
            body[field] = None
        else:
            del body[field]
    response, text = await post_payment(client, body)
    error = assert_typed_error(response, text, 400, "missing_field")
    assert error["details"]["field"] == next(f for f in REQUIRED if f in missing)
    await assert_not_recorded(client, "fuzz-missing")
    assert_pos_untouched(client)


@FUZZ
@given(field_value=one_bad_field)
async def test_a_bad_field_value_is_refused_and_named(client, field_value):
    field, value = field_value
    bill = await fetch_bill(client, TABLE)
    body = payment_body(bill, "fuzz-field", 100, name="Jo")
    body[field] = value
    response, text = await post_payment(client, body)
    error = assert_typed_error(response, text, 400)
    if field == "customer":
        assert error["error"] in ("invalid_field", "unknown_field"), error
        assert error["details"]["field"].startswith("customer"), error
    else:
        assert error["error"] == "invalid_field", error
        assert error["details"]["field"] == field, error
    await assert_not_recorded(client, "fuzz-field")
    assert_pos_untouched(client)


@FUZZ
@given(extra=st.dictionaries(unknown_keys, json_values, min_size=1, max_size=3))
async def test_unknown_fields_are_refused_not_dropped(client, extra):
    bill = await fetch_bill(client, TABLE)
    body = {**payment_body(bill, "fuzz-unknown", 100), **extra}
    response, text = await post_payment(client, body)
    error = assert_typed_error(response, text, 400, "unknown_field")
    assert error["details"]["field"] == sorted(extra)[0]
    await assert_not_recorded(client, "fuzz-unknown")
    assert_pos_untouched(client)


@FUZZ
@given(field=st.sampled_from(["amount", "tip"]), data=st.data())
async def test_bad_amounts_and_tips_are_refused(client, field, data):
    value = data.draw(bad_amounts if field == "amount" else bad_tips, label=field)
    bill = await fetch_bill(client, TABLE)
    body = payment_body(bill, "fuzz-amount", 100)
    body[field] = value
    response, text = await post_payment(client, body)
    error = assert_typed_error(response, text, 400, "invalid_field")
    assert error["details"]["field"] == field
    assert_pos_untouched(client)


@FUZZ
@given(
    body=st.one_of(
        json_values,
        st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), json_values, max_size=8),
        st.recursive(
            st.just({}), lambda inner: st.dictionaries(st.sampled_from(FIELDS), inner, max_size=3)
        ),
    )
)
async def test_any_json_body_is_refused_with_a_typed_error(client, body):
    response, text = await post_payment(client, body)
    assert_typed_error(response, text)
    assert_pos_untouched(client)


# -- each bad input, its code ----------------------------------------------------------------


@pytest.mark.parametrize("field", REQUIRED)
async def test_a_missing_field_is_400_missing_field_naming_it(client, field):
    bill = await fetch_bill(client, TABLE)
    body = payment_body(bill, "p-missing", 100)
    del body[field]
    response, text = await post_payment(client, body)
    error = assert_typed_error(response, text, 400, "missing_field")
    assert error["details"]["field"] == field
    assert field in error["message"]


SPECIFIC = {
    "float amount": ({"amount": 100.0}, "invalid_field", "amount"),
    "fractional amount": ({"amount": 99.5}, "invalid_field", "amount"),
    "boolean amount": ({"amount": True}, "invalid_field", "amount"),
    "string amount": ({"amount": "100"}, "invalid_field", "amount"),
    "zero amount": ({"amount": 0}, "invalid_field", "amount"),
    "negative amount": ({"amount": -100}, "invalid_field", "amount"),
    "huge amount": ({"amount": 10**20}, "invalid_field", "amount"),
    "negative tip": ({"tip": -1}, "invalid_field", "tip"),
    "float tip": ({"tip": 0.0}, "invalid_field", "tip"),
    "unknown currency": ({"currency": "USD"}, "invalid_field", "currency"),
    "numeric paymentId": ({"paymentId": 12}, "invalid_field", "paymentId"),
    "paymentId with a space": ({"paymentId": "p 1"}, "invalid_field", "paymentId"),
    "unknown field": ({"amountCents": 100}, "unknown_field", "amountCents"),
    "unknown customer field": ({"customer": {"age": 3}}, "unknown_field", "customer.age"),
    "customer not an object": ({"customer": "Jo"}, "invalid_field", "customer"),
}


@pytest.mark.parametrize(("change", "code", "field"), SPECIFIC.values(), ids=list(SPECIFIC))
async def test_a_bad_field_gets_its_code(client, change, code, field):
    bill = await fetch_bill(client, TABLE)
    response, text = await post_payment(client, {**payment_body(bill, "p-bad", 100), **change})
    error = assert_typed_error(response, text, 400, code)
    assert error["details"]["field"] == field
    await assert_not_recorded(client, "p-bad")
    assert_pos_untouched(client)


RAW = {
    "not JSON": (b"{paymentId: 1}", 400, "invalid_json"),
    "truncated": (b'{"paymentId": "p', 400, "invalid_json"),
    "empty": (b"", 400, "invalid_json"),
    "latin-1": ('{"name": "Café"}'.encode("latin-1"), 400, "invalid_json"),
    "NaN": (b'{"amount": NaN}', 400, "invalid_json"),
    "array": (b"[]", 400, "invalid_body"),
    "string": (b'"pay"', 400, "invalid_body"),
    "duplicate key": (b'{"amount": 1, "amount": 2}', 400, "duplicate_field"),
    "deep nesting": (b"[" * 20000 + b"]" * 20000, 400, "invalid_json"),
    "long integer": (b'{"amount": ' + b"9" * 5000 + b"}", 400, "invalid_json"),
}


@pytest.mark.parametrize(("raw", "status", "code"), RAW.values(), ids=list(RAW))
async def test_a_bad_body_gets_its_code(client, raw, status, code):
    response, text = await post_payment(client, raw)
    assert_typed_error(response, text, status, code)
    if code != "invalid_body":  # the simulator's body may be empty: then it is {}
        admin = "/api/drivers/main/simulator/tables/3/items"
        response, text = await send(client, "POST", admin, raw or b"{", ADMIN_AUTH)
        assert_typed_error(response, text, status, code)


@pytest.mark.parametrize("table", ["abc", "0", "-1", "1.5", "1234567", "00000001", "\u0663"])
async def test_a_wrong_table_is_400_invalid_table(client, table):
    for what in ("bill", "payments"):
        response, text = await send(
            client,
            "GET" if what == "bill" else "POST",
            loke_url(segment(table), what),
            b"{}",
            PAY_HEADERS,
        )
        assert_typed_error(response, text, 400, "invalid_table")


async def test_an_unknown_table_is_404_unknown_table(client):
    response, text = await send(client, "GET", loke_url(999), headers=LOKE_AUTH)
    error = assert_typed_error(response, text, 404, "unknown_table")
    assert error["details"]["table"] == 999
    bill = await fetch_bill(client, TABLE)
    response, text = await post_payment(client, payment_body(bill, "p-999", 100), table=999)
    assert_typed_error(response, text, 404, "unknown_table")
    await assert_not_recorded(client, "p-999")


ADMIN_SPECIFIC = [
    ("GET", "/api/payments?state=paid", None, 400, "invalid_field"),
    ("POST", "/api/drivers/main/simulator", b"{}", 400, "missing_field"),
    ("POST", "/api/drivers/main/simulator", b'{"mode": "asleep"}', 400, "invalid_field"),
    ("POST", "/api/drivers/main/simulator", b'{"mode": "online", "x": 1}', 400, "unknown_field"),
    (
        "POST",
        "/api/drivers/main/simulator",
        b'{"mode": "online", "latencyMs": -1}',
        400,
        "invalid_field",
    ),
    ("POST", "/api/drivers/nope/simulator", b'{"mode": "online"}', 404, "unknown_simulator"),
    (
        "POST",
        "/api/drivers/main/simulator/tables/3/items",
        b'{"name": "x", "amount": 1.5}',
        400,
        "invalid_field",
    ),
    ("POST", "/api/drivers/main/simulator/tables/0/bill", b"{}", 400, "invalid_table"),
    ("GET", "/api/payments/loke/nope", None, 404, "unknown_payment"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), ADMIN_SPECIFIC)
async def test_admin_bad_input_gets_its_code(client, method, path, body, status, code):
    response, text = await send(client, method, path, body, ADMIN_AUTH)
    assert_typed_error(response, text, status, code)


async def test_after_bad_input_a_valid_payment_still_applies_once(client):
    """The positive control: the POS checks above would see a payment that got through."""
    bill = await fetch_bill(client, TABLE)
    for change in [{"amount": 1.0}, {"tip": -5}, {"extra": 1}]:
        response, text = await post_payment(client, {**payment_body(bill, "p-ok", 100), **change})
        assert_typed_error(response, text, 400)
    assert_pos_untouched(client)
    response, text = await post_payment(client, payment_body(bill, "p-ok", 100))
    assert response.status == 201, text
    assert [p[0] for p in pos_payments(client)] == ["p-ok"]
