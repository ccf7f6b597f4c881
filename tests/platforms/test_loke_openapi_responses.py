"""What the routes really answer validates against the OpenAPI document they serve.

Bills validate against LOKE's own schema too; applied and queued payments, their status, error
responses (including 503 while the POS is unreachable, and the framework's own 404 and 405) and
the admin routes' answers validate against what the document says each operation answers.

Responses are validated with jsonschema (Draft 2020-12, the dialect of OpenAPI 3.1) against
the served document itself, registered in a ``referencing.Registry`` so that its ``$ref``s
resolve, with format checking on: :class:`Contract`, in ``openapi_contract.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import pytest

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
from tests.platforms.openapi_contract import (
    BILL_PATH,
    PAY_PATH,
    SIM,
    STATUS_PATH,
    TABLES_PATH,
    Contract,
    answer,
    assert_lokes_bill,
    served,
)

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
