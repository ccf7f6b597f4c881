"""LOKE's URLs through the relay and the tunnel are answered exactly as the same bridge
answers them directly (the tunnel forwards to its listener, ``bridge/uplink/forward.py``)."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from tests.conftest import ADMIN_AUTH, LOCATION, LOKE_AUTH, loke_url, payment_body
from tests.relay.harness import relay_and_bridge, wait_until

KEPT = ("Content-Type", "Retry-After", "WWW-Authenticate", "Idempotent-Replayed", "ETag")
Request = tuple[str, str, dict[str, str], bytes | None]


async def answer(
    http: aiohttp.ClientSession, base: str, request: Request
) -> tuple[int, dict[str, str | None], Any]:
    method, path, headers, body = request
    async with http.request(method, base + path, headers=headers, data=body) as response:
        raw = await response.read()
        kept = {name: response.headers.get(name) for name in KEPT}
        try:
            return response.status, kept, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return response.status, kept, raw


async def test_loke_requests_via_the_tunnel_answer_as_the_bridge_does_directly(tmp_path):
    async with relay_and_bridge(tmp_path) as (relay, uplink), aiohttp.ClientSession() as http:
        assert uplink.origin is not None
        via_relay = f"{relay.url}/v/cafe-a"
        direct = f"http://127.0.0.1:{uplink.origin.port}"
        status, _, bill = await answer(http, via_relay, ("GET", loke_url(4), LOKE_AUTH, None))
        assert status == 200
        json_auth = {**LOKE_AUTH, "Content-Type": "application/json"}
        pay = orjson.dumps(payment_body(bill, "tunnel-fast-1", 100))
        first = await answer(http, via_relay, ("POST", loke_url(4, "payments"), json_auth, pay))
        assert first[0] == 201

        other = orjson.dumps(payment_body(bill, "tunnel-fast-1", 101))
        requests: list[Request] = [
            ("GET", loke_url(4), LOKE_AUTH, None),
            ("GET", loke_url(4), {}, None),
            ("GET", loke_url(4, location="nowhere"), LOKE_AUTH, None),
            ("GET", loke_url("abc"), LOKE_AUTH, None),
            ("GET", loke_url(99), LOKE_AUTH, None),
            ("POST", loke_url(4, "payments"), json_auth, pay),  # a replay, both ways
            ("POST", loke_url(4, "payments"), json_auth, other),  # the key reused
            ("POST", loke_url(4, "payments"), json_auth, b"{not json"),
            ("POST", loke_url(4, "payments"), json_auth, b'{"paymentId": 5}'),
            ("POST", loke_url("abc", "payments"), json_auth, b"{}"),
            ("GET", f"/loke/v1/locations/{LOCATION}/payments/tunnel-fast-1", LOKE_AUTH, None),
            ("GET", f"/loke/v1/locations/{LOCATION}/payments/nope", LOKE_AUTH, None),
            ("GET", f"/loke/v1/locations/{LOCATION}/tables", LOKE_AUTH, None),
            # aiohttp's, through the tunnel as directly:
            ("POST", loke_url(4, "payments"), {**LOKE_AUTH, "Content-Type": "text/plain"}, pay),
            ("GET", loke_url(4) + "?via=query", LOKE_AUTH, None),
            ("PUT", loke_url(4, "payments"), json_auth, b"{}"),
        ]
        for request in requests:
            relayed = await answer(http, via_relay, request)
            straight = await answer(http, direct, request)
            assert relayed == straight, f"{request[0]} {request[1]}"


async def test_a_payment_whose_stream_the_relay_gives_up_on_is_still_taken(tmp_path):
    """The relay cancels the stream at its deadline (504); the bridge must still take the
    payment to its end and keep its answer, not leave it half-done: the forwarder's request
    is cancelled, and the bridge's server lets the handler finish (``bridge/cli/serve.py``)."""
    drivers = {"main": {"url": "simulator:", "options": {"latency_ms": 400}}}
    async with (
        relay_and_bridge(tmp_path, limits={"request_timeout_s": 0.6}, drivers=drivers) as (
            relay,
            uplink,
        ),
        aiohttp.ClientSession() as http,
    ):
        assert uplink.origin is not None
        direct = f"http://127.0.0.1:{uplink.origin.port}"
        status, _, bill = await answer(http, direct, ("GET", loke_url(5), LOKE_AUTH, None))
        assert status == 200
        json_auth = {**LOKE_AUTH, "Content-Type": "application/json"}
        pay = orjson.dumps(payment_body(bill, "given-up-1", 100))
        request: Request = ("POST", loke_url(5, "payments"), json_auth, pay)
        status, _, body = await answer(http, f"{relay.url}/v/cafe-a", request)
        assert (status, body["error"]) == (504, "pos_timeout")

        # Two POS calls of 0.4 s each, so the relay gave up during the second (applying):
        # taken within a second or so. The replay, sent straight to the bridge, gets the
        # stored answer; a payment cut mid-way would stay in_progress.
        async def replayed() -> bool:
            status, headers, _ = await answer(http, direct, request)
            return status == 201 and headers["Idempotent-Replayed"] == "true"

        await wait_until(replayed, 5)


async def test_bill_fetches_release_their_streams_and_a_big_bill_crosses_whole(tmp_path):
    """Each answered stream must be forgotten, and an answer larger than one frame must
    cross whole."""
    # 32 KiB messages: 16 KiB frames, so the big bill below takes two.
    async with (
        relay_and_bridge(tmp_path, limits={"max_message_bytes": 32_768}) as (relay, uplink),
        aiohttp.ClientSession() as http,
    ):
        assert uplink.origin is not None
        direct = f"http://127.0.0.1:{uplink.origin.port}"
        table = f"{direct}/api/drivers/main/simulator/tables/6"
        async with http.get(direct + loke_url(6), headers=LOKE_AUTH) as response:
            if response.status != 200:  # no open bill: seat one
                async with http.post(f"{table}/bill", json={}, headers=ADMIN_AUTH) as seated:
                    assert seated.status == 200, await seated.text()
        admin = f"{table}/items"
        for i in range(120):
            line = {"name": f"line {i} " + "x" * 80, "amount": 100 + i}
            async with http.post(admin, json=line, headers=ADMIN_AUTH) as response:
                assert response.status == 200, await response.text()
        via_relay = f"{relay.url}/v/cafe-a"
        big = await answer(http, via_relay, ("GET", loke_url(6), LOKE_AUTH, None))
        assert big == await answer(http, direct, ("GET", loke_url(6), LOKE_AUTH, None))
        assert big[0] == 200 and len(orjson.dumps(big[2])) > 16_384
        for table in range(1, 11):
            status, _, _ = await answer(http, via_relay, ("GET", loke_url(table), LOKE_AUTH, None))
            assert status == 200

        def released() -> bool:
            return all(not conn.streams for conn in uplink.connections.values())

        await wait_until(released, 5)
