"""Who may hold a venue's tunnel: its own token only, the newest session epoch only."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.relay.harness import (
    OPERATOR_TOKEN,
    add_venues,
    raw_tunnel,
    relay_config,
    running_relay,
)
from tunnel.errors import CloseCode
from tunnel.messages import Close, Welcome
from tunnel.protocol import Side, TunnelProtocol


async def test_a_bad_token_gets_a_typed_unauthorized_close(tmp_path):
    config = relay_config(tmp_path)
    add_venues(config, "cafe-a")
    async with (
        running_relay(config) as relay,
        raw_tunnel(relay.tunnel_url, "cafe-a", "not-the-token-0123456789", 1) as (tunnel, events),
    ):
        assert events == [Close(CloseCode.UNAUTHORIZED, "venue or token not accepted")]
        assert await tunnel.events() == []  # then the websocket closes
        assert relay.relay.registry.get("cafe-a") is None


async def test_venue_b_token_cannot_register_venue_a(tmp_path):
    config = relay_config(tmp_path)
    tokens = add_venues(config, "cafe-a", "cafe-b")
    async with (
        running_relay(config) as relay,
        raw_tunnel(relay.tunnel_url, "cafe-a", tokens["cafe-b"], 1) as (_, events),
    ):
        assert [type(e) for e in events] == [Close]
        assert events[0].code == CloseCode.UNAUTHORIZED
        assert relay.relay.registry.get("cafe-a") is None
    async with (
        running_relay(config) as relay,
        raw_tunnel(relay.tunnel_url, "cafe-b", tokens["cafe-b"], 1) as (_, events),
    ):
        assert [type(e) for e in events] == [Welcome]


async def test_a_newer_epoch_takes_over_at_once_and_an_older_one_is_refused(tmp_path):
    config = relay_config(tmp_path)
    token = add_venues(config, "cafe-a")["cafe-a"]
    async with (
        running_relay(config) as relay,
        raw_tunnel(relay.tunnel_url, "cafe-a", token, 5) as (first, events),
    ):
        assert [type(e) for e in events] == [Welcome]
        async with raw_tunnel(relay.tunnel_url, "cafe-a", token, 6) as (_, events):
            assert [type(e) for e in events] == [Welcome]
            assert relay.relay.registry.get("cafe-a").epoch == 6
            assert (await first.close_received()).code == CloseCode.SUPERSEDED
            for stale in (4, 6):
                async with raw_tunnel(relay.tunnel_url, "cafe-a", token, stale) as (_, ev):
                    assert [(type(e), e.code) for e in ev] == [(Close, CloseCode.SUPERSEDED)]
            assert relay.relay.registry.get("cafe-a").epoch == 6


async def test_shutdown_closes_tunnels_with_going_away_and_1001(tmp_path):
    config = relay_config(tmp_path)
    token = add_venues(config, "cafe-a")["cafe-a"]
    async with (
        running_relay(config) as relay,
        raw_tunnel(relay.tunnel_url, "cafe-a", token, 1) as (tunnel, events),
    ):
        assert [type(e) for e in events] == [Welcome]
        shutdown = asyncio.create_task(relay.stop())
        assert (await tunnel.close_received()).code == CloseCode.GOING_AWAY
        msg = await tunnel.ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1001
        await tunnel.ws.close()
        await asyncio.wait_for(shutdown, 5)


async def test_the_health_endpoint_wants_the_operator_token(tmp_path):
    config = relay_config(tmp_path)
    add_venues(config, "cafe-a")
    async with running_relay(config) as relay, aiohttp.ClientSession() as http:
        url = f"{relay.url}/venues/cafe-a/health"
        async with http.get(url) as response:
            assert response.status == 401
            assert (await response.json())["error"] == "unauthorized"
        auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        async with http.get(url, headers=auth) as response:
            assert await response.json() == {"venue": "cafe-a", "online": False}
        async with http.get(f"{relay.url}/venues/nope/health", headers=auth) as response:
            assert response.status == 404


async def test_a_silent_or_garbled_peer_gets_a_typed_close(tmp_path):
    config = relay_config(tmp_path, handshake_timeout_s=0.2)
    async with (
        running_relay(config) as relay,
        aiohttp.ClientSession() as http,
        http.ws_connect(relay.tunnel_url, autoclose=False) as ws,
    ):
        msg = await ws.receive(timeout=5)  # says nothing: CLOSE(TIMEOUT), then 1008
        tunnel = TunnelProtocol(Side.CLIENT)
        tunnel.receive_data(msg.data)
        assert [(type(e), e.code) for e in tunnel.events_received()] == [(Close, CloseCode.TIMEOUT)]
    async with (
        running_relay(config) as relay,
        aiohttp.ClientSession() as http,
        http.ws_connect(relay.tunnel_url, autoclose=False) as ws,
    ):
        await ws.send_bytes(b"\x7e\x00\x00\x00\x00\x00\x00\x00\x00\x00")  # unknown frame type
        msg = await ws.receive(timeout=5)
        tunnel = TunnelProtocol(Side.CLIENT)
        tunnel.receive_data(msg.data)
        assert [(type(e), e.code) for e in tunnel.events_received()] == [
            (Close, CloseCode.UNKNOWN_FRAME_TYPE)
        ]
