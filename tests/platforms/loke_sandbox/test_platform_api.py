"""The sandbox's platform API over real sockets, as LOKE's would answer a bare HTTP client."""

from __future__ import annotations

from typing import Any

import pytest

from tests.platforms.loke_sandbox.helpers import LOCATIONS, ORG, Sandbox, running_sandbox

LOC_PATH = f"/organizations/{ORG}/locations/{LOCATIONS[0]}"
URLS = {
    "fetchBillUrl": "https://relay.example.com/v/cafe/loke/v1/locations/L/tables/{tableNumber}/bill",
    "addPaymentUrl": "http://127.0.0.1:9/loke/v1/locations/L/tables/{tableNumber}/payments",
    "auth": {"scheme": "bearer", "secret": "s" * 32},
}


@pytest.fixture
async def sandbox():
    async with running_sandbox() as sandbox:
        yield sandbox


async def call(
    sandbox: Sandbox, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = path if path.startswith("http") else sandbox.url + path
    async with sandbox.session.request(method, url, json=body, headers=headers) as response:
        text = await response.text()
        return response.status, (await response.json() if text else None), response.headers


@pytest.mark.parametrize("token", [None, "unknown-token", "expired"])
async def test_no_live_token_is_401_in_lokes_error_style(sandbox, token):
    if token == "expired":
        token = sandbox.tokens.mint(ttl_s=-1)
    status, body, headers = await call(sandbox, "GET", "/organizations", token)
    assert status == 401
    assert body["code"] == "unauthorized" and body["message"]
    assert body["type"].endswith("/unauthorized")
    assert "WWW-Authenticate" in headers


async def test_a_token_expires_on_the_sandboxs_clock(sandbox):
    token = sandbox.tokens.mint(ttl_s=60)
    assert (await call(sandbox, "GET", "/organizations", token))[0] == 200
    sandbox.clock.now += 61
    assert (await call(sandbox, "GET", "/organizations", token))[0] == 401


async def test_organizations_are_those_the_grant_reaches(sandbox):
    token = sandbox.tokens.mint((ORG,))
    status, body, _ = await call(sandbox, "GET", "/organizations", token)
    assert status == 200
    assert body == [
        {
            "id": ORG,
            "name": "Sandbox Bistro Group",
            "currency": "AUD",
            "timezone": "Australia/Melbourne",
            "created": "2024-01-15T00:00:00Z",
        }
    ]
    assert (await call(sandbox, "GET", f"/organizations/{ORG}", token))[1]["id"] == ORG
    status, body, _ = await call(sandbox, "GET", "/organizations/org-other", token)
    assert (status, body["code"]) == (403, "forbidden")
    status, body, _ = await call(sandbox, "GET", "/organizations/org-nope/locations", token)
    assert (status, body["code"]) == (404, "not_found")
    status, body, _ = await call(sandbox, "GET", LOC_PATH, token)
    assert status == 200 and body["id"] == LOCATIONS[0] and body["name"] == "Bistro Fitzroy"
    status, body, _ = await call(sandbox, "GET", f"/organizations/{ORG}/locations/nope", token)
    assert status == 404


async def test_locations_page_by_x_next_page_until_it_is_absent(sandbox):
    token = sandbox.tokens.mint()
    assert await sandbox.control("PUT", "/_sandbox/settings/api", {"pageSize": 2}) == (
        200,
        {"pageSize": 2},
    )
    url: str | None = f"/organizations/{ORG}/locations"
    pages = []
    while url is not None and len(pages) < 10:
        status, body, headers = await call(sandbox, "GET", url, token)
        assert status == 200
        pages.append([loc["id"] for loc in body])
        url = headers.get("X-Next-Page")
        assert url is None or url.startswith(sandbox.url + f"/organizations/{ORG}/locations?after=")
    assert pages == [LOCATIONS[0:2], LOCATIONS[2:4], LOCATIONS[4:]]
    status, body, _ = await call(
        sandbox, "GET", f"/organizations/{ORG}/locations?after=bogus", token
    )
    assert (status, body["code"], body["field"]) == (400, "validation", "after")


async def test_tables_put_get_delete(sandbox):
    token = sandbox.tokens.mint()
    tables = [{"number": 1, "name": "Table 1"}, {"number": 12, "name": "Window"}]
    assert (await call(sandbox, "GET", LOC_PATH + "/tables", token))[0] == 404
    assert (await call(sandbox, "PUT", LOC_PATH + "/tables", token, {"tables": tables}))[0] == 204
    assert (await call(sandbox, "GET", LOC_PATH + "/tables", token))[:2] == (
        200,
        {"tables": tables},
    )
    assert (await call(sandbox, "DELETE", LOC_PATH + "/tables", token))[0] == 204
    assert (await call(sandbox, "GET", LOC_PATH + "/tables", token))[0] == 404
    assert sandbox.state.published == {}


async def test_pay_at_table_put_get_delete_never_shows_the_secret_again(sandbox):
    token = sandbox.tokens.mint()
    assert (await call(sandbox, "PUT", LOC_PATH + "/pay-at-table", token, URLS))[0] == 204
    status, body, _ = await call(sandbox, "GET", LOC_PATH + "/pay-at-table", token)
    assert status == 200
    assert body["fetchBillUrl"] == URLS["fetchBillUrl"]
    assert body["auth"] == {"scheme": "bearer", "secretLength": 32}
    assert "s" * 32 not in str(await sandbox.control("GET", "/_sandbox/published"))
    assert sandbox.state.published[(ORG, LOCATIONS[0])].pay_at_table == URLS
    assert (await call(sandbox, "DELETE", LOC_PATH + "/pay-at-table", token))[0] == 204
    assert (await call(sandbox, "GET", LOC_PATH + "/pay-at-table", token))[0] == 404


@pytest.mark.parametrize(
    ("what", "body", "field"),
    [
        ("tables", {"tables": [{"number": 0, "name": "T"}]}, "tables.0.number"),
        ("tables", {"tables": [{"number": "1", "name": "T"}]}, "tables.0.number"),
        ("tables", {"tables": [{"number": 1, "name": ""}]}, "tables.0.name"),
        ("tables", {"tables": [{"number": 1, "name": "A"}, {"number": 1, "name": "B"}]}, "tables"),
        ("tables", {"tables": [{"number": 1, "name": "A", "x": 1}]}, "tables.0.x"),
        ("tables", {}, "tables"),
        ("tables", [1], "body"),
        (
            "pay-at-table",
            {**URLS, "fetchBillUrl": "http://example.com/{tableNumber}"},
            "fetchBillUrl",
        ),
        ("pay-at-table", {**URLS, "addPaymentUrl": "https://example.com/bill"}, "addPaymentUrl"),
        ("pay-at-table", {**URLS, "auth": {"scheme": "basic", "secret": "s" * 16}}, "auth.scheme"),
        ("pay-at-table", {**URLS, "auth": {"scheme": "bearer", "secret": "short"}}, "auth.secret"),
        ("pay-at-table", {k: v for k, v in URLS.items() if k != "auth"}, "auth"),
    ],
)
async def test_validation_errors_name_the_field(sandbox, what, body, field):
    token = sandbox.tokens.mint()
    status, answer, _ = await call(sandbox, "PUT", f"{LOC_PATH}/{what}", token, body)
    assert status == 400, answer
    assert answer["code"] == "validation" and answer["type"].endswith("/validation")
    assert answer["field"] == field, answer
    assert answer["message"].startswith(field)
    assert sandbox.state.published == {}


async def test_a_body_that_is_not_json_is_a_validation_error(sandbox):
    headers = {"Authorization": f"Bearer {sandbox.tokens.mint()}"}
    async with sandbox.session.put(
        sandbox.url + LOC_PATH + "/tables", data=b"{nope", headers=headers
    ) as response:
        assert response.status == 400
        assert (await response.json())["field"] == "body"


async def test_faults_answer_their_status_count_times_then_the_route_answers(sandbox):
    token = sandbox.tokens.mint()
    fault = {"path": "/organizations", "status": 503, "count": 2, "delayS": 0}
    assert (await sandbox.control("POST", "/_sandbox/faults", fault))[0] == 201
    for _ in range(2):
        status, body, _ = await call(sandbox, "GET", "/organizations", token)
        assert (status, body["code"]) == (503, "unavailable")
    assert (await call(sandbox, "GET", "/organizations", token))[0] == 200
    status, body = await sandbox.control("GET", "/_sandbox/calls")
    assert body["calls"] == ["GET /organizations"] * 3
    assert (await sandbox.control("DELETE", "/_sandbox/calls"))[0] == 204
    assert (await sandbox.control("GET", "/_sandbox/calls"))[1] == {"calls": []}


async def test_controls_refuse_bad_bodies_in_lokes_error_style(sandbox):
    status, body = await sandbox.control("POST", "/_sandbox/faults", {"path": "x"})
    assert (status, body["field"]) == (400, "path")
    status, body = await sandbox.control("PUT", "/_sandbox/settings/api", {"pageSize": 0})
    assert (status, body["field"]) == (400, "pageSize")
    status, body = await sandbox.control("GET", "/_sandbox/nothing-here")
    assert (status, body["code"]) == (404, "not_found")
    status, body = await sandbox.control(
        "POST", "/_sandbox/guests/pay", {"organizationId": ORG, "locationId": "x", "table": 1}
    )
    assert (status, body["code"]) == (409, "not_registered")
