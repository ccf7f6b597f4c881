"""The file-drop driver against the emulated POS serving a real folder: the whole interface,
both watch modes, the POS's faults, and the folder going away and coming back."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from bridge.core.money import Money
from drivers.emulator.pos import EmulatedPos
from drivers.errors import (
    PaymentRefusedError,
    PosOfflineError,
    PosTimeoutError,
    PosUnavailableError,
    UnknownTableError,
)
from drivers.filedrop.driver import FileDropDriver
from drivers.wire.messages import PosProtocolError
from tests.drivers.filedrop.conftest import (
    LOCATION,
    WAIT_S,
    eventually,
    instruction,
    listing,
    make_driver,
    payments_on_pos,
)


@pytest.mark.parametrize("watch", ["events", "poll"])
async def test_every_operation_round_trips_and_leaves_the_folder_empty(
    emulator: str, pos: EmulatedPos, spool: Path, state: Path, watch: str
) -> None:
    driver = make_driver(emulator, timeout_ms=3000, watch=watch, poll_interval_ms=20)
    await driver.open()
    try:
        assert (await driver.health()).online
        tables = await driver.list_tables(LOCATION)
        assert [t.number for t in tables] == [1, 2, 3, 4, 5]
        bill = await driver.get_open_bill(LOCATION, 2)
        assert bill is not None and bill == await pos.simulator.get_open_bill(LOCATION, 2)
        payment = await instruction(pos, f"pay-{watch}", table=2)
        applied = await driver.apply_payment(payment)
        assert applied.amount.minor == 100 and applied.bill is not None
        assert await driver.find_payment(LOCATION, f"pay-{watch}") == applied
        assert await driver.find_payment(LOCATION, "never-paid") is None
        with pytest.raises(UnknownTableError):
            await driver.get_open_bill(LOCATION, 99)
        over = dataclasses.replace(
            payment, payment_id="too-much", amount=Money(10**9, payment.amount.currency)
        )
        with pytest.raises(PaymentRefusedError) as refused:
            await driver.apply_payment(over)
        assert refused.value.reason == "amount_exceeds_balance"
        assert payments_on_pos(state, f"pay-{watch}") == 1
        assert payments_on_pos(state, "too-much") == 0
        assert listing(spool / "requests") == [] and listing(spool / "responses") == []
    finally:
        await driver.close()


async def test_split_payments_and_concurrent_callers_each_get_their_own_reply(
    driver: FileDropDriver, pos: EmulatedPos, state: Path
) -> None:
    bills = await asyncio.gather(*(driver.get_open_bill(LOCATION, t) for t in (1, 2, 3, 4, 5)))
    assert [b.table for b in bills if b is not None] == [1, 2, 3, 4, 5]
    first = await instruction(pos, "split-1", table=1)
    second = dataclasses.replace(first, payment_id="split-2")
    one, two = await asyncio.gather(driver.apply_payment(first), driver.apply_payment(second))
    assert {one.payment_id, two.payment_id} == {"split-1", "split-2"}
    bill = await driver.get_open_bill(LOCATION, 1)
    assert bill is not None and len(bill.payments) == 2
    assert payments_on_pos(state, "split-1") == payments_on_pos(state, "split-2") == 1


async def test_a_pos_that_does_not_take_the_request_is_offline_and_never_carries_it_out(
    driver: FileDropDriver, pos: EmulatedPos, spool: Path, state: Path
) -> None:
    pos.reboot(1.0)  # takes nothing meanwhile
    payment = await instruction(pos, "pay-rebooting")
    with pytest.raises(PosOfflineError, match="withdrawn, not carried out"):
        await driver.exchange.call("apply_payment", _args(payment), 0.3)
    assert listing(spool / "requests") == []
    assert await driver.find_payment(LOCATION, "pay-rebooting") is None  # after the reboot
    assert payments_on_pos(state, "pay-rebooting") == 0


async def test_requests_written_during_a_reboot_are_answered_after_it(
    driver: FileDropDriver, pos: EmulatedPos
) -> None:
    pos.reboot(0.3)
    tables = await driver.list_tables(LOCATION)
    assert len(tables) == 5


async def test_a_pos_that_takes_the_request_and_goes_silent_is_a_timeout(
    driver: FileDropDriver, pos: EmulatedPos, state: Path
) -> None:
    pos.faults.drop_replies = True  # applied, then the answer is lost
    payment = await instruction(pos, "pay-lost")
    with pytest.raises(PosTimeoutError, match="did not answer"):
        await driver.exchange.call("apply_payment", _args(payment), 0.5)
    pos.faults.drop_replies = False
    found = await driver.find_payment(LOCATION, "pay-lost")  # the outbox's reconciliation
    assert found is not None
    assert payments_on_pos(state, "pay-lost") == 1


async def test_a_damaged_response_is_a_protocol_error_then_reconciled_not_reapplied(
    driver: FileDropDriver, pos: EmulatedPos, spool: Path, state: Path
) -> None:
    pos.faults.corrupt_per_mille = 1000  # every response file is cut short
    payment = await instruction(pos, "pay-damaged")
    with pytest.raises(PosProtocolError, match="unreadable") as raised:
        await driver.apply_payment(payment)
    assert isinstance(raised.value, PosUnavailableError)
    pos.faults.corrupt_per_mille = 0
    assert await driver.find_payment(LOCATION, "pay-damaged") is not None
    assert payments_on_pos(state, "pay-damaged") == 1
    assert listing(spool / "responses") == []


@pytest.mark.parametrize("watch", ["events", "poll"])
async def test_a_folder_that_disappears_is_offline_and_works_again_when_it_returns(
    emulator: str, spool: Path, watch: str
) -> None:
    driver = make_driver(emulator, timeout_ms=2000, watch=watch, poll_interval_ms=20)
    await driver.open()
    try:
        assert len(await driver.list_tables(LOCATION)) == 5
        shutil.rmtree(spool)
        with pytest.raises(PosOfflineError, match=str(spool)):
            await driver.list_tables(LOCATION)
        spool.mkdir()  # the share is back; the POS (the emulator) notices and carries on
        await _until_answered(driver)
    finally:
        await driver.close()


async def test_requests_waiting_when_the_folder_disappears_fail_at_once_as_timeouts(
    driver: FileDropDriver, pos: EmulatedPos, spool: Path
) -> None:
    pos.faults.silent = True
    call = asyncio.create_task(driver.exchange.call("list_tables", {"location": "1"}, 60))
    await eventually(lambda: pos.requests_seen > 0, "the POS to take the request")
    shutil.rmtree(spool)
    with pytest.raises(PosTimeoutError, match="went away"):
        await asyncio.wait_for(call, WAIT_S)  # long before its own 60 s
    pos.faults.silent = False
    spool.mkdir()
    await _until_answered(driver)


async def _until_answered(driver: FileDropDriver) -> None:
    """Call until the POS answers: after the folder returns, the POS may need a moment to
    watch it again, and until then each call is (rightly) offline."""
    for _attempt in range(20):
        try:
            reply = await driver.exchange.call("list_tables", {"location": "1"}, 0.5)
            assert reply.result is not None and len(reply.result["tables"]) == 5
            return
        except PosOfflineError:
            await asyncio.sleep(0.05)
    pytest.fail("the driver did not recover after the folder returned")


def _args(payment: object) -> dict[str, object]:
    from drivers.wire.messages import instruction_args

    return instruction_args(payment)  # type: ignore[arg-type]


async def test_closing_with_a_request_taken_but_unanswered_is_a_timeout_not_offline(
    emulator: str, pos: EmulatedPos
) -> None:
    driver = make_driver(emulator, timeout_ms=30_000)
    await driver.open()
    pos.faults.silent = True
    call = asyncio.create_task(driver.list_tables(LOCATION))
    await eventually(lambda: pos.requests_seen > 0, "the POS to take the request")
    await driver.close()
    with pytest.raises(PosTimeoutError, match="closed while waiting"):
        await asyncio.wait_for(call, WAIT_S)


async def test_a_cancelled_call_withdraws_its_request_so_it_never_lands_later(
    emulator: str, pos: EmulatedPos, spool: Path, state: Path
) -> None:
    """The payment service wraps driver calls in its own deadline (asyncio.timeout)."""
    driver = make_driver(emulator, timeout_ms=30_000)
    await driver.open()
    try:
        pos.reboot(60)  # takes nothing meanwhile
        payment = await instruction(pos, "pay-cancelled")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await driver.apply_payment(payment)
        await eventually(lambda: listing(spool / "requests") == [], "the request's withdrawal")
        pos.rebooting_until = 0.0  # back: had the request stayed, the POS would take it now
        assert await driver.find_payment(LOCATION, "pay-cancelled") is None
        assert payments_on_pos(state, "pay-cancelled") == 0
    finally:
        await driver.close()


async def test_the_pos_answers_a_request_it_cannot_parse_with_bad_request(
    emulator: str, spool: Path
) -> None:
    """The POS side's rule: take it, answer ``bad_request`` with the id from the name."""
    (spool / "requests" / "req-other-0badcafe-5.json").write_bytes(b'{"id": 5, "op": ')
    answer = spool / "responses" / "resp-other-0badcafe-5.json"
    await eventually(answer.exists, "the POS's answer")
    reply = json.loads(answer.read_bytes())
    assert (reply["id"], reply["ok"], reply["error"]["code"]) == (5, False, "bad_request")
    assert listing(spool / "requests") == []
