"""A tunnel's stream slots (``relay/registry.py``): taken at once when free, else in
arrival order; a waiter that leaves never keeps or loses a slot."""

from __future__ import annotations

import asyncio

from relay.registry import Slots


async def test_free_slots_are_taken_at_once_and_then_waited_for_in_order():
    slots = Slots(2)
    assert slots.try_take() and slots.try_take()
    assert not slots.try_take()
    order: list[int] = []

    async def wait(n: int) -> None:
        await slots.take()
        order.append(n)

    waiters = [asyncio.create_task(wait(n)) for n in range(3)]
    await asyncio.sleep(0)
    slots.give()
    slots.give()
    await asyncio.sleep(0)
    assert order == [0, 1]
    assert not slots.try_take()  # the third still waits: a free slot is not jumped
    slots.give()
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2] and slots.free == 0


async def test_a_waiter_cancelled_before_its_turn_takes_nothing():
    slots = Slots(1)
    assert slots.try_take()
    waiter = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    slots.give()
    assert slots.free == 1 and slots.try_take()


async def test_a_waiter_handed_a_slot_but_cancelled_passes_it_on():
    slots = Slots(1)
    assert slots.try_take()
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    slots.give()  # handed to the first...
    first.cancel()  # ...which leaves before it runs again
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1)  # the slot went on to the second
    assert slots.free == 0
    slots.give()
    assert slots.free == 1


async def test_a_deadline_while_waiting_leaves_the_count_right():
    slots = Slots(1)
    assert slots.try_take()
    try:
        async with asyncio.timeout(0.01):
            await slots.take()
    except TimeoutError:
        pass
    slots.give()
    assert slots.free == 1
