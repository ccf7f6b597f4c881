"""Credentials: every platform route refuses a caller without its location's secret, with a
typed 401 and ``WWW-Authenticate``, and changes nothing; the admin API wants the admin token
and nothing else; no secret reaches a log.

"Changes nothing" is checked on everything the bridge and the POS hold: a dump of every row of
the bridge's SQLite file (payments, audit, idempotency, outbox, bill snapshots) and every
payment on the simulated POS, before and after each refused call. The requests are otherwise
valid (a real bill, a fresh payment id), and the same request with the right credentials
succeeds, so a 401 can only come from the credentials.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge.config import AuthConfig
from bridge.runtime import RUNTIME
from bridge.web.auth import check_platform_auth
from common.errors import UnauthorizedError
from tests.conftest import (
    ADMIN_AUTH,
    ADMIN_TOKEN,
    HMAC_LOCATION,
    HMAC_SECRET,
    LOCATION,
    LOKE_AUTH,
    LOKE_SECRET,
    config_data,
    make_config,
    payment_body,
)

OTHER_LOCATION = "loc-other"
OTHER_SECRET = "loke-secret-of-another-location-987"
UNKNOWN_LOCATION = "loc-not-linked"
SECRETS = {"admin": ADMIN_TOKEN, "loke": LOKE_SECRET, "hmac": HMAC_SECRET, "other": OTHER_SECRET}
POS_LOCATIONS = {LOCATION: "1", HMAC_LOCATION: "2", OTHER_LOCATION: "3"}

LOKE = "/loke/v1/locations/{location}"
TABLES = ("GET", f"{LOKE}/tables")
BILL = ("GET", f"{LOKE}/tables/{{table}}/bill")
PAY = ("POST", f"{LOKE}/tables/{{table}}/payments")
STATUS = ("GET", f"{LOKE}/payments/{{payment_id}}")
PLATFORM_ROUTES = [TABLES, BILL, PAY, STATUS]
ROUTE_IDS = ["tables", "bill", "payments", "payment-status"]
BILL_TABLE = 5  # never fetched before the refused call: a bypass would store its snapshot
PAY_TABLE = 4


@pytest.fixture
def config(tmp_path):
    """The usual config plus a third location, with a bearer secret of its own."""
    locations = config_data(tmp_path)["locations"]
    locations[OTHER_LOCATION] = {
        "driver": "main",
        "pos_location": POS_LOCATIONS[OTHER_LOCATION],
        "name": "Other",
        "auth": {"scheme": "bearer", "secrets": [OTHER_SECRET]},
    }
    return make_config(tmp_path, locations=locations)


# -- helpers -----------------------------------------------------------------------------------


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def signature(body: bytes, secret: str = HMAC_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(body: bytes, secret: str = HMAC_SECRET) -> dict[str, str]:
    return {"X-Event-Signature": signature(body, secret)}


def right_credentials(location: str, body: bytes) -> dict[str, str]:
    if location == HMAC_LOCATION:
        return signed(body)
    return bearer(OTHER_SECRET if location == OTHER_LOCATION else LOKE_SECRET)


def bridge_state(client: TestClient) -> tuple[list[str], list[Any]]:
    """Every row of the bridge's database, and every payment on the simulated POS."""
    runtime = client.app[RUNTIME]
    with contextlib.closing(sqlite3.connect(runtime.config.database_path)) as conn:
        rows = list(conn.iterdump())
    driver = runtime.drivers["main"]
    return rows, [driver.payments(pos) for pos in POS_LOCATIONS.values()]


async def call(
    client: TestClient, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[Any, str]:
    headers = {**headers, **({"Content-Type": "application/json"} if method == "POST" else {})}
    response = await client.request(method, path, data=body or None, headers=headers)
    return response, await response.text()


def assert_unauthorized(response: Any, text: str, realm: str = "loke") -> None:
    assert response.status == 401, text
    assert response.content_type == "application/json"
    assert json.loads(text) == {
        "error": "unauthorized",
        "message": "missing or wrong credentials",
        "details": {},
    }
    assert response.headers["WWW-Authenticate"] == f'Bearer realm="{realm}"'
    for secret in SECRETS.values():
        assert secret not in text


async def pay(client: TestClient, location: str, table: int, payment_id: str) -> dict[str, Any]:
    """A real payment at ``location``, with its right credentials."""
    bill_path = LOKE.format(location=location) + f"/tables/{table}/bill"
    response, text = await call(client, "GET", bill_path, b"", right_credentials(location, b""))
    assert response.status == 200, text
    raw = json.dumps(payment_body(json.loads(text), payment_id, 100)).encode()
    path = LOKE.format(location=location) + f"/tables/{table}/payments"
    response, text = await call(client, "POST", path, raw, right_credentials(location, raw))
    assert response.status == 201, text
    return json.loads(text)


async def request_for(
    client: TestClient, route: tuple[str, str], location: str
) -> tuple[str, str, bytes]:
    """An otherwise valid request to ``route`` at ``location``: method, path, raw body.

    For an unlinked location, the body is a valid payment of the main location's.
    """
    real = location if location in POS_LOCATIONS else LOCATION
    method, template = route
    params: dict[str, Any] = {"location": location}
    body = b""
    if route == BILL:
        params["table"] = BILL_TABLE
    elif route == PAY:
        params["table"] = PAY_TABLE
        bill_path = LOKE.format(location=real) + f"/tables/{PAY_TABLE}/bill"
        response, text = await call(client, "GET", bill_path, b"", right_credentials(real, b""))
        assert response.status == 200, text
        body = json.dumps(payment_body(json.loads(text), f"auth-{uuid.uuid4()}", 100)).encode()
    elif route == STATUS:
        params["payment_id"] = f"existing-{real}"
        await pay(client, real, 2, params["payment_id"])
    return method, template.format(**params), body


# -- every platform route, every wrong credential --------------------------------------------

Headers = Callable[[bytes], dict[str, str]]
BEARER_CASES: dict[str, tuple[str, Headers]] = {
    "no credentials": (LOCATION, lambda body: {}),
    "wrong bearer": (LOCATION, lambda body: bearer("not-the-secret-0123456789abcdef")),
    "bearer of another location": (LOCATION, lambda body: bearer(OTHER_SECRET)),
    "right bearer, location not linked": (UNKNOWN_LOCATION, lambda body: LOKE_AUTH),
    "admin token as bearer": (LOCATION, lambda body: ADMIN_AUTH),
    "HMAC location's secret as bearer": (LOCATION, lambda body: bearer(HMAC_SECRET)),
    "secret without a scheme": (LOCATION, lambda body: {"Authorization": LOKE_SECRET}),
    "secret as Basic": (LOCATION, lambda body: {"Authorization": f"Basic {LOKE_SECRET}"}),
    "empty bearer": (LOCATION, lambda body: {"Authorization": "Bearer "}),
    "secret's prefix": (LOCATION, lambda body: bearer(LOKE_SECRET[:-1])),
    "secret and more": (LOCATION, lambda body: bearer(LOKE_SECRET + "0")),
    "a signature instead of the bearer": (LOCATION, lambda body: signed(body, LOKE_SECRET)),
    "this location's bearer at another location": (OTHER_LOCATION, lambda body: LOKE_AUTH),
}
HMAC_CASES: dict[str, tuple[str, Headers]] = {
    "missing signature": (HMAC_LOCATION, lambda body: {}),
    "wrong signature": (HMAC_LOCATION, lambda body: signed(body, "not-the-hmac-secret-012345")),
    "signature of a different body": (HMAC_LOCATION, lambda body: signed(body + b" ")),
    "signature without sha256=": (
        HMAC_LOCATION,
        lambda body: {"X-Event-Signature": signature(body).removeprefix("sha256=")},
    ),
    "signature as sha1=": (
        HMAC_LOCATION,
        lambda body: {"X-Event-Signature": signature(body).replace("sha256=", "sha1=")},
    ),
    "truncated signature": (
        HMAC_LOCATION,
        lambda body: {"X-Event-Signature": signature(body)[:-2]},
    ),
    "empty signature": (HMAC_LOCATION, lambda body: {"X-Event-Signature": "sha256="}),
    "signature in another header": (
        HMAC_LOCATION,
        lambda body: {"X-Signature": signature(body)},
    ),
    "signature keyed by another location's secret": (
        HMAC_LOCATION,
        lambda body: signed(body, LOKE_SECRET),
    ),
    "bearer of the HMAC secret": (HMAC_LOCATION, lambda body: bearer(HMAC_SECRET)),
    "bearer of a bearer location's secret": (HMAC_LOCATION, lambda body: LOKE_AUTH),
}
CASES = {**BEARER_CASES, **HMAC_CASES}


async def test_every_platform_route_is_covered(client):
    """A route added under /loke/ without an entry in PLATFORM_ROUTES fails here."""
    registered = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/loke/")
        and route.method != "HEAD"
    }
    assert registered == set(PLATFORM_ROUTES)


@pytest.mark.parametrize("route", PLATFORM_ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("case", list(CASES))
async def test_wrong_credentials_get_401_and_change_nothing(client, route, case):
    location, headers = CASES[case]
    method, path, body = await request_for(client, route, location)
    before = bridge_state(client)
    response, text = await call(client, method, path, body, headers(body))
    assert_unauthorized(response, text)
    assert bridge_state(client) == before
    # The control: the very same request with the right credentials goes through.
    if location in POS_LOCATIONS:
        response, text = await call(client, method, path, body, right_credentials(location, body))
        assert response.status in (200, 201), text


@pytest.mark.parametrize("route", PLATFORM_ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("location", [LOCATION, HMAC_LOCATION, OTHER_LOCATION])
async def test_right_credentials_succeed_at_every_route(client, route, location):
    method, path, body = await request_for(client, route, location)
    response, text = await call(client, method, path, body, right_credentials(location, body))
    assert response.status == (201 if route == PAY else 200), text
    if route == PAY:  # and the payment is on the POS, at the right POS location
        applied = client.app[RUNTIME].drivers["main"].payments(POS_LOCATIONS[location])
        assert json.loads(body)["paymentId"] in [p[0] for p in applied]


async def test_an_uppercase_signature_is_accepted(client):
    method, path, body = await request_for(client, PAY, HMAC_LOCATION)
    header = {"X-Event-Signature": "sha256=" + signature(body).removeprefix("sha256=").upper()}
    response, text = await call(client, method, path, body, header)
    assert response.status == 201, text


@pytest.mark.parametrize("route", [TABLES, BILL, STATUS], ids=["tables", "bill", "status"])
async def test_head_without_credentials_is_401(client, route):
    _, path, _ = await request_for(client, route, LOCATION)
    response = await client.head(path)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="loke"'


async def test_a_payment_at_one_location_cannot_be_read_at_another(client):
    await pay(client, LOCATION, 2, "mine")
    path = LOKE.format(location=OTHER_LOCATION) + "/payments/mine"
    response, text = await call(client, "GET", path, b"", bearer(OTHER_SECRET))
    assert response.status == 404, text
    assert json.loads(text)["error"] == "unknown_payment"


# -- admin -------------------------------------------------------------------------------------

SIM = "/api/drivers/{driver}/simulator"
ADMIN_ROUTES: dict[tuple[str, str], tuple[str, bytes]] = {
    ("GET", "/api/status"): ("/api/status", b""),
    ("GET", "/api/payments"): ("/api/payments?state=applied", b""),
    ("GET", "/api/payments/{platform}/{payment_id}"): ("/api/payments/loke/existing", b""),
    ("POST", "/api/payments/{platform}/{payment_id}/retry"): (
        "/api/payments/loke/existing/retry",
        b"{}",
    ),
    ("POST", SIM): ("/api/drivers/main/simulator", b'{"mode": "offline", "latencyMs": 5}'),
    ("POST", f"{SIM}/tables/{{table}}/bill"): (
        "/api/drivers/main/simulator/tables/3/bill",
        b'{"posLocation": "9"}',
    ),
    ("POST", f"{SIM}/tables/{{table}}/items"): (
        "/api/drivers/main/simulator/tables/3/items",
        b'{"name": "Oysters", "amount": 4200}',
    ),
    ("POST", f"{SIM}/tables/{{table}}/till-payments"): (
        "/api/drivers/main/simulator/tables/3/till-payments",
        b'{"amount": 100}',
    ),
}
# What the admin token gets where 200 is not the answer: past the credentials, to the route's
# own refusal (the payment retried here does not need attention).
ADMIN_CONTROL_STATUS = {("POST", "/api/payments/{platform}/{payment_id}/retry"): 409}
ADMIN_CASES: dict[str, dict[str, str]] = {
    "no credentials": {},
    "wrong token": bearer("not-the-admin-token-0123456789"),
    "LOKE bearer secret": LOKE_AUTH,
    "HMAC secret": bearer(HMAC_SECRET),
    "another location's secret": bearer(OTHER_SECRET),
    "token without a scheme": {"Authorization": ADMIN_TOKEN},
    "token as Basic": {"Authorization": f"Basic {ADMIN_TOKEN}"},
    "token's prefix": bearer(ADMIN_TOKEN[:-1]),
    "token as a signature": {"X-Event-Signature": f"sha256={ADMIN_TOKEN}"},
}


async def test_every_admin_route_is_covered(client):
    registered = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"
    }
    assert registered == set(ADMIN_ROUTES)


async def table_3_bill(client: TestClient) -> dict[str, Any]:
    response, text = await call(
        client, "GET", LOKE.format(location=LOCATION) + "/tables/3/bill", b"", LOKE_AUTH
    )
    assert response.status == 200, text
    return json.loads(text)


@pytest.mark.parametrize("route", list(ADMIN_ROUTES), ids=[r[1] for r in ADMIN_ROUTES])
@pytest.mark.parametrize("case", list(ADMIN_CASES))
async def test_admin_routes_refuse_anything_but_the_admin_token(client, route, case):
    await pay(client, LOCATION, 2, "existing")
    bill = await table_3_bill(client)
    driver = client.app[RUNTIME].drivers["main"]
    path, body = ADMIN_ROUTES[route]
    before = bridge_state(client)
    response, text = await call(client, route[0], path, body, ADMIN_CASES[case])
    assert_unauthorized(response, text, realm="pos-bridge admin")
    assert (driver.control.mode, driver.control.latency_ms) == ("online", 0)
    assert await table_3_bill(client) == bill
    assert bridge_state(client) == before
    # The control: the admin token opens it.
    response, text = await call(client, route[0], path, body, ADMIN_AUTH)
    assert response.status == ADMIN_CONTROL_STATUS.get(route, 200), text


# -- logs --------------------------------------------------------------------------------------


async def test_secrets_never_reach_the_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    await pay(client, LOCATION, 2, "log-1")
    await pay(client, HMAC_LOCATION, 2, "log-2")
    for case in ("wrong bearer", "bearer of another location", "a signature instead of the bearer"):
        location, headers = CASES[case]
        method, path, body = await request_for(client, PAY, location)
        response, _ = await call(client, method, path, body, headers(body))
        assert response.status == 401
    for case in ("wrong signature", "bearer of the HMAC secret"):
        location, headers = CASES[case]
        method, path, body = await request_for(client, BILL, location)
        response, _ = await call(client, method, path, body, headers(body))
        assert response.status == 401
    for headers in [ADMIN_AUTH, LOKE_AUTH, bearer(HMAC_SECRET), {"Authorization": ADMIN_TOKEN}]:
        await call(client, "GET", "/api/status", b"", headers)
    await call(client, "POST", SIM.format(driver="main"), b'{"mode": "online"}', ADMIN_AUTH)

    assert len(caplog.records) >= 10, "the bridge logs every request: these records are its logs"
    for record in caplog.records:
        text = " ".join(
            [record.getMessage(), repr(record.args), record.exc_text or "", str(record.exc_info)]
        )
        for name, secret in SECRETS.items():
            assert secret not in text, f"the {name} secret is in a log record: {text[:300]}"
    for name, secret in SECRETS.items():
        assert secret not in caplog.text, f"the {name} secret is in the logs"


def test_lower_case_header_dicts_carry_credentials_too():
    """``check_platform_auth`` also takes plain dicts with lower-case names; a configured
    header name in any case must still be found."""
    body = b'{"amount": 1}'
    signed = AuthConfig(
        scheme="hmac-sha256", secrets=(HMAC_SECRET,), signature_header="X-Event-Signature"
    )
    check_platform_auth({"x-event-signature": signature(body)}, signed, body)
    with pytest.raises(UnauthorizedError):
        check_platform_auth({"x-event-signature": signature(b"other")}, signed, body)
    check_platform_auth(
        {"authorization": f"Bearer {OTHER_SECRET}"},
        AuthConfig(scheme="bearer", secrets=(OTHER_SECRET,)),
        b"",
    )
    with pytest.raises(UnauthorizedError):
        check_platform_auth({}, AuthConfig(scheme="bearer", secrets=(OTHER_SECRET,)), b"")
