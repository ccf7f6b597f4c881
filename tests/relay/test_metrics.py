"""``GET /metrics``: Prometheus text format, behind the operator token unless made public."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.relay.harness import (
    OPERATOR_TOKEN,
    add_venues,
    relay_config,
    running_relay,
    running_uplink,
    serving,
    tunnel_section,
    wait_until,
)
from tests.relay.test_forwarding import echo_app

AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, keyed by name and sorted labels (the parser checks the format)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_tunnels_requests_latency_and_bytes(tmp_path):
    config = relay_config(tmp_path)
    token = add_venues(config, "cafe-a")["cafe-a"]
    async with running_relay(config) as relay, aiohttp.ClientSession() as http:
        async with http.get(f"{relay.url}/metrics") as response:
            assert response.status == 401  # the operator token by default
            assert (await response.json())["error"] == "unauthorized"
        tunnel = tunnel_section(relay.tunnel_url, "cafe-a", token)
        async with serving(echo_app({})) as local, running_uplink(tmp_path, local, tunnel):
            await wait_until(lambda: relay.relay.registry.get("cafe-a") is not None)
            for _ in range(3):
                async with http.post(f"{relay.url}/v/cafe-a/echo", data=b"x" * 1000) as response:
                    assert response.status == 200
                    assert len(await response.read()) == 1000
            async with http.get(f"{relay.url}/v/nobody/x") as response:
                assert response.status == 503
            async with http.get(f"{relay.url}/metrics", headers=AUTH) as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                got = samples(await response.text())
    assert got[("relay_tunnels_connected", ())] == 1
    assert got[("relay_requests_total", (("status_class", "2xx"), ("venue", "cafe-a")))] == 3
    assert got[("relay_requests_total", (("status_class", "5xx"), ("venue", "_unknown")))] == 1
    assert got[("relay_request_duration_seconds_count", ())] == 4
    assert got[("relay_request_duration_seconds_bucket", (("le", "+Inf"),))] == 4
    assert got[("relay_bytes_total", (("direction", "request"),))] == 3000
    assert got[("relay_bytes_total", (("direction", "response"),))] >= 3000
    assert not any(name == "relay_nats_routed_requests_total" for name, _ in got)


async def test_metrics_can_be_made_public(tmp_path):
    config = relay_config(
        tmp_path,
        sections={
            "relay": {
                "operator_token": OPERATOR_TOKEN,
                "venues_file": "venues.toml",
                "port": 0,
                "metrics_public": True,
            }
        },
    )
    async with (
        running_relay(config) as relay,
        aiohttp.ClientSession() as http,
        http.get(f"{relay.url}/metrics") as response,
    ):
        assert response.status == 200
        assert samples(await response.text())[("relay_tunnels_connected", ())] == 0
