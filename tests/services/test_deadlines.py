"""Deadlines: a POS call past its deadline raises TimeoutError, as asyncio.timeout would.

Real event loop, real sleeps (tens of milliseconds). Elapsed times are checked only from
below (never cut before the deadline) and with a generous upper bound (cut at all): the tick
makes the exact moment vary, and speed lives in bench/.
"""

from __future__ import annotations

import asyncio

import pytest

from bridge.services.deadlines import TICK_S, Deadlines


async def test_a_call_that_ends_in_time_returns_its_value() -> None:
    deadlines = Deadlines()
    assert await deadlines.run(asyncio.sleep(0.01, "done"), 1.0) == "done"
    assert await deadlines.run(asyncio.sleep(0, 7), 0.05) == 7


async def test_a_call_past_its_deadline_is_cancelled_with_timeout_error() -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    cancelled = asyncio.Event()

    async def slow_pos() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    began = loop.time()
    with pytest.raises(TimeoutError):
        await deadlines.run(slow_pos(), 0.1)
    elapsed = loop.time() - began
    assert cancelled.is_set()  # the call itself was stopped, not abandoned
    assert 0.1 <= elapsed < 0.1 + 2.0
    # The task is usable afterwards: the cancellation was taken back.
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    assert await deadlines.run(asyncio.sleep(0.01, "again"), 1.0) == "again"


async def test_only_the_late_call_of_several_tasks_times_out() -> None:
    deadlines = Deadlines()

    async def call(delay: float, seconds: float) -> str:
        try:
            return await deadlines.run(asyncio.sleep(delay, "ok"), seconds)
        except TimeoutError:
            return "timeout"

    results = await asyncio.gather(
        call(0.01, 1.0), call(0.5, 0.05), call(0.02, 1.0), call(0.5, 0.1)
    )
    assert results == ["ok", "timeout", "ok", "timeout"]


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines()
    task = asyncio.create_task(deadlines.run(asyncio.sleep(10), 5.0))
    await asyncio.sleep(TICK_S * 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_both_at_once_the_outside_cancellation_wins() -> None:
    """Expired and cancelled by its caller before it ran again: asyncio.timeout's rule, the
    caller's CancelledError, not a TimeoutError the caller did not ask for. The tick is run
    by hand so that both happen in the same loop iteration."""
    deadlines = Deadlines(tick_s=60)  # the timer never fires in this test
    entered = asyncio.Event()

    async def pos() -> None:
        entered.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(deadlines.run(pos(), 0.0))
    await entered.wait()
    deadlines._tick(asyncio.get_running_loop())  # past its deadline: cancelled by the tick
    task.cancel()  # and by its caller, before it runs again
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deadlines._expired == set() and deadlines._due == {}


async def test_the_timer_runs_only_while_calls_are_outstanding() -> None:
    deadlines = Deadlines(tick_s=0.01)
    await deadlines.run(asyncio.sleep(0.05), 1.0)
    await asyncio.sleep(0.05)  # a tick finds nothing due and does not re-arm
    assert deadlines._timer is None


async def test_nesting_is_refused() -> None:
    deadlines = Deadlines()

    async def inner() -> None:
        await deadlines.run(asyncio.sleep(0), 1.0)

    with pytest.raises(RuntimeError):
        await deadlines.run(inner(), 1.0)
