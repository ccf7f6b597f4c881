"""Bill locks: one holder per table bill at a time; nothing kept once nobody holds or waits."""

from __future__ import annotations

import asyncio

import pytest

from bridge.services.locks import BillLocks


async def test_one_holder_per_table_in_arrival_order_and_other_tables_free() -> None:
    locks = BillLocks()
    order: list[str] = []

    async def hold(name: str, table: int, seconds: float) -> None:
        async with locks.for_table("loc", table):
            order.append(f"{name}+")
            await asyncio.sleep(seconds)
            order.append(f"{name}-")

    await asyncio.gather(hold("a", 1, 0.05), hold("b", 1, 0), hold("c", 2, 0))
    assert order.index("a-") < order.index("b+")  # b waited for a on table 1
    assert order.index("c+") < order.index("a-")  # c, on table 2, did not
    assert len(locks) == 0


async def test_a_waiter_cancelled_leaves_nothing_behind() -> None:
    locks = BillLocks()
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.for_table("loc", 1):
            held.set()
            await release.wait()

    async def waiter() -> None:
        async with locks.for_table("loc", 1):
            raise AssertionError("never reached: cancelled while waiting")

    first = asyncio.create_task(holder())
    await held.wait()
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    assert len(locks) == 1
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    release.set()
    await first
    assert len(locks) == 0
    async with locks.for_table("loc", 1):  # and the table can be held again
        assert len(locks) == 1


async def test_an_error_inside_releases_the_table() -> None:
    locks = BillLocks()
    with pytest.raises(ValueError):
        async with locks.for_table("loc", 3):
            raise ValueError("refused")
    assert len(locks) == 0
    async with asyncio.timeout(1):
        async with locks.for_table("loc", 3):
            pass
