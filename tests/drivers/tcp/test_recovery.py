"""Acceptance: a POS restarted mid-payment, and half-open connections, cost no payment and
apply none twice. The emulator runs as a real process (kill -9, SIGSTOP) or behind a proxy
on 127.0.0.1 that stops forwarding without closing anything.

Each test ends by counting the payment in the POS's own state file (or its bill): once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bridge.app import create_app
from drivers.emulator.run import make_pos, running_emulator
from drivers.errors import PosOfflineError, PosTimeoutError
from drivers.tcp.driver import TcpDriver
from tests.conftest import ADMIN_AUTH, LOKE_AUTH, fetch_bill, loke_url, make_config, payment_body
from tests.drivers.tcp.harness import (
    EmulatorProcess,
    StallingProxy,
    instruction,
    payments_on_pos,
    tcp_driver,
)

TIMEOUT_MS = 1000  # reads and payments alike: a loaded 2-core machine answers well within
WIRE = {"timeout_ms": TIMEOUT_MS, "write_timeout_ms": TIMEOUT_MS, "connect_timeout_ms": TIMEOUT_MS}
BOUND_S = 5.0  # generous bound on "within the timeout" for a shared 2-core machine
_T = TypeVar("_T")


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path / "pos.sqlite3", tmp_path / "emulator.log")
    await process.start()
    yield process
    await process.stop()


@pytest.fixture
async def driver(emulator: EmulatorProcess) -> AsyncIterator[TcpDriver]:
    tcp = tcp_driver(emulator.url, **WIRE)
    await tcp.open()
    yield tcp
    await tcp.close()


async def until_reachable(call: Callable[[], Awaitable[_T]], attempts: int = 100) -> _T:
    """``call()`` once the POS answers again, as the outbox would retry it."""
    for _ in range(attempts):
        try:
            return await call()
        except PosOfflineError:
            await asyncio.sleep(0.05)
    raise AssertionError("the POS never came back")


async def reconcile_then_apply(driver: TcpDriver, bill: Any, payment_id: str, amount: int) -> str:
    """What the outbox does after an unknown outcome: find first, apply only if absent."""
    found = await until_reachable(lambda: driver.find_payment("1", payment_id))
    if found is not None:
        return "found"
    await driver.apply_payment(instruction(bill, payment_id, amount))
    return "applied"


async def test_emulator_killed_after_applying_and_restarted_payment_is_applied_once(
    emulator: EmulatorProcess, driver: TcpDriver
):
    bill = await driver.get_open_bill("1", 2)
    assert bill is not None
    await emulator.faults(drop_replies=True)  # applied, then the answer is lost…
    with pytest.raises(PosTimeoutError):
        await driver.apply_payment(instruction(bill, "kill-9", 250))
    await emulator.kill9()  # …and the POS dies before anyone asks again
    with pytest.raises(PosOfflineError):
        await driver.find_payment("1", "kill-9")  # down: nothing delivered
    await emulator.start()  # same port, same state file, faults back to none

    assert await reconcile_then_apply(driver, bill, "kill-9", 250) == "found"
    assert payments_on_pos(emulator.state, "kill-9") == 1
    after = await driver.get_open_bill("1", 2)
    assert after is not None and after.balance.minor == bill.balance.minor - 250


async def test_emulator_killed_mid_payment_the_bridge_outbox_applies_it_once(
    aiohttp_client: Any, tmp_path: Path, emulator: EmulatorProcess
):
    options = WIRE
    async with StallingProxy(emulator.port) as proxy:
        config = make_config(
            tmp_path,
            drivers={"main": {"url": proxy.url, "options": options}},
            payments={"pos_timeout_s": 2.0},
        )
        client = await aiohttp_client(create_app(config))
        bill = await fetch_bill(client, 3)
        # The POS applies the payment; its answer never reaches the bridge; the POS dies.
        proxy.stall_replies_after = b'"op":"apply_payment"'
        body = payment_body(bill, "outbox-kill-9", 400)
        response = await client.post(loke_url(3, "payments"), headers=LOKE_AUTH, json=body)
        assert response.status == 202, await response.text()  # outcome unknown: queued
        for _ in range(100):  # the POS has applied it (its answer is what got lost)
            if payments_on_pos(emulator.state, "outbox-kill-9"):
                break
            await asyncio.sleep(0.05)
        assert payments_on_pos(emulator.state, "outbox-kill-9") == 1
        await emulator.kill9()
        proxy.stall_replies_after = None
        proxy.forward_replies.set()
        await asyncio.sleep(0.3)  # the outbox meets a dead POS for a while
        await emulator.start()  # same port and state file
        state = await until_applied(client, "outbox-kill-9")
        assert "not applied again" in state["audit"][-1]["reason"], state  # found, not re-sent
        assert payments_on_pos(emulator.state, "outbox-kill-9") == 1


async def until_applied(client: Any, payment_id: str) -> dict[str, Any]:

    state: dict[str, Any] = {}
    for _ in range(300):
        response = await client.get(f"/api/payments/loke/{payment_id}", headers=ADMIN_AUTH)
        state = await response.json()
        if state["payment"]["state"] == "applied":
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"not applied: {state}")


async def test_sigstopped_pos_times_out_within_the_timeout_and_payment_lands_once(
    emulator: EmulatorProcess, driver: TcpDriver
):
    bill = await driver.get_open_bill("1", 4)
    assert bill is not None
    emulator.pause()  # the kernel still accepts our bytes; the POS reads nothing
    try:
        with pytest.raises(PosTimeoutError, match="no reply"):
            await asyncio.wait_for(driver.apply_payment(instruction(bill, "stopped", 300)), BOUND_S)
        assert not driver.exchange.connected  # dropped: the next call starts afresh
    finally:
        emulator.resume()
    await reconcile_then_apply(driver, bill, "stopped", 300)
    assert payments_on_pos(emulator.state, "stopped") == 1
    after = await driver.get_open_bill("1", 4)
    assert after is not None and after.balance.minor == bill.balance.minor - 300


@pytest.mark.parametrize(("stalled", "expected"), [("replies", "found"), ("both ways", "applied")])
async def test_half_open_connection_times_out_reconnects_and_payment_lands_once(
    tmp_path: Path, stalled: str, expected: str
):
    state = tmp_path / "pos.sqlite3"
    async with (
        running_emulator("tcp://127.0.0.1:0", make_pos(state, tables=4)) as (url, _),
        StallingProxy(int(url.rsplit(":", 1)[1])) as proxy,
    ):
        driver = tcp_driver(proxy.url, **WIRE)
        bill = await driver.get_open_bill("1", 1)
        assert bill is not None
        proxy.forward_replies.clear()
        if stalled == "both ways":
            proxy.forward_requests.clear()
        with pytest.raises(PosTimeoutError, match="no reply"):
            await asyncio.wait_for(
                driver.apply_payment(instruction(bill, "half-open", 500)), BOUND_S
            )
        proxy.forward_requests.set()
        proxy.forward_replies.set()
        assert await reconcile_then_apply(driver, bill, "half-open", 500) == expected
        assert proxy.connections == 2  # the stuck connection was dropped, a new one made
        assert payments_on_pos(state, "half-open") == 1
        await driver.close()
