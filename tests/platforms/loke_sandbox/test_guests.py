"""Simulated guests pay a real bridge's bill through the URLs registered in the sandbox.

The bridge is the composition root's app (``create_app``, the config of ``tests/conftest.py``
with the simulated POS) served as ``pos-bridge serve`` serves it: ``web.AppRunner`` with
aiohttp's default ``handler_cancellation=False`` (aiohttp's ``TestServer`` turns it on, and a
guest that gives up on an attempt would then cancel the bridge's work, which production
never does). Its ``[locations]`` secrets are what the LokeApi client registers with the
sandbox, as a link would. The guests then call the bridge directly (no relay here).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.app import create_app
from bridge.config import Config
from bridge.platforms.loke.sandbox.guests import Registration, pay_bill, split_amounts
from bridge.runtime import RUNTIME
from tests.conftest import (
    ADMIN_AUTH,
    HMAC_LOCATION,
    HMAC_SECRET,
    LOCATION,
    LOKE_SECRET,
    loke_url,
)
from tests.platforms.loke_sandbox.helpers import LOCATIONS, ORG, client, running_sandbox


def bridge_urls(bridge, location: str) -> tuple[str, str]:
    prefix = f"http://127.0.0.1:{bridge.port}/loke/v1/locations/{location}/tables/{{tableNumber}}"
    return prefix + "/bill", prefix + "/payments"


def pos_payments(bridge, pos_location: str, bill_id: str) -> list[tuple[str, int]]:
    payments = bridge.app[RUNTIME].drivers["main"].payments(pos_location)
    return [(p[0], p[2]) for p in payments if p[1] == bill_id]


@pytest.fixture
async def sandbox():
    async with running_sandbox() as sandbox:
        yield sandbox


def test_split_amounts_put_the_remainder_on_the_last():
    assert split_amounts(1000, 3) == [333, 333, 334]
    assert split_amounts(2, 3) == [1, 1]
    assert split_amounts(5, 1) == [5]


async def test_three_guests_pay_a_bill_through_the_registered_urls(sandbox, bridge, tmp_path):
    api = client(sandbox, tmp_path)
    fetch_url, pay_url = bridge_urls(bridge, LOCATION)
    await api.register_urls(ORG, LOCATIONS[0], fetch_url, pay_url, "bearer", LOKE_SECRET)
    before = await fetch_bill(bridge, 3)

    status, result = await sandbox.control(
        "POST",
        "/_sandbox/guests/pay",
        {"organizationId": ORG, "locationId": LOCATIONS[0], "table": 3, "splits": 3},
    )

    assert status == 200, result
    assert result["fetch"]["status"] == 200 and result["fetch"]["body"]["id"] == before["id"]
    splits = result["splits"]
    assert [s["status"] for s in splits] == [201, 201, 201], splits
    assert [s["amount"] for s in splits] == split_amounts(before["balance"], 3)
    assert min(s["body"]["balance"] for s in splits) == 0
    assert any(s["body"]["billClosed"] for s in splits)
    assert (result["after"]["status"], result["after"]["body"]["error"]) == (404, "no_open_bill")
    on_pos = pos_payments(bridge, "1", before["id"])
    assert sorted(on_pos) == sorted((s["paymentId"], s["amount"]) for s in splits)
    assert sum(amount for _, amount in on_pos) == before["balance"]


async def test_hmac_guests_sign_each_body_as_the_bridge_checks(bridge):
    fetch_url, pay_url = bridge_urls(bridge, HMAC_LOCATION)
    registration = Registration(fetch_url, pay_url, "hmac-sha256", HMAC_SECRET)
    async with aiohttp.ClientSession() as session:
        result = await pay_bill(
            session, registration, 2, 2, tip_minor=50, payment_ids=["h-1", "h-2"], retries=0
        )
    assert [s.status for s in result.splits] == [201, 201], result.splits
    assert all(s.body["tip"] == 50 for s in result.splits)
    assert result.after_status == 404
    wrong = Registration(fetch_url, pay_url, "hmac-sha256", "not-the-secret-0123456789")
    async with aiohttp.ClientSession() as session:
        refused = await pay_bill(session, wrong, 3, 2, retries=0)
    assert refused.fetch_status == 401 and refused.splits == []


async def test_a_timed_out_payment_is_retried_with_its_id_and_applied_once(bridge):
    """Every POS call takes 250 ms, and a payment makes two (bill, then payment) behind the
    bill's lock: longer than a guest waits for an answer (0.4 s), so the first attempts time
    out while the bridge keeps working; the retries, with the same payment ids, get ``409
    in_progress`` or the stored answer (a replay answers within one POS call's latency, as
    measured), never a second payment."""
    async with await bridge.post(
        "/api/drivers/main/simulator",
        json={"mode": "online", "latencyMs": 250},
        headers=ADMIN_AUTH,
    ) as response:
        assert response.status == 200
    fetch_url, pay_url = bridge_urls(bridge, LOCATION)
    registration = Registration(fetch_url, pay_url, "bearer", LOKE_SECRET)
    ids = ["slow-1", "slow-2", "slow-3"]
    async with aiohttp.ClientSession() as session:
        result = await pay_bill(
            session,
            registration,
            5,
            3,
            payment_ids=ids,
            timeout_s=0.4,
            retries=30,
            fetch_timeout_s=5.0,
        )
    assert result.fetch_status == 200
    assert [s.status for s in result.splits] == [201, 201, 201], result.splits
    assert all(s.history[0] == 0 for s in result.splits), result.splits  # timed out first
    on_pos = pos_payments(bridge, "1", result.bill["id"])
    assert sorted(pid for pid, _ in on_pos) == ids  # each exactly once
    assert sum(amount for _, amount in on_pos) == result.bill["balance"]
    assert result.after_status == 404


@dataclass
class Bridge:
    app: web.Application
    port: int
    session: aiohttp.ClientSession

    async def post(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.session.post(f"http://127.0.0.1:{self.port}{path}", **kwargs)


async def fetch_bill(bridge: Bridge, table: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{bridge.port}{loke_url(table)}"
    async with bridge.session.get(url, headers={"Authorization": f"Bearer {LOKE_SECRET}"}) as r:
        assert r.status == 200
        bill: dict[str, Any] = await r.json()
        return bill


@pytest.fixture
async def bridge(config: Config) -> AsyncIterator[Bridge]:
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        async with aiohttp.ClientSession() as session:
            yield Bridge(runner.app, runner.addresses[0][1], session)
    finally:
        await runner.cleanup()
