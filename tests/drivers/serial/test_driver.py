"""The serial driver over a real pty to the emulated POS speaking PBS1."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from drivers.base import DriverSettings, PosDriver
from drivers.errors import (
    DriverConfigError,
    PaymentRefusedError,
    PosOfflineError,
    PosTimeoutError,
    UnknownTableError,
)
from drivers.registry import load_driver
from drivers.serial.codec import Pbs1ClientCodec
from drivers.serial.driver import SerialDriver, new_pbs1_codec
from drivers.wire.codec import load_codec
from tests.drivers.serial.harness import (
    LOCATION,
    instruction,
    payment_ids,
    serial_driver,
    serial_pos,
    settle,
)


def test_registered_under_its_scheme() -> None:
    assert load_driver("serial") is SerialDriver
    assert SerialDriver.info.name == "serial"


def test_pbs1_is_a_registered_codec_that_other_stream_links_can_carry() -> None:
    factory = load_codec("pbs1", {})  # through the entry point, not builtin
    assert factory is new_pbs1_codec
    assert isinstance(factory({"baudrate": 9600}), Pbs1ClientCodec)


@pytest.mark.parametrize(
    ("url", "options", "key"),
    [
        ("serial://host/dev/ttyS0", {}, "url"),
        ("serial:///dev/ttyS0?baudrate=12", {}, "options.baudrate"),
        ("serial:///dev/ttyS0?parity=Q", {}, "options.parity"),
        ("serial:///dev/ttyS0?baudrate=9600", {"baudrate": 19200}, "options.baudrate"),
        ("serial:///dev/ttyS0", {"codec": "nope"}, "options.codec"),
        ("serial:///dev/ttyS0", {"colour": "red"}, "options.colour"),
    ],
)
def test_bad_urls_and_options_name_their_key(
    url: str, options: dict[str, object], key: str
) -> None:
    with pytest.raises(DriverConfigError) as caught:
        SerialDriver(DriverSettings("main", urlsplit(url), options))
    assert caught.value.key == key


async def test_a_missing_port_is_offline_and_nothing_was_sent(tmp_path) -> None:
    async with serial_driver(f"serial://{tmp_path}/ttyNONE?baudrate=9600") as driver:
        assert isinstance(driver, PosDriver)
        with pytest.raises(PosOfflineError):
            await driver.list_tables(LOCATION)
        assert not (await driver.health()).online


async def test_tables_bills_and_split_payments() -> None:
    async with serial_pos() as (pos, url), serial_driver(url) as driver:
        assert [t.number for t in await driver.list_tables(LOCATION)] == [1, 2, 3, 4, 5, 6]
        assert (await driver.health()).online
        bill = await driver.get_open_bill(LOCATION, 3)
        assert bill is not None and bill.balance.minor > 0
        half = bill.balance.minor // 2
        first = await driver.apply_payment(instruction(bill, "split-1", half, tip=100))
        assert first.bill is not None and first.bill.balance.minor == bill.balance.minor - half
        rest = await driver.apply_payment(instruction(bill, "split-2", bill.balance.minor - half))
        assert rest.bill is not None and rest.bill.closed_at is not None
        assert await driver.get_open_bill(LOCATION, 3) is None
        found = await driver.find_payment(LOCATION, "split-1")
        assert found is not None and found.pos_reference == first.pos_reference
        assert await driver.find_payment(LOCATION, "never") is None
        assert payment_ids(pos) == ["split-1", "split-2"]


async def test_typed_errors_cross_the_wire() -> None:
    async with serial_pos() as (_, url), serial_driver(url) as driver:
        with pytest.raises(UnknownTableError):
            await driver.get_open_bill(LOCATION, 99)
        bill = await driver.get_open_bill(LOCATION, 1)
        assert bill is not None
        with pytest.raises(PaymentRefusedError) as caught:
            await driver.apply_payment(instruction(bill, "too-much", bill.balance.minor + 1))
        assert caught.value.reason == "amount_exceeds_balance"


async def test_a_silent_pos_is_a_timeout_then_recovers() -> None:
    async with serial_pos() as (pos, url), serial_driver(url, timeout_ms=3000) as driver:
        await driver.list_tables(LOCATION)
        pos.faults.silent = True
        with pytest.raises(PosTimeoutError):  # no ACK: the codec gives up after its retries
            await driver.list_tables(LOCATION)
        pos.faults.silent = False
        assert len(await driver.list_tables(LOCATION)) == 6


async def test_a_slow_answer_is_waited_for_and_too_slow_is_a_timeout() -> None:
    async with serial_pos() as (pos, url), serial_driver(url, timeout_ms=400) as driver:
        pos.faults.delay_ms = 150  # ACKed at once, answered later: no retransmit needed
        assert len(await driver.list_tables(LOCATION)) == 6
        pos.faults.delay_ms = 1000
        with pytest.raises(PosTimeoutError):
            await driver.list_tables(LOCATION)
        pos.faults.delay_ms = 0
        assert len(await driver.list_tables(LOCATION)) == 6


async def test_a_lost_reply_is_reconciled_by_find_payment_not_applied_twice() -> None:
    async with serial_pos() as (pos, url), serial_driver(url, timeout_ms=300) as driver:
        bill = await driver.get_open_bill(LOCATION, 2)
        assert bill is not None
        payment = instruction(bill, "lost-answer", 500)
        pos.faults.drop_replies = True
        with pytest.raises(PosTimeoutError):
            await driver.apply_payment(payment)
        pos.faults.drop_replies = False
        settled = await settle(driver, payment)
        assert settled.payment_id == "lost-answer"
        assert payment_ids(pos) == ["lost-answer"]


async def test_a_reboot_mid_payment_is_survived_and_applied_once() -> None:
    async with serial_pos() as (pos, url), serial_driver(url, timeout_ms=700) as driver:
        bill = await driver.get_open_bill(LOCATION, 4)
        assert bill is not None
        pos.faults.delay_ms = 200  # the payment is being worked on when the POS reboots
        payment = instruction(bill, "across-reboot", 700)
        attempt = asyncio.create_task(driver.apply_payment(payment))
        await asyncio.sleep(0.05)
        pos.reboot(0.3)
        with pytest.raises(PosTimeoutError):
            await attempt
        pos.faults.delay_ms = 0
        await settle(driver, payment)
        assert payment_ids(pos).count("across-reboot") == 1
        assert len(await driver.list_tables(LOCATION)) == 6


async def test_bits_flipped_by_the_pos_are_caught_and_no_payment_lands_twice() -> None:
    """A third of the POS's writes get a flipped bit, ACKs included: the bridge retransmits
    frames the POS already has, which the POS must ACK again without applying again."""
    async with serial_pos() as (pos, url), serial_driver(url, timeout_ms=2000) as driver:
        pos.faults.corrupt_per_mille = 333
        paid = []
        for table in range(1, 7):
            bill = await driver.get_open_bill(LOCATION, table)
            assert bill is not None
            for part in range(3):
                payment = instruction(bill, f"flipped-{table}-{part}", 100 + part)
                await settle(driver, payment)
                paid.append(payment.payment_id)
        codec = driver.exchange._codec  # type: ignore[attr-defined]
        server = pos._reboot_listeners[-1].__self__.codec  # type: ignore[attr-defined]
        assert codec.link.reader.stats.frames_rejected > 0
        assert codec.link.stats.bad_payloads == 0
        assert sorted(payment_ids(pos)) == sorted(paid)
        assert server.link.stats.duplicates > 0  # lost ACKs really made retransmits


async def test_replies_meant_for_a_dead_bridge_are_not_taken_by_the_next() -> None:
    """The line outlives the bridge: a killed bridge's replies still trickle out of the POS.
    The next bridge process must not take them for answers to its own requests."""
    async with serial_pos() as (pos, url):
        pos.faults.delay_ms = 100
        async with serial_driver(url, timeout_ms=2000) as dead:
            calls = [
                asyncio.create_task(dead.get_open_bill(LOCATION, table)) for table in (1, 2, 3)
            ]
            await asyncio.sleep(0.05)  # requests delivered, replies not yet sent
        for call in calls:
            with pytest.raises(PosOfflineError):
                await call
        await asyncio.sleep(0.15)  # the POS answers them: nobody ACKs, it retransmits
        pos.faults.delay_ms = 0
        async with serial_driver(url, timeout_ms=2000) as fresh:
            for table in (4, 5, 6, 4, 5, 6):
                bill = await fresh.get_open_bill(LOCATION, table)
                assert bill is not None and bill.table == table


@pytest.mark.parametrize("rst_lost", [False, True], ids=["rst-heard", "rst-lost-too"])
async def test_a_pos_reboot_after_a_lost_ack_does_not_apply_the_retransmission(
    rst_lost: bool,
) -> None:
    """PBS1's old known limit, end to end: the POS delivers the apply_payment frame and
    applies it, its ACK is lost, and it reboots, forgetting the SEQ it delivered. The
    bridge's retransmission must not be applied again: the rebooted POS says RST (or, if
    that RST is lost as well, refuses the retransmission with RST), the bridge fails the
    request as outcome unknown and the outbox's find_payment finds it."""
    async with (
        serial_pos() as (pos, url),
        # A slow ACK timer: the bridge's first retransmission comes after the reboot.
        serial_driver(url, timeout_ms=5000, turnaround_ms=1000) as driver,
    ):
        bill = await driver.get_open_bill(LOCATION, 5)
        assert bill is not None
        payment = instruction(bill, "ack-lost-then-reboot", 800)
        pos.faults.corrupt_per_mille = 1000  # every POS write damaged: the ACK is lost
        pos.faults.drop_replies = True  # applied, not answered: it reboots first
        attempt = asyncio.create_task(driver.apply_payment(payment))
        async with asyncio.timeout(2):
            while "ack-lost-then-reboot" not in payment_ids(pos):
                await asyncio.sleep(0.005)
        pos.reboot(0.05)
        if rst_lost:
            await asyncio.sleep(0.15)  # its power-on RST goes out damaged too
        pos.faults.corrupt_per_mille = 0
        pos.faults.drop_replies = False
        [outcome] = await asyncio.gather(attempt, return_exceptions=True)
        settled = await settle(driver, payment)
        assert settled.payment_id == "ack-lost-then-reboot"
        await asyncio.sleep(1.2)  # long enough for any retransmission to have landed
        assert payment_ids(pos).count("ack-lost-then-reboot") == 1  # 2 before RST/RSTACK
        assert isinstance(outcome, PosTimeoutError)  # outcome unknown, not retransmitted
        codec = driver.exchange._codec  # type: ignore[attr-defined]
        assert codec.link.stats.peer_resets >= 1
        server = pos._reboot_listeners[-1].__self__.codec  # type: ignore[attr-defined]
        if rst_lost:  # the retransmission met the rebooted POS, which refused it
            assert codec.link.stats.retransmitted >= 1 and server.link.stats.refused >= 1
        else:  # the RST came first: nothing was retransmitted at all
            assert codec.link.stats.retransmitted == 0 and server.link.stats.refused == 0
