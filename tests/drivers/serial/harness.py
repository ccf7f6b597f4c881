"""The serial driver against the emulated POS on a real pty, optionally through a noisy line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from bridge.core.bill import Bill
from bridge.core.money import Money
from drivers.base import DriverSettings, PaymentInstruction, PosPayment
from drivers.emulator.pos import EmulatedPos
from drivers.emulator.run import make_pos, running_emulator
from drivers.errors import PosUnavailableError
from drivers.serial.driver import SerialDriver

LOCATION = "1"
FAST_LINE = "baudrate=115200"  # ptys are not paced: a fast line keeps the timers short


@contextlib.asynccontextmanager
async def serial_pos(
    query: str = FAST_LINE, *, tables: int = 6
) -> AsyncIterator[tuple[EmulatedPos, str]]:
    """The emulator on a new pty; yields it and the driver URL for the bridge."""
    pos = make_pos(None, tables=tables)
    async with running_emulator(f"serial:pty?{query}", pos) as (url, _):
        yield pos, url


@contextlib.asynccontextmanager
async def serial_driver(url: str, **options: Any) -> AsyncIterator[SerialDriver]:
    driver = SerialDriver(DriverSettings("main", urlsplit(url), options))
    await driver.open()
    try:
        yield driver
    finally:
        await driver.close()


def instruction(bill: Bill, payment_id: str, amount: int, tip: int = 0) -> PaymentInstruction:
    currency = bill.currency
    return PaymentInstruction(
        payment_id,
        LOCATION,
        bill.table,
        bill.id,
        Money(amount, currency),
        Money(tip, currency),
        "App",
    )


async def settle(
    driver: SerialDriver, payment: PaymentInstruction, attempts: int = 20
) -> PosPayment:
    """The outbox's rule: apply; after an unknown outcome, find it before applying again."""
    for _ in range(attempts):
        try:
            found = await driver.find_payment(payment.location, payment.payment_id)
            if found is not None:
                return found
            return await driver.apply_payment(payment)
        except PosUnavailableError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"{payment.payment_id} not settled in {attempts} attempts")


def payment_ids(pos: EmulatedPos) -> list[str]:
    return [row[0] for row in pos.simulator.payments(LOCATION)]
