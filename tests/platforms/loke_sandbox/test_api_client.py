"""The bridge's LOKE client (``bridge/platforms/loke/api.py``) against the sandbox, over real
sockets: paging, the 401 retry, publishing and registering, typed and transient errors."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from bridge.platforms.loke.api import LokeApi, LokeApiError, TableEntry
from bridge.platforms.loke.sandbox.app import create_sandbox_app
from bridge.platforms.loke.sandbox.state import AccessGrant
from tests.platforms.loke_sandbox.helpers import (
    LOCATIONS,
    ORG,
    client,
    loke_config,
    running_sandbox,
)

FETCH = "http://127.0.0.1:9/loke/v1/locations/L/tables/{tableNumber}/bill"
PAY = "http://127.0.0.1:9/loke/v1/locations/L/tables/{tableNumber}/payments"
SECRET = "link-secret-0123456789abcdef"


@pytest.fixture
async def sandbox():
    async with running_sandbox() as sandbox:
        yield sandbox


async def test_locations_follow_x_next_page_over_several_pages(sandbox, tmp_path):
    sandbox.state.page_size = 2
    locations = await client(sandbox, tmp_path).locations(ORG)
    assert [loc.id for loc in locations] == LOCATIONS
    assert locations[0].name == "Bistro Fitzroy"
    assert sandbox.state.calls == [f"GET /organizations/{ORG}/locations"] * 3


async def test_a_listing_is_bounded_by_its_page_count(sandbox, tmp_path):
    sandbox.state.page_size = 1
    with pytest.raises(LokeApiError) as caught:
        await client(sandbox, tmp_path, max_pages=3).locations(ORG)
    assert caught.value.code == "too_many_pages" and not caught.value.transient
    assert len(sandbox.state.calls) == 3


async def test_organizations_with_a_token_given_or_from_the_source(sandbox, tmp_path):
    api = client(sandbox, tmp_path)
    token = sandbox.tokens.mint((ORG, "org-other"))
    assert [o.id for o in await api.organizations(token=token)] == [ORG, "org-other"]
    organizations = await api.organizations(ORG)
    assert [(o.id, o.currency) for o in organizations] == [(ORG, "AUD")]
    with pytest.raises(LokeApiError) as caught:
        await api.organizations(token="not-a-token")
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    assert sandbox.tokens.rejections == 0  # a token given is not the source's to refresh


async def test_an_expired_token_is_rejected_then_the_call_retried_once(sandbox, tmp_path):
    sandbox.tokens.current[ORG] = sandbox.tokens.mint(ttl_s=-1)
    locations = await client(sandbox, tmp_path).locations(ORG)
    assert len(locations) == 5
    assert sandbox.tokens.rejections == 1
    assert sandbox.state.calls == [f"GET /organizations/{ORG}/locations"] * 2


async def test_a_second_401_is_a_lokeapierror(sandbox, tmp_path):
    class Stale:
        rejections = 0

        async def access_token(self, organization_id: str) -> str:
            return "stale"

        async def rejected(self, organization_id: str, token: str) -> str:
            self.rejections += 1
            return "still-stale"

    tokens = Stale()
    api = LokeApi(sandbox.session, loke_config(tmp_path, sandbox.url), tokens)
    with pytest.raises(LokeApiError) as caught:
        await api.publish_tables(ORG, LOCATIONS[0], [TableEntry(1, "T1")])
    assert (caught.value.status, caught.value.code, caught.value.transient) == (
        401,
        "unauthorized",
        False,
    )
    assert tokens.rejections == 1 and len(sandbox.state.calls) == 2


async def test_publish_and_withdraw_are_visible_in_published(sandbox, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    api = client(sandbox, tmp_path)
    loc = LOCATIONS[2]
    await api.publish_tables(ORG, loc, [TableEntry(1, "Table 1"), TableEntry(7, "Window")])
    await api.register_urls(ORG, loc, FETCH, PAY, "hmac-sha256", SECRET)
    _, body = await sandbox.control("GET", "/_sandbox/published")
    assert body["locations"] == [
        {
            "organizationId": ORG,
            "locationId": loc,
            "tables": [{"number": 1, "name": "Table 1"}, {"number": 7, "name": "Window"}],
            "payAtTable": {
                "fetchBillUrl": FETCH,
                "addPaymentUrl": PAY,
                "auth": {"scheme": "hmac-sha256", "secretLength": len(SECRET)},
            },
        }
    ]
    await api.withdraw_tables(ORG, loc)
    _, body = await sandbox.control("GET", "/_sandbox/published")
    assert body["locations"][0]["tables"] is None
    await api.withdraw_urls(ORG, loc)
    assert (await sandbox.control("GET", "/_sandbox/published"))[1] == {"locations": []}
    assert sandbox.state.calls == [
        f"PUT /organizations/{ORG}/locations/{loc}/tables",
        f"PUT /organizations/{ORG}/locations/{loc}/pay-at-table",
        f"DELETE /organizations/{ORG}/locations/{loc}/tables",
        f"DELETE /organizations/{ORG}/locations/{loc}/pay-at-table",
    ]
    logged = caplog.text
    assert SECRET not in logged
    assert all(token not in logged for token in sandbox.state.access_tokens)


async def test_the_inferred_paths_come_from_the_config(sandbox, tmp_path):
    # A venue whose LOKE uses other paths: here, a path the sandbox does not serve.
    config = loke_config(
        tmp_path,
        sandbox.url,
        tables_path="/organizations/{organizationId}/locations/{locationId}/tables-v2",
    )
    api = LokeApi(sandbox.session, config, sandbox.tokens)
    with pytest.raises(LokeApiError) as caught:
        await api.publish_tables(ORG, LOCATIONS[0], [TableEntry(1, "T")])
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert sandbox.state.calls == []  # no route: not a platform call


async def test_validation_errors_reach_the_caller_typed(sandbox, tmp_path):
    api = client(sandbox, tmp_path)
    with pytest.raises(LokeApiError) as caught:
        await api.register_urls(ORG, LOCATIONS[0], "https://x/bill", PAY, "bearer", SECRET)
    error = caught.value
    assert (error.status, error.code, error.transient) == (400, "validation", False)
    assert "fetchBillUrl" in error.message
    with pytest.raises(LokeApiError) as caught:
        await api.publish_tables(ORG, LOCATIONS[0], [TableEntry(2, "A"), TableEntry(2, "B")])
    assert caught.value.message.startswith("tables ")


async def test_an_organisation_the_token_does_not_reach_is_403(sandbox, tmp_path):
    api = client(sandbox, tmp_path)
    sandbox.state.access_tokens["narrow"] = AccessGrant("pos-bridge", (ORG,), 2e9)
    sandbox.tokens.current["org-other"] = "narrow"
    with pytest.raises(LokeApiError) as caught:
        await api.locations("org-other")
    assert (caught.value.status, caught.value.code) == (403, "forbidden")


async def test_a_503_then_ok_is_retried(sandbox, tmp_path):
    fault = {"path": "/organizations", "status": 503, "count": 1}
    assert (await sandbox.control("POST", "/_sandbox/faults", fault))[0] == 201
    assert len(await client(sandbox, tmp_path).locations(ORG)) == 5
    assert sandbox.state.calls == [f"GET /organizations/{ORG}/locations"] * 2


async def test_503s_past_the_retries_are_a_transient_error(sandbox, tmp_path):
    fault = {"path": f"/organizations/{ORG}/locations", "status": 503, "count": 5}
    await sandbox.control("POST", "/_sandbox/faults", fault)
    with pytest.raises(LokeApiError) as caught:
        await client(sandbox, tmp_path, retries=1).publish_tables(ORG, LOCATIONS[0], [])
    assert (caught.value.status, caught.value.code, caught.value.transient) == (
        503,
        "unavailable",
        True,
    )
    assert len(sandbox.state.calls) == 2


async def test_a_delay_beyond_the_timeout_is_a_transient_error(sandbox, tmp_path):
    fault = {"path": "/organizations", "count": 2, "delayS": 1.0}
    await sandbox.control("POST", "/_sandbox/faults", fault)
    api = client(sandbox, tmp_path, http_timeout_s=0.2)
    with pytest.raises(LokeApiError) as caught:
        await api.locations(ORG)
    assert (caught.value.status, caught.value.code, caught.value.transient) == (0, "timeout", True)
    assert len(sandbox.state.calls) == 2  # the first attempt and one retry


async def test_no_platform_at_all_is_a_transient_connection_error(sandbox, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = loke_config(tmp_path, f"http://127.0.0.1:{port}")
    api = LokeApi(sandbox.session, config, sandbox.tokens, retries=0)
    with pytest.raises(LokeApiError) as caught:
        await api.locations(ORG)
    assert (caught.value.status, caught.value.code, caught.value.transient) == (
        0,
        "connection",
        True,
    )


async def test_an_x_next_page_off_the_api_is_never_followed(sandbox, tmp_path):
    """A token is sent to whatever X-Next-Page names: only LOKE's own origin is followed."""
    sandbox.state.page_size = 2
    app = create_sandbox_app(sandbox.state, clock=sandbox.clock, base_url="http://127.0.0.2:9")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        api = LokeApi(sandbox.session, loke_config(tmp_path, url), sandbox.tokens)
        with pytest.raises(LokeApiError) as caught:
            await api.locations(ORG)
        assert (caught.value.code, caught.value.transient) == ("invalid_response", False)
        assert len(sandbox.state.calls) == 1
    finally:
        await runner.cleanup()
