"""Rate limits: 429 ``rate_limited`` per venue on the public URLs, and bad HELLOs slowed down
per source address (``relay/ratelimit.py``)."""

from __future__ import annotations

import aiohttp
import pytest

from common.settings import ConfigError
from relay.config import RateLimits, parse_relay_config
from relay.ratelimit import HelloGuard, VenueRateLimiter
from tests.relay.harness import OPERATOR_TOKEN, add_venues, raw_tunnel, relay_config, running_relay
from tunnel.errors import CloseCode
from tunnel.messages import Close, Welcome


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_venue_bucket_allows_its_burst_then_its_rate():
    clock = Clock()
    limiter = VenueRateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)  # one token back in 1/2 s
    assert limiter.take("b") == 0.0  # venues do not share a bucket
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    clock.now += 100  # refills, but never above the burst
    assert [limiter.take("a") for _ in range(4)][-1] > 0


def test_refused_hellos_block_a_source_until_the_window_slides_past():
    clock = Clock()
    guard = HelloGuard(failures=2, window_s=10.0, clock=clock)
    guard.failed("10.0.0.1")
    assert not guard.blocked("10.0.0.1")
    clock.now += 5
    guard.failed("10.0.0.1")
    assert guard.blocked("10.0.0.1") and not guard.blocked("10.0.0.2")
    clock.now += 5.01  # the first failure has left the window
    assert not guard.blocked("10.0.0.1")
    clock.now += 5
    assert not guard.blocked("10.0.0.1")


def test_rate_limit_config_defaults_and_key_path_errors(tmp_path):
    base = {"relay": {"operator_token": OPERATOR_TOKEN}}
    assert parse_relay_config(dict(base), {}, tmp_path).rate_limit == RateLimits(
        requests_per_s=200.0, burst=400, hello_failures=10
    )
    bad = [
        ({"requests_per_s": 0}, "rate_limit.requests_per_s"),
        ({"burst": 0}, "rate_limit.burst"),
        ({"hello_failures": "ten"}, "rate_limit.hello_failures"),
        ({"hello_window_s": -1}, "rate_limit.hello_window_s"),
        ({"per_second": 5}, "rate_limit.per_second"),
    ]
    for table, key in bad:
        with pytest.raises(ConfigError) as info:
            parse_relay_config({**base, "rate_limit": table}, {}, tmp_path)
        assert info.value.path == key, info.value


async def test_a_venue_over_its_rate_gets_a_typed_429_with_retry_after(tmp_path):
    config = relay_config(tmp_path, sections={"rate_limit": {"requests_per_s": 0.5, "burst": 3}})
    add_venues(config, "cafe-a", "cafe-b")
    async with running_relay(config) as relay, aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(3):  # within the burst: forwarded (offline here, so 503)
            async with http.get(f"{relay.url}/v/cafe-a/anything") as response:
                statuses.append(response.status)
        assert statuses == [503, 503, 503]
        async with http.post(f"{relay.url}/v/cafe-a/anything", data=b"x") as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "2"
            body = await response.json()
        assert body["error"] == "rate_limited"
        assert body["details"] == {
            "venue": "cafe-a",
            "retryAfterSeconds": 2,
            "requestsPerSecond": 0.5,
            "burst": 3,
        }
        async with http.get(f"{relay.url}/v/cafe-b/anything") as response:
            assert response.status == 503  # another venue's bucket is its own
        async with http.get(f"{relay.url}/healthz") as response:
            assert response.status == 200  # only the public URL map is limited


async def test_bad_hellos_from_one_address_are_refused_unchecked_past_the_limit(tmp_path):
    config = relay_config(tmp_path, sections={"rate_limit": {"hello_failures": 2}})
    tokens = add_venues(config, "cafe-a")
    async with running_relay(config) as relay:
        for venue in ("cafe-a", "nowhere"):  # a wrong token, an unknown venue: both count
            async with raw_tunnel(relay.tunnel_url, venue, "wrong-token-0123456789", 1) as (
                _,
                events,
            ):
                assert [(type(e), e.code) for e in events] == [(Close, CloseCode.UNAUTHORIZED)]
        # Now even the right token is not looked at: refused at once, typed.
        async with raw_tunnel(relay.tunnel_url, "cafe-a", tokens["cafe-a"], 1) as (tunnel, events):
            assert [(type(e), e.code) for e in events] == [(Close, CloseCode.RATE_LIMITED)]
            assert await tunnel.events() == []
        assert relay.relay.registry.get("cafe-a") is None
    async with (  # a relay with a fresh window takes the right token again
        running_relay(config) as relay,
        raw_tunnel(relay.tunnel_url, "cafe-a", tokens["cafe-a"], 2) as (_, events),
    ):
        assert [type(e) for e in events] == [Welcome]
