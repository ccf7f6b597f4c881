"""The OpenAPI document is the contract: valid OpenAPI 3.1, committed as served, complete, and
true. Every route is in it and nothing else is; what the routes really answer validates
against it (and bills against LOKE's own schema); what its PaymentRequest schema accepts, the
route accepts, and what it rejects, the route refuses with 400.

Responses are validated with jsonschema (Draft 2020-12, the dialect of OpenAPI 3.1) against
the served document itself, registered in a ``referencing.Registry`` so that its ``$ref``s
resolve, with format checking on (``date-time`` needs ``rfc3339-validator``, asserted below).

Where JSON Schema cannot say what the route does, the tests say so instead of pretending:
``100.0`` is an integer to JSON Schema (the JSON data model has one number type) but the route
refuses a float amount; and the route refuses non-printable characters in strings, which the
schema does not express (see the xfail test below).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import uuid
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bridge.core.money import CURRENCIES
from bridge.http.fields import MAX_MINOR
from bridge.platforms.loke.openapi import lokes_bill_schema
from tests.conftest import (
    ADMIN_AUTH,
    HMAC_LOCATION,
    HMAC_SECRET,
    LOCATION,
    LOKE_AUTH,
    fetch_bill,
    loke_url,
    payment_body,
    set_mode,
)

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "loke-pay-at-table.openapi.json"
REGENERATE = ".venv/bin/pos-bridge openapi --write docs/loke-pay-at-table.openapi.json"
DOC_URI = "urn:pos-bridge:openapi"
FORMATS = Draft202012Validator.FORMAT_CHECKER
LOKE = "/loke/v1/locations/{location}"
TABLES_PATH = f"{LOKE}/tables"
BILL_PATH = f"{LOKE}/tables/{{table}}/bill"
PAY_PATH = f"{LOKE}/tables/{{table}}/payments"
STATUS_PATH = f"{LOKE}/payments/{{paymentId}}"
SIM = "/api/drivers/{driver}/simulator"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- the document and its schemas --------------------------------------------------------------


async def served(client: TestClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    return await response.json()


def _pointer(*parts: str) -> str:
    return "#" + quote("".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts), "/~")


class Contract:
    """The served document, with validators for what it says each operation answers."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(DOC_URI, resource)

    def validator(self, pointer: str) -> Draft202012Validator:
        return Draft202012Validator(
            {"$ref": DOC_URI + pointer}, registry=self.registry, format_checker=FORMATS
        )

    def component(self, name: str) -> Draft202012Validator:
        return self.validator(_pointer("components", "schemas", name))

    def check(self, method: str, path: str, response: Any, body: Any) -> None:
        """``body`` (of ``response``) is what the document says ``method path`` answers."""
        operation = self.document["paths"][path][method.lower()]
        status = str(response.status)
        assert status in operation["responses"], (
            f"{method} {path} answered {status} {body}, which the OpenAPI document does not list"
        )
        content = operation["responses"][status].get("content")
        if content is None:
            return
        assert response.content_type in content, (method, path, status, response.content_type)
        schema = _pointer("paths", path, method.lower(), "responses", status, "content")
        schema += _pointer(response.content_type, "schema")[1:]
        errors = list(self.validator(schema).iter_errors(body))
        assert not errors, f"{method} {path} {status}: {[e.message for e in errors][:5]} in {body}"


_CONTRACTS: weakref.WeakKeyDictionary[TestClient, Contract] = weakref.WeakKeyDictionary()


async def contract_of(client: TestClient) -> Contract:
    """The served document's contract, fetched once per bridge (examples share a bridge)."""
    if client not in _CONTRACTS:
        _CONTRACTS[client] = Contract(await served(client))
    return _CONTRACTS[client]


LOKES_BILL = Draft7Validator(lokes_bill_schema(), format_checker=Draft7Validator.FORMAT_CHECKER)


def assert_lokes_bill(bill: dict[str, Any]) -> None:
    errors = [e.message for e in LOKES_BILL.iter_errors(bill)]
    assert not errors, f"not a LOKE TableBills.Bill: {errors[:5]} in {bill}"


async def answer(client: TestClient, method: str, url: str, **kwargs: Any) -> tuple[Any, Any]:
    response = await client.request(method, url, **kwargs)
    text = await response.text()
    assert response.status < 500 or response.status == 503, text
    return response, json.loads(text) if text else None


# -- the document ------------------------------------------------------------------------------


async def test_the_served_document_is_valid_openapi_3_1(client):
    document = await served(client)
    assert document["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(document).validate()
    assert "date-time" in FORMATS.checkers, "install rfc3339-validator: formats are not checked"


async def test_the_committed_document_is_the_served_one(client):
    document = await served(client)
    message = f"{COMMITTED.relative_to(ROOT)} is out of date with the routes: run `{REGENERATE}`"
    if not COMMITTED.exists():
        pytest.fail(f"{COMMITTED.relative_to(ROOT)} is missing: run `{REGENERATE}`")
    assert json.loads(COMMITTED.read_text()) == document, message


def _shape(path: str) -> str:
    """A path with its parameters' names erased: the route's names are not the contract's."""
    return re.sub(r"\{[^}]+\}", "{}", path)


async def test_every_route_is_documented_and_every_documented_path_is_routed(client):
    document = await served(client)
    routed = {
        (route.method, _shape(route.resource.canonical))
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {
        (method.upper(), _shape(path))
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("get", "put", "post", "delete", "patch", "options", "head", "trace")
    }
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed == set(), "documented operations with no route"


# -- real responses against the document ---------------------------------------------------------


def credentials(location: str) -> dict[str, str]:
    """The right credentials for a GET (an empty body) at ``location``."""
    if location == HMAC_LOCATION:
        digest = hmac.new(HMAC_SECRET.encode(), b"", hashlib.sha256).hexdigest()
        return {"X-Event-Signature": f"sha256={digest}"}
    return LOKE_AUTH


@pytest.mark.parametrize("location", [LOCATION, HMAC_LOCATION])
async def test_every_bill_the_fetch_url_returns_validates(client, location):
    headers = credentials(location)
    contract = Contract(await served(client))
    response, tables = await answer(
        client, "GET", f"/loke/v1/locations/{location}/tables", headers=headers
    )
    contract.check("GET", TABLES_PATH, response, tables)
    assert response.status == 200 and len(tables["tables"]) >= 1
    for table in tables["tables"]:
        response, bill = await answer(
            client, "GET", loke_url(table["number"], location=location), headers=headers
        )
        contract.check("GET", BILL_PATH, response, bill)
        assert response.status == 200, bill
        assert_lokes_bill(bill)
        assert response.headers["ETag"] == f'"{bill["version"]}"'


async def test_payments_applied_and_their_status_validate(client):
    contract = Contract(await served(client))
    bill = await fetch_bill(client, 4)
    # A partial payment with a tip and a customer, then the rest: the bill gains payments,
    # then closes (``completed``), and each state is checked against both schemas.
    body = payment_body(bill, "applied-1", 500, tip=150, customer={"firstName": "Jo"})
    response, applied = await answer(
        client, "POST", loke_url(4, "payments"), json=body, headers=LOKE_AUTH
    )
    assert response.status == 201, applied
    contract.check("POST", PAY_PATH, response, applied)

    bill = await fetch_bill(client, 4)
    assert_lokes_bill(bill)
    contract.component("Bill").validate(bill)
    body = payment_body(bill, "applied-2", bill["balance"], name="The rest")
    response, applied = await answer(
        client, "POST", loke_url(4, "payments"), json=body, headers=LOKE_AUTH
    )
    assert response.status == 201, applied
    contract.check("POST", PAY_PATH, response, applied)
    assert applied["billClosed"] is True and applied["balance"] == 0

    for payment_id in ("applied-1", "applied-2"):
        response, status = await answer(
            client, "GET", f"/loke/v1/locations/{LOCATION}/payments/{payment_id}", headers=LOKE_AUTH
        )
        assert response.status == 200, status
        contract.check("GET", STATUS_PATH, response, status)
        assert status["state"] == "applied"


async def test_a_queued_payment_and_its_status_validate(client):
    contract = Contract(await served(client))
    bill = await fetch_bill(client, 5)  # first: the bridge keeps the copy it served
    response, mode = await answer(
        client, "POST", "/api/drivers/main/simulator", json={"mode": "offline"}, headers=ADMIN_AUTH
    )
    contract.check("POST", SIM, response, mode)
    body = payment_body(bill, "queued-1", 300)
    response, queued = await answer(
        client, "POST", loke_url(5, "payments"), json=body, headers=LOKE_AUTH
    )
    assert response.status == 202, queued
    contract.check("POST", PAY_PATH, response, queued)
    status_url = f"/loke/v1/locations/{LOCATION}/payments/queued-1"
    response, status = await answer(client, "GET", status_url, headers=LOKE_AUTH)
    contract.check("GET", STATUS_PATH, response, status)
    assert status["state"] == "queued" and status["posReference"] is None

    await set_mode(client, "online")
    for _ in range(200):  # the outbox applies it once the POS is back
        response, status = await answer(client, "GET", status_url, headers=LOKE_AUTH)
        if status["state"] == "applied":
            break
        await asyncio.sleep(0.02)
    assert status["state"] == "applied", status
    contract.check("GET", STATUS_PATH, response, status)


async def test_error_responses_validate(client):
    contract = Contract(await served(client))
    bill, no_tips = await fetch_bill(client, 3), await fetch_bill(client, 7)
    pay, json_type = loke_url(3, "payments"), {**LOKE_AUTH, "Content-Type": "application/json"}

    def paying(payment_id: str, amount: int = 1, **change: Any) -> dict[str, Any]:
        return {"json": {**payment_body(bill, payment_id, amount), **change}, "headers": LOKE_AUTH}

    status_url = f"/loke/v1/locations/{LOCATION}/payments/nope"
    admin = {"headers": ADMIN_AUTH}
    sim = "/api/drivers/main/simulator"
    cases: dict[tuple[str, str], list[tuple[str, dict[str, Any], int]]] = {
        ("GET", TABLES_PATH): [("/loke/v1/locations/nowhere/tables", {"headers": LOKE_AUTH}, 401)],
        ("GET", BILL_PATH): [
            (loke_url("x"), {"headers": LOKE_AUTH}, 400),
            (loke_url(3), {}, 401),
            (loke_url(999), {"headers": LOKE_AUTH}, 404),
        ],
        ("GET", STATUS_PATH): [(status_url, {"headers": LOKE_AUTH}, 404), (status_url, {}, 401)],
        ("POST", PAY_PATH): [
            (pay, {"data": b"{", "headers": json_type}, 400),
            (pay, paying("e-1", x=1), 400),
            (pay, {**paying("e-2"), "headers": {}}, 401),
            (loke_url(999, "payments"), paying("e-3"), 404),
            (pay, paying("e-4", billVersion="old-v"), 409),
            (pay, {"data": b" " * (64 * 1024 + 1), "headers": json_type}, 413),
            (pay, {"data": b"{}", "headers": {**LOKE_AUTH, "Content-Type": "text/plain"}}, 415),
            (pay, paying("e-5", bill["balance"] + 1), 422),
            (pay, paying("e-6", currency="GBP"), 422),
            (pay, paying("e-5"), 422),  # the id again, another body
            (
                loke_url(7, "payments"),
                {"json": payment_body(no_tips, "e-7", 1, tip=1), "headers": LOKE_AUTH},
                422,
            ),
        ],
        ("GET", "/api/status"): [("/api/status", {}, 401)],
        ("GET", "/api/payments"): [("/api/payments?state=lost", admin, 400)],
        ("GET", "/api/payments/{platform}/{paymentId}"): [("/api/payments/loke/nope", admin, 404)],
        ("POST", SIM): [
            (sim, {"json": {"mode": "asleep"}, **admin}, 400),
            ("/api/drivers/nope/simulator", {"json": {"mode": "online"}, **admin}, 404),
        ],
        ("POST", f"{SIM}/tables/{{table}}/bill"): [
            ("/api/drivers/nope/simulator/tables/3/bill", {"json": {}, **admin}, 404),
            (f"{sim}/tables/99/bill", {"json": {}, **admin}, 409),
        ],
        ("POST", f"{SIM}/tables/{{table}}/items"): [
            (f"{sim}/tables/99/items", {"json": {"name": "x", "amount": 1}, **admin}, 409),
        ],
        ("POST", f"{SIM}/tables/{{table}}/till-payments"): [
            (f"{sim}/tables/3/till-payments", {"json": {"amount": 10**9}, **admin}, 409),
        ],
    }
    error = contract.component("Error")
    for (method, documented), requests in cases.items():
        for url, kwargs, expected in requests:
            response, body = await answer(client, method, url, **kwargs)
            assert response.status == expected, (method, url, body)
            error.validate(body)
            contract.check(method, documented, response, body)

    # While the POS is unreachable: 503 from every platform URL that needs it.
    await set_mode(client, "offline")
    fresh = payment_body(bill, "e-8", 1)
    for method, documented, url, kwargs in [
        ("GET", TABLES_PATH, f"/loke/v1/locations/{LOCATION}/tables", {"headers": LOKE_AUTH}),
        ("GET", BILL_PATH, loke_url(6), {"headers": LOKE_AUTH}),
        ("POST", PAY_PATH, loke_url(6, "payments"), {"json": fresh, "headers": LOKE_AUTH}),
    ]:
        response, body = await answer(client, method, url, **kwargs)
        assert response.status == 503, body
        assert response.headers["Retry-After"].isdigit()
        error.validate(body)
        contract.check(method, documented, response, body)

    # Framework refusals have no operation, but have the same shape.
    for method, url in [("PUT", pay), ("GET", "/nowhere")]:
        response, body = await answer(client, method, url, headers=LOKE_AUTH)
        assert response.status in (404, 405)
        error.validate(body)


async def test_admin_responses_validate(client):
    contract = Contract(await served(client))
    bill = await fetch_bill(client, 2)
    await client.post(
        loke_url(2, "payments"), json=payment_body(bill, "adm-1", 100), headers=LOKE_AUTH
    )
    for method, documented, url, body in [
        ("GET", "/api/status", "/api/status", None),
        ("GET", "/api/payments", "/api/payments?state=applied", None),
        ("GET", "/api/payments/{platform}/{paymentId}", "/api/payments/loke/adm-1", None),
        ("POST", SIM, "/api/drivers/main/simulator", {"mode": "online", "latencyMs": 0}),
        ("POST", f"{SIM}/tables/{{table}}/bill", "/api/drivers/main/simulator/tables/2/bill", {}),
        (
            "POST",
            f"{SIM}/tables/{{table}}/items",
            "/api/drivers/main/simulator/tables/2/items",
            {"name": "Oysters", "amount": 4200, "quantity": 2},
        ),
        (
            "POST",
            f"{SIM}/tables/{{table}}/till-payments",
            "/api/drivers/main/simulator/tables/2/till-payments",
            {"amount": 100},
        ),
        ("GET", "/healthz", "/healthz", None),
    ]:
        response, answered = await answer(client, method, url, json=body, headers=ADMIN_AUTH)
        assert response.status == 200, (url, answered)
        contract.check(method, documented, response, answered)
        if documented.startswith(SIM + "/tables"):
            assert_lokes_bill(answered)


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
    "text", ["Jo\nSmith", "Tab\there", "Bell\x07", "Zero\u200bWidth", "No\u00a0Break", "Zoë"]
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
    assert schema_accepts is not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)


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
