"""What the bad-input tests (``tests/web/test_bad_input_*.py``) share.

Bad input to every endpoint gets a typed 4xx JSON error: never a 500, never a trace. The tests
of that are split by theme: every endpoint, its path and its methods (``_endpoints``); the
payment's fields and the code each bad input gets (``_fields``); raw bodies, JSON edge cases,
Content-Type, body size and encodings (``_bodies``). How Hypothesis runs in all three is below.

This module holds the Hypothesis settings (``FUZZ``: deterministic, ``POS_BRIDGE_FUZZ_EXAMPLES``
examples), the payment route's constants, the check of the bridge's typed error
(:func:`assert_typed_error`), the checks that nothing reached the simulated POS, the request
helpers and the JSON strategies. ``tests/web/__init__.py`` registers it for pytest's assertion
rewriting, so its asserts report as they would in a test module.

Every request here goes to the real bridge (``create_app``) on a real socket, through the
``client`` fixture; nothing of ours is mocked.

How Hypothesis runs here: ``@given`` decorates the ``async def`` tests directly. pytest-aiohttp
runs on pytest-asyncio (``asyncio_mode = "auto"``), which recognises an async Hypothesis test
and gives Hypothesis a synchronous wrapper that runs each example's coroutine to completion on
the test's event loop: the loop on which the ``client`` fixture started the bridge. So each
example is a real HTTP round trip, with no second loop or thread. (A sync ``@given`` test
calling ``loop.run_until_complete`` would need the loop smuggled out of the async fixture;
drawing with ``data()`` gives worse failure reports; ``strategy.example()`` is not for tests.)

The ``client`` fixture is function-scoped, so one bridge serves all the examples of a test;
``HealthCheck.function_scoped_fixture`` is suppressed on purpose. State therefore accumulates
across examples, as it would on a long-running bridge, so every example asserts that nothing
reached the simulated POS: an accidental payment is caught at the example that made it.

Determinism: ``derandomize=True`` and ``database=None`` (``FUZZ`` in ``bad_input.py``), so every
run tries the same examples, a red build reproduces on any machine, and the module's run time
is stable (well under 60 s). Set ``POS_BRIDGE_FUZZ_EXAMPLES`` to a larger number to fuzz harder
locally.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from bridge.platforms.loke import PLATFORM
from bridge.runtime import RUNTIME
from tests.conftest import LOKE_AUTH, loke_url

EXAMPLES = int(os.environ.get("POS_BRIDGE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TABLE = 3  # an open bill that takes tips, at the bearer location (POS location "1")
TABLES = 12  # tables the simulator seeds (tests/conftest.py)
PAY_URL = loke_url(TABLE, "payments")
JSON_TYPE = {"Content-Type": "application/json"}
PAY_HEADERS = {**LOKE_AUTH, **JSON_TYPE}

REQUIRED = ("paymentId", "billRef", "billVersion", "currency", "amount")  # in reading order
FIELDS = (*REQUIRED, "tip", "name", "customer")
CUSTOMER_FIELDS = ("id", "firstName", "lastName", "email", "phoneNumber")

# Routes as registered in aiohttp's router.
LOKE = "/loke/v1/locations/{location}"
SIM = "/api/drivers/{driver}/simulator"


# -- checks ----------------------------------------------------------------------------------


def assert_typed_error(
    response: ClientResponse,
    text: str,
    status: int | None = None,
    code: str | None = None,
    ok: tuple[int, ...] = (),
) -> dict[str, Any] | None:
    """The bridge's error shape with a 4xx (or one of the 2xx in ``ok``); the body if an error."""
    assert "Traceback" not in text and 'File "' not in text, text[:2000]
    assert response.status < 500, f"{response.status}: {text[:1000]}"
    if response.status in ok:
        return None
    assert 400 <= response.status < 500, f"{response.status}: {text[:1000]}"
    assert response.content_type == "application/json", f"{response.content_type}: {text[:500]}"
    body = json.loads(text)
    assert isinstance(body, dict) and set(body) == {"error", "message", "details"}, body
    assert isinstance(body["error"], str) and body["error"], body
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["details"], dict), body
    if status is not None:
        assert response.status == status, body
    if code is not None:
        assert body["error"] == code, body
    if response.status == 401:
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer realm=")
    if response.status == 405:
        assert response.headers.get("Allow"), "405 without Allow"
    return body


def pos_payments(client: TestClient) -> list[tuple[str, str, int, int]]:
    """Every payment the simulated POS holds, at both linked POS locations."""
    driver = client.app[RUNTIME].drivers["main"]
    return [*driver.payments("1"), *driver.payments("2")]


def assert_pos_untouched(client: TestClient) -> None:
    assert pos_payments(client) == [], "a payment reached the simulated POS"


async def assert_not_recorded(client: TestClient, payment_id: str) -> None:
    assert await client.app[RUNTIME].store.get_payment(PLATFORM, payment_id) is None


async def send(
    client: TestClient,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    no_content_type: bool = False,
) -> tuple[ClientResponse, str]:
    response = await client.request(
        method,
        path,
        data=body,
        headers=headers or {},
        params=params,
        skip_auto_headers=["Content-Type"] if no_content_type else None,
    )
    return response, await response.text()


async def post_payment(
    client: TestClient, body: Any, table: int | str = TABLE
) -> tuple[ClientResponse, str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await send(client, "POST", loke_url(table, "payments"), raw, PAY_HEADERS)


def segment(text: str) -> str:
    """``text`` as one percent-encoded path segment."""
    return quote(text, safe="")


# -- strategies ------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
