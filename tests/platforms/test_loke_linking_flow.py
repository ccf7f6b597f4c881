"""The LOKE addon end to end, through the relay, against the LOKE sandbox: the technician
logs in, connects (code flow with PKCE on the sandbox's consent page), sees the
organisation's locations (paged), links one (tables published, URLs registered), sandbox
guests pay a bill in three splits through the registered relay URLs, unlink withdraws."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from bridge.platforms.loke.sandbox.app import start_sandbox
from bridge.platforms.loke.sandbox.guests import Registration, pay_bill
from bridge.platforms.loke.sandbox.state import SandboxState, demo_state
from tests.conftest import ADMIN_TOKEN
from tests.relay.harness import relay_and_bridge

CLIENT_ID = "pos-bridge"
CLIENT_SECRET = "sandbox-client-secret-0123456789"
ORG = "org-bistro"
LOC = "loc-bistro-3"


@contextlib.asynccontextmanager
async def sandbox() -> AsyncIterator[tuple[SandboxState, str]]:
    state = demo_state(CLIENT_ID, CLIENT_SECRET, ())
    state.page_size = 2  # five locations: three pages
    runner, base = await start_sandbox("127.0.0.1", 0, state)
    try:
        yield state, base
    finally:
        await runner.cleanup()


def loke_section(base: str) -> dict[str, Any]:
    return {
        "issuer": base + "/",
        "api_url": base,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


class Technician:
    """The technician's browser, as plain HTTP (the browser test walks the same pages)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def login(self) -> None:
        async with self.http.post(
            self.base + "/admin/login", data={"token": ADMIN_TOKEN}, allow_redirects=False
        ) as response:
            assert response.status == 303

    async def page(self) -> str:
        async with self.http.get(self.base + "/admin/loke") as response:
            assert response.status == 200, await response.text()
            return await response.text()

    async def post(self, path: str, **form: str) -> aiohttp.ClientResponse:
        data = {"csrf": csrf(await self.page()), **form}
        async with self.http.post(self.base + path, data=data, allow_redirects=False) as r:
            await r.read()
            return r

    async def connect(self, decision: str = "allow") -> str:
        """Connect, consent on the sandbox's page, follow LOKE back: the page it lands on."""
        started = await self.post("/admin/loke/connect")
        assert started.status == 303
        authorize = started.headers["Location"]
        assert "code_challenge_method=S256" in authorize and "state=" in authorize
        async with self.http.get(authorize) as consent:
            assert consent.status == 200
            html = await consent.text()
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
        fields |= {"organization": ORG, "decision": decision}
        action = re.search(r'<form method="post" action="([^"]+)"', html)
        assert action
        url = str(consent.url.join(aiohttp.client.URL(action.group(1).replace("&amp;", "&"))))
        async with self.http.post(url, data=fields, allow_redirects=False) as granted:
            assert granted.status == 302
            back = granted.headers["Location"]
        async with self.http.get(back) as landed:
            return await landed.text()


async def test_connect_link_pay_in_three_splits_unlink(tmp_path: Path) -> None:
    async with (
        sandbox() as (state, sandbox_url),
        relay_and_bridge(tmp_path, loke=loke_section(sandbox_url)) as (relay, uplink),
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        assert uplink.origin is not None
        bridge = f"http://127.0.0.1:{uplink.origin.port}"
        client = state.clients[CLIENT_ID]
        state.clients[CLIENT_ID] = replace(client, redirect_uris=(f"{bridge}/admin/loke/callback",))
        tech = Technician(http, bridge)
        await tech.login()
        assert 'id="not-connected"' in await tech.page()

        landed = await tech.connect()
        assert "Connected: Sandbox Bistro Group" in landed
        state.calls.clear()
        page = await tech.page()
        for i in range(1, 6):  # every location, over three pages of two
            assert f'data-loke-location="loc-bistro-{i}"' in page
        assert state.calls.count(f"GET /organizations/{ORG}/locations") == 3

        linked = await tech.post(
            "/admin/loke/links",
            organization=ORG,
            location=LOC,
            name="Bistro Richmond",
            driver="main",
            pos_location="1",
        )
        assert linked.status == 303
        published = state.published[(ORG, LOC)]
        assert published.tables is not None and len(published.tables) == 12
        assert published.pay_at_table is not None
        registration = Registration.from_published(published.pay_at_table)
        assert registration.fetch_bill_url.startswith(f"{relay.url}/v/cafe-a/loke/v1/")

        result = await pay_bill(http, registration, table=4, splits=3)
        assert [s.status for s in result.splits] == [201, 201, 201], result.as_json()
        async with http.get(
            registration.fetch_bill_url.replace("{tableNumber}", "4"),
            headers=registration.headers(b""),
        ) as after:
            assert after.status == 404  # the bill is closed on the POS: no open bill
            assert "no_open_bill" in await after.text()

        unlinked = await tech.post(f"/admin/loke/links/{LOC}/unlink")
        assert unlinked.status == 303
        withdrawn = state.published.get((ORG, LOC))
        assert withdrawn is None or (withdrawn.tables is None and withdrawn.pay_at_table is None)
        async with http.get(
            registration.fetch_bill_url.replace("{tableNumber}", "1"),
            headers=registration.headers(b""),
        ) as refused:
            assert refused.status == 401  # no longer linked: as a wrong secret


async def test_a_restart_keeps_the_tokens_and_the_link(tmp_path: Path) -> None:
    async with (
        sandbox() as (state, sandbox_url),
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        async with relay_and_bridge(tmp_path, loke=loke_section(sandbox_url)) as (_, uplink):
            assert uplink.origin is not None
            bridge = f"http://127.0.0.1:{uplink.origin.port}"
            client = state.clients[CLIENT_ID]
            state.clients[CLIENT_ID] = replace(
                client, redirect_uris=(f"{bridge}/admin/loke/callback",)
            )
            tech = Technician(http, bridge)
            await tech.login()
            await tech.connect()
            linked = await tech.post(
                "/admin/loke/links", organization=ORG, location=LOC, driver="main", pos_location="1"
            )
            assert linked.status == 303
        published = state.published[(ORG, LOC)].pay_at_table
        assert published is not None
        registration = Registration.from_published(published)
        token_calls = state.calls.count("POST /token")

        # The same data folder, a new bridge process's worth of objects, a new relay port.
        async with (
            relay_and_bridge(
                tmp_path / "again",
                loke=loke_section(sandbox_url),
                bridge={"data_dir": str(tmp_path / "data"), "admin_token": ADMIN_TOKEN},
            ) as (relay, uplink),
        ):
            assert uplink.origin is not None
            tech = Technician(http, f"http://127.0.0.1:{uplink.origin.port}")
            await tech.login()
            page = await tech.page()
            assert f'id="state-{ORG}">ok<' in page  # the tokens: no new code flow
            assert f'data-link="{LOC}"' in page  # the link
            fetch = registration.fetch_bill_url.split("/loke/v1/", 1)[1]
            async with http.get(
                f"{relay.url}/v/cafe-a/loke/v1/{fetch.replace('{tableNumber}', '2')}",
                headers=registration.headers(b""),
            ) as bill:
                assert bill.status == 200, await bill.text()  # served with its secret
        assert state.calls.count("POST /token") == token_calls  # no refresh was needed
