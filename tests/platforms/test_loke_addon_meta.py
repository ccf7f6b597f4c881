"""``/.loke/…`` straight at the bridge: the metadata's URLs from ``[loke] public_url``, 404
JSON without ``[loke]``, and the prefix derived from ``[tunnel]`` (through the relay:
``tests/relay/test_pages_and_addon_via_tunnel.py``)."""

from __future__ import annotations

import pytest

from bridge.app import create_app
from bridge.config import LokeConfig, TunnelConfig
from bridge.platforms.loke.addon_meta import LinkedLocation, addon_status, public_prefix
from tests.conftest import make_config

SECRET = "loke-client-secret-for-tests-0123"
PUBLIC = "https://relay.example.com/v/cafe"
ROUTES = ["/.loke/addon-meta", "/.loke/status/org-1", "/.loke/configure", "/.loke/icon.svg"]


def loke(**extra: str) -> dict[str, str]:
    return {"client_id": "client-1", "client_secret": SECRET, **extra}


@pytest.mark.parametrize("path", ROUTES)
async def test_without_loke_every_addon_url_is_a_typed_404(client, path):
    response = await client.get(path)
    assert response.status == 404
    assert await response.json() == {
        "error": "loke_not_configured",
        "message": "this bridge is not a LOKE addon (no [loke] in its config)",
        "details": {},
    }


async def test_the_metadata_points_at_the_public_url(aiohttp_client, tmp_path):
    client = await aiohttp_client(
        create_app(make_config(tmp_path, loke=loke(public_url=PUBLIC + "/")))
    )
    response = await client.get("/.loke/addon-meta")
    assert response.status == 200
    meta = await response.json()
    assert set(meta) == {
        "name", "clientId", "description", "imageUrl", "configureUrl", "statusUrl", "metaUrl"
    }  # fmt: skip
    assert meta["clientId"] == "client-1"
    for field in ("imageUrl", "configureUrl", "statusUrl", "metaUrl"):
        assert meta[field].startswith(PUBLIC + "/.loke/"), meta[field]
    assert "{organizationId}" in meta["statusUrl"] and "{organizationId}" in meta["configureUrl"]
    assert SECRET not in await response.text()


async def test_without_a_public_url_or_tunnel_the_metadata_is_a_typed_503(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(make_config(tmp_path, loke=loke())))
    response = await client.get("/.loke/addon-meta")
    assert response.status == 503
    assert (await response.json())["error"] == "loke_public_url_unknown"


@pytest.mark.parametrize("organization", ["a" * 129, "org 1", "org%2F1", "ö"])
async def test_a_malformed_organization_id_is_a_typed_400(aiohttp_client, tmp_path, organization):
    client = await aiohttp_client(create_app(make_config(tmp_path, loke=loke(public_url=PUBLIC))))
    response = await client.get(f"/.loke/status/{organization}")
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_organization_id"


@pytest.mark.parametrize(
    ("url", "venue", "expected"),
    [
        ("wss://relay.example.com/tunnel", "cafe", "https://relay.example.com/v/cafe"),
        ("ws://127.0.0.1:9000/tunnel", "cafe-a", "http://127.0.0.1:9000/v/cafe-a"),
    ],
)
def test_the_public_prefix_comes_from_the_tunnel_unless_configured(url, venue, expected):
    tunnel = TunnelConfig.model_validate({"url": url, "venue": venue, "token": "t" * 32})
    assert public_prefix(LokeConfig.model_validate(loke()), tunnel) == expected
    configured = LokeConfig.model_validate(loke(public_url="https://other.example/v/x/"))
    assert public_prefix(configured, tunnel) == "https://other.example/v/x"
    assert public_prefix(LokeConfig.model_validate(loke()), None) is None


@pytest.mark.parametrize(
    ("connection", "links", "configured"),
    [("unknown", 1, True), ("ok", 1, True), ("reauthorise", 1, False), ("none", 1, False),
     ("ok", 0, False)],
)  # fmt: skip
def test_the_status_says_configured_only_with_links_and_a_working_connection(
    connection, links, configured
):
    locations = [LinkedLocation(location_id="loc", linked_by="page")] * links
    status = addon_status("org", connection, locations).json_body()
    assert status["configured"] is configured
    assert status["connection"] == connection
