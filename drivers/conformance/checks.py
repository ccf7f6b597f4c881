"""The checks: each one rule of the driver interface (``drivers/base.py``), tried for real.

A check returns a short note of what it saw, or raises :class:`CheckFailed` naming the rule
broken, or :class:`CheckSkipped`. The ones that pay take a table of their own from the run
(``KitRun.take_table``) and pay small amounts, so a test POS with a handful of open bills is
enough (docs/drivers/conformance.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from bridge.core.bill import Bill
from drivers.base import DriverHealth, DriverInfo, PaymentInstruction, PosDriver, PosPayment, Table
from drivers.conformance.target import MAX_TABLES_SCANNED, CheckFailed, KitRun
from drivers.errors import (
    PaymentRefusedError,
    PosOfflineError,
    PosTimeoutError,
    PosUnavailableError,
    UnknownTableError,
)

#: How long the POS is kept rebooting by the restart part of ``pos_offline``.
RESTART_S = 1.0


async def open_close(run: KitRun) -> str:
    """close() before open() is harmless, and a driver opens and closes twice."""
    driver = run.target.make_driver()
    if not isinstance(driver, PosDriver) or not isinstance(
        getattr(driver, "info", None), DriverInfo
    ):
        raise CheckFailed(f"{type(driver).__name__} does not implement PosDriver with a DriverInfo")
    await run.call(driver.close(), "close() before open()")
    for _ in range(2):
        await run.call(driver.open(), "open()")
        await run.call(driver.list_tables(run.target.location), "list_tables")
        await run.call(driver.close(), "close()")
    return f"{driver.info.name} {driver.info.version}"


async def health(run: KitRun) -> str:
    async with run.driver() as driver:
        found = await run.call(driver.health(), "health()")
    if not isinstance(found, DriverHealth) or type(found.online) is not bool:
        raise CheckFailed(f"health() returned {found!r}, not a DriverHealth")
    if not found.online:
        raise CheckFailed(f"health() says offline while the POS is up: {found.detail}")
    return found.detail


async def list_tables(run: KitRun) -> str:
    async with run.driver() as driver:
        tables = await run.call(driver.list_tables(run.target.location), "list_tables")
    if not isinstance(tables, list) or not all(isinstance(t, Table) for t in tables):
        raise CheckFailed(f"list_tables returned {type(tables).__name__}, not a list of Table")
    if not tables:
        raise CheckFailed(f"no tables at location {run.target.location!r}")
    numbers = [t.number for t in tables]
    if any(type(n) is not int for n in numbers) or len(set(numbers)) != len(numbers):
        raise CheckFailed(f"table numbers must be distinct integers: {numbers[:20]}")
    if any(not isinstance(t.name, str) for t in tables):
        raise CheckFailed("table names must be strings")
    return f"{len(tables)} tables"


async def get_open_bill(run: KitRun) -> str:
    """A known table gives its Bill or None; a number that is no table raises UnknownTable."""
    async with run.driver() as driver:
        numbers = await run.table_numbers(driver)
        known = numbers[0]
        bill = await run.call(driver.get_open_bill(run.target.location, known), "get_open_bill")
        if bill is not None and (not isinstance(bill, Bill) or bill.table != known):
            raise CheckFailed(f"get_open_bill(table {known}) returned {bill!r}")
        unknown = max(numbers) + 1
        try:
            other = await run.call(
                driver.get_open_bill(run.target.location, unknown), "get_open_bill"
            )
        except UnknownTableError as exc:
            if exc.table != unknown:
                raise CheckFailed(
                    f"UnknownTableError names table {exc.table}, not {unknown}"
                ) from exc
        else:
            raise CheckFailed(f"table {unknown} does not exist, but get_open_bill gave {other!r}")
    return f"table {known}: {'a bill' if bill else 'no bill'}; table {unknown}: UnknownTableError"


async def bills_valid(run: KitRun) -> str:
    """Every open bill: integer minor units, a currency code, sums that add up."""
    count = 0
    async with run.driver() as driver:
        for number in (await run.table_numbers(driver))[:MAX_TABLES_SCANNED]:
            bill = await run.call(driver.get_open_bill(run.target.location, number), "get_bill")
            if bill is not None:
                _check_bill(bill, number)
                count += 1
    if not count:
        raise CheckFailed(f"no open bills at location {run.target.location!r}")
    return f"{count} open bills"


def _check_bill(bill: Bill, table: int) -> None:
    where = f"bill {bill.id!r} of table {table}"
    if not isinstance(bill, Bill) or not isinstance(bill.id, str) or not bill.id:
        raise CheckFailed(f"table {table}: {bill!r} is not a Bill with an id")
    if bill.table != table:
        raise CheckFailed(f"{where} says it is table {bill.table}")
    code = bill.currency
    if not (isinstance(code, str) and len(code) == 3 and code.isalpha() and code.isupper()):
        raise CheckFailed(f"{where}: currency {code!r} is not an ISO 4217 code")
    money = [("quantity", i.quantity) for i in bill.items]
    money += [("item amount", i.amount) for i in bill.items]
    money += [("item tax", i.tax) for i in bill.items if i.tax is not None]
    money += [("option amount", s.amount) for i in bill.items for s in i.sub_items]
    money += [("payment amount", p.amount) for p in bill.payments]
    money += [("tip", p.tip) for p in bill.payments]
    for what, value in money:
        if type(value) is not int:
            raise CheckFailed(f"{where}: {what} {value!r} is not an integer of minor units")
    if any(p.amount < 0 or p.tip < 0 for p in bill.payments):
        raise CheckFailed(f"{where}: a payment or tip is negative")
    total = sum(i.quantity * (i.amount + sum(s.amount for s in i.sub_items)) for i in bill.items)
    paid = sum(p.amount for p in bill.payments)
    if bill.total.minor != total or bill.balance.minor != total - paid:
        raise CheckFailed(f"{where}: total or balance does not add up")
    if not bill.is_open:
        raise CheckFailed(f"{where} is returned as the open bill but is closed")
    if bill.balance.minor < 0:
        raise CheckFailed(f"{where}: negative balance {bill.balance}")
    if bill.payments and bill.balance.minor == 0:
        raise CheckFailed(f"{where}: fully paid but still open")


async def split_payments(run: KitRun) -> str:
    """Pay part: the balance drops by it; pay the rest: the bill closes, and takes no more."""
    async with run.driver() as driver:
        bill = await run.take_table(driver, "split_payments")
        part = bill.balance.minor // 2
        first = await _apply(run, driver, run.instruction(bill, part))
        after = await _reread(run, driver, bill)
        if after is None or after.id != bill.id or after.balance.minor != bill.balance.minor - part:
            raise CheckFailed(
                f"paid {part} of {bill.balance}: expected the same bill with balance"
                f" {bill.balance.minor - part}, got {_describe(after)}"
            )
        rest = after.balance.minor
        last = await _apply(run, driver, run.instruction(after, rest))
        if last.bill is not None and (last.bill.is_open or last.bill.balance.minor):
            raise CheckFailed(f"paid the rest: the returned bill is {_describe(last.bill)}")
        closed = await _reread(run, driver, bill)
        if closed is not None and closed.id == bill.id:
            raise CheckFailed(f"paid in full, but the bill is still open: {_describe(closed)}")
        late = run.instruction(bill, 1)
        try:
            await run.call(driver.apply_payment(late), "apply_payment")
        except PaymentRefusedError as exc:
            if exc.reason not in ("bill_closed", "bill_not_found"):
                raise CheckFailed(
                    f"a payment on a closed bill was refused as {exc.reason!r}"
                ) from exc
        else:
            raise CheckFailed("a payment on a closed bill was accepted")
    return f"{first.pos_reference} ({part}) + {last.pos_reference} ({rest}) closed {bill.id}"


async def refusals(run: KitRun) -> str:
    """Overpaying and paying in another currency are refused with their codes, and change
    nothing."""
    async with run.driver() as driver:
        bill = await run.take_table(driver, "refusals")
        other = "NZD" if bill.currency != "NZD" else "AUD"
        cases = [
            ("amount_exceeds_balance", run.instruction(bill, bill.balance.minor + 1)),
            ("currency_mismatch", run.instruction(bill, 1, other)),
        ]
        for reason, instruction in cases:
            try:
                await run.call(driver.apply_payment(instruction), "apply_payment")
            except PaymentRefusedError as exc:
                if exc.reason != reason:
                    raise CheckFailed(f"expected refusal {reason!r}, got {exc.reason!r}") from exc
            else:
                raise CheckFailed(f"a payment that must be refused ({reason}) was accepted")
        after = await _reread(run, driver, bill)
        if after is None or after.balance != bill.balance:
            raise CheckFailed(f"refused payments changed the bill: {_describe(after)}")
    return "amount_exceeds_balance, currency_mismatch"


async def find_payment(run: KitRun) -> str:
    """An unknown id finds nothing; an applied payment is found as it was applied."""
    async with run.driver() as driver:
        missing = await run.call(
            driver.find_payment(run.target.location, f"kit-{run.run_id}-never"), "find_payment"
        )
        if missing is not None:
            raise CheckFailed(f"find_payment of an unknown id returned {missing!r}")
        bill = await run.take_table(driver, "find_payment")
        instruction = run.instruction(bill, 1)
        applied = await _apply(run, driver, instruction)
        await _find(run, driver, instruction, applied.pos_reference)
    return f"found {instruction.payment_id} as {applied.pos_reference}"


async def find_payment_after_crash(run: KitRun) -> str:
    """A payment applied by one driver is found by a fresh one, on the bill once."""
    first = run.target.make_driver()
    await run.call(first.open(), "open()")
    try:
        bill = await run.take_table(first, "find_payment_after_crash")
        instruction = run.instruction(bill, 1)
        applied = await _apply(run, first, instruction)
    finally:
        await run.call(first.close(), "close()")  # the bridge died; its port is free again
    async with run.driver() as second:
        found = await run.call(
            second.find_payment(run.target.location, instruction.payment_id), "find_payment"
        )
        if found is None:
            raise CheckFailed(
                f"a fresh driver did not find {instruction.payment_id}: the POS must keep its"
                " payments when the bridge restarts, or a crash applies them twice"
            )
        await _find(run, second, instruction, applied.pos_reference)
        await _once(run, second, bill, instruction)
    return f"a fresh driver found {instruction.payment_id}"


async def lost_reply(run: KitRun) -> str:
    """A payment whose reply is lost is PosTimeoutError (never 'not delivered'), and is then
    found once by find_payment."""
    control = run.control("make the POS lose a reply")
    async with run.driver() as driver:
        bill = await run.take_table(driver, "lost_reply")
        instruction = run.instruction(bill, 1)
        await control.lose_replies(driver)
        try:
            outcome = await run.call(driver.apply_payment(instruction), "apply_payment")
        except PosOfflineError as exc:
            raise CheckFailed(
                f"the POS took the payment, but the driver said undelivered: {exc}"
            ) from exc
        except PosTimeoutError:
            pass
        else:
            raise CheckFailed(f"the reply was lost, but apply_payment returned {outcome!r}")
        finally:
            await control.online(driver)
        await _recover(run, driver)
        await _find(run, driver, instruction, None)
        await _once(run, driver, bill, instruction)
    return "PosTimeoutError, then found once"


async def pos_offline(run: KitRun) -> str:
    """A POS that stops answering gives typed errors in time, a payment sent then is not
    lost or doubled, and the driver works again when the POS is back, and after a restart."""
    control = run.control("switch the POS off")
    async with run.driver() as driver:
        bill = await run.take_table(driver, "pos_offline")
        instruction = run.instruction(bill, 1)
        await control.offline(driver)
        try:
            await _unavailable(run, driver.get_open_bill(run.target.location, bill.table), "bill")
            state = await _health_while_off(run, driver)
            error = await _unavailable(run, driver.apply_payment(instruction), "apply_payment")
        finally:
            await control.online(driver)
        await _recover(run, driver)
        found = await run.call(
            driver.find_payment(run.target.location, instruction.payment_id), "find_payment"
        )
        if isinstance(error, PosOfflineError) and found is not None:
            raise CheckFailed(
                "apply_payment said PosOfflineError (not delivered), but the POS has it"
            )
        if found is not None:
            await _once(run, driver, bill, instruction)
        await control.restart(driver, RESTART_S)
        await _recover(run, driver)
        back = await run.call(driver.health(), "health()")
        if not back.online:
            raise CheckFailed(f"health() still offline after the POS came back: {back.detail}")
    landed = "landed" if found else "did not land"
    return f"{type(error).__name__} ({landed}); health {state}; recovered, also after a restart"


# -- helpers -------------------------------------------------------------------------------


async def _apply(run: KitRun, driver: PosDriver, instruction: PaymentInstruction) -> PosPayment:
    payment = await run.call(driver.apply_payment(instruction), "apply_payment")
    if not isinstance(payment, PosPayment) or payment.payment_id != instruction.payment_id:
        raise CheckFailed(f"apply_payment returned {payment!r}, not the PosPayment it applied")
    if payment.amount != instruction.amount or payment.bill_ref != instruction.bill_ref:
        raise CheckFailed(f"apply_payment says {payment.amount} on {payment.bill_ref!r}")
    return payment


async def _find(
    run: KitRun, driver: PosDriver, instruction: PaymentInstruction, reference: str | None
) -> PosPayment:
    found = await run.call(
        driver.find_payment(run.target.location, instruction.payment_id), "find_payment"
    )
    if found is None:
        raise CheckFailed(f"find_payment did not find {instruction.payment_id}, applied before")
    if (found.payment_id, found.amount, found.tip, found.bill_ref) != (
        instruction.payment_id,
        instruction.amount,
        instruction.tip,
        instruction.bill_ref,
    ):
        raise CheckFailed(f"find_payment returned {found!r} for {instruction!r}")
    if reference is not None and found.pos_reference != reference:
        raise CheckFailed(f"find_payment says reference {found.pos_reference}, not {reference}")
    return found


async def _once(
    run: KitRun, driver: PosDriver, bill: Bill, instruction: PaymentInstruction
) -> None:
    """The bill holds ``instruction`` exactly once: its balance dropped by it, once."""
    after = await _reread(run, driver, bill)
    expected = bill.balance.minor - instruction.amount.minor
    if after is None or after.id != bill.id or after.balance.minor != expected:
        raise CheckFailed(f"expected the bill at balance {expected}, got {_describe(after)}")
    refs = [p for p in after.payments if p.ref == instruction.payment_id]
    if len(refs) > 1:
        raise CheckFailed(f"{instruction.payment_id} is on the bill {len(refs)} times")


async def _reread(run: KitRun, driver: PosDriver, bill: Bill) -> Bill | None:
    return await run.call(driver.get_open_bill(run.target.location, bill.table), "get_open_bill")


async def _unavailable(run: KitRun, call: Awaitable[object], what: str) -> PosUnavailableError:
    try:
        result = await run.call(call, what)
    except PosUnavailableError as exc:
        return exc
    raise CheckFailed(f"{what} with the POS off returned {result!r}, not PosUnavailableError")


async def _health_while_off(run: KitRun, driver: PosDriver) -> str:
    try:
        found = await run.call(driver.health(), "health()")
    except PosUnavailableError:
        return "raised PosUnavailableError"
    if found.online:
        raise CheckFailed("health() says online while the POS does not answer")
    return "offline"


async def _recover(run: KitRun, driver: PosDriver) -> None:
    """Call until the POS answers again; every failure meanwhile must be typed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + run.target.recovery_s
    while True:
        try:
            await run.call(driver.list_tables(run.target.location), "list_tables")
            return
        except PosUnavailableError as exc:
            if loop.time() > deadline:
                raise CheckFailed(
                    f"still failing {run.target.recovery_s:g} s after the POS came back: {exc}"
                ) from exc
        await asyncio.sleep(0.1)


def _describe(bill: Bill | None) -> str:
    if bill is None:
        return "no open bill"
    state = "open" if bill.is_open else "closed"
    return f"bill {bill.id} ({state}, balance {bill.balance.minor})"
