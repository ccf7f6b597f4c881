"""Exactly once across a bridge killed with a request in the folder (real subprocesses).

The killed bridge leaves a request behind. A new bridge process opens the same folder in a
new session and does what the outbox does for a payment it finds ``applying`` after a
crash: ``find_payment``, then ``apply_payment`` only if the POS does not have it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from drivers.emulator.pos import EmulatedPos
from drivers.wire.messages import instruction_args
from tests.drivers.filedrop.conftest import (
    LOCATION,
    eventually,
    instruction,
    listing,
    make_driver,
    payments_on_pos,
)

ROOT = Path(__file__).resolve().parents[3]


async def killed_mid_payment(url: str, args: dict[str, object], until: object) -> None:
    """Start a one-payment bridge process, wait for ``until()``, then SIGKILL it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.drivers.filedrop.one_payment", url, json.dumps(args),
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await eventually(until, "the bridge process to be mid-payment")  # type: ignore[arg-type]
    finally:
        process.kill()
        await process.wait()


async def reconcile_then_apply(url: str, pos: EmulatedPos, payment_id: str) -> str:
    """The outbox's recovery in a new bridge: find first, apply only if not found."""
    driver = make_driver(url, timeout_ms=3000)
    await driver.open()
    try:
        found = await driver.find_payment(LOCATION, payment_id)
        if found is not None:
            return "found"
        await driver.apply_payment(await instruction(pos, payment_id))
        return "applied"
    finally:
        await driver.close()


async def test_a_request_the_pos_never_took_is_withdrawn_and_applied_once_by_the_next_bridge(
    emulator: str, pos: EmulatedPos, spool: Path, state: Path
) -> None:
    requests = spool / "requests"
    pos.reboot(60)  # the POS takes nothing while the first bridge runs
    args = instruction_args(await instruction(pos, "pay-left"))
    await killed_mid_payment(emulator, args, lambda: listing(requests) != [])
    assert len(listing(requests)) == 1  # left behind by the killed bridge

    driver = make_driver(emulator)
    await driver.open()  # withdraws it: the POS must never carry it out
    await driver.close()
    assert listing(requests) == []
    pos.rebooting_until = 0.0  # the POS is back
    assert await reconcile_then_apply(emulator, pos, "pay-left") == "applied"
    assert payments_on_pos(state, "pay-left") == 1


async def test_a_request_the_pos_took_is_found_by_the_next_bridge_not_applied_again(
    emulator: str, pos: EmulatedPos, spool: Path, state: Path
) -> None:
    pos.faults.delay_ms = 400  # the POS answers after the bridge that asked has died
    args = instruction_args(await instruction(pos, "pay-taken"))
    await killed_mid_payment(emulator, args, lambda: pos.requests_seen > 0)
    assert payments_on_pos(state, "pay-taken") == 0  # still being carried out

    assert await reconcile_then_apply(emulator, pos, "pay-taken") == "found"
    assert payments_on_pos(state, "pay-taken") == 1
    # The dead session's late response was discarded by the new bridge, unread.
    assert listing(spool / "responses") == []
