"""Platforms' requests cross the relay and the tunnel into the real bridge, and back."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL

from relay.config import RelayConfig
from tests.conftest import LOCATION, LOKE_AUTH, loke_url, payment_body
from tests.relay.harness import (
    OPERATOR_TOKEN,
    RunningRelay,
    add_venues,
    relay_and_bridge,
    relay_config,
    running_bridge,
    running_relay,
    running_uplink,
    serving,
    serving_runner,
    sha,
    tunnel_section,
    wait_until,
)

MIB = 1024 * 1024


async def test_a_bill_fetch_and_a_payment_cross_the_relay(tmp_path):
    async with relay_and_bridge(tmp_path) as (relay, uplink), aiohttp.ClientSession() as http:
        base = f"{relay.url}/v/cafe-a"
        async with http.get(base + loke_url(3), headers=LOKE_AUTH) as response:
            assert response.status == 200, await response.text()
            bill = await response.json()
        body = payment_body(bill, "relay-pay-1", bill["balance"])
        async with http.post(base + loke_url(3, "payments"), json=body, headers=LOKE_AUTH) as r:
            assert r.status == 201, await r.text()
            assert (await r.json())["status"] == "applied"
        async with http.post(base + loke_url(3, "payments"), json=body, headers=LOKE_AUTH) as r:
            assert r.status == 201  # the replay is answered from the bridge's store
        async with http.get(base + loke_url(3), headers=LOKE_AUTH) as response:
            assert response.status == 404  # the bill closed: the bridge's own typed error
            assert (await response.json())["error"]
        async with http.get(f"{base}/loke/v1/locations/{LOCATION}/tables") as response:
            assert response.status == 401  # credentials are the bridge's business, unchanged
        # The bridge's HEALTH frames reach the relay's health endpoint.
        auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        health_url = f"{relay.url}/venues/cafe-a/health"

        async def reported() -> bool:
            async with http.get(health_url, headers=auth) as response:
                health = await response.json()
            return health.get("posOnline") is True

        await wait_until(reported)
        async with http.get(health_url, headers=auth) as response:
            health = await response.json()
        assert health["online"] is True and health["sessionEpoch"] == uplink.epoch
        assert health["queueDepth"] == 0 and health["lastHeartbeat"]


async def test_an_offline_venue_is_503_venue_offline_with_retry_after(tmp_path):
    config = relay_config(tmp_path, retry_after_s=7)
    add_venues(config, "cafe-a")
    async with (
        running_relay(config) as relay,
        aiohttp.ClientSession() as http,
        http.get(f"{relay.url}/v/cafe-a/loke/v1/anything") as response,
    ):
        assert response.status == 503
        assert response.headers["Retry-After"] == "7"
        assert (await response.json())["error"] == "venue_offline"


def echo_app(events: dict[str, object]) -> web.Application:
    """A test-only local app behind the tunnel: echo, big downloads, a slow route."""

    async def echo(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"X-Seen-Path": request.raw_path})
        for name in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Custom", "Connection"):
            if name in request.headers:
                response.headers["X-Seen-" + name] = request.headers[name]
        await response.prepare(request)
        async for chunk in request.content.iter_chunked(64 * 1024):
            await response.write(chunk)
        await response.write_eof()
        return response

    async def blob(request: web.Request) -> web.StreamResponse:
        size = int(request.query["n"])
        response = web.StreamResponse()
        response.content_length = size
        await response.prepare(request)
        block = (b"0123456789abcdef" * 4096)[: 64 * 1024]
        sent = size if request.method == "HEAD" else 0  # a HEAD's answer has no body
        while sent < size:
            part = block[: min(len(block), size - sent)]
            await response.write(part)
            sent += len(part)
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.Response:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events["slow_cancelled"] = True
            raise
        return web.Response(text="late")

    app = web.Application(client_max_size=64 * MIB)
    app.router.add_post("/echo", echo)
    app.router.add_get("/echo", echo)
    app.router.add_get("/blob", blob)
    app.router.add_get("/slow", slow)
    return app


@contextlib.asynccontextmanager
async def echo_venue(
    tmp_path: Path, config: RelayConfig, seen: dict[str, object]
) -> AsyncIterator[tuple[RunningRelay, aiohttp.ClientSession]]:
    """Venue cafe-a, an echo app behind its tunnel, registered on a running relay."""
    token = add_venues(config, "cafe-a")["cafe-a"]
    async with (
        running_relay(config) as relay,
        serving(echo_app(seen)) as local,
        running_uplink(tmp_path, local, tunnel_section(relay.tunnel_url, "cafe-a", token)),
        aiohttp.ClientSession() as http,
    ):
        await wait_until(lambda: relay.relay.registry.get("cafe-a") is not None)
        yield relay, http


async def test_paths_and_headers_pass_verbatim_minus_hop_by_hop(tmp_path):
    config = relay_config(tmp_path)
    async with echo_venue(tmp_path, config, {}) as (relay, http):
        url = URL(f"{relay.url}/v/cafe-a/echo?a=1&b=%2F%20x", encoded=True)
        headers = {"X-Custom": "kept", "X-Forwarded-For": "10.1.2.3", "Keep-Alive": "timeout=5"}
        async with http.get(url, headers=headers) as response:
            assert response.status == 200
            assert response.headers["X-Seen-Path"] == "/echo?a=1&b=%2F%20x"
            assert response.headers["X-Seen-X-Custom"] == "kept"
            assert response.headers["X-Seen-X-Forwarded-For"] == "10.1.2.3, 127.0.0.1"


async def test_10_mib_request_and_response_bodies_cross_intact(tmp_path):
    config = relay_config(tmp_path)
    upload = os.urandom(10 * MIB)
    async with echo_venue(tmp_path, config, {}) as (relay, http):
        async with http.post(f"{relay.url}/v/cafe-a/echo", data=upload) as response:
            assert response.status == 200
            assert sha(await response.read()) == sha(upload)
        async with http.get(f"{relay.url}/v/cafe-a/blob?n={10 * MIB + 7}") as response:
            assert response.status == 200
            data = await response.read()
        block = (b"0123456789abcdef" * 4096)[: 64 * 1024]
        expected = (block * 161)[: 10 * MIB + 7]
        assert len(data) == 10 * MIB + 7 and sha(data) == sha(expected)


async def test_a_streamed_upload_a_head_and_an_unknown_route_are_served_as_directly(tmp_path):
    config = relay_config(tmp_path)
    parts = [os.urandom(100_000 + i) for i in range(30)]  # 3 MiB, no Content-Length: chunked

    async def chunks() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    async with echo_venue(tmp_path, config, {}) as (relay, http):
        async with http.post(f"{relay.url}/v/cafe-a/echo", data=chunks()) as response:
            assert response.status == 200
            assert sha(await response.read()) == sha(b"".join(parts))
        async with http.head(f"{relay.url}/v/cafe-a/blob?n=1234") as response:
            assert response.status == 200 and response.headers["Content-Length"] == "1234"
            assert await response.read() == b""
        async with http.get(f"{relay.url}/v/cafe-a/nowhere") as response:
            assert response.status == 404  # aiohttp's own answer, as on the bridge's listener


async def test_requests_reuse_one_pooled_keep_alive_connection_to_the_local_listener(
    tmp_path,
):
    config = relay_config(tmp_path)
    token = add_venues(config, "cafe-a")["cafe-a"]
    async with (
        running_relay(config) as relay,
        serving_runner(echo_app({})) as (runner, local),
        running_uplink(tmp_path, local, tunnel_section(relay.tunnel_url, "cafe-a", token)),
        aiohttp.ClientSession() as http,
    ):
        await wait_until(lambda: relay.relay.registry.get("cafe-a") is not None)
        server = runner.server
        assert server is not None
        for i in range(20):
            async with http.get(f"{relay.url}/v/cafe-a/echo?i={i}") as response:
                assert response.status == 200
                assert response.headers["X-Seen-Path"] == f"/echo?i={i}"
            async with http.post(f"{relay.url}/v/cafe-a/echo", data=b"body") as response:
                assert await response.read() == b"body"
        assert len(server.connections) == 1  # kept alive between requests, as a client would


async def test_past_the_deadline_it_is_504_and_the_bridge_is_told_to_stop(tmp_path):
    config = relay_config(tmp_path, request_timeout_s=0.3)
    seen: dict[str, object] = {}
    async with echo_venue(tmp_path, config, seen) as (relay, http):
        async with http.get(f"{relay.url}/v/cafe-a/slow") as response:
            assert response.status == 504
            assert (await response.json())["error"] == "pos_timeout"
        await wait_until(lambda: seen.get("slow_cancelled") is True, 5)


async def test_a_body_over_the_limit_is_413(tmp_path):
    config = relay_config(tmp_path, max_body_bytes=100_000)
    async with echo_venue(tmp_path, config, {}) as (relay, http):
        url = f"{relay.url}/v/cafe-a/echo"
        async with http.post(url, data=b"x" * 100_001) as response:  # announced length
            assert response.status == 413
            assert (await response.json())["error"] == "payload_too_large"

        async def chunks():  # no Content-Length: counted as it streams
            for _ in range(4):
                yield b"y" * 40_000

        async with http.post(url, data=chunks()) as response:
            assert response.status == 413
            assert (await response.json())["error"] == "payload_too_large"
        async with http.post(url, data=b"z" * 100_000) as response:  # at the limit: fine
            assert response.status == 200 and len(await response.read()) == 100_000


async def test_many_requests_share_one_tunnel_beyond_the_stream_limit(tmp_path):
    config = relay_config(tmp_path / "relay", max_concurrent_streams=4)
    token = add_venues(config, "cafe-a")["cafe-a"]
    async with (
        running_relay(config) as relay,
        running_bridge(tmp_path, tunnel_section(relay.tunnel_url, "cafe-a", token)),
        aiohttp.ClientSession() as http,
    ):
        await wait_until(lambda: relay.relay.registry.get("cafe-a") is not None)
        base = f"{relay.url}/v/cafe-a"

        async def pay(table: int) -> int:
            async with http.get(base + loke_url(table), headers=LOKE_AUTH) as response:
                bill = await response.json()
            body = payment_body(bill, f"many-{table}", bill["balance"])
            async with http.post(
                base + loke_url(table, "payments"), json=body, headers=LOKE_AUTH
            ) as response:
                return response.status

        statuses = await asyncio.gather(*(pay(table) for table in range(1, 13)))
        assert statuses == [201] * 12


async def test_a_bridge_that_stops_says_goodbye_and_is_offline_at_once(tmp_path):
    config = relay_config(tmp_path / "relay", heartbeat_interval_s=30)
    token = add_venues(config, "cafe-a")["cafe-a"]
    async with running_relay(config) as relay, aiohttp.ClientSession() as http:
        async with running_bridge(tmp_path, tunnel_section(relay.tunnel_url, "cafe-a", token)):
            await wait_until(lambda: relay.relay.registry.get("cafe-a") is not None)
        # No heartbeat had to be missed (30 s): the bridge's CLOSE(GOING_AWAY) did it.
        assert relay.relay.registry.get("cafe-a") is None
        async with http.get(f"{relay.url}/v/cafe-a{loke_url(1)}") as response:
            assert response.status == 503


async def test_a_bridge_whose_server_is_down_answers_502_bridge_unreachable(tmp_path):
    config = relay_config(tmp_path)
    token = add_venues(config, "cafe-a")["cafe-a"]
    async with serving(echo_app({})) as local:
        pass  # the runner is cleaned up: its server is gone
    async with (
        running_relay(config) as relay,
        running_uplink(tmp_path, local, tunnel_section(relay.tunnel_url, "cafe-a", token)),
        aiohttp.ClientSession() as http,
    ):
        await wait_until(lambda: relay.relay.registry.get("cafe-a") is not None)
        async with http.get(f"{relay.url}/v/cafe-a/anything") as response:
            assert response.status == 502
            assert (await response.json())["error"] == "bridge_unreachable"
