"""Through a real relay and the bridge's real tunnel: the technician's pages are not there
(404, as any unknown path), LOKE's addon URLs are, and answer as the bridge does directly."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from tests.conftest import ADMIN_TOKEN
from tests.relay.harness import relay_and_bridge

LOKE = {"client_id": "pos-bridge-test-client", "client_secret": "loke-client-secret-for-tests-0123"}
PAGES = [
    ("GET", "/admin"),
    ("GET", "/admin/login"),
    ("GET", "/admin/login?next=/admin"),
    ("GET", "/admin/static/pages.css"),
    ("POST", "/admin/login"),
    ("POST", "/admin/logout"),
    ("GET", "/%61dmin"),
]


async def call(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, bytes, aiohttp.ClientResponse]:
    async with http.request(method, url, allow_redirects=False, **kwargs) as response:
        return response.status, await response.read(), response


async def test_the_pages_are_404_through_the_tunnel_and_served_locally(tmp_path):
    async with relay_and_bridge(tmp_path) as (relay, uplink), aiohttp.ClientSession() as http:
        assert uplink.origin is not None
        public = f"{relay.url}/v/cafe-a"
        direct = f"http://127.0.0.1:{uplink.origin.port}"
        unknown_status, unknown_body, _ = await call(http, "GET", public + "/no-such-page")
        assert unknown_status == 404
        for method, path in PAGES:
            data = {"token": ADMIN_TOKEN} if method == "POST" else None
            status, body, response = await call(http, method, public + path, data=data)
            assert (status, body) == (unknown_status, unknown_body), f"{method} {path}"
            assert "Set-Cookie" not in response.headers
        # Locally the same bridge serves them: the login form, and a session for the token.
        status, body, _ = await call(http, "GET", direct + "/admin/login")
        assert status == 200 and b'name="token"' in body
        status, _, response = await call(
            http, "POST", direct + "/admin/login", data={"token": ADMIN_TOKEN}
        )
        assert status == 303 and "pos_bridge_admin" in response.cookies
        # A caller cannot pass as local through the tunnel: its own mark is replaced...
        for value in ("", "0", "no"):
            headers = {"X-Pos-Bridge-Tunnelled": value}
            status, body, _ = await call(http, "GET", public + "/admin/login", headers=headers)
            assert (status, body) == (unknown_status, unknown_body)
        # ...and a local caller adding the mark only refuses itself.
        headers = {"X-Pos-Bridge-Tunnelled": "1"}
        status, body, _ = await call(http, "GET", direct + "/admin/login", headers=headers)
        assert status == 404


async def test_a_session_cookie_is_no_key_through_the_tunnel(tmp_path):
    """Even a technician's valid cookie, replayed from the internet, gets the 404."""
    async with relay_and_bridge(tmp_path) as (relay, uplink), aiohttp.ClientSession() as http:
        assert uplink.origin is not None
        direct = f"http://127.0.0.1:{uplink.origin.port}"
        _, _, response = await call(
            http, "POST", direct + "/admin/login", data={"token": ADMIN_TOKEN}
        )
        cookie = {"pos_bridge_admin": response.cookies["pos_bridge_admin"].value}
        status, _, _ = await call(http, "GET", direct + "/admin", cookies=cookie)
        assert status == 200
        status, _, _ = await call(http, "GET", f"{relay.url}/v/cafe-a/admin", cookies=cookie)
        assert status == 404


async def test_the_addon_meta_answers_through_the_relay_with_public_urls(tmp_path):
    async with (
        relay_and_bridge(tmp_path, loke=LOKE) as (relay, uplink),
        aiohttp.ClientSession() as http,
    ):
        assert uplink.origin is not None
        public = f"{relay.url}/v/cafe-a"
        direct = f"http://127.0.0.1:{uplink.origin.port}"
        status, body, response = await call(http, "GET", public + "/.loke/addon-meta")
        assert status == 200, body
        assert response.content_type == "application/json"
        meta = orjson.loads(body)
        assert meta == {
            "name": "POS Bridge",
            "clientId": "pos-bridge-test-client",
            "description": meta["description"],
            "imageUrl": public + "/.loke/icon.svg",
            "configureUrl": public + "/.loke/configure?organizationId={organizationId}",
            "statusUrl": public + "/.loke/status/{organizationId}",
            "metaUrl": public + "/.loke/addon-meta",
        }
        assert meta["description"]
        assert (await call(http, "GET", direct + "/.loke/addon-meta"))[1] == body
        # Every URL it names answers, through the relay.
        status, body, _ = await call(http, "GET", meta["metaUrl"])
        assert status == 200 and orjson.loads(body) == meta
        status, body, response = await call(http, "GET", meta["imageUrl"])
        assert status == 200 and response.content_type == "image/svg+xml"
        assert b'viewBox="0 0 256 256"' in body  # square
        url = meta["configureUrl"].replace("{organizationId}", "org-1")
        status, body, response = await call(http, "GET", url)
        assert status == 200 and response.content_type == "text/html"
        assert b"/admin" in body and b"venue's network" in body
        assert b'href="/admin' not in body and b"<form" not in body  # no way in from here
        status, body, _ = await call(
            http, "GET", meta["statusUrl"].replace("{organizationId}", "org-1")
        )
        assert status == 200
        assert orjson.loads(body) == {
            "organizationId": "org-1",
            "configured": False,  # file locations, but never connected to LOKE
            "connection": "none",
            "locations": [
                {"locationId": "loc-main", "linkedBy": "config"},
                {"locationId": "loc-signed", "linkedBy": "config"},
            ],
        }
